"""The push-fed Inflater: gzip through isal's decompressor and through zlib (the fallback)."""

from __future__ import annotations

import gzip
import os

import pytest

from dockerremote.oci import compression
from dockerremote.oci.compression import OUT_CHUNK, DecompressError, Inflater


@pytest.fixture(params=["isal", "zlib"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "isal":
        if compression._IGZIP is None:
            pytest.skip("isal is not installed")
    else:
        monkeypatch.setattr(compression, "_IGZIP", None)
    return str(request.param)


def inflate(blob: bytes, piece: int) -> tuple[bytes, list[int]]:
    out: list[bytes] = []
    inf = Inflater(out.append)
    for i in range(0, len(blob), piece):
        inf.feed(blob[i:i + piece])
    inf.finish()
    return b"".join(out), [len(x) for x in out]


def sample() -> bytes:
    return os.urandom(300_000) + b"layer " * 200_000  # incompressible, then very compressible


@pytest.mark.parametrize("piece", [1, 4096, 1 << 20])
def test_gzip_comes_out_whole_in_bounded_pieces(backend: str, piece: int) -> None:
    data = sample() if piece > 1 else sample()[:50_000]
    out, sizes = inflate(gzip.compress(data), piece)
    assert out == data
    assert max(sizes) <= OUT_CHUNK
    # a small bomb never becomes a big buffer: 64 MiB of zeros come out in OUT_CHUNK pieces
    bomb = gzip.compress(bytes(64 << 20))
    out, sizes = inflate(bomb, 1 << 20)
    assert len(out) == 64 << 20 and max(sizes) == OUT_CHUNK


def test_concatenated_members_as_pigz_writes_them(backend: str) -> None:
    a, b = sample(), os.urandom(1000)
    out, _ = inflate(gzip.compress(a) + gzip.compress(b), 65536)
    assert out == a + b


def test_a_cut_stream_and_a_wrong_checksum_are_refused(backend: str) -> None:
    blob = gzip.compress(sample())
    with pytest.raises(DecompressError, match="unexpected EOF"):
        inflate(blob[:-4], 65536)
    bad = bytearray(blob)
    bad[-8] ^= 1  # the CRC32 of the trailer
    with pytest.raises(DecompressError):
        inflate(bytes(bad), 65536)
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0xFF  # the deflate data itself
    with pytest.raises(DecompressError):
        inflate(bytes(bad), 65536)


def test_the_sinks_own_error_passes_through(backend: str) -> None:
    class Full(Exception):
        pass

    def sink(_: bytes) -> None:
        raise Full

    inf = Inflater(sink)
    with pytest.raises(Full):
        inf.feed(gzip.compress(sample()))
        inf.finish()

