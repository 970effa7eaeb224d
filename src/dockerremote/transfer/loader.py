"""Load: a `docker save` or OCI image-layout archive, streamed into the store as it arrives.

The request body (maybe gzip/bzip2/xz/zstd: detected by magic) is decompressed in bounded
chunks and walked member by member with the push-fed TarReader. Member names are data:
they key a dict, never a filesystem path. Each regular member is either

  * kept in memory, when small or JSON-looking (manifest.json, configs, index.json, ...),
    within a size cap; or
  * streamed into the content store through LayerIngest, which computes the blob digest,
    the DiffID and the content size in the same pass. A member that turns out not to be a
    layer tar is dropped, and only an error if the manifest later points at it.

Every blob is leased before its commit makes it visible, so nothing collects it mid-load.
Only when the whole archive has been read is manifest.json (or index.json) resolved and
every image checked: layer counts, DiffIDs, configs, tags. Images are committed only if all
of them pass (stricter than dockerd, which keeps the entries before a bad one); whatever
was ingested but not committed is collected when the leases drop, so a failed load leaves
the store exactly as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable

from dockerremote import gojson, reference
from dockerremote.errors import DockerRemoteError
from dockerremote.oci import compression
from dockerremote.oci.config import ConfigError, ConfigSummary, summarize
from dockerremote.oci.digest import chain_ids
from dockerremote.oci.tarscan import DIR, LNK, SYM, Member, TarError, TarReader
from dockerremote.reference import Reference
from dockerremote.store.images import ImageStore
from dockerremote.store.index import ImageRecord, LayerRecord
from dockerremote.transfer.ingest import LayerIngest, pump

SNIFF = 512                   # bytes looked at before choosing a member's fate
SMALL = 4096                  # members this small are simply kept in memory
JSON_CAP = 16 << 20           # largest JSON member kept in memory
METADATA_BUDGET = 256 << 20   # all in-memory members of one archive together
MAX_LINK_HOPS = 16

OCI_MANIFESTS = {"application/vnd.oci.image.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v2+json"}
OCI_INDEXES = {"application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"}
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}


class LoadError(DockerRemoteError):
    """A load failed; the text goes to the client in-stream."""

    status = 400


# -- what the archive held ------------------------------------------------------------------

@dataclass
class _Blob:
    kind: str                      # "memory", "layer" or "failed"
    size: int                      # the member's size in the archive
    data: bytes | None = None
    layer: LayerRecord | None = None
    error: str = ""


@dataclass
class _Link:
    target: str                    # a normalized archive path


@dataclass
class _Special:
    type: str                      # a device, FIFO...: never readable as a file


@dataclass
class LoadImage:
    """One image the archive describes, checked and ready to commit."""

    config: bytes
    summary: ConfigSummary
    layers: list[LayerRecord]
    file_sizes: list[int]
    tags: list[Reference] = field(default_factory=list)
    # OCI layouts: the (bytes, media type, role) manifest blobs the image was loaded as, kept
    # with it as a pull keeps them (its Descriptor, API >= 1.48); none for docker-save archives
    manifests: list[tuple[bytes, str, str]] = field(default_factory=list)


# -- names as data ----------------------------------------------------------------------------

def _tar_error(text: str) -> LoadError:
    # dockerd's words: its tar extractor runs in a child process, whose exit status it quotes
    return LoadError(f"Error processing tar file(exit status 1): {text}")


def member_path(name: str) -> str:
    """A member's archive path, cleaned; absolute names and `..` are refused outright."""
    if name.startswith("/"):
        raise _tar_error(f"{name!r} is an absolute path".replace("'", '"'))
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _tar_error(f'"{name}" is outside of the archive')
    return "/".join(parts)


def _inside(base: str, target: str) -> str | None:
    """`target` relative to the archive folder `base`, or None when it leaves the archive."""
    if target.startswith("/"):
        return None
    joined = posixpath.normpath(posixpath.join(base, target)) if target else "."
    if joined == ".." or joined.startswith("../"):
        return None
    return "" if joined == "." else joined


def manifest_path(path: Any, what: str) -> str:
    if not isinstance(path, str) or not path:
        raise LoadError(f"invalid manifest.json: {what} must be a path, got {json.dumps(path)}")
    inside = _inside("", path)
    if inside is None or not inside:
        raise LoadError(f'invalid path "{path}" in manifest.json: outside of the archive')
    return inside


# -- the member walker -----------------------------------------------------------------------

