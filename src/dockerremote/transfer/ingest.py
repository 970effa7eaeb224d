"""Layer ingest: one pass over the bytes stores the blob, hashes it, and measures the tar.

The compressed bytes go to the blob writer untouched (we never unpack); a streaming
decompressor feeds the DiffID hash and the tar meter. Runs in worker threads: hashlib
and zlib release the GIL, so the event loop keeps serving while a layer streams in.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import AsyncIterator, Callable

from dockerremote.errors import DigestMismatch, DockerRemoteError, InvalidArgument
from dockerremote.oci import compression
from dockerremote.oci.tarscan import LayerMeter, TarError
from dockerremote.store.content import ContentStore
from dockerremote.store.index import LayerRecord

CHUNK = 1 << 20


class LayerIngest:
    """Feed a layer's bytes as they come (from one thread at a time); finish() commits it."""

    def __init__(self, content: ContentStore, measure: bool = True, expected_digest: str | None = None) -> None:
        self._writer = content.writer()
        self._inflater = compression.Inflater(self._uncompressed)
        self._diff = hashlib.sha256()
        self._meter = LayerMeter() if measure else None
        self.uncompressed_size = 0
        # With an expected digest the digest is the first verdict: bad bytes from a registry
        # are reported as a digest mismatch at finish(), not as the decompressor's complaint.
        self._expected_digest = expected_digest
        self._data_error: DockerRemoteError | None = None

    @property
    def digest(self) -> str:
        """sha256 of the (compressed) bytes fed so far."""
        return self._writer.digest

    @property
    def size(self) -> int:
        return self._writer.size

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._writer.write(data)
        if self._data_error is not None:
            return
        try:
            self._decode(data)
        except DockerRemoteError as exc:
            if self._expected_digest is None:
                raise
            self._data_error = exc  # reported at finish(), unless the digest says more

    def _decode(self, data: bytes) -> None:
        try:
            self._inflater.feed(data)
        except compression.DecompressError as exc:
            raise InvalidArgument(f"invalid layer data: {exc}") from exc

    def _uncompressed(self, out: bytes) -> None:
        self.uncompressed_size += len(out)
        self._diff.update(out)
        if self._meter is not None:
            try:
                self._meter.feed(out)
            except TarError as exc:
                raise InvalidArgument(str(exc)) from exc

    def finish(self, expected_digest: str | None = None, expected_diff_id: str | None = None) -> LayerRecord:
        expected_digest = expected_digest or self._expected_digest
        try:
            if self._expected_digest is not None:
                if self._writer.digest != expected_digest:
                    raise DigestMismatch(f"digest mismatch: expected {expected_digest}, got {self._writer.digest}")
                if self._data_error is not None:
                    raise self._data_error
            try:
                self._inflater.finish()
            except compression.DecompressError as exc:
                raise InvalidArgument(f"invalid layer data: {exc}") from exc
            if self._meter is not None and self.uncompressed_size:
                try:
                    self._meter.finish()
                except TarError as exc:
                    raise InvalidArgument(str(exc)) from exc
            diff_id = "sha256:" + self._diff.hexdigest()
            if expected_diff_id is not None and diff_id != expected_diff_id:
                raise DigestMismatch(f"layer DiffID mismatch: expected {expected_diff_id}, got {diff_id}")
            size = self._writer.size
            digest = self._writer.commit(expected_digest)
            return LayerRecord(digest, diff_id, self._inflater.kind or compression.NONE,
                               self._meter.size if self._meter else 0, size, self.uncompressed_size)
        finally:
            self._writer.abort()

    def abort(self) -> None:
        self._writer.abort()


async def rechunk(source: AsyncIterator[bytes], size: int = CHUNK) -> AsyncIterator[bytes]:
    """Coalesce small network reads into chunks of about `size` (fewer thread hops)."""
    buf: list[bytes] = []
    n = 0
    async for data in source:
        buf.append(data)
        n += len(data)
        if n >= size:
            yield b"".join(buf)
            buf, n = [], 0
    if buf:
        yield b"".join(buf)


async def pump(source: AsyncIterator[bytes], sink: Callable[[bytes], None],
               on_progress: Callable[[int], None] | None = None) -> int:
    """Feed `sink` in a worker thread while the next chunk is read: both cores busy."""
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[None] | None = None
    total = 0
    try:
        async for chunk in rechunk(source):
            if pending is not None:
                await pending
            pending = loop.run_in_executor(None, sink, chunk)
            total += len(chunk)
            if on_progress is not None:
                on_progress(total)
        if pending is not None:
            await pending
            pending = None
    finally:
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)
    return total
