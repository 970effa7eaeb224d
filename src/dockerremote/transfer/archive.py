"""Save: images → a `docker save` tar in dockerd 20.10's layout, generated while it streams.

Layout (sorted as dockerd's directory walk emits it):

    <v1id>/  VERSION ("1.0")  json (legacy v1 JSON)  layer.tar (uncompressed; sha256 == DiffID)
    <config hex>.json         the exact config bytes
    manifest.json             [{"Config","RepoTags","Layers"}]
    repositories              {"<name>": {"<tag>": "<top v1id>"}}   only when there are tags

A layer whose DiffID was already written under another <v1id> becomes a symlink to it, as
dockerd writes it. Each layer.tar member needs its size in the tar header before its bytes:
plain blobs know it, compressed ones read it from the index's size cache, or get it from
one decompress pass that fills the cache. Nothing is held in memory beyond one chunk; all
file reads, decompression and hashing run in worker threads.
"""

from __future__ import annotations

import asyncio
import bz2
import contextlib
import hashlib
import json
import lzma
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, BinaryIO, Callable

from dockerremote import reference
from dockerremote.errors import DockerRemoteError, ImageNotFound, NotFound
from dockerremote.oci import compression
from dockerremote.oci.config import container_config, normalize_time
from dockerremote.oci.digest import chain_ids, hex_of, sha256_digest
from dockerremote.reference import Reference
from dockerremote.store.images import ImageStore
from dockerremote.store.index import ImageRecord, LayerRecord

CHUNK = 1 << 20
BLOCK = 512

# -- Go's encoding/json, as far as dockerd's archive files need it -------------------------

_GO_CONTROL = re.compile(r'\\\\|\\b|\\f')
_SURROGATE = re.compile("[\ud800-\udfff]")