class _MemberSink:
    """One regular member: sniffed, then kept in memory or ingested as a layer."""

    def __init__(self, session: "LoadSession", size: int) -> None:
        self._session = session
        self.size = size
        self._buf = bytearray()
        self._mode: str | None = None  # "memory", "layer", "failed"
        self._ingest: LayerIngest | None = None
        self._error = ""

    def write(self, chunk: bytes) -> None:
        if self._mode is None:
            self._buf += chunk
            if len(self._buf) < min(self.size, SNIFF):
                return
            self._decide()
            if self._mode != "layer":
                return
            chunk = bytes(self._buf)
            self._buf = bytearray()
        if self._mode == "memory":
            self._buf += chunk
        elif self._mode == "layer":
            assert self._ingest is not None
            try:
                self._ingest.feed(chunk)
            except DockerRemoteError as exc:
                self._fail(exc.message)

    def _decide(self) -> None:
        looks_json = bytes(self._buf).lstrip()[:1] in (b"{", b"[")
        if self.size <= SMALL or (self.size <= JSON_CAP and looks_json):
            self._session.spend(self.size)
            self._mode = "memory"
        else:
            self._mode = "layer"
            self._ingest = LayerIngest(self._session.store.content)

    def _fail(self, error: str) -> None:
        self._mode, self._error = "failed", error
        if self._ingest is not None:
            self._ingest.abort()
            self._ingest = None

    def close(self) -> _Blob:
        if self._mode is None:
            self._decide()
        if self._mode == "memory":
            return _Blob("memory", self.size, data=bytes(self._buf))
        if self._mode == "layer":
            assert self._ingest is not None
            self._session.lease(self._ingest.digest)  # before the blob is visible: never collectable
            try:
                layer = self._ingest.finish()
            except DockerRemoteError as exc:
                self._fail(exc.message)
            else:
                return _Blob("layer", self.size, layer=layer)
        return _Blob("failed", self.size, error=self._error)

    def abort(self) -> None:
        if self._ingest is not None:
            self._ingest.abort()


