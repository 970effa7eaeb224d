"""The only layer that knows Docker's wire format."""