def go_json(obj: Any) -> bytes:
    """json.Marshal: compact, HTML-escaped, U+2028/9 escaped, \\b \\f as \\u00XX (Go < 1.22)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    if "\\b" in text or "\\f" in text:
        text = _GO_CONTROL.sub(lambda m: {"\\b": "\\u0008", "\\f": "\\u000c"}.get(m.group(0), m.group(0)), text)
    return _SURROGATE.sub("\ufffd", text).encode()


def go_encode(obj: Any) -> bytes:
    """json.NewEncoder(w).Encode: Marshal plus a newline."""
    return go_json(obj) + b"\n"


_HEALTH_KEYS = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")


def go_container_config(raw: Any) -> dict[str, Any]:
    """container.Config as Go re-marshals it: struct order, omitempty, map keys sorted."""
    cfg = container_config(raw)
    for key in ("ExposedPorts", "Volumes"):  # map[string]struct{}: values always {}
        if isinstance(cfg.get(key), dict):
            cfg[key] = {k: {} for k in sorted(cfg[key])}
    if isinstance(cfg.get("Labels"), dict):
        cfg["Labels"] = dict(sorted(cfg["Labels"].items()))
    if isinstance(cfg.get("Healthcheck"), dict):
        hc = cfg["Healthcheck"]
        cfg["Healthcheck"] = {k: hc[k] for k in _HEALTH_KEYS if hc.get(k)}
    return cfg


def _str(cfg: dict[str, Any], key: str) -> str:
    value = cfg.get(key)
    return value if isinstance(value, str) else ""


def v1_image(cfg: dict[str, Any]) -> dict[str, Any]:
    """image.V1Image parsed from a config and marshalled again (no id; parent is shadowed)."""
    out: dict[str, Any] = {}
    if _str(cfg, "comment"):
        out["comment"] = cfg["comment"]
    created = _str(cfg, "created")
    out["created"] = normalize_time(created) if created else "0001-01-01T00:00:00Z"
    if _str(cfg, "container"):
        out["container"] = cfg["container"]
    out["container_config"] = go_container_config(cfg.get("container_config"))
    for key in ("docker_version", "author"):
        if _str(cfg, key):
            out[key] = cfg[key]
    if isinstance(cfg.get("config"), dict):
        out["config"] = go_container_config(cfg["config"])
    for key in ("architecture", "variant", "os"):
        if _str(cfg, key):
            out[key] = cfg[key]
    if isinstance(cfg.get("Size"), int) and cfg["Size"]:
        out["Size"] = cfg["Size"]
    return out


EPOCH_V1 = {"created": "1970-01-01T00:00:00Z", "container_config": go_container_config(None)}


def v1_id(v1: dict[str, Any], chain_id: str, parent: str | None) -> str:
    """v1.CreateID: sha256 of the V1Image JSON with layer_id and parent, keys sorted."""
    m = dict(v1)
    m["layer_id"] = chain_id
    if parent:
        m["parent"] = parent
    return sha256_digest(go_json(dict(sorted(m.items()))))


def v1_json(v1: dict[str, Any], v1id: str, parent: str | None, os_: str) -> bytes:
    """The <v1id>/json file: id and parent first, then the V1Image fields, os set."""
    out: dict[str, Any] = {"id": hex_of(v1id)}
    if parent:
        out["parent"] = hex_of(parent)
    out.update((k, v) for k, v in v1.items() if k not in ("os", "Size"))
    if os_:
        out["os"] = os_
    if "Size" in v1:
        out["Size"] = v1["Size"]
    return go_json(out)


# -- tar headers as Go's archive/tar writes them for pkg/archive ------------------------------

REG, SYMLINK, DIR, PAX = b"0", b"2", b"5", b"x"
MODE_FILE, MODE_DIR, MODE_SYMLINK = 0o100644, 0o40755, 0o120777
_MAX_OCTAL_SIZE = 8 ** 11 - 1


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _ustar(name: str, size: int, mtime: int, typeflag: bytes, mode: int, linkname: str = "",
           uname: str = "root") -> bytes:
    raw_name = name.encode()
    if len(raw_name) > 100:
        raise ValueError(f"tar member name too long: {name}")
    h = bytearray(BLOCK)
    h[0:len(raw_name)] = raw_name
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(0, 8)
    h[116:124] = _octal(0, 8)
    h[124:136] = _octal(size, 12)
    h[136:148] = _octal(max(0, mtime), 12)
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    link = linkname.encode()
    h[157:157 + len(link)] = link
    h[257:265] = b"ustar\x0000"
    h[265:265 + len(uname)] = uname.encode()
    h[297:297 + len(uname)] = uname.encode()
    h[329:337] = _octal(0, 8)
    h[337:345] = _octal(0, 8)
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def tar_header(name: str, size: int, mtime: int, typeflag: bytes = REG, mode: int = MODE_FILE,
               linkname: str = "") -> bytes:
    """A USTAR header; sizes past 8 GiB get a PAX size record first, as Go does."""
    if size <= _MAX_OCTAL_SIZE:
        return _ustar(name, size, mtime, typeflag, mode, linkname)
    record = b" size=%d\n" % size
    n = len(record) + 1
    while len(b"%d" % n) + len(record) != n:
        n += 1
    data = b"%d" % n + record
    head, _, base = name.rpartition("/")
    pax_name = f"{head}/PaxHeaders.0/{base}" if head else f"PaxHeaders.0/{base}"
    return (_ustar(pax_name, len(data), 0, PAX, 0, uname="") + data + _padding(len(data))
            + _ustar(name, 0, mtime, typeflag, mode, linkname))


# -- reading a stored layer as its uncompressed tar -------------------------------------------

class LayerReader:
    """A stored layer blob read back uncompressed in bounded chunks, hashed as it goes."""

    def __init__(self, path: Path, kind: str) -> None:
        self._raw: BinaryIO = open(path, "rb")
        self._f: BinaryIO = _open_decompressed(self._raw, kind)
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = CHUNK) -> bytes:
        data = self._f.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        try:
            if self._f is not self._raw:
                self._f.close()
        finally:
            self._raw.close()


def _open_decompressed(raw: BinaryIO, kind: str) -> BinaryIO:
    # File-object readers bound their output per read(), unlike one-shot decompress calls:
    # a 64 KiB gzip of zeros never turns into 64 MiB in memory at once.
    if kind == compression.GZIP:
        try:
            from isal import igzip  # type: ignore[import-not-found]

            return igzip.IGzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
        except ImportError:
            import gzip

            return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == compression.BZIP2:
        return bz2.BZ2File(raw, "rb")  # type: ignore[return-value]
    if kind == compression.XZ:
        return lzma.LZMAFile(raw, "rb")  # type: ignore[return-value]
    if kind == compression.ZSTD:
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)  # type: ignore[return-value]
    return raw


def layer_tar_size(store: ImageStore, layer: LayerRecord) -> int:
    """The layer's uncompressed size, measured when the layer came in."""
    return layer.blob_size if layer.compression == compression.NONE else layer.tar_size