class LoadSession:
    """Feed the archive (from one thread at a time), then resolve and commit its images."""

    def __init__(self, store: ImageStore, arch: str) -> None:
        self.store = store
        self.arch = arch
        self.members: dict[str, _Blob | _Link | _Special] = {}
        self._leases = contextlib.ExitStack()
        self._budget = METADATA_BUDGET
        self._current: tuple[str, _MemberSink] | None = None
        self._tar = TarReader(on_member=self._on_member, on_data=self._on_data)
        self._inflate = compression.Inflater(self._feed_tar)

    # -- reading ------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        try:
            self._inflate.feed(data)
        except compression.DecompressError as exc:
            raise _tar_error(str(exc)) from exc

    def finish(self) -> None:
        try:
            self._inflate.finish()
        except compression.DecompressError as exc:
            raise _tar_error(str(exc)) from exc
        try:
            self._tar.finish()
        except TarError as exc:
            raise _tar_error(str(exc)) from exc
        self._close_member()

    def _feed_tar(self, data: bytes) -> None:
        try:
            self._tar.feed(data)
        except TarError as exc:
            raise _tar_error(str(exc)) from exc

    def _on_member(self, m: Member) -> None:
        self._close_member()
        path = member_path(m.name)
        if not path or m.type == DIR:
            return
        folder = posixpath.dirname(path)
        if m.type == SYM:
            target = _inside(folder, m.linkname)
            if target is None or not target:
                raise _tar_error(f'invalid symlink "{m.name}" -> "{m.linkname}"')
            self.members[path] = _Link(target)
        elif m.type == LNK:
            target = _inside("", m.linkname)
            if target is None or not target:
                raise _tar_error(f'invalid hardlink "{m.name}" -> "{m.linkname}"')
            self.members[path] = _Link(target)
        elif m.is_file:
            self._current = (path, _MemberSink(self, m.size))
        else:
            self.members[path] = _Special(m.type.decode(errors="replace"))

    def _on_data(self, m: Member, chunk: bytes) -> None:
        if self._current is not None:
            self._current[1].write(chunk)

    def _close_member(self) -> None:
        if self._current is not None:
            path, sink = self._current
            self._current = None
            self.members[path] = sink.close()

    def spend(self, size: int) -> None:
        self._budget -= size
        if self._budget < 0:
            raise LoadError(f"archive metadata exceeds {METADATA_BUDGET >> 20} MiB")

    def lease(self, digest: str) -> None:
        """Keep a blob from collection until the load ends (committed or not)."""
        self._leases.enter_context(self.store.lease([digest]))

    def close(self) -> None:
        """Drop every lease: what no image uses is collected. Blocking."""
        if self._current is not None:
            self._current[1].abort()
            self._current = None
        self._leases.close()

    # -- looking members up ---------------------------------------------------------------

    def _lookup(self, path: str) -> _Blob:
        p = path
        for _ in range(MAX_LINK_HOPS):
            entry = self.members.get(p)
            if entry is None:
                raise LoadError(f"open {path}: no such file or directory")
            if isinstance(entry, _Link):
                p = entry.target
                continue
            if isinstance(entry, _Special):
                raise LoadError(f"open {path}: not a regular file")
            return entry
        raise LoadError(f"open {path}: too many levels of symbolic links")

    def _json_member(self, path: str, what: str) -> bytes:
        blob = self._lookup(path)
        if blob.kind != "memory" or blob.data is None:
            raise LoadError(f"invalid {what} {path}: not a JSON document of at most {JSON_CAP >> 20} MiB")
        return blob.data

    def _layer_member(self, path: str) -> tuple[LayerRecord, int]:
        blob = self._lookup(path)
        if blob.kind == "memory":  # a tiny layer kept in memory: ingest it now
            ingest = LayerIngest(self.store.content)
            try:
                ingest.feed(blob.data or b"")
                self.lease(ingest.digest)
                layer = ingest.finish()
            except DockerRemoteError as exc:
                ingest.abort()
                blob.kind, blob.error, blob.data = "failed", exc.message, None
            else:
                blob.kind, blob.layer, blob.data = "layer", layer, None
        if blob.kind != "layer" or blob.layer is None:
            raise LoadError(f"invalid layer {path}: {blob.error or 'not a layer tar'}")
        return blob.layer, blob.size

    # -- resolving ------------------------------------------------------------------------

    def resolve(self) -> list[LoadImage]:
        """Every image of the archive, fully checked; raises LoadError before anything is stored."""
        if "manifest.json" in self.members:
            images = self._docker_images()
            if "index.json" in self.members:  # Moby 25+: the OCI layout beside it has the manifests
                self._attach_manifests(images)
            return images
        if "index.json" in self.members:
            return self._oci_images()
        raise LoadError("invalid archive: it has neither manifest.json nor index.json "
                        "(legacy v1 archives are not supported)")

    def _docker_images(self) -> list[LoadImage]:
        data = self._json_member("manifest.json", "manifest")
        try:
            manifest = json.loads(data)
        except ValueError as exc:  # dockerd says what Go's json.Decoder says
            text = gojson.syntax_error(data.decode("utf-8", "surrogateescape"))
            if text == "unexpected end of JSON input":  # Unmarshal's words; a Decoder's:
                text = "unexpected EOF" if data.strip() else "EOF"
            raise LoadError(text or f"invalid manifest.json: {exc}") from exc
        if manifest is None:
            return []
        if not isinstance(manifest, list) or not all(isinstance(m, dict) for m in manifest):
            raise LoadError("invalid manifest.json: not a list of objects")
        out: list[LoadImage] = []
        for item in manifest:
            config_path = manifest_path(item.get("Config"), "Config")
            layers = item.get("Layers") or []
            tags = item.get("RepoTags") or []
            if not isinstance(layers, list) or not isinstance(tags, list):
                raise LoadError("invalid manifest.json: Layers and RepoTags must be lists")
            config = self._json_member(config_path, "image config")
            summary = _check_config(config, config_path)
            if len(layers) != len(summary.diff_ids):
                raise LoadError(f"invalid manifest, layers length mismatch: expected {len(layers)}, "
                                f"got {len(summary.diff_ids)}")
            records, sizes = [], []
            for i, (path, diff_id) in enumerate(zip(layers, summary.diff_ids)):
                layer, size = self._layer_member(manifest_path(path, "a layer"))
                if layer.diff_id != diff_id:
                    raise LoadError(f'invalid diffID for layer {i}: expected "{diff_id}", got "{layer.diff_id}"')
                records.append(layer)
                sizes.append(size)
            out.append(LoadImage(config, summary, records, sizes, [_tag(t) for t in tags]))
        return out

    def _attach_manifests(self, images: list[LoadImage]) -> None:
        """Give images named by manifest.json the manifests index.json has for them (same
        config and layers), so they keep a Descriptor; an index that does not check out adds
        nothing (manifest.json alone decides what is loaded, as in dockerd)."""
        try:
            found = self._oci_images()
        except (LoadError, ValueError, TypeError, KeyError, AttributeError):  # a broken index: ignored
            return
        by_image = {(o.config, tuple(lay.blob_digest for lay in o.layers)): o.manifests for o in found}
        for image in images:
            kept = by_image.get((image.config, tuple(lay.blob_digest for lay in image.layers)))
            if kept:
                image.manifests = kept

    # OCI image layout: index.json → (nested indexes →) manifests → config and layer blobs.

    def _oci_blob_path(self, desc: Any) -> tuple[str, str]:
        digest = desc.get("digest") if isinstance(desc, dict) else None
        if not isinstance(digest, str) or ":" not in digest:
            raise LoadError(f"invalid OCI descriptor: {json.dumps(desc)}")
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
            raise LoadError(f"unsupported digest {digest}")
        return digest, f"blobs/sha256/{hexpart}"

    def _oci_json(self, desc: Any, what: str) -> tuple[bytes, Any]:
        digest, path = self._oci_blob_path(desc)
        data = self._json_member(path, what)
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise LoadError(f"invalid {what} {path}: content does not match its digest")
        try:
            return data, json.loads(data)
        except ValueError as exc:
            raise LoadError(f"invalid {what} {path}: {exc}") from exc

    def _oci_images(self) -> list[LoadImage]:
        data = self._json_member("index.json", "index")
        try:
            index = json.loads(data)
        except ValueError as exc:
            raise LoadError(f"invalid index.json: {exc}") from exc
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise LoadError("invalid index.json: no manifests")
        by_manifest: dict[str, LoadImage] = {}
        for desc in index["manifests"]:
            tag = _oci_tag(desc.get("annotations") if isinstance(desc, dict) else None)
            for manifest_digest, image in self._oci_walk(desc, 0):
                image = by_manifest.setdefault(manifest_digest, image)
                if tag is not None and tag not in image.tags:
                    image.tags.append(tag)
        return list(by_manifest.values())

    def _oci_walk(self, desc: Any, depth: int) -> list[tuple[str, LoadImage]]:
        if depth > 4:
            raise LoadError("invalid OCI layout: indexes nested too deeply")
        data, doc = self._oci_json(desc, "manifest")
        media = (doc.get("mediaType") if isinstance(doc, dict) else None) or desc.get("mediaType")
        if not isinstance(doc, dict):
            raise LoadError("invalid OCI manifest: not an object")
        if media in OCI_INDEXES or (media not in OCI_MANIFESTS and "manifests" in doc):
            found = [hit for d in doc.get("manifests") or [] if self._platform_ok(d)
                     for hit in self._oci_walk(d, depth + 1)]
            if not found:
                raise LoadError(f"no matching manifest for linux/{self.arch} in the manifest list entries")
            for _, image in found:  # the outermost index is what the image was loaded as
                leaf = image.manifests[-1]
                image.manifests = [(data, str(media or ""), "target"), (leaf[0], leaf[1], "platform")]
            return found
        config_desc = doc.get("config")
        config, _ = self._oci_json(config_desc, "image config")
        _, config_path = self._oci_blob_path(config_desc)
        summary = _check_config(config, config_path)
        layer_descs = doc.get("layers") or []
        if len(layer_descs) != len(summary.diff_ids):
            raise LoadError(f"invalid manifest, layers length mismatch: expected {len(layer_descs)}, "
                            f"got {len(summary.diff_ids)}")
        records, sizes = [], []
        for i, (ld, diff_id) in enumerate(zip(layer_descs, summary.diff_ids)):
            digest, path = self._oci_blob_path(ld)
            layer, size = self._layer_member(path)
            if layer.blob_digest != digest:
                raise LoadError(f"invalid layer {path}: content does not match its digest")
            if layer.diff_id != diff_id:
                raise LoadError(f'invalid diffID for layer {i}: expected "{diff_id}", got "{layer.diff_id}"')
            records.append(layer)
            sizes.append(size)
        manifest_digest = "sha256:" + hashlib.sha256(data).hexdigest()
        kept = [(data, str(media or "application/vnd.oci.image.manifest.v1+json"), "target")]
        return [(manifest_digest, LoadImage(config, summary, records, sizes, manifests=kept))]

    def _platform_ok(self, desc: Any) -> bool:
        platform = desc.get("platform") if isinstance(desc, dict) else None
        if not isinstance(platform, dict):
            return True
        os_ = str(platform.get("os") or "linux").lower()
        arch = str(platform.get("architecture") or self.arch).lower()
        return os_ == "linux" and _ARCH_ALIASES.get(arch, arch) == self.arch

    # -- committing -----------------------------------------------------------------------

    def new_layers(self, image: LoadImage) -> list[tuple[str, int]]:
        """(DiffID, file size) of the layers whose chain the store does not have yet."""
        users = self.store.index.chain_users
        return [(lay.diff_id, size) for lay, size, chain in
                zip(image.layers, image.file_sizes, chain_ids(image.summary.diff_ids)) if not users[chain]]

    def commit(self, image: LoadImage) -> tuple[ImageRecord, dict[str, str]]:
        committed = self.store.commit_image(image.config, image.layers, image.summary, refs=image.tags)
        if image.manifests:
            self.store.add_manifests(committed[0].id, image.manifests)
        return committed


