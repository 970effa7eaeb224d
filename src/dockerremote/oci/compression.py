"""Detect a stream's compression by its magic bytes and make streaming decompressors."""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Protocol

GZIP, BZIP2, XZ, ZSTD, NONE = "gzip", "bzip2", "xz", "zstd", "none"

_MAGIC = [
    (b"\x1f\x8b\x08", GZIP),
    (b"BZh", BZIP2),
    (b"\xfd7zXZ\x00", XZ),
    (b"\x28\xb5\x2f\xfd", ZSTD),
]

MAGIC_LEN = 6


def detect(head: bytes) -> str:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return NONE


class Decompressor(Protocol):
    def feed(self, data: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


class _Identity:
    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class _Gzip:
    """Concatenated gzip members are legal (pigz, some registries): restart on each member."""

    def __init__(self) -> None:
        self._d = _make_gzip()

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._d.decompress(data))
            if not self._d.eof:
                break
            data = self._d.unused_data
            if data:
                self._d = _make_gzip()
        return b"".join(out)

    def finish(self) -> bytes:
        if not self._d.eof:
            raise ValueError("unexpected EOF")
        return b""


def _make_gzip():  # type: ignore[no-untyped-def]
    try:  # isal's gunzip is ~3x faster than zlib where installed; same API
        from isal import isal_zlib  # type: ignore[import-not-found]

        return isal_zlib.decompressobj(wbits=31)
    except ImportError:
        return zlib.decompressobj(wbits=31)


class _Stdlib:
    def __init__(self, d) -> None:  # type: ignore[no-untyped-def]
        self._d = d

    def feed(self, data: bytes) -> bytes:
        return self._d.decompress(data)

    def finish(self) -> bytes:
        if not self._d.eof:
            raise ValueError("unexpected EOF")
        return b""


class _Zstd:
    def __init__(self) -> None:
        import zstandard

        self._d = zstandard.ZstdDecompressor().decompressobj()

    def feed(self, data: bytes) -> bytes:
        return self._d.decompress(data)

    def finish(self) -> bytes:
        return b""


def decompressor(kind: str) -> Decompressor:
    if kind == GZIP:
        return _Gzip()
    if kind == BZIP2:
        return _Stdlib(bz2.BZ2Decompressor())
    if kind == XZ:
        return _Stdlib(lzma.LZMADecompressor())
    if kind == ZSTD:
        return _Zstd()
    return _Identity()