# -- the plan: which images, which files, in which order ----------------------------------------

@dataclass
class SaveItem:
    image: ImageRecord
    tags: list[Reference] = field(default_factory=list)


@dataclass
class Member:
    path: str
    mtime: int
    kind: str  # "dir", "bytes", "layer", "symlink"
    data: bytes = b""
    layer: LayerRecord | None = None
    size: int = 0
    linkname: str = ""


@dataclass
class SavePlan:
    members: list[Member]
    images: list[ImageRecord]
    _leases: contextlib.ExitStack

    def release(self) -> None:
        """Drop the leases (and collect whatever a racing delete left unused): a blocking call."""
        self._leases.close()


def select_images(store: ImageStore, names: list[str]) -> list[SaveItem]:
    """dockerd's parseNames: which images a save covers and the tags each one carries."""
    items: dict[str, SaveItem] = {}
    images = store.index.images

    def add(image_id: str, ref: Reference | None = None) -> None:
        item = items.setdefault(image_id, SaveItem(images[image_id]))
        if ref is not None and ref.digest is None and ref.tag is not None and ref not in item.tags:
            item.tags.append(ref)

    def search(name: str) -> str:
        try:
            return store.resolve(name).id
        except NotFound:
            raise ImageNotFound(name) from None

    for name in names:
        if reference.is_image_id(name):
            if "sha256:" + name not in images:
                raise ImageNotFound(name)
            add("sha256:" + name)
            continue
        ref = reference.parse(name)  # a bad name is the client's mistake: 400
        if ref.familiar_name == "sha256":  # sha256:<id or prefix>
            add(search(name))
        elif ref.tag is None and ref.digest is None:  # a repository: all its tags (and digests)
            found = store.repository_refs(ref)
            for r, image_id in found:
                add(image_id, r)
            if not found:
                add(search(name))
        else:
            image_id = store.index.refs.get(str(ref.stored_form()))
            if image_id is None:
                raise NotFound("reference does not exist")
            add(image_id, ref)
    return list(items.values())


def plan_save(store: ImageStore, names: list[str]) -> SavePlan:
    """Resolve names, lease every blob, and lay out the archive; errors here are HTTP errors."""
    leases = contextlib.ExitStack()
    try:
        with store.index.lock:  # resolve and lease at once: a delete cannot slip in between
            items = select_images(store, names)
            for item in items:
                if not item.image.diff_ids:
                    raise DockerRemoteError("empty export - not implemented")
            digests = [d for item in items for d in (item.image.id, *item.image.layers)]
            leases.enter_context(store.lease(digests))
            layers = {item.image.id: store.layer_records(item.image) for item in items}
        return SavePlan(_layout(store, items, layers), [i.image for i in items], leases)
    except BaseException:
        leases.close()
        raise