def _check_config(config: bytes, path: str) -> ConfigSummary:
    """dockerd's image.NewFromJSON (Go's json.Unmarshal errors) and checkCompatibleOS."""
    try:
        doc = json.loads(config)
    except ValueError as exc:
        raise LoadError(gojson.syntax_error(config.decode("utf-8", "surrogateescape"))
                        or f"invalid image config {path}: {exc}") from exc
    if doc is None:  # null unmarshals into an empty image: no rootfs
        doc = {}
    if not isinstance(doc, dict):
        raise LoadError(gojson.type_error(doc, "image.Image"))
    if doc.get("rootfs") is None:
        raise LoadError("invalid image JSON, no RootFS key")
    os_ = doc.get("os") or ""
    if os_ not in ("", "linux"):
        raise LoadError(f"cannot load {os_} image on linux" if os_ == "windows"
                        else f"cannot load {os_} image on linux: unsupported os {os_}")
    try:
        return summarize(config)
    except ConfigError as exc:
        raise LoadError(f"{exc} ({path})") from exc


def _tag(text: Any) -> Reference:
    if not isinstance(text, str):
        raise LoadError(f"invalid tag {json.dumps(text)}")
    try:
        ref = reference.parse(text)
    except DockerRemoteError as exc:
        raise LoadError(exc.message) from exc
    if ref.tag is None or ref.digest is not None:
        raise LoadError(f'invalid tag "{text}"')
    return ref


