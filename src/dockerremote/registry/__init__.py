"""Registry HTTP API v2 client: hosts (mirrors, insecure), auth, manifests, blobs, uploads.

Never imports store/ and knows nothing of Docker's Engine API JSON: it returns bytes and
raises the typed errors in registry/errors.py.
"""
