"""Pipelines that move bytes between archives (later registries) and the store."""
