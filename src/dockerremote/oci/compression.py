"""Detect a stream's compression by its magic bytes; inflate it push-style in bounded pieces.

`Inflater` takes bytes as they arrive and hands the decompressed stream to a sink in pieces
of at most OUT_CHUNK bytes, whatever the ratio: a small bomb never becomes a big buffer.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Any, Callable

GZIP, BZIP2, XZ, ZSTD, NONE = "gzip", "bzip2", "xz", "zstd", "none"

_MAGIC = [
    (b"\x1f\x8b\x08", GZIP),
    (b"BZh", BZIP2),
    (b"\xfd7zXZ\x00", XZ),
    (b"\x28\xb5\x2f\xfd", ZSTD),
]

MAGIC_LEN = 6
OUT_CHUNK = 1 << 20  # the largest piece handed to the sink


def detect(head: bytes) -> str:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return NONE


def _igzip() -> Any:
    """isal's gzip decompressor (~3x zlib's speed), or None for zlib's.

    Its bz2-like API (the input a max_length call leaves unread stays inside) rather than
    isal_zlib's zlib-like one: there perf showed 2% of a pull's CPU in the realloc copies of
    the output buffers. A/B, two daemons pulling the 20 x 8 MiB image alternately, 40 pulls
    each: daemon CPU 0.668 -> 0.623 s (means), wall 0.512 -> 0.491 s (medians)."""
    try:
        from isal import igzip_lib  # type: ignore[import-not-found]

        return igzip_lib
    except ImportError:
        return None


_IGZIP = _igzip()
_DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (
    zlib.error, OSError, EOFError, lzma.LZMAError, ValueError,
    *((_IGZIP.IsalError,) if _IGZIP is not None else ()))


_ZLIB = type(zlib.decompressobj())


class DecompressError(ValueError):
    """The compressed stream is corrupt or cut short (never raised for the sink's own errors)."""


class Inflater:
    """Bytes in, bounded pieces of the decompressed stream out to `sink` (kind by magic).

    Whatever the sink raises passes through untouched, so callers can tell their own
    failures from a corrupt stream.
    """

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink
        self._head = b""
        self._kind: str | None = None
        self._d: Any = None
        self._zstd: Any = None
        self._zstd_sink: _Sink | None = None

    @property
    def kind(self) -> str | None:
        """The detected compression, once MAGIC_LEN bytes (or the end) were seen."""
        return self._kind

    def feed(self, data: bytes) -> None:
        if self._kind is None:
            self._head += data
            if len(self._head) < MAGIC_LEN:
                return
            data, self._head = self._head, b""
            self._start(detect(data))
        self._feed(data)

    def finish(self) -> None:
        if self._kind is None:
            head, self._head = self._head, b""
            self._start(detect(head))
            if head:
                self._feed(head)
        if self._kind in (GZIP, BZIP2, XZ):
            if not self._d.eof:
                self._drain(b"")  # whatever output the decompressor still holds
            if not self._d.eof:
                raise DecompressError("unexpected EOF")
        elif self._kind == ZSTD:
            self._zstd_call(self._zstd.flush)

    def _start(self, kind: str) -> None:
        self._kind = kind
        if kind == ZSTD:
            import zstandard

            self._zstd_sink = _Sink(self._sink)
            self._zstd = zstandard.ZstdDecompressor().stream_writer(self._zstd_sink, write_size=OUT_CHUNK)
        elif kind != NONE:
            self._d = self._new()

    def _new(self) -> Any:
        if self._kind == GZIP:
            if _IGZIP is not None:
                return _IGZIP.IgzipDecompressor(flag=_IGZIP.DECOMP_GZIP)
            return zlib.decompressobj(wbits=31)
        if self._kind == BZIP2:
            return bz2.BZ2Decompressor()
        return lzma.LZMADecompressor()

    def _feed(self, data: bytes) -> None:
        if self._kind == NONE:
            if data:
                self._sink(data)
        elif self._kind == ZSTD:
            self._zstd_call(self._zstd.write, data)
        else:
            self._drain(data)

    def _zstd_call(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self._zstd_sink is not None
        try:
            fn(*args)
        except Exception as exc:
            failure, self._zstd_sink.failure = self._zstd_sink.failure, None
            if failure is not None:
                raise failure from None  # the sink's own error, raised through zstd's C code
            raise DecompressError(str(exc)) from exc

    def _decompress(self, data: bytes) -> bytes:
        try:
            return self._d.decompress(data, OUT_CHUNK)
        except _DECOMPRESS_ERRORS as exc:
            raise DecompressError(str(exc)) from exc

    def _drain(self, data: bytes) -> None:
        """Decompress `data` fully, OUT_CHUNK at a time; restart on concatenated streams."""
        while True:
            d = self._d
            out = self._decompress(data)
            if isinstance(d, _ZLIB):  # keeps what max_length left unread in unconsumed_tail
                data = d.unconsumed_tail
                more = bool(data) or len(out) == OUT_CHUNK
            else:
                data = b""
                more = not d.eof and not d.needs_input
            if out:
                self._sink(out)
            if d.eof:
                # what follows this stream's end (zlib may repeat it in unconsumed_tail, which
                # made the zlib fallback inflate a second gzip member twice)
                rest = d.unused_data
                if not rest:
                    return
                self._d = self._new()  # pigz, pbzip2 and xz may concatenate streams
                data = rest
                continue
            if not more:
                return


class _Sink:
    def __init__(self, fn: Callable[[bytes], None]) -> None:
        self._fn = fn
        self.failure: BaseException | None = None

    def write(self, data: bytes) -> int:
        try:
            self._fn(bytes(data))
        except BaseException as exc:
            self.failure = exc
            raise
        return len(data)
