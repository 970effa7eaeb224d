"""The SQLite index of images, layers and references, mirrored in memory.

SQLite is the durable truth; the in-memory maps are a copy of what was committed, updated
only after each transaction commits, so a listing never touches the disk. All writes go
through one connection under one lock. A daemon killed mid-write loses at most the
transaction in flight: SQLite's journal makes each change all or nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dockerremote.oci.digest import chain_ids

SCHEMA = """
CREATE TABLE IF NOT EXISTS layers (
    blob_digest TEXT PRIMARY KEY,
    diff_id     TEXT NOT NULL,
    compression TEXT NOT NULL,
    size        INTEGER NOT NULL,   -- content size as dockerd reports it
    blob_size   INTEGER NOT NULL,
    tar_size    INTEGER NOT NULL    -- uncompressed tar bytes (what docker save writes)
);
CREATE TABLE IF NOT EXISTS images (
    id            TEXT PRIMARY KEY,  -- sha256 of the config blob
    created       TEXT NOT NULL,
    created_unix  INTEGER NOT NULL,
    labels        TEXT,
    layers        TEXT NOT NULL,     -- JSON list of layer blob digests, bottom first
    diff_ids      TEXT NOT NULL,
    size          INTEGER NOT NULL,
    os            TEXT NOT NULL,
    architecture  TEXT NOT NULL,
    last_tag_time TEXT,
    seq           INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refs (
    name     TEXT PRIMARY KEY,       -- fully qualified: docker.io/library/x:1 or ...@sha256:...
    image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE TABLE IF NOT EXISTS image_manifests (  -- manifest and index blobs an image was pulled as
    image_id   TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest     TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size       INTEGER NOT NULL,
    role       TEXT NOT NULL,        -- 'target': what the ref resolved to (index or manifest);
                                     -- 'platform': the image's manifest inside that index
    seq        INTEGER NOT NULL,     -- the latest target is the image's Descriptor
    PRIMARY KEY (image_id, digest)
);
CREATE TABLE IF NOT EXISTS push_copies (   -- a gzip copy of a layer stored in another form
    layer_blob TEXT PRIMARY KEY,           -- (import, load): made once, for pushes; layers.blob_digest
    digest     TEXT NOT NULL,              -- the gzip blob, kept while its layer is
    size       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blob_sources (  -- registry repositories a blob is known to be in
    digest     TEXT NOT NULL,              -- (pulled from, pushed to): candidates for a push's
    registry   TEXT NOT NULL,              -- cross-repository mount
    repository TEXT NOT NULL,
    seq        INTEGER NOT NULL,           -- the latest first
    PRIMARY KEY (digest, registry, repository)
);
"""


@dataclass(frozen=True)
class LayerRecord:
    blob_digest: str
    diff_id: str
    compression: str
    size: int
    blob_size: int
    tar_size: int  # uncompressed bytes of the layer tar


@dataclass(frozen=True)
class ManifestRecord:
    """A manifest or index blob (in the content store) that describes an image."""

    digest: str
    media_type: str
    size: int
    role: str  # "target" or "platform" (see the image_manifests table)
    seq: int = 0


@dataclass(frozen=True)
class PushCopy:
    """The gzip blob a push sends for a layer stored uncompressed or in another compression."""

    layer_blob: str
    digest: str
    size: int


@dataclass
class ImageRecord:
    id: str
    created: str
    created_unix: int
    labels: dict[str, str] | None
    layers: list[str]
    diff_ids: list[str]
    size: int
    os: str
    architecture: str
    last_tag_time: str | None = None
    seq: int = 0
    refs: set[str] = field(default_factory=set)  # derived from the refs table
    # Views derived from this record (e.g. its JSON in a listing), dropped whenever it changes.
    cache: dict = field(default_factory=dict, compare=False, repr=False)


class Index:
    def __init__(self, path: Path) -> None:
        self.lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self.images: dict[str, ImageRecord] = {}
        self.layers: dict[str, LayerRecord] = {}
        self.refs: dict[str, str] = {}
        # How many images use each blob and each layer chain: derived, kept for O(1) GC checks.
        self.blob_users: Counter[str] = Counter()
        self.chain_users: Counter[str] = Counter()
        # image id → its manifest/index rows (by seq); digest → the images they describe
        self.manifests: dict[str, list[ManifestRecord]] = {}
        self.manifest_images: dict[str, set[str]] = {}
        self._seq = 0
        self._manifest_seq = 0
        # layer blob → its gzip copy for pushes (each copy counts as a user of its blob)
        self.push_copies: dict[str, PushCopy] = {}
        self._source_seq = 0
        self._load()

    def _count(self, image: ImageRecord, delta: int) -> None:
        self.blob_users.update({d: delta for d in [image.id, *image.layers]})
        self.chain_users.update({c: delta for c in chain_ids(image.diff_ids)})
        for counter in (self.blob_users, self.chain_users):
            for k in [k for k in [image.id, *image.layers, *chain_ids(image.diff_ids)] if counter.get(k) == 0]:
                del counter[k]

    def _load(self) -> None:
        for row in self._db.execute("SELECT * FROM layers"):
            self.layers[row[0]] = LayerRecord(*row)
        for row in self._db.execute(
                "SELECT id, created, created_unix, labels, layers, diff_ids, size, os, "
                "architecture, last_tag_time, seq FROM images"):
            img = ImageRecord(row[0], row[1], row[2], json.loads(row[3]) if row[3] is not None else None,
                              json.loads(row[4]), json.loads(row[5]), row[6], row[7], row[8],
                              row[9], row[10])
            self.images[img.id] = img
            self._count(img, 1)
            self._seq = max(self._seq, img.seq)
        for name, image_id in self._db.execute("SELECT name, image_id FROM refs"):
            self.refs[name] = image_id
            self.images[image_id].refs.add(name)
        for row in self._db.execute("SELECT image_id, digest, media_type, size, role, seq "
                                    "FROM image_manifests ORDER BY seq"):
            self._remember_manifest(row[0], ManifestRecord(*row[1:]))
            self._manifest_seq = max(self._manifest_seq, row[5])
        for row in self._db.execute("SELECT layer_blob, digest, size FROM push_copies"):
            self.push_copies[row[0]] = PushCopy(*row)
            self.blob_users[row[1]] += 1
        self._source_seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM blob_sources").fetchone()[0]

    def close(self) -> None:
        with self.lock:
            self._db.close()

    # -- writes: each one transaction, memory updated after COMMIT -------------------------

    def add_image(self, image: ImageRecord, layers: list[LayerRecord], refs: list[str] | None = None,
                  tag_time: str | None = None) -> tuple[ImageRecord, dict[str, str]]:
        """Insert an image (unless present), its layer rows and refs in ONE transaction.

        Returns the stored image and {ref: previous image id} for refs that moved.
        A crash cannot leave an image without the tags it was committed with.
        """
        refs = refs or []
        with self.lock:
            existing = self.images.get(image.id)
            moved = {n: self.refs[n] for n in refs if n in self.refs and self.refs[n] != image.id}
            new_layers = [lay for lay in layers if lay.blob_digest not in self.layers]
            if existing is None:
                self._seq += 1
                image.seq = self._seq
            with self._tx():
                if existing is None:
                    self._db.executemany("INSERT INTO layers VALUES (?,?,?,?,?,?)",
                                         [(lay.blob_digest, lay.diff_id, lay.compression, lay.size,
                                           lay.blob_size, lay.tar_size) for lay in new_layers])
                    self._db.execute(
                        "INSERT INTO images VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (image.id, image.created, image.created_unix,
                         json.dumps(image.labels) if image.labels is not None else None,
                         json.dumps(image.layers), json.dumps(image.diff_ids), image.size, image.os,
                         image.architecture, tag_time if refs else None, image.seq))
                self._write_refs(refs, image.id, tag_time)
            if existing is None:
                for lay in new_layers:
                    self.layers[lay.blob_digest] = lay
                image.refs = set()
                self.images[image.id] = image
                self._count(image, 1)
            stored = self.images[image.id]
            self._apply_refs(refs, image.id, tag_time)
            return stored, moved

    def set_refs(self, names: list[str], image_id: str, tag_time: str | None = None) -> dict[str, str]:
        """Point each ref at image_id; return {name: previous image id} for moved refs."""
        with self.lock:
            if image_id not in self.images:
                raise KeyError(image_id)
            moved = {n: self.refs[n] for n in names if n in self.refs and self.refs[n] != image_id}
            with self._tx():
                self._write_refs(names, image_id, tag_time)
            self._apply_refs(names, image_id, tag_time)
            return moved

    def _write_refs(self, names: list[str], image_id: str, tag_time: str | None) -> None:
        self._db.executemany("INSERT OR REPLACE INTO refs VALUES (?,?)", [(n, image_id) for n in names])
        if tag_time is not None and names:
            self._db.execute("UPDATE images SET last_tag_time=? WHERE id=?", (tag_time, image_id))

    def _apply_refs(self, names: list[str], image_id: str, tag_time: str | None) -> None:
        for n in names:
            old = self.refs.get(n)
            if old is not None and old in self.images:
                self.images[old].refs.discard(n)
                self.images[old].cache.clear()
            self.refs[n] = image_id
            self.images[image_id].refs.add(n)
        self.images[image_id].cache.clear()
        if tag_time is not None and names:
            self.images[image_id].last_tag_time = tag_time

    def remove_refs(self, names: list[str]) -> None:
        with self.lock:
            with self._tx():
                self._db.executemany("DELETE FROM refs WHERE name=?", [(n,) for n in names])
            for n in names:
                image_id = self.refs.pop(n, None)
                if image_id in self.images:
                    self.images[image_id].refs.discard(n)
                    self.images[image_id].cache.clear()

    def remove_image(self, image_id: str) -> None:
        """Delete an image row and its refs (layers are collected separately)."""
        with self.lock:
            with self._tx():
                self._db.execute("DELETE FROM refs WHERE image_id=?", (image_id,))
                self._db.execute("DELETE FROM image_manifests WHERE image_id=?", (image_id,))
                self._db.execute("DELETE FROM images WHERE id=?", (image_id,))
            img = self.images.pop(image_id)
            self._count(img, -1)
            self._forget_manifests(image_id)
            for n in img.refs:
                self.refs.pop(n, None)

    # -- manifests and indexes an image was pulled as ---------------------------------------

    def add_manifests(self, image_id: str, rows: list[tuple[str, str, int, str]]) -> None:
        """Record (digest, media type, size, role) rows for a stored image, in one transaction.

        A row already present is renewed: its seq moves up, so the latest pull's target is
        the image's Descriptor. The blobs must be committed (and leased) by the caller."""
        with self.lock:
            if image_id not in self.images or not rows:
                return
            records = []
            for digest, media_type, size, role in rows:
                self._manifest_seq += 1
                records.append(ManifestRecord(digest, media_type, size, role, self._manifest_seq))
            with self._tx():
                self._db.executemany(
                    "INSERT OR REPLACE INTO image_manifests VALUES (?,?,?,?,?,?)",
                    [(image_id, r.digest, r.media_type, r.size, r.role, r.seq) for r in records])
            for r in records:
                self._remember_manifest(image_id, r)
            self.images[image_id].cache.clear()

    def _remember_manifest(self, image_id: str, record: ManifestRecord) -> None:
        rows = [r for r in self.manifests.get(image_id, []) if r.digest != record.digest]
        if len(rows) == len(self.manifests.get(image_id, [])):  # a new (image, digest) pair
            self.blob_users[record.digest] += 1
        rows.append(record)
        self.manifests[image_id] = rows
        self.manifest_images.setdefault(record.digest, set()).add(image_id)

    def _forget_manifests(self, image_id: str) -> None:
        for r in self.manifests.pop(image_id, []):
            self.blob_users[r.digest] -= 1
            if self.blob_users[r.digest] <= 0:
                del self.blob_users[r.digest]
            users = self.manifest_images.get(r.digest)
            if users is not None:
                users.discard(image_id)
                if not users:
                    del self.manifest_images[r.digest]

    def target_of(self, image_id: str) -> ManifestRecord | None:
        """The index or manifest the image was last pulled as (its Descriptor), if any."""
        rows = self.manifests.get(image_id)
        if not rows:
            return None
        targets = [r for r in rows if r.role == "target"]
        return max(targets, key=lambda r: r.seq) if targets else None

    def remove_layers(self, blob_digests: list[str]) -> None:
        with self.lock:
            with self._tx():
                self._db.executemany("DELETE FROM layers WHERE blob_digest=?",
                                     [(d,) for d in blob_digests])
            for d in blob_digests:
                self.layers.pop(d, None)

    # -- gzip copies of layers, for pushes -------------------------------------------------

    def add_push_copy(self, copy: PushCopy) -> None:
        """Remember a committed gzip blob as the push form of a layer (a user of that blob)."""
        with self.lock:
            if copy.layer_blob not in self.layers:
                return  # the layer went meanwhile: the blob stays unused and is collected
            old = self.push_copies.get(copy.layer_blob)
            with self._tx():
                self._db.execute("INSERT OR REPLACE INTO push_copies VALUES (?,?,?)",
                                 (copy.layer_blob, copy.digest, copy.size))
            self.push_copies[copy.layer_blob] = copy
            self.blob_users[copy.digest] += 1
            if old is not None:
                self._unpin(old.digest)

    def drop_push_copies(self, layer_blobs: list[str]) -> list[str]:
        """Forget the copies of layers being removed; the copy blobs no longer pinned by them."""
        with self.lock:
            gone = [self.push_copies[b] for b in layer_blobs if b in self.push_copies]
            if not gone:
                return []
            with self._tx():
                self._db.executemany("DELETE FROM push_copies WHERE layer_blob=?",
                                     [(c.layer_blob,) for c in gone])
            for c in gone:
                del self.push_copies[c.layer_blob]
                self._unpin(c.digest)
            return [c.digest for c in gone]

    def _unpin(self, digest: str) -> None:
        self.blob_users[digest] -= 1
        if self.blob_users[digest] <= 0:
            del self.blob_users[digest]

    # -- where blobs are known to be in registries -----------------------------------------

    def add_blob_sources(self, registry: str, repository: str, digests: list[str]) -> None:
        with self.lock:
            rows = []
            for d in dict.fromkeys(digests):
                self._source_seq += 1
                rows.append((d, registry, repository, self._source_seq))
            if rows:
                with self._tx():
                    self._db.executemany("INSERT OR REPLACE INTO blob_sources VALUES (?,?,?,?)", rows)

    def blob_sources(self, digest: str, registry: str) -> list[str]:
        """Repositories of `registry` known to hold the blob, the latest first."""
        with self.lock:
            return [r[0] for r in self._db.execute(
                "SELECT repository FROM blob_sources WHERE digest=? AND registry=? ORDER BY seq DESC",
                (digest, registry))]

    def _tx(self):  # type: ignore[no-untyped-def]
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
