"""Push: the tags of a local repository → a registry, in dockerd 20.10's steps and words.

Per tag: every layer (top first) is Preparing; up to --max-concurrent-uploads run at once
(the others are Waiting), each one single-flight per (target repository, blob) across all
pushes of the daemon (transfer/scheduler.py). A layer is sent as the store holds it when that
is gzip or zstd (a pulled layer goes back byte for byte); a layer stored uncompressed or in
another compression (import, load) is gzipped ONCE on every core (transfer/gzip_copy.py) and
the copy is kept, so the next push only asks whether the registry has it. For each blob:

    HEAD      the registry has it                 → "Layer already exists"
    mount     another repository of the same      → "Mounted from <repository>"
              registry is known to have it (a pull
              from there, an earlier push)
    upload    POST / PATCH / PUT, resumed or       → "Pushing" progress, then "Pushed"
              restarted after faults

then the config blob, then a docker schema2 manifest PUT under the tag. Its digest becomes
the image's RepoDigest `<name>@<digest>`. Errors are dockerd's texts; the api layer sends
them in the stream (the first line goes out before anything is looked up).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from dockerremote.errors import DockerRemoteError
from dockerremote.oci import compression
from dockerremote.oci.digest import short_id
from dockerremote.oci.manifest import DOCKER_CONFIG, DOCKER_MANIFEST
from dockerremote.reference import Reference
from dockerremote.registry.upload import Upload
from dockerremote.store.images import ImageStore
from dockerremote.store.index import LayerRecord
from dockerremote.transfer.gzip_copy import make_gzip_copy
from dockerremote.transfer.lease import AsyncLease
from dockerremote.transfer.progress import ByteMeter, Event, Kind
from dockerremote.transfer.scheduler import Handle, Scheduler

log = logging.getLogger(__name__)

DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
_AS_STORED = {compression.GZIP: DOCKER_LAYER_GZIP, compression.ZSTD: OCI_LAYER_ZSTD}
MAX_MOUNT_TRIES = 3      # source repositories tried per blob (dockerd: up to 4 for big layers)
READ = 1 << 20

AsyncEmit = Callable[[Event], Awaitable[None]]


class PushError(DockerRemoteError):
    """A push that cannot go on (dockerd's texts; sent in the stream)."""


@dataclass
class PushRequest:
    ref: Reference                  # a repository, with a tag (that tag) or without (every tag)
    auth: Any = None                # registry.auth.AuthConfig or None
    meta_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Blob:
    """What a manifest lists for a layer: the blob as the registry gets it."""

    digest: str
    size: int
    media_type: str


class Pusher:
    """One per daemon: owns the upload scheduler (the daemon-wide concurrency limit)."""

    def __init__(self, store: ImageStore, registries: Any, max_uploads: int = 5, gzip_workers: int = 2) -> None:
        self.store = store
        self.registries = registries
        self.scheduler: Scheduler[Blob] = Scheduler(max_uploads)
        # one gzip copy at a time: each already keeps every core busy
        self.copies: Scheduler[Blob] = Scheduler(1)
        self.configs: Scheduler[Blob] = Scheduler(64)
        self.gzip_workers = gzip_workers
        self._background: set[asyncio.Task[None]] = set()

    async def push(self, req: PushRequest, emit: AsyncEmit) -> list[tuple[str, str]]:
        """Push the tag (or every tag) of req.ref; the (tag, manifest digest) pairs pushed."""
        ref = req.ref
        await emit(Event(Kind.REFERS, text=ref.name))
        refs = await asyncio.to_thread(self.store.repository_refs, ref)
        if not refs:
            raise PushError(f"An image does not exist locally with the tag: {ref.familiar_name}")
        repo = self.registries.repository(ref.repository(), req.auth, push=True, meta_headers=req.meta_headers)
        await repo.connect()  # dockerd reaches the registry before it looks at the tags
        if ref.digest is not None:
            raise PushError("cannot push a digest reference")
        tags = [(r, i) for r, i in refs if r.tag is not None and r.digest is None]
        if ref.tag is not None:
            tags = [(r, i) for r, i in tags if r.tag == ref.tag]
            if not tags:
                raise PushError(f"tag does not exist: {ref.familiar}")
        elif not tags:
            raise PushError(f"no tags to push for {ref.familiar_name}")
        pushed = []
        for tag_ref, image_id in tags:  # in the order of their full names, as dockerd
            pushed.append((tag_ref.tag or "", await self._push_tag(repo, tag_ref, image_id, emit)))
        return pushed

    # -- one tag -------------------------------------------------------------------------------

    async def _push_tag(self, repo: Any, ref: Reference, image_id: str, emit: AsyncEmit) -> str:
        image = self.store.get(image_id)
        if image is None:  # deleted since we listed the tags
            raise PushError(f"tag does not exist: {ref.familiar}")
        layers = self.store.layer_records(image)
        async with AsyncLease(self.store, [image.id, *image.layers]):
            config = await asyncio.to_thread(self.store.config_bytes, image)
            # the config goes up beside the layers (dockerd sends it after them: a few
            # round trips saved; the registry only needs it before the manifest)
            config_sent = asyncio.create_task(self._push_config_once(repo, image.id, config))
            try:
                blobs = await self._push_layers(repo, layers, emit)
                await config_sent
            finally:
                if not config_sent.done():
                    config_sent.cancel()
                await asyncio.gather(config_sent, return_exceptions=True)
            manifest = manifest_bytes(image.id, len(config), blobs)
            assert ref.tag is not None
            digest = await repo.put_manifest(ref.tag, manifest, DOCKER_MANIFEST)
            await asyncio.to_thread(self._record, ref, image.id, digest, [image.id, *(b.digest for b in blobs)])
        await emit(Event(Kind.PUSH_RESULT, id=digest, current=len(manifest), text=ref.tag))
        return digest

    async def _push_layers(self, repo: Any, layers: list[LayerRecord], emit: AsyncEmit) -> list[Blob]:
        """Every layer, top first as dockerd lists them; the blobs in manifest (bottom-up) order."""
        top_first = list(reversed(layers))
        for layer in top_first:
            await emit(Event(Kind.PREPARING, short_id(layer.diff_id)))
        handles: dict[str, Handle[Blob]] = {}
        watchers: list[asyncio.Task[Blob]] = []
        try:
            for layer in top_first:
                key = f"{repo.name.name}@{layer.blob_digest}"
                if key not in handles:
                    handles[key] = self.scheduler.join(key, self._uploader(repo, layer), short_id(layer.diff_id))
                # one watcher per layer, duplicates included, as dockerd's upload manager
                watchers.append(asyncio.create_task(_watch(handles[key], emit)))
            done, pending = await asyncio.wait(watchers, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            return [w.result() for w in reversed(watchers)]
        finally:
            for w in watchers:
                w.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            for h in handles.values():
                h.release()

    def _uploader(self, repo: Any, layer: LayerRecord) -> Callable[[Callable[[Event], None]], Awaitable[Blob]]:
        async def start(publish: Callable[[Event], None]) -> Blob:
            return await self._upload_layer(repo, layer, publish)
        return start

    async def _upload_layer(self, repo: Any, layer: LayerRecord, publish: Callable[[Event], None]) -> Blob:
        """One layer to one repository (runs in the scheduler's task, in an upload slot)."""
        sid = short_id(layer.diff_id)
        # progress in bytes of the layer tar against its content size, as dockerd counts
        meter = ByteMeter(sid, Kind.PUSHING, layer.size, publish)

        def on_retry(failures: int, delay: float, error: Any) -> None:
            if delay > 0:
                publish(Event(Kind.RETRYING, sid, max(1, math.ceil(delay))))

        blob = self._ready(layer)
        if blob is None:  # a gzip copy is to be made: upload it while it is being made
            blob, streamed = await self._copy_and_stream(repo, layer, meter)
            if streamed:
                meter.update(layer.tar_size)
                meter.finish()
                publish(Event(Kind.PUSHED, sid))
                return blob
        placed = await self._place(repo, blob.digest)
        if placed is True:
            publish(Event(Kind.LAYER_EXISTS, sid))
            return blob
        if isinstance(placed, str):
            publish(Event(Kind.MOUNTED, sid, text=placed))
            return blob
        opened = placed
        scale = layer.tar_size / blob.size if blob.size else 0.0
        await repo.upload_blob(blob.digest, blob.size, _file_reader(self.store.content.path(blob.digest)),
                               upload=opened, on_progress=lambda sent: meter.update(int(sent * scale)),
                               on_retry=on_retry)
        meter.update(layer.tar_size)
        meter.finish()
        publish(Event(Kind.PUSHED, sid))
        return blob

    async def _place(self, repo: Any, digest: str) -> "bool | str | Upload | None":
        """Spare an upload if we can: True if the repository has the blob, the source repository
        it was mounted from, else an upload the registry opened instead of a mount (or None)."""
        if await repo.blob_exists(digest) is not None:
            return True
        sources = await asyncio.to_thread(self.store.blob_sources, digest, repo.name.domain)
        for source in [s for s in sources if s != repo.name.path][:MAX_MOUNT_TRIES]:
            got = await repo.mount_blob(digest, source)
            if got is True:
                return source
            if isinstance(got, Upload):  # the registry opened an upload instead: use it
                return got
        return None

    def _ready(self, layer: LayerRecord) -> Blob | None:
        """The blob sent for a layer if it exists: as stored (gzip, zstd) or its gzip copy."""
        media_type = _AS_STORED.get(layer.compression)
        if media_type is not None:
            return Blob(layer.blob_digest, layer.blob_size, media_type)
        copy = self.store.push_copy(layer.blob_digest)
        if copy is not None:
            return Blob(copy.digest, copy.size, DOCKER_LAYER_GZIP)
        return None

    async def _copy_and_stream(self, repo: Any, layer: LayerRecord, meter: ByteMeter) -> tuple[Blob, bool]:
        """Make the layer's gzip copy (single-flight) and upload it as it is written, in one
        chunked PATCH, as dockerd streams its compressor's output: the registry's time overlaps
        the compression. (the copy, True) once the registry has it; (the copy, False) when the
        streamed upload failed or found nothing to stream (the copy was made meanwhile): the
        caller then pushes the stored copy, with retries and resumes."""
        handle = self.copies.join(layer.blob_digest, self._copier(layer))
        final: list[tuple[str, int]] = []
        fd = -1

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal fd
            sent = 0
            async for ev in handle.watch():
                if ev.kind is not Kind.PUSHING:  # waiting for the compressor
                    continue
                if fd < 0:  # held open: the file stays readable once committed (renamed)
                    try:
                        fd = await asyncio.to_thread(os.open, ev.text, os.O_RDONLY)
                    except FileNotFoundError:  # committed already: the last piece's event has
                        if not ev.id:          # its digest, the blob's name (it may be on its way)
                            continue
                        fd = await asyncio.to_thread(os.open, self.store.content.path(ev.id), os.O_RDONLY)
                async for data in _fd_reader(fd, ev.current)(sent):
                    sent += len(data)
                    yield data
                meter.update(ev.total)
                if ev.id:  # the last piece, digest known (the copy is being committed meanwhile)
                    final.append((ev.id, ev.current))
                    return
            raise _NothingToStream()

        kept = False
        try:
            try:
                upload = await repo.open_upload()
                upload, held = await repo.append_stream(upload, chunks())
                if not final or held not in (-1, final[0][1]):
                    raise _NothingToStream()
                digest, size = final[0]
                await repo.close_upload(upload, digest, size)
            except (DockerRemoteError, OSError, _NothingToStream) as exc:
                log.info("streamed upload of layer %s: %s; pushing the copy", layer.blob_digest, exc)
                return await handle.result(), False
            # the copy's commit and record go on: the scheduler keeps the copy joinable till then
            task = asyncio.get_running_loop().create_task(_release_when_done(handle))
            self._background.add(task)  # referenced until done (asyncio keeps weak references)
            task.add_done_callback(self._background.discard)
            kept = True
            return Blob(digest, size, DOCKER_LAYER_GZIP), True
        finally:
            if fd >= 0:
                os.close(fd)
            if not kept:
                handle.release()

    def _copier(self, layer: LayerRecord) -> Callable[[Callable[[Event], None]], Awaitable[Blob]]:
        async def make(publish: Callable[[Event], None]) -> Blob:
            loop = asyncio.get_running_loop()

            def written(path: str, size: int, tar_done: int, digest: str) -> None:  # compressing thread
                loop.call_soon_threadsafe(publish, Event(Kind.PUSHING, digest, size, tar_done, path))

            # compressing, committing and recording happen in one thread: a push that gives
            # up meanwhile cannot leave half a copy behind, and the copy is kept anyway
            return await asyncio.to_thread(self._gzip_copy, layer, written)
        return make

    def _gzip_copy(self, layer: LayerRecord, on_written: Callable[[str, int, int, str], None] | None = None
                   ) -> Blob:
        copy = self.store.push_copy(layer.blob_digest)  # made by a push that finished meanwhile
        if copy is not None:
            return Blob(copy.digest, copy.size, DOCKER_LAYER_GZIP)
        digest, size, writer = make_gzip_copy(self.store.content, layer, self.gzip_workers, on_written)
        with self.store.lease([digest]):  # not collectable between its commit and its record
            writer.commit(digest, size)
            self.store.add_push_copy(layer.blob_digest, digest, size)
        log.info("layer %s: gzip copy %s (%d bytes)", layer.blob_digest, digest, size)
        return Blob(digest, size, DOCKER_LAYER_GZIP)

    async def _push_config_once(self, repo: Any, digest: str, config: bytes) -> None:
        """Single flight per (repository, config) too, outside the upload slots (as dockerd)."""
        async def start(publish: Callable[[Event], None]) -> Blob:
            await self._push_config(repo, digest, config)
            return Blob(digest, len(config), DOCKER_CONFIG)

        handle = self.configs.join(f"{repo.name.name}@{digest}", start)
        try:
            await handle.result()
        finally:
            handle.release()

    async def _push_config(self, repo: Any, digest: str, config: bytes) -> None:
        placed = await self._place(repo, digest)
        if placed is None or isinstance(placed, Upload):
            await repo.upload_blob(digest, len(config), lambda offset: _bytes_reader(config[offset:]),
                                   upload=placed)

    def _record(self, ref: Reference, image_id: str, digest: str, blob_digests: list[str]) -> None:
        """The RepoDigest (unless that digest ref exists: dockerd does not move it) and where the
        blobs now are (a push to another repository of this registry mounts them)."""
        digest_ref = Reference(ref.domain, ref.path, None, digest)
        with self.store.index.lock:
            if str(digest_ref) not in self.store.index.refs and image_id in self.store.index.images:
                self.store.set_tag(digest_ref, image_id)
        self.store.note_blob_sources(ref.domain, ref.path, blob_digests)


def manifest_bytes(config_digest: str, config_size: int, blobs: list[Blob]) -> bytes:
    """A docker schema2 manifest laid out as dockerd's (Go's MarshalIndent with 3 spaces)."""
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": config_size, "digest": config_digest},
        "layers": [{"mediaType": b.media_type, "size": b.size, "digest": b.digest} for b in blobs],
    }
    return json.dumps(doc, indent=3).encode()


async def _watch(handle: Handle[Blob], emit: AsyncEmit) -> Blob:
    async for event in handle.watch():
        await emit(event)
    return await handle.result()


def _file_reader(path: Path) -> Callable[[int], AsyncIterator[bytes]]:
    """open_at(offset) for a blob file: its bytes from offset on, read in a thread."""
    def open_at(offset: int) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            f = await asyncio.to_thread(open, path, "rb")
            try:
                if offset:
                    await asyncio.to_thread(f.seek, offset)
                while data := await asyncio.to_thread(f.read, READ):
                    yield data
            finally:
                f.close()
        return chunks()
    return open_at


def _fd_reader(fd: int, end: int) -> Callable[[int], AsyncIterator[bytes]]:
    """open_at(offset) for a file still being written: bytes offset..end-1, never further."""
    def open_at(offset: int) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            pos = offset
            while pos < end:
                data = await asyncio.to_thread(os.pread, fd, min(READ, end - pos), pos)
                if not data:
                    raise OSError(f"blob file ends at {pos}, expected {end} bytes")
                pos += len(data)
                yield data
        return chunks()
    return open_at


class _NothingToStream(Exception):
    def __str__(self) -> str:
        return "nothing (more) to stream"


async def _release_when_done(handle: Handle[Blob]) -> None:
    try:
        await handle.result()
    except BaseException:  # noqa: BLE001 - the copy failed after the registry got its bytes
        pass
    finally:
        handle.release()


async def _bytes_reader(data: bytes) -> AsyncIterator[bytes]:
    yield data