def _oci_tag(annotations: Any) -> Reference | None:
    """The image name an OCI index gives a manifest: containerd's full name, or a full ref.name."""
    if not isinstance(annotations, dict):
        return None
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        value = annotations.get(key)
        if not isinstance(value, str) or not value:
            continue
        try:
            ref = reference.parse(value)
        except DockerRemoteError:
            continue
        if ref.tag is not None and ref.digest is None:
            return ref  # a bare ref.name like "latest" or "v1" is only a tag: no name to give
    return None


# -- the whole load ---------------------------------------------------------------------------

ProgressFn = Callable[[str, int], Awaitable[None]]
MessageFn = Callable[[str], Awaitable[None]]


async def load_archive(store: ImageStore, source: AsyncIterator[bytes], *, arch: str,
                       on_message: MessageFn, on_layer: ProgressFn | None = None) -> list[ImageRecord]:
    """Read, check and commit an archive; report as dockerd does. Raises LoadError."""
    session = LoadSession(store, arch)
    try:
        await pump(source, session.feed)
        await asyncio.to_thread(session.finish)
        images = await asyncio.to_thread(session.resolve)
        loaded: list[ImageRecord] = []
        for image in images:
            if on_layer is not None:
                for diff_id, size in await asyncio.to_thread(session.new_layers, image):
                    await on_layer(diff_id, size)
            record, moved = await asyncio.to_thread(session.commit, image)
            loaded.append(record)
            for ref in image.tags:
                if str(ref) in moved:
                    await on_message(f"The image {ref.familiar} already exists, renaming the old one "
                                     f"with ID {moved[str(ref)]} to empty string\n")
                await on_message(f"Loaded image: {ref.familiar}\n")
        if not images or not images[-1].tags:
            # dockerd's quirk: one message holding every image ID, only if the last had no tags
            await on_message("".join(f"Loaded image ID: {r.id}\n" for r in loaded))
        return loaded
    finally:
        await asyncio.to_thread(session.close)
