"""Pull: resolve → manifest → platform → config → layers in parallel → commit.

Each layer blob is streamed once from the registry: the bytes go to a store blob writer
while their sha256 is computed, and a streaming decompressor feeds the DiffID hash and
the content-size meter (LayerIngest), in worker threads so network reads overlap the
hashing. Nothing unverified is stored: a blob is committed only once its digest and its
DiffID (from the config's rootfs.diff_ids) match. Blobs are leased from the moment the
pull knows it needs them until the image is committed, so a concurrent delete or prune
never removes them underneath. Layer downloads are single-flight per blob digest across
all pulls of the daemon (transfer/scheduler.py).

Messages follow dockerd 20.10 (distribution/pull_v2.go) where a client can see them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from dockerremote.errors import DigestMismatch, DockerRemoteError
from dockerremote.oci import manifest as mf
from dockerremote.oci import platform as plat
from dockerremote.oci.config import ConfigError, ConfigSummary, summarize
from dockerremote.oci.digest import sha256_digest, short_id
from dockerremote.reference import Reference
from dockerremote.store.images import ImageStore, stored_ref
from dockerremote.store.index import LayerRecord
from dockerremote.transfer.ingest import LayerIngest, StageFeed
from dockerremote.transfer.lease import AsyncLease
from dockerremote.transfer.progress import ByteMeter, Event, Kind
from dockerremote.transfer.scheduler import Handle, Scheduler, release_slot

log = logging.getLogger(__name__)

MAX_MANIFEST = 4 << 20
SPLIT_LAYER = 16 << 20  # compressed size from which a layer's ingest runs in three threads
MAX_CONFIG = 8 << 20

ROOTFS_MISMATCH = "layers from manifest don't match image configuration"
ROOTFS_INVALID = "invalid rootfs in image configuration"
OS_NOT_SUPPORTED = "operating system is not supported"

AsyncEmit = Callable[[Event], Awaitable[None]]


class _Fetched(Protocol):
    data: bytes
    media_type: str
    digest: str


class Repository(Protocol):
    """What pull needs from registry.client.Repository (see registry/interface.md)."""

    async def manifest(self, tag_or_digest: str) -> _Fetched: ...
    async def tags(self) -> list[str]: ...
    async def fetch_blob(self, digest: str, size: int | None, consume: Callable[[bytes], None],
                         on_retry: Callable[[int, float, Any], Any] | None = None,
                         on_progress: Callable[[int], None] | None = None) -> None: ...
    async def blob_bytes(self, digest: str, max_size: int) -> bytes: ...


class Registries(Protocol):
    def repository(self, ref: Reference, auth: Any, push: bool = False,
                   meta_headers: dict[str, str] | None = None) -> Repository: ...


class PullError(DockerRemoteError):
    """A pull that failed for a reason of the image itself (dockerd answers 500)."""


@dataclass
class PullRequest:
    ref: Reference                  # with a tag, a digest, or neither (= every tag)
    platform: plat.Platform | None = None
    auth: Any = None                # registry.auth.AuthConfig or None
    raw_name: str = ""              # fromImage as given: dockerd checks the platform against it
    meta_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Resolved:
    """One image manifest chosen for a ref, and the digest the ref's RepoDigest records."""

    manifest: mf.ImageManifest
    top_digest: str                 # the manifest's digest, or the list's for a multi-arch ref
    blobs: list[tuple[bytes, str, str]] = field(default_factory=list)  # kept: (bytes, type, role)


