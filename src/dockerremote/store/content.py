"""Content-addressable blobs: blobs/sha256/<hex>, entered only through a verified commit.

A writer streams into ingest/<random>, hashing as it goes; commit() checks the expected
size and digest, fsyncs, renames into place atomically and fsyncs the folder. Partial data
is never visible under a digest; leftovers in ingest/ are swept at start.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Callable

from dockerremote.errors import DigestMismatch
from dockerremote.oci.digest import hex_of, is_sha256_digest


_SYNC_FILE_RANGE_WRITE = 2


def _find_sync_file_range() -> "Callable[[int, int, int, int], int] | None":
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
        fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        fn.restype = ctypes.c_int
        return fn  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_sync_file_range = _find_sync_file_range()


class BlobWriter:
    def __init__(self, store: "ContentStore") -> None:
        self._store = store
        self.path = store.ingest_dir / secrets.token_hex(16)
        self._f = open(self.path, "wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self._done = False

    def write(self, data: bytes) -> None:
        self._f.write(data)
        self._hash.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def flush(self) -> None:
        """Hand what was written so far to the file (not to the disk): readers of the file
        see it (a push streams a blob while it is being made)."""
        self._f.flush()

    def start_sync(self) -> None:
        """Start writing what was written so far to disk without waiting for it, so commit()'s
        fsync finds little left (sync_file_range; fdatasync where that is missing). Never
        blocks on other files' dirty pages, unlike fdatasync on a journaling filesystem."""
        self._f.flush()
        if _sync_file_range is None:
            os.fdatasync(self._f.fileno())
            return
        _sync_file_range(self._f.fileno(), 0, 0, _SYNC_FILE_RANGE_WRITE)

    def sync(self) -> None:
        """Push what was written so far to disk, so commit()'s fsync has little left to wait
        for (a long download calls this now and then from a thread of its own)."""
        self._f.flush()
        os.fdatasync(self._f.fileno())

    def commit(self, expected_digest: str | None = None, expected_size: int | None = None,
               sync_dir: bool = True) -> str:
        """Verify and publish the blob; return its digest. Raises DigestMismatch.
        With sync_dir=False the caller fsyncs the folder itself (ContentStore.fsync_dir) before
        anything durable refers to the blob: one folder fsync for many blobs."""
        digest = self.digest
        try:
            if expected_size is not None and expected_size != self.size:
                raise DigestMismatch(f"size mismatch: expected {expected_size}, got {self.size}")
            if expected_digest is not None and expected_digest != digest:
                raise DigestMismatch(f"digest mismatch: expected {expected_digest}, got {digest}")
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            target = self._store.path(digest)
            if target.exists():
                self.path.unlink()
            else:
                os.rename(self.path, target)
                if sync_dir:
                    self._store.fsync_dir()
            self._done = True
            return digest
        finally:
            if not self._done:
                self.abort()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._f.close()
        finally:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_dir = root / "blobs" / "sha256"
        self.ingest_dir = root / "ingest"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.ingest_dir, ignore_errors=True)  # unfinished ingests of a dead daemon
        self.ingest_dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        if not is_sha256_digest(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.blob_dir / hex_of(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put(self, data: bytes) -> str:
        with self.writer() as w:
            w.write(data)
            return w.commit()

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def all_digests(self) -> set[str]:
        return {"sha256:" + p.name for p in self.blob_dir.iterdir() if len(p.name) == 64}

    def fsync_dir(self) -> None:
        fd = os.open(self.blob_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
