"""Pure OCI/Docker image data: digests, media types, compression, tar scanning. No I/O."""