class Puller:
    """One per daemon: owns the download scheduler (the daemon-wide concurrency limit)."""

    def __init__(self, store: ImageStore, registries: Registries, max_downloads: int = 3) -> None:
        self.store = store
        self.registries = registries
        self.scheduler: Scheduler[LayerRecord] = Scheduler(max_downloads)
        # configs are blobs too, fetched once however many pulls want them, but never queued
        # behind layer downloads (dockerd fetches them outside its download manager)
        self.configs: Scheduler[bytes] = Scheduler(64)

    async def pull(self, req: PullRequest, emit: AsyncEmit) -> None:
        repo = self.registries.repository(req.ref.repository(), req.auth, meta_headers=req.meta_headers)
        if req.ref.tag is None and req.ref.digest is None:
            tags = await repo.tags()
            changed = False
            for tag in tags:
                changed |= await self._pull_one(repo, Reference(req.ref.domain, req.ref.path, tag), req, emit)
            name = req.ref.familiar_name
        else:
            changed = await self._pull_one(repo, req.ref, req, emit)
            name = req.ref.familiar
        await emit(Event(Kind.STATUS, current=int(changed), text=name))
        if req.platform is not None:
            warning = await asyncio.to_thread(self._platform_warning, req)
            if warning:
                await emit(Event(Kind.WARNING, text=warning))

    # -- one tag or digest -------------------------------------------------------------------

    async def _pull_one(self, repo: Repository, ref: Reference, req: PullRequest, emit: AsyncEmit) -> bool:
        """Pull one tag or digest; True when a ref was created or moved."""
        wanted = ref.digest or ref.tag
        assert wanted is not None
        fetched = await repo.manifest(wanted)
        if ref.digest is not None and fetched.digest != ref.digest:
            raise PullError(f"manifest verification failed for digest {ref.digest}")
        top = mf.parse(fetched.data, fetched.media_type, str(ref))
        if isinstance(top, mf.ImageManifest):
            mf.check_image_config(top)
        # dockerd: the tag, or the whole reference when pulling by digest
        await emit(Event(Kind.PULLING, id=str(ref) if ref.digest else wanted, text=ref.path))
        resolved = await self._select(repo, top, fetched.digest, req.platform)
        resolved.blobs.insert(0, (fetched.data, top.media_type, "target"))
        image_id = resolved.manifest.config.digest
        layers = resolved.manifest.layers
        held: list[Handle[Any]] = []  # transfers kept joinable until our commit: no refetch in between
        kept = [sha256_digest(data) for data, _, _ in resolved.blobs]  # the manifests, stored with the image
        try:
            async with AsyncLease(self.store, [image_id, *dict.fromkeys(d.digest for d in layers), *kept]):
                config, records, summary = None, None, None
                if self.store.get(image_id) is None:
                    config, summary, records = await self._fetch_image(
                        repo, resolved.manifest, emit, held, req.platform, [data for data, _, _ in resolved.blobs])
                await emit(Event(Kind.DIGEST, text=resolved.top_digest))
                changed = await asyncio.to_thread(self._commit, ref, resolved, config, summary, records)
                # where these blobs live: a push to another repository of this registry mounts them
                await asyncio.to_thread(self.store.note_blob_sources, ref.domain, ref.path,
                                        [image_id, *(d.digest for d in layers)])
                return changed
        finally:
            await asyncio.shield(asyncio.gather(*(h.aclose() for h in held)))

    async def _select(self, repo: Repository, top: mf.Manifest, top_digest: str,
                      want: plat.Platform | None) -> _Resolved:
        if isinstance(top, mf.ImageManifest):
            # single-arch: pulled whatever its architecture (dockerd 20.10); an OS other than
            # Linux is refused with the config (_fetch_image)
            return _Resolved(top, top_digest)
        i = plat.select(want, top.platforms())
        if i is None:
            raise PullError(plat.no_match_message(want))
        entry = top.manifests[i]
        fetched = await repo.manifest(entry.digest)
        if fetched.digest != entry.digest:
            raise PullError(f"manifest verification failed for digest {entry.digest}")
        inner = mf.parse(fetched.data, fetched.media_type, entry.digest)
        if not isinstance(inner, mf.ImageManifest):
            raise PullError("unsupported manifest format")
        mf.check_image_config(inner)
        return _Resolved(inner, top_digest, [(fetched.data, inner.media_type, "platform")])

    # -- config and layers -------------------------------------------------------------------

    async def _fetch_image(self, repo: Repository, m: mf.ImageManifest, emit: AsyncEmit,
                           held: list[Handle[Any]], platform: plat.Platform | None = None,
                           manifests: list[bytes] | None = None,
                           ) -> tuple[bytes, ConfigSummary, list[LayerRecord]]:
        """Config and layers, verified and committed as blobs; the caller releases `held`.
        The config and `manifests` (leased by the caller) are stored while the layers download,
        so the commit after the last layer only writes the index."""
        async def fetch_config(publish: Callable[[Event], None]) -> bytes:
            return await repo.blob_bytes(m.config.digest, MAX_CONFIG)

        config_handle = self.configs.join(m.config.digest, fetch_config)
        held.append(config_handle)
        if platform is not None and not _os_supported(platform.os):
            # dockerd's download manager refuses the layer store's OS before a single layer
            # line; the config's own complaint, if any, is reported first
            await self._config(config_handle, m)
            raise PullError(OS_NOT_SUPPORTED)
        records: list[LayerRecord | None] = [None] * len(m.layers)
        handles: dict[str, Handle[LayerRecord]] = {}
        # Layers start downloading while the config is on its way (as dockerd does): each
        # download needs its DiffID only to verify it at the end.
        diff_ids: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        # dockerd says "Already exists" only for the leading run of layers it has; a layer it
        # has after a missing one goes through the download states (we skip the fetch itself).
        leading = True
        replayed: set[int] = set()
        try:
            lines: list[Event] = []  # told once the downloads are on their way
            for i, desc in enumerate(m.layers):
                stored = self._stored_layer(desc.digest)
                if stored is not None and leading:
                    records[i] = stored
                    lines.append(Event(Kind.EXISTS, short_id(desc.digest)))
                    continue
                leading = False
                if stored is not None:
                    records[i] = stored
                    replayed.add(i)
                    lines += [Event(kind, short_id(desc.digest))
                              for kind in (Kind.QUEUED, Kind.VERIFYING, Kind.DOWNLOADED)]
                elif desc.digest not in handles:
                    lines.append(Event(Kind.QUEUED, short_id(desc.digest)))
                    handles[desc.digest] = self.scheduler.join(
                        desc.digest, self._downloader(repo, desc, diff_ids, i), short_id(desc.digest))
                    held.append(handles[desc.digest])
            # the first downloads send their requests before these lines are written; what the
            # downloads report waits for _run_layers' watchers, so the stream's order holds
            await asyncio.sleep(0)
            for event in lines:
                await emit(event)
            config, summary = await self._config(config_handle, m)
            if len(summary.diff_ids) != len(m.layers):
                raise PullError(ROOTFS_MISMATCH)
            diff_ids.set_result(summary.diff_ids)
        finally:
            if not diff_ids.done():  # a download shared with another pull must not wait forever
                diff_ids.set_exception(PullError("error pulling image configuration"))
                diff_ids.exception()  # retrieved: no "never retrieved" warning
        small = asyncio.ensure_future(asyncio.to_thread(self._store_small, [config, *(manifests or [])]))
        small.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved, whoever waits
        try:
            await self._run_layers(m, records, handles, emit, replayed)
        finally:
            await asyncio.wait([small])  # a layer's failure, if any, is the one reported
        small.result()  # stored before the folder fsync below, which makes its renames durable
        # the renames of this image's blobs (by us or by a pull we joined) made durable at once
        await asyncio.to_thread(self.store.content.fsync_dir)
        done = [r for r in records if r is not None]
        if [r.diff_id for r in done] != summary.diff_ids:
            raise PullError(ROOTFS_MISMATCH)
        return config, summary, done

    def _store_small(self, blobs: list[bytes]) -> None:
        """Config and manifests into the content store (their folder is fsynced by the caller)."""
        for data in blobs:
            self.store.content.put(data, sync_dir=False)

    @staticmethod
    async def _config(handle: Handle[bytes], m: mf.ImageManifest) -> tuple[bytes, ConfigSummary]:
        """The image config, fetched and checked as dockerd's receiveConfig does."""
        try:
            config = await handle.result()
        except DockerRemoteError as exc:
            text = exc.message
            if isinstance(exc, DigestMismatch):
                text = f"image config verification failed for digest {m.config.digest}"
            raise PullError(f"error pulling image configuration: {text}") from exc
        return config, _summary(config)

    async def _run_layers(self, m: mf.ImageManifest, records: list[LayerRecord | None],
                          handles: dict[str, Handle[LayerRecord]], emit: AsyncEmit,
                          replayed: set[int]) -> None:
        """Forward each download's progress; report extraction in layer order, as dockerd.

        `replayed`: layers already stored but not in the leading run; they are reported
        extracted in their turn like downloaded ones.
        """
        watchers = {d: asyncio.create_task(self._watch(h, emit)) for d, h in handles.items()}
        pending = set(watchers.values())
        try:
            for i, desc in enumerate(m.layers):
                if records[i] is not None and i not in replayed:
                    continue
                if i not in replayed:
                    task = watchers[desc.digest]
                    while not task.done():  # but fail as soon as any layer fails
                        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                        for t in done:
                            if t.exception() is not None:
                                raise t.exception()  # type: ignore[misc]
                    records[i] = task.result()
                sid = short_id(desc.digest)
                total = records[i].blob_size  # type: ignore[union-attr]
                await emit(Event(Kind.EXTRACTING, sid, total, total))
                await emit(Event(Kind.LAYER_DONE, sid))
        finally:
            for t in watchers.values():
                t.cancel()
            await asyncio.gather(*watchers.values(), return_exceptions=True)

    @staticmethod
    async def _watch(handle: Handle[LayerRecord], emit: AsyncEmit) -> LayerRecord:
        async for event in handle.watch():
            await emit(event)
        return await handle.result()

    def _stored_layer(self, digest: str) -> LayerRecord | None:
        """The layer if the store has it (callers hold a lease on it, so it stays)."""
        rec = self.store.index.layers.get(digest)
        if rec is not None and self.store.content.exists(digest):
            return rec
        return None

    def _downloader(self, repo: Repository, desc: mf.Descriptor, diff_ids: "asyncio.Future[list[str]]",
                    i: int) -> Callable[[Callable[[Event], None]], Awaitable[LayerRecord]]:
        async def start(publish: Callable[[Event], None]) -> LayerRecord:
            return await self._download(repo, desc, diff_ids, i, publish)
        return start

    async def _download(self, repo: Repository, desc: mf.Descriptor, diff_ids: "asyncio.Future[list[str]]",
                        i: int, publish: Callable[[Event], None]) -> LayerRecord:
        """Stream one blob into the store, verified; runs in the scheduler's task."""
        sid = short_id(desc.digest)
        stored = self._stored_layer(desc.digest)  # committed by a pull that finished meanwhile
        if stored is not None:
            publish(Event(Kind.DOWNLOADED, sid))
            return stored
        meter = ByteMeter(sid, Kind.DOWNLOADING, desc.size, publish)

        def on_retry(failures: int, delay: float, error: Any) -> None:
            if delay > 0:  # a resume after a cut is immediate and not worth a line
                publish(Event(Kind.RETRYING, sid, max(1, math.ceil(delay))))

        ingest = LayerIngest(self.store.content, True, desc.digest)  # no I/O: its file opens on the first piece
        feed: StageFeed | None = None
        try:
            feed = StageFeed(ingest.stages(split=not desc.size or desc.size >= SPLIT_LAYER))
            # the thread reading the body feeds the stages; fetch_blob refuses bytes beyond
            # desc.size itself
            await repo.fetch_blob(desc.digest, desc.size or None, feed.feed, on_retry, meter.update)
            if feed.threaded:
                await asyncio.to_thread(feed.close)
            release_slot()  # hashed and inflated: the next download starts while this one syncs
            meter.finish()
            publish(Event(Kind.VERIFYING, sid))
            if ingest.digest != desc.digest:
                raise DigestMismatch(f"filesystem layer verification failed for digest {desc.digest}")
            diff_id = (await asyncio.shield(diff_ids))[i]
            try:
                # the blob folder is fsynced once per image, before the image refers to it
                record = await asyncio.to_thread(ingest.finish, desc.digest, diff_id, False)
            except DigestMismatch as exc:
                raise PullError(ROOTFS_MISMATCH) from exc
            except DockerRemoteError as exc:
                raise PullError(f"failed to register layer: {exc.message}") from exc
        except BaseException:
            if feed is not None:
                feed.abandon()  # its threads only drain from now on, and end
                await asyncio.shield(asyncio.to_thread(feed.close_quietly))
            await asyncio.shield(asyncio.to_thread(ingest.abort))
            raise
        publish(Event(Kind.DOWNLOADED, sid))
        return record

    # -- commit ------------------------------------------------------------------------------

    def _commit(self, ref: Reference, resolved: _Resolved, config: bytes | None,
                summary: ConfigSummary | None, records: list[LayerRecord] | None) -> bool:
        """Point the ref (and name@digest) at the image, as pullV2Tag does; True if changed.
        The manifest (and index) pulled are kept with the image (its Descriptor, API ≥ 1.48)."""
        changed = self._set_refs(ref, resolved, config, summary, records)
        self.store.add_manifests(resolved.manifest.config.digest, resolved.blobs)
        return changed

    def _set_refs(self, ref: Reference, resolved: _Resolved, config: bytes | None,
                  summary: ConfigSummary | None, records: list[LayerRecord] | None) -> bool:
        store = self.store
        index = store.index
        image_id = resolved.manifest.config.digest
        digest_ref = str(Reference(ref.domain, ref.path, None, resolved.top_digest))
        with index.lock:
            if ref.digest is not None:
                wanted = str(Reference(ref.domain, ref.path, None, ref.digest))
                if index.refs.get(wanted) == image_id:
                    return False
                names = [wanted]
            else:
                tag_ref = str(Reference(ref.domain, ref.path, ref.tag))
                add_digest = [] if digest_ref in index.refs else [digest_ref]
                if index.refs.get(tag_ref) == image_id:
                    if add_digest:
                        index.set_refs(add_digest, image_id)
                    return False
                names = add_digest + [tag_ref]
            if image_id in index.images:
                index.set_refs(names, image_id)
                return True
            if config is None:  # deleted since we found it complete: rebuild from leased blobs
                config, summary, records = self._from_store(resolved.manifest)
            assert summary is not None and records is not None
            store.commit_image(config, records, summary, refs=[_parse_stored(n) for n in names])
            return True

    def _from_store(self, m: mf.ImageManifest) -> tuple[bytes, ConfigSummary, list[LayerRecord]]:
        """The image's config and layer rows, still there because this pull leases them."""
        gone = PullError(f"image {m.config.digest} was deleted during the pull; pull again")
        try:
            config = self.store.content.read(m.config.digest)
        except FileNotFoundError:
            raise gone from None
        records = [self.store.index.layers.get(d.digest) for d in m.layers]
        if any(r is None for r in records):
            raise gone
        return config, _summary(config), [r for r in records if r is not None]

    def _platform_warning(self, req: PullRequest) -> str | None:
        """dockerd 20.10 warns when the image named by fromImage is not of the platform asked."""
        assert req.platform is not None
        try:
            image = self.store.resolve(req.raw_name)
            config = json.loads(self.store.config_bytes(image))
        except (DockerRemoteError, ValueError):
            return None
        have = plat.Platform(str(config.get("os") or ""), str(config.get("architecture") or ""),
                             str(config.get("variant") or ""))
        if plat.matches(req.platform, have):
            return None
        return (f"image with reference {req.raw_name} was found but does not match the specified "
                f"platform: wanted {req.platform}, actual: {have}")




def _os_supported(os_: str) -> bool:
    """The OS of an image this daemon can store: Linux, or none said (Go's EqualFold)."""
    return os_ == "" or os_.lower() == "linux"


def _summary(config: bytes) -> ConfigSummary:
    try:
        summary = summarize(config)
        rootfs = json.loads(config).get("rootfs")
    except (ConfigError, ValueError) as exc:
        raise PullError(str(exc)) from None
    # dockerd's PlatformFromConfig on Linux
    if summary.os == "windows":
        raise PullError('image operating system "windows" cannot be used on this platform')
    if not _os_supported(summary.os):
        raise PullError(OS_NOT_SUPPORTED)
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise PullError(ROOTFS_INVALID)
    return summary


def _parse_stored(name: str) -> Reference:
    return stored_ref(name)
