"""A push-fed tar reader: member headers and data, chunk by chunk, never the whole archive.

Used two ways: to measure a layer (content size as dockerd reports it) while its bytes
stream past, and to walk an outer archive (docker save / OCI layout) member by member.
Nothing here touches the filesystem: member names are data.
"""

from __future__ import annotations

import posixpath
import zlib
from dataclasses import dataclass, field
from typing import Callable

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
REG, AREG, LNK, SYM, CHR, BLK, DIR, FIFO, CONT = b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6", b"7"
GNU_LONGNAME, GNU_LONGLINK, PAX, PAX_GLOBAL = b"L", b"K", b"x", b"g"


class TarError(ValueError):
    pass


@dataclass(slots=True)
class Member:
    name: str
    type: bytes
    size: int
    linkname: str = ""
    mode: int = 0

    @property
    def is_file(self) -> bool:
        return self.type in (REG, AREG, CONT)


def _octal(field_: bytes) -> int:
    if field_ and field_[0] & 0x80:  # base-256 (GNU) for large values
        n = field_[0] & 0x3F
        for b in field_[1:]:
            n = (n << 8) | b
        return n
    s = field_.rstrip(b"\0 ").strip()
    if not s:
        return 0
    try:
        return int(s, 8)
    except ValueError as exc:
        raise TarError("archive/tar: invalid tar header") from exc


def _cstr(field_: bytes) -> str:
    return field_.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _parse_pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            break
        length = int(data[pos:sp])
        record = data[sp + 1: pos + length - 1]
        k, _, v = record.partition(b"=")
        out[k.decode()] = v.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _checksum_ok(header: bytes) -> bool:
    """The header's checksum: the sum of its bytes, the checksum field counted as 8 spaces;
    unsigned, or signed as some old tars wrote it (Go's reader takes either)."""
    stored = _octal(header[148:156])
    # adler32's low half is 1 + the byte sum mod 65521: exact for 256 bytes (at most 65280),
    # and summed in C (a layer of small files has a header every few KiB)
    total = (zlib.adler32(header[:256]) & 0xFFFF) + (zlib.adler32(header[256:]) & 0xFFFF) - 2
    unsigned = total - sum(header[148:156]) + 8 * 32
    if stored == unsigned:
        return True
    high = sum(1 for b in header[:148] + header[156:] if b >= 0x80)  # bytes that count negative
    return high > 0 and stored == unsigned - 256 * high


