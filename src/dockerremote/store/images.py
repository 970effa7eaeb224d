"""The image service over the store: commit, look up, tag, untag, delete, prune, collect.

Everything here speaks plain values and typed errors; the api layer shapes them into
Docker's JSON. Rules follow dockerd 20.10's image service (daemon/images) where they
are observable by a client.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from dockerremote import reference
from dockerremote.errors import Conflict, ImageNotFound, InvalidArgument, NotFound, Unavailable
from dockerremote.oci.config import ConfigSummary, summarize
from dockerremote.oci.digest import chain_ids, sha256_digest, short_id
from dockerremote.reference import Reference
from dockerremote.store.content import ContentStore
from dockerremote.store.index import ImageRecord, Index, LayerRecord, ManifestRecord, PushCopy


@functools.lru_cache(maxsize=65536)
def stored_ref(name: str) -> Reference:
    """Parse a ref string the index wrote (always fully qualified and valid)."""
    return reference.parse(name)


def _lock_root(root: Path) -> int:
    """An exclusive lock on `root/lock` for as long as the returned descriptor is open; Unavailable
    naming the holder if another process has it."""
    fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise Unavailable(f"data root {root} is in use by another dockerremote (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


@dataclass
class DeleteRecord:
    untagged: str | None = None
    deleted: str | None = None


class ImageStore:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        # one daemon per data root: a second one would sweep the first one's ingests, collect
        # blobs it still needs and keep an index mirror that drifts from the file
        self._lock = _lock_root(root)
        self.content = ContentStore(root)
        self.index = Index(root / "index.db")
        self._leases: Counter[str] = Counter()
        self._lease_lock = threading.Lock()
        self.prune_lock = threading.Lock()
        self.collect_garbage()  # orphans of a daemon killed between blob and index commits

    def close(self) -> None:
        self.index.close()
        os.close(self._lock)  # releases the data root (so does the process's exit, however it ends)

    # -- leases: blobs an operation in flight still needs are never collected -------------

    @contextlib.contextmanager
    def lease(self, digests: list[str]) -> Iterator[None]:
        with self._lease_lock:
            self._leases.update(digests)
        try:
            yield
        finally:
            with self._lease_lock:
                self._leases.subtract(digests)
                self._leases = +self._leases
            self.collect_garbage(digests)  # what the operation left unused

    # -- commit ----------------------------------------------------------------------------

    def commit_image(self, config_bytes: bytes, layers: list[LayerRecord],
                     summary: ConfigSummary | None = None, refs: list[Reference] | None = None,
                     tag_time: str | None = None) -> tuple[ImageRecord, dict[str, str]]:
        """Register an image whose layer blobs are committed, with its refs, atomically.

        Returns the image and {ref: previous image id} for refs that moved to it.
        """
        summary = summary or summarize(config_bytes)
        if summary.diff_ids and summary.diff_ids != [lay.diff_id for lay in layers]:
            raise InvalidArgument("layer DiffIDs do not match the image config")
        config_digest = sha256_digest(config_bytes)
        image = ImageRecord(
            id=config_digest, created=summary.created, created_unix=summary.created_unix,
            labels=summary.labels, layers=[lay.blob_digest for lay in layers],
            diff_ids=[lay.diff_id for lay in layers], size=sum(lay.size for lay in layers),
            os=summary.os, architecture=summary.architecture)
        with self.lease([config_digest]):  # not collectable between the blob and the index row
            self.content.put(config_bytes)  # nothing to do if a pull stored it while its layers downloaded
            return self.index.add_image(image, layers, [str(r) for r in refs or []], tag_time)

    def add_manifests(self, image_id: str, blobs: list[tuple[bytes, str, str]]) -> None:
        """Keep the (bytes, media type, role) manifest/index blobs an image was pulled as.

        Each blob is committed under its sha256 and recorded against the image; it stays
        while any image refers to it (index.blob_users counts these rows, so GC keeps them).
        A no-op if the image is gone (the lease's collection then sweeps the blobs)."""
        digests = [sha256_digest(data) for data, _, _ in blobs]
        with self.lease(digests):
            for data, _, _ in blobs:
                self.content.put(data)
            self.index.add_manifests(image_id, [(d, mt, len(data), role)
                                                for d, (data, mt, role) in zip(digests, blobs)])

    # -- push support: gzip copies of layers, and where blobs live in registries -----------

    def push_copy(self, layer_blob: str) -> PushCopy | None:
        """The gzip copy a push sends for this layer, if one was made and is still on disk."""
        copy = self.index.push_copies.get(layer_blob)
        if copy is None or not self.content.exists(copy.digest):
            return None
        return copy

    def add_push_copy(self, layer_blob: str, digest: str, size: int) -> None:
        """Record a committed gzip blob (leased by the caller) as the push form of a layer."""
        self.index.add_push_copy(PushCopy(layer_blob, digest, size))

    def note_blob_sources(self, registry: str, repository: str, digests: list[str]) -> None:
        """Blobs now known to be in registry/repository (a pull from it, a push to it)."""
        self.index.add_blob_sources(registry, repository, digests)

    def blob_sources(self, digest: str, registry: str) -> list[str]:
        return self.index.blob_sources(digest, registry)

    def manifests_of(self, image_id: str) -> list[ManifestRecord]:
        return list(self.index.manifests.get(image_id, []))

    def set_tag(self, ref: Reference, image_id: str, tag_time: str | None = None) -> str | None:
        """Point ref at image_id; return the image it moved from, if any.

        The image may have been deleted since the caller looked it up: that is a 404, as if
        the delete had come first (the index checks under its lock).
        """
        try:
            moved = self.index.set_refs([str(ref)], image_id, tag_time)
        except KeyError:
            raise ImageNotFound(image_id) from None
        return moved.get(str(ref))

    # -- look-ups --------------------------------------------------------------------------

    def config_bytes(self, image: ImageRecord) -> bytes:
        try:
            return self.content.read(image.id)
        except FileNotFoundError:
            raise ImageNotFound(image.id) from None

    def get(self, image_id: str) -> ImageRecord | None:
        return self.index.images.get(image_id)

    def resolve(self, name: str) -> ImageRecord:
        """Find an image by ID, digest, reference or unique ID prefix (dockerd's order)."""
        img, _ = self.resolve_with_ref(name)
        return img

    def resolve_with_ref(self, name: str) -> tuple[ImageRecord, Reference | None]:
        """Like resolve; also the stored reference that matched, when the name was one."""
        images = self.index.images
        with self.index.lock:
            if reference.is_image_id(name):
                img = images.get("sha256:" + name)
                if img is None:
                    raise ImageNotFound("sha256:" + name)  # dockerd names the digest it looked for
                return img, None
            if name.startswith("sha256:") and len(name) == 71:
                img = images.get(name)
                if img is None:
                    raise ImageNotFound(name)
                return img, None
            try:
                ref = reference.parse(name)
            except InvalidArgument:
                img = self._by_prefix(name)
                if img is not None:
                    return img, None
                raise
            ref = ref.stored_form()
            image_id = self.index.refs.get(str(ref))
            if image_id is not None:
                return images[image_id], ref
            img = self._by_prefix(name)
            if img is not None:
                return img, None
            raise ImageNotFound(ref.familiar)

    def _by_prefix(self, name: str) -> ImageRecord | None:
        prefix = name[len("sha256:"):] if name.startswith("sha256:") else name
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return None
        found = [i for i in self.index.images if i[7:].startswith(prefix)]
        return self.index.images[found[0]] if len(found) == 1 else None

    def refs_of(self, image: ImageRecord) -> list[Reference]:
        return sorted((stored_ref(n) for n in image.refs), key=str)

    def repository_refs(self, repo: Reference) -> list[tuple[Reference, str]]:
        """Every (ref, image id) stored under the repository of `repo`."""
        prefix = repo.name
        with self.index.lock:
            return sorted(((stored_ref(n), i) for n, i in self.index.refs.items()
                           if n.startswith(prefix) and n[len(prefix)] in ":@"), key=lambda t: str(t[0]))

    def layer_records(self, image: ImageRecord) -> list[LayerRecord]:
        return [self.index.layers[d] for d in image.layers]

    # -- delete and prune ------------------------------------------------------------------

    def delete(self, name: str, force: bool = False) -> list[DeleteRecord]:
        if not name.strip():
            raise InvalidArgument("image name cannot be blank")
        with self.index.lock:
            img, ref = self.resolve_with_ref(name)
            records: list[DeleteRecord] = []
            if ref is not None and not self._is_id_prefix(img, name):
                self.index.remove_refs([str(ref)])
                shown = reference.parse(name) if ref.digest is not None else ref  # name:tag@digest as given
                records.append(DeleteRecord(untagged=shown.familiar))
                remaining = self.refs_of(img)
                if ref.digest is None and not any(r.tag and r.name == ref.name for r in remaining):
                    digests = [r for r in remaining if r.digest and r.name == ref.name]
                    self.index.remove_refs([str(r) for r in digests])
                    records += [DeleteRecord(untagged=r.familiar) for r in digests]
                if img.refs:
                    return records
            else:
                refs = self.refs_of(img)
                if not force and len(refs) > 0 and not _single_reference(refs):
                    raise Conflict(f"conflict: unable to delete {short_id(img.id)} (must be forced) "
                                   "- image is referenced in multiple repositories")
                self.index.remove_refs([str(r) for r in refs])
                records += [DeleteRecord(untagged=r.familiar) for r in refs]
            records += self._delete_image(img)
            return records

    @staticmethod
    def _is_id_prefix(img: ImageRecord, name: str) -> bool:
        return img.id.startswith(name) or img.id[7:].startswith(name)

    def _delete_image(self, img: ImageRecord) -> list[DeleteRecord]:
        """Remove an image with no refs left; report it and the layers (chain IDs) freed."""
        manifests = [m.digest for m in self.index.manifests.get(img.id, [])]
        self.index.remove_image(img.id)
        freed = [c for c in reversed(chain_ids(img.diff_ids)) if not self.index.chain_users[c]]
        self.collect_garbage([img.id, *img.layers, *manifests])
        return [DeleteRecord(deleted=img.id)] + [DeleteRecord(deleted=c) for c in dict.fromkeys(freed)]

    def freed_size(self, img: ImageRecord, chain_id: str) -> int:
        """Content size of the layer whose chain ID is `chain_id` in `img`."""
        for c, blob in zip(chain_ids(img.diff_ids), img.layers):
            if c == chain_id:
                layer = self.index.layers.get(blob)
                return layer.size if layer else 0
        return 0

    def prune(self, dangling_only: bool, keep: Callable[[ImageRecord], bool]) -> tuple[list[DeleteRecord], int]:
        """Delete unused images (untagged ones when dangling_only); `keep` spares some."""
        if not self.prune_lock.acquire(blocking=False):
            raise Conflict("a prune operation is already running")
        try:
            records: list[DeleteRecord] = []
            reclaimed = 0
            with self.index.lock:
                candidates = [i for i in list(self.index.images.values()) if not keep(i)]
                for img in candidates:
                    if img.id not in self.index.images:
                        continue
                    layers_before = {c: s for c, s in self._chain_sizes(img)}
                    refs = self.refs_of(img)
                    if refs:
                        if dangling_only and any(r.tag for r in refs):
                            continue
                        out: list[DeleteRecord] = []
                        for r in refs:
                            with contextlib.suppress(NotFound, Conflict):
                                out += self.delete(str(r))
                    else:
                        out = self.delete(img.id[7:])
                    records += out
                    reclaimed += sum(layers_before.get(r.deleted, 0) for r in out if r.deleted)
            return records, reclaimed
        finally:
            self.prune_lock.release()

    def _chain_sizes(self, img: ImageRecord) -> list[tuple[str, int]]:
        return [(c, self.index.layers[b].size if b in self.index.layers else 0)
                for c, b in zip(chain_ids(img.diff_ids), img.layers)]

    # -- garbage collection ----------------------------------------------------------------

    def collect_garbage(self, candidates: list[str] | None = None) -> None:
        """Sweep blobs and layer rows no image uses and no lease holds.

        With candidates, only those are considered (after a delete); without, every blob
        on disk is (at start, to clear what a killed daemon left behind).
        """
        with self.index.lock, self._lease_lock:
            pool = set(candidates) if candidates is not None else (
                self.content.all_digests() | set(self.index.layers))
            dead = [d for d in pool if not self.index.blob_users[d] and not self._leases[d]]
            dead_layers = [d for d in dead if d in self.index.layers]
            if dead_layers:
                self.index.remove_layers(dead_layers)
                # their gzip copies for pushes go with them (unless something else uses them)
                dead += [c for c in self.index.drop_push_copies(dead_layers)
                         if not self.index.blob_users[c] and not self._leases[c]]
            for digest in dead:
                self.content.delete(digest)


def _single_reference(refs: list[Reference]) -> bool:
    """dockerd's isSingleReference: at most one tag, and digests only in its repository."""
    if len(refs) <= 1:
        return len(refs) == 1
    single: Reference | None = None
    canonical: set[str] = set()
    for r in refs:
        if r.digest:
            canonical.add(r.name)
        elif single is None:
            single = r
        else:
            return False
    if single is None:
        single = refs[0]
    return len(canonical) == 1 and single.name in canonical
