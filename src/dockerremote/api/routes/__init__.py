"""Route handlers, one module per family of endpoints; each has register(router)."""