@dataclass
class TarReader:
    """Feed bytes; get `on_member(member)` then `on_data(member, chunk)` calls in order."""

    on_member: Callable[[Member], None] | None = None
    on_data: Callable[[Member, bytes], None] | None = None
    _buf: bytearray = field(default_factory=bytearray)
    _remaining: int = 0  # data bytes left in the current member
    _padding: int = 0
    _current: Member | None = None
    _meta_kind: bytes | None = None
    _meta: bytearray = field(default_factory=bytearray)
    _pax: dict[str, str] = field(default_factory=dict)
    _long_name: str | None = None
    _long_link: str | None = None
    _ended: bool = False

    def feed(self, data: bytes) -> None:
        # Positions into `data`, no per-step memoryview: a layer of small files has a header
        # every few KiB, and this loop runs with the GIL held beside the threads that inflate
        # and hash (a pull spends more on it there than its own CPU time).
        n = len(data)
        pos = 0
        while pos < n:
            if self._ended:
                return  # trailing bytes after the end blocks are ignored, as Go's reader does
            if self._remaining:
                take = min(self._remaining, n - pos)
                if self._meta_kind is not None:
                    self._meta += data[pos:pos + take]
                    self._remaining -= take
                    pos += take
                    if not self._remaining:
                        self._finish_meta()
                    continue
                if self.on_data is not None and self._current is not None:
                    self.on_data(self._current, bytes(data[pos:pos + take]))
                elif take == self._remaining:  # nobody reads the data: skip its padding too
                    take = min(take + self._padding, n - pos)
                    self._padding -= take - self._remaining
                    self._remaining = 0
                    pos += take
                    continue
                self._remaining -= take
                pos += take
                continue
            if self._padding:
                take = min(self._padding, n - pos)
                self._padding -= take
                pos += take
                continue
            if self._buf or n - pos < BLOCK:  # a header cut between two feeds
                need = BLOCK - len(self._buf)
                self._buf += data[pos:pos + need]
                pos += need
                if len(self._buf) < BLOCK:
                    return
                header = bytes(self._buf)
                self._buf.clear()
            else:
                header = bytes(data[pos:pos + BLOCK])
                pos += BLOCK
            self._header(header)

    def finish(self) -> None:
        if self._remaining or self._padding or self._buf:
            raise TarError("unexpected EOF")

    @property
    def ended(self) -> bool:
        return self._ended

    def _header(self, header: bytes) -> None:
        if header == _ZERO_BLOCK:
            self._ended = True
            return
        if not _checksum_ok(header):
            raise TarError("archive/tar: invalid tar header")
        typ = header[156:157]
        size = _octal(header[124:136])
        if typ in (GNU_LONGNAME, GNU_LONGLINK, PAX, PAX_GLOBAL):
            self._meta_kind = typ
            self._meta.clear()
            self._remaining = size
            self._padding = (-size) % BLOCK
            if size == 0:
                self._finish_meta()
            return
        name = _cstr(header[0:100])
        if header[257:262] == b"ustar":
            prefix = _cstr(header[345:500])
            if prefix:
                name = prefix + "/" + name
        linkname = _cstr(header[157:257])
        if self._long_name is not None or self._long_link is not None or self._pax:
            if self._long_name is not None:
                name = self._long_name
            if self._long_link is not None:
                linkname = self._long_link
            if "path" in self._pax:
                name = self._pax["path"]
            if "linkpath" in self._pax:
                linkname = self._pax["linkpath"]
            if "size" in self._pax:
                size = int(self._pax["size"])
            self._pax, self._long_name, self._long_link = {}, None, None
        if typ in (LNK, SYM, CHR, BLK, DIR, FIFO):
            size = 0 if typ != LNK else size
        member = Member(name, typ, size, linkname, _octal(header[100:108]))
        self._current = member
        self._remaining = size
        self._padding = (-size) % BLOCK
        if self.on_member is not None:
            self.on_member(member)

    def _finish_meta(self) -> None:
        data, kind = bytes(self._meta), self._meta_kind
        self._meta_kind = None
        if kind == GNU_LONGNAME:
            self._long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif kind == GNU_LONGLINK:
            self._long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif kind == PAX:
            self._pax = _parse_pax(data)


def _check_inside(path: str, name: str, hardlink: bool = False) -> None:
    """A member (or hard-link target) must stay inside the layer root, as dockerd requires."""
    if ".." not in path and not path.startswith("/"):
        return  # relative, no way up: inside (most members, checked without normpath)
    cleaned = posixpath.normpath(posixpath.join("/root", path))
    if cleaned != "/root" and not cleaned.startswith("/root/"):
        if hardlink:
            raise TarError(f"invalid hardlink \"{name}\" -> \"{path}\"")
        raise TarError(f"\"{name}\" is outside of the layer root")


class LayerMeter:
    """Measures a layer tar as it streams: dockerd's content size, with no unpacking.

    Size = regular-file bytes + symlink target lengths; hard links, dirs, devices and
    whiteouts add nothing (a hard link is counted once, at its first name).
    """

    def __init__(self) -> None:
        self.size = 0
        self.members = 0
        self._reader = TarReader(on_member=self._member)

    def _member(self, m: Member) -> None:
        self.members += 1
        _check_inside(m.name, m.name)
        if m.type == LNK:
            _check_inside(m.linkname, m.name, hardlink=True)
        base = m.name.rstrip("/").rsplit("/", 1)[-1]
        if base.startswith(".wh."):
            return
        if m.is_file:
            self.size += m.size
        elif m.type == SYM:
            self.size += len(m.linkname.encode("utf-8", "surrogateescape"))

    def feed(self, data: bytes) -> None:
        self._reader.feed(data)

    def finish(self) -> None:
        self._reader.finish()
