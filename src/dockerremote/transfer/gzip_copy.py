"""The gzip form of a layer stored uncompressed (import, load) or in a compression a push does
not send (bzip2, xz): made once, on both cores, streaming, and kept as a blob of the store.

The layer tar is cut in CHUNK pieces; each is deflated on its own by a pool of worker threads
(isal's igzip when installed: ~4x zlib's speed; both release the GIL) and ends with a sync
flush, so the pieces concatenate, in order, into ONE standard gzip member (pigz's layout):
any gunzip reads it, its CRC is combined from the pieces' CRCs. At most a few chunks are in
memory at once, whatever the layer's size. Deterministic: the same tar gives the same bytes.
"""

from __future__ import annotations

import struct
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator

from dockerremote.oci import compression
from dockerremote.store.content import ContentStore
from dockerremote.store.index import LayerRecord

CHUNK = 4 << 20          # measured: 4 MiB pieces keep both cores busy with the least overhead
LEVEL = 1                # isal level 1: ~250 MB/s per core on layer-like data, ~40% of the tar
READ = 1 << 20
SYNC_EVERY = 8 << 20     # flush now and then in the background: commit's fsync stays short
# gzip header: magic, deflate, no flags, mtime 0 (as dockerd writes), no extra flags, OS unknown
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def _zlib() -> Any:
    try:
        from isal import isal_zlib  # type: ignore[import-not-found]

        return isal_zlib
    except ImportError:
        return zlib


_Z = _zlib()


def _deflate(data: bytes, last: bool) -> tuple[bytes, int, int]:
    """One piece as raw deflate ending on a byte boundary (or the final block); its CRC, length."""
    c = _Z.compressobj(LEVEL, _Z.DEFLATED, -15)
    out = c.compress(data) + c.flush(_Z.Z_FINISH if last else _Z.Z_SYNC_FLUSH)
    return out, _Z.crc32(data), len(data)


def _crc_combine(crc1: int, crc2: int, len2: int) -> int:
    combine = getattr(_Z, "crc32_combine", None)
    if combine is not None:
        return combine(crc1, crc2, len2)
    return _crc32_combine(crc1, crc2, len2)


def tar_chunks(content: ContentStore, layer: LayerRecord, size: int | None = None) -> Iterator[bytes]:
    """The layer's uncompressed tar in pieces of `size` bytes (the last one shorter)."""
    size = size or CHUNK
    if layer.compression == compression.NONE:  # the blob is the tar: read it as is
        with open(content.path(layer.blob_digest), "rb") as f:
            while data := f.read(size):
                yield data
        return
    buf = bytearray()
    pending: list[bytes] = []

    def sink(data: bytes) -> None:
        buf.extend(data)
        while len(buf) >= size:
            pending.append(bytes(buf[:size]))
            del buf[:size]

    inflater = compression.Inflater(sink)
    with open(content.path(layer.blob_digest), "rb") as f:
        while True:
            data = f.read(READ)
            if not data:
                break
            inflater.feed(data)
            yield from pending
            pending.clear()
    inflater.finish()
    yield from pending
    if buf:
        yield bytes(buf)


def make_gzip_copy(content: ContentStore, layer: LayerRecord, workers: int = 2,
                   on_written: Callable[[str, int, int, str], None] | None = None) -> tuple[str, int, Any]:
    """Compress the layer into an uncommitted blob: (digest, size, writer). Blocking (a thread).

    on_written(file path, bytes in it, tar bytes compressed, digest) after each piece, once the
    piece can be read from that file (digest "" until the last call, which comes before the
    caller's commit): a push may stream the blob while it is made. The caller commits the
    writer (under a lease on the digest) and records the copy.
    """
    writer = content.writer()
    try:
        writer.write(_HEADER)
        crc, total, unsynced = 0, 0, 0
        with ThreadPoolExecutor(workers, thread_name_prefix="gzip-copy") as pool:
            queue: list[Future[tuple[bytes, int, int]]] = []
            held: bytes | None = None  # one piece held back: only the last one finishes the stream

            def drain(keep: int) -> None:
                nonlocal crc, total, unsynced
                while len(queue) > keep:
                    out, piece_crc, n = queue.pop(0).result()
                    writer.write(out)
                    crc = _crc_combine(crc, piece_crc, n) if total else piece_crc
                    total += n
                    unsynced += len(out)
                    if unsynced >= SYNC_EVERY:
                        unsynced = 0
                        writer.start_sync()
                    if on_written is not None:
                        writer.flush()
                        on_written(str(writer.path), writer.size, total, "")

            for piece in tar_chunks(content, layer):
                if held is not None:
                    queue.append(pool.submit(_deflate, held, False))
                    drain(workers)  # bounded: a few pieces in flight, whatever the layer's size
                held = piece
            queue.append(pool.submit(_deflate, held or b"", True))
            drain(0)
        writer.write(struct.pack("<II", crc & 0xFFFFFFFF, total & 0xFFFFFFFF))
        if on_written is not None:
            writer.flush()
            on_written(str(writer.path), writer.size, total, writer.digest)
        return writer.digest, writer.size, writer
    except BaseException:
        writer.abort()
        raise


# --------------------------------------------------------------------------- zlib's crc32_combine

def _gf2_times(mat: list[int], vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def _crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC of A+B from CRC(A), CRC(B) and len(B) (zlib's algorithm; stdlib zlib lacks it)."""
    if len2 <= 0:
        return crc1
    op = [0xEDB88320] + [1 << n for n in range(31)]  # appends one zero bit
    for _ in range(3):
        op = _gf2_square(op)  # ... then 2, 4, 8 bits: one zero byte
    while len2:  # apply 2^k zero bytes for each bit k of len2
        if len2 & 1:
            crc1 = _gf2_times(op, crc1)
        len2 >>= 1
        if len2:
            op = _gf2_square(op)
    return crc1 ^ crc2
