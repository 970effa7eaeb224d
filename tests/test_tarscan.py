"""The push-fed tar reader's header checks, against archives made by Python's tarfile."""

from __future__ import annotations

import io
import tarfile

import pytest

from dockerremote.oci.tarscan import BLOCK, LayerMeter, Member, TarError, TarReader


def _archive(names: list[str], size: int = 700) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT, encoding="utf-8") as tf:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = size
            tf.addfile(info, io.BytesIO(bytes(range(256)) * (size // 256) + b"x" * (size % 256)))
    return buf.getvalue()


def _members(data: bytes, piece: int = 333) -> list[Member]:
    seen: list[Member] = []
    reader = TarReader(on_member=seen.append)
    for i in range(0, len(data), piece):
        reader.feed(data[i:i + piece])
    reader.finish()
    return seen


def _with_checksum(data: bytes, checksum: int) -> bytes:
    """The archive with its first header's checksum field rewritten."""
    field = b"%06o\0 " % checksum
    return data[:148] + field + data[156:]


def _sums(header: bytes) -> tuple[int, int]:
    """(unsigned, signed) sums of a header, its checksum field counted as 8 spaces."""
    blanked = header[:148] + b" " * 8 + header[156:BLOCK]
    return sum(blanked), sum(b - 256 if b >= 0x80 else b for b in blanked)


def test_members_of_an_archive_as_tarfile_wrote_them() -> None:
    names = [f"dir/file-{i}.txt" for i in range(40)] + ["é/ünïcode-ñame"]
    data = _archive(names)
    assert [m.name for m in _members(data)] == names
    meter = LayerMeter()
    meter.feed(data)
    meter.finish()
    assert meter.size == 700 * len(names)


def test_a_signed_checksum_is_accepted_a_wrong_one_refused() -> None:
    data = _archive(["ünïcode/ñame"])  # bytes >= 0x80: the signed sum differs from the unsigned
    unsigned, signed = _sums(data[:BLOCK])
    assert signed != unsigned
    assert [m.name for m in _members(_with_checksum(data, unsigned))] == ["ünïcode/ñame"]
    assert [m.name for m in _members(_with_checksum(data, signed))] == ["ünïcode/ñame"]  # as Go's reader
    for wrong in (unsigned + 1, signed - 1, unsigned - 256):
        with pytest.raises(TarError, match="archive/tar: invalid tar header"):
            _members(_with_checksum(data, wrong))


def test_an_ascii_header_has_one_checksum_only() -> None:
    data = _archive(["plain/name"])
    unsigned, signed = _sums(data[:BLOCK])
    assert signed == unsigned
    with pytest.raises(TarError, match="archive/tar: invalid tar header"):
        _members(_with_checksum(data, unsigned - 256))
