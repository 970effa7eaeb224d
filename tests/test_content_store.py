"""The blob writer: background flushes while a blob streams in never publish or lose bytes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockerremote.errors import DigestMismatch
from dockerremote.store.content import ContentStore
from tests.support.seed import sha256


def test_flushed_while_written_then_committed_whole(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    data = os.urandom(3 << 20)
    w = store.writer()
    for i in range(0, len(data), 256 << 10):
        w.write(data[i:i + (256 << 10)])
        w.start_sync()  # most calls find a flush running and return at once
    assert w.commit(sha256(data)) == sha256(data)
    assert store.read(sha256(data)) == data
    assert not any(store.ingest_dir.iterdir())


def test_abort_during_a_flush_leaves_nothing(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    w = store.writer()
    w.write(os.urandom(1 << 20))
    w.start_sync()
    w.abort()
    assert not any(store.ingest_dir.iterdir()) and not store.all_digests()


def test_a_wrong_digest_after_flushes_publishes_nothing(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    w = store.writer()
    w.write(b"x" * (1 << 20))
    w.start_sync()
    with pytest.raises(DigestMismatch):
        w.commit(sha256(b"y"))
    assert not store.all_digests() and not any(store.ingest_dir.iterdir())


def test_a_failed_flush_fails_the_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An I/O error the background flush saw is reported once by the kernel: commit must
    raise it rather than publish a blob whose bytes may not be on disk."""
    import dockerremote.store.content as content

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(content.os, "fdatasync", failing)
    store = ContentStore(tmp_path)
    w = store.writer()
    w.write(b"z" * 100)
    w.start_sync()
    with pytest.raises(OSError, match="Input/output"):
        w.commit(sha256(b"z" * 100))
    assert not store.all_digests() and not any(store.ingest_dir.iterdir())


def test_a_writer_touches_the_disk_only_when_written(tmp_path: Path) -> None:
    """A pull makes its layer writers on the event loop: making one must not create its file."""
    store = ContentStore(tmp_path)
    w = store.writer()
    assert not any(store.ingest_dir.iterdir())
    w.abort()  # never written: nothing to remove either
    empty = store.writer()
    assert empty.commit(sha256(b"")) == sha256(b"")  # an empty blob is still a blob
    assert store.read(sha256(b"")) == b""
    w = store.writer()
    w.write(b"abc")
    assert [p.name for p in store.ingest_dir.iterdir()] == [w.path.name]
    w.abort()
    assert not any(store.ingest_dir.iterdir())