def _layout(store: ImageStore, items: list[SaveItem], layers: dict[str, list[LayerRecord]]) -> list[Member]:
    now = int(time.time())
    dirs: dict[str, list[Member]] = {}  # v1id hex → its members (dir, VERSION, json, layer)
    layer_of: dict[str, tuple[LayerRecord, int]] = {}  # v1id hex → (layer, image created)
    top: dict[str, Member] = {}
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for item in items:
        img = item.image
        config = store.config_bytes(img)
        try:
            cfg = json.loads(config)
        except ValueError:
            cfg = {}
        cfg = cfg if isinstance(cfg, dict) else {}
        created = max(0, img.created_unix)
        os_ = _str(cfg, "os")
        chains = chain_ids(img.diff_ids)
        parent: str | None = None
        paths: list[str] = []
        for i, (layer, chain) in enumerate(zip(layers[img.id], chains)):
            last = i == len(chains) - 1
            v1 = v1_image(cfg) if last else EPOCH_V1
            vid = v1_id(v1, chain, parent)
            h = hex_of(vid)
            if h not in dirs:
                dirs[h] = [Member(h + "/", created, "dir"),
                           Member(h + "/VERSION", created, "bytes", data=b"1.0"),
                           Member(h + "/json", created, "bytes", data=v1_json(v1, vid, parent, os_))]
                layer_of[h] = (layer, created)
            paths.append(h + "/layer.tar")
            parent = vid
        manifest.append({"Config": hex_of(img.id) + ".json",
                         "RepoTags": [t.familiar for t in item.tags] or None, "Layers": paths})
        top[hex_of(img.id) + ".json"] = Member(hex_of(img.id) + ".json", created, "bytes", data=config)
        for t in item.tags:
            repositories.setdefault(t.familiar_name, {})[t.tag or "latest"] = paths[-1].split("/")[0]
    # The first layer.tar (in archive order) of each DiffID is the file; later ones link to it.
    written: dict[str, str] = {}
    for h in sorted(dirs):
        layer, created = layer_of[h]
        if layer.diff_id in written:
            for m in dirs[h]:
                m.mtime = now  # dockerd only stamps the directory that holds the real file
            dirs[h].append(Member(h + "/layer.tar", now, "symlink", linkname=f"../{written[layer.diff_id]}/layer.tar"))
        else:
            written[layer.diff_id] = h
            dirs[h].append(Member(h + "/layer.tar", created, "layer", layer=layer,
                                  size=layer_tar_size(store, layer)))
    members: list[Member] = []
    for name in sorted([*dirs, *top]):
        members += dirs[name] if name in dirs else [top[name]]
    members.append(Member("manifest.json", 0, "bytes", data=go_encode(manifest or None)))
    if repositories:
        members.append(Member("repositories", 0, "bytes",
                              data=go_encode({k: dict(sorted(v.items())) for k, v in sorted(repositories.items())})))
    return members


# -- streaming ---------------------------------------------------------------------------------

class SaveAborted(Exception):
    """The archive cannot be completed (a stored blob is corrupt): the stream must be cut."""


async def write_archive(store: ImageStore, members: list[Member],
                        write: Callable[[bytes], Awaitable[None]]) -> None:
    """Emit the tar: headers and small files batched, layers streamed chunk by chunk."""
    buf = bytearray()
    for m in members:
        if m.kind == "dir":
            buf += tar_header(m.path, 0, m.mtime, DIR, MODE_DIR)
        elif m.kind == "symlink":
            buf += tar_header(m.path, 0, m.mtime, SYMLINK, MODE_SYMLINK, m.linkname)
        elif m.kind == "bytes":
            buf += tar_header(m.path, len(m.data), m.mtime) + m.data + _padding(len(m.data))
        else:
            buf += tar_header(m.path, m.size, m.mtime)
            await write(bytes(buf))
            buf.clear()
            assert m.layer is not None
            await _stream_layer(store, m.layer, m.size, write)
            buf += _padding(m.size)
        if len(buf) >= CHUNK:
            await write(bytes(buf))
            buf.clear()
    buf += b"\0" * (2 * BLOCK)
    await write(bytes(buf))


async def _stream_layer(store: ImageStore, layer: LayerRecord, size: int,
                        write: Callable[[bytes], Awaitable[None]]) -> None:
    loop = asyncio.get_running_loop()
    reader = await asyncio.to_thread(LayerReader, store.content.path(layer.blob_digest), layer.compression)
    pending: asyncio.Future[bytes] | None = None
    try:
        pending = loop.run_in_executor(None, reader.read)
        while True:
            chunk = await pending
            pending = None
            if not chunk:
                break
            if reader.size > size:
                raise SaveAborted(f"layer {layer.blob_digest} is longer than its recorded size {size}")
            pending = loop.run_in_executor(None, reader.read)  # read the next chunk while this one is sent
            await write(chunk)
        if reader.size != size or reader.digest != layer.diff_id:
            raise SaveAborted(f"layer {layer.blob_digest} is corrupt: {reader.size} bytes with DiffID "
                              f"{reader.digest}, expected {size} bytes with {layer.diff_id}")
    finally:
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)
        await asyncio.to_thread(reader.close)
