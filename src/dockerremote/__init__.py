"""dockerremote: the image service of the Docker Engine API."""

__version__ = "0.1.0"

# The dockerd release whose API behaviour we reproduce; shown in /version and image configs.
ENGINE_VERSION = "20.10.24"
