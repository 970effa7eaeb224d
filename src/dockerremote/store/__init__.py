"""The local image store: verified blobs on disk and an SQLite index of images and refs."""
