"""The staged layer ingest used by pull: same results as feed(), errors, back-pressure, abandon."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from dockerremote.errors import DigestMismatch
from dockerremote.store.content import ContentStore
from dockerremote.transfer.ingest import LayerIngest, StageFeed
from tests.support.seed import compress, make_layer, sha256


def feed_all(feed: StageFeed, data: bytes, size: int = 64 << 10) -> None:
    for i in range(0, len(data), size):
        feed.feed(data[i:i + size])
    feed.close()


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_stages_give_the_same_record_as_feed(tmp_path: Path, compression: str, split: bool) -> None:
    tar = make_layer(5, 300 << 10)
    blob = compress(tar, compression)
    a, b = ContentStore(tmp_path / "a"), ContentStore(tmp_path / "b")
    plain = LayerIngest(a)
    for i in range(0, len(blob), 50_000):
        plain.feed(blob[i:i + 50_000])
    expected = plain.finish(sha256(blob), sha256(tar))

    staged = LayerIngest(b, True, sha256(blob))
    feed = StageFeed(staged.stages(split))
    feed_all(feed, blob)
    got = staged.finish(sha256(blob), sha256(tar))
    assert feed.total == len(blob) and got == expected
    assert (b.path(sha256(blob))).read_bytes() == blob


def test_corrupt_bytes_are_a_digest_mismatch_not_a_decompress_error(tmp_path: Path) -> None:
    tar = make_layer(6, 100 << 10)
    blob = bytearray(compress(tar, "gzip"))
    good = sha256(bytes(blob))
    blob[200] ^= 0xFF
    store = ContentStore(tmp_path)
    ingest = LayerIngest(store, True, good)
    feed_all(StageFeed(ingest.stages()), bytes(blob))
    with pytest.raises(DigestMismatch):
        ingest.finish(good, sha256(tar))
    assert not store.exists(good) and not any(store.ingest_dir.iterdir())


def test_pipeline_order_and_first_error() -> None:
    """The first stage runs on the feeding thread, the next in its own; the first error stops
    the feeder (at a later feed, or at close) and nothing after it is processed."""
    seen: list[int] = []
    feeder = threading.get_ident()
    first_on: set[int] = set()

    def double(pieces: list[bytes], fwd: Any) -> None:
        first_on.add(threading.get_ident())
        fwd([x * 2 for x in pieces])

    def record(pieces: list[bytes], fwd: Any) -> None:
        for x in pieces:
            if x == b"\x05\x05":
                raise ValueError("five")
            seen.append(x[0])

    feed = StageFeed([double, record])
    with pytest.raises(ValueError, match="five"):
        for i in range(10):
            feed.feed(bytes([i]))
        feed.close()
    feed.close_quietly()
    assert seen == [0, 1, 2, 3, 4]
    assert first_on == {feeder}


def test_a_busy_stage_holds_the_feeder_back() -> None:
    """Back-pressure: while the second stage is busy, feed() blocks after one queued chunk."""
    gate = threading.Semaphore(0)
    taken: list[int] = []
    fed = 0

    def store(pieces: list[bytes], fwd: Any) -> None:
        fwd(pieces)

    def slow(pieces: list[bytes], fwd: Any) -> None:
        assert gate.acquire(timeout=10)
        taken.append(sum(map(len, pieces)))

    feed = StageFeed([store, slow])

    def produce() -> None:
        nonlocal fed
        for _ in range(40):
            feed.feed(b"x" * 100)
            fed += 1

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(0.3)  # time for it to run into the full queue (the assertion below holds anyway)
    held_back = fed
    assert producer.is_alive()  # blocked: the stage took one, the queue holds one
    for _ in range(40):
        gate.release()
    producer.join(10)
    feed.close()
    assert held_back <= 3, held_back
    assert sum(taken) == 4000


def test_abandoned_feed_drops_what_is_queued_and_waits_for_its_stage() -> None:
    """A fetch that failed abandons the feed: close_quietly() returns only once the stage at
    work is done, and what was still queued is dropped, not processed."""
    release = threading.Event()
    started, returned = threading.Event(), threading.Event()
    calls: list[int] = []

    def store(pieces: list[bytes], fwd: Any) -> None:
        fwd(pieces)

    def slow(pieces: list[bytes], fwd: Any) -> None:
        calls.append(len(pieces))
        started.set()
        release.wait(10)
        returned.set()

    feed = StageFeed([store, slow])
    feed.feed(b"a")
    assert started.wait(10)
    feed.feed(b"b")  # queued behind the busy stage
    feed.abandon()
    threading.Timer(0.05, release.set).start()  # the stage ends on its own time
    feed.close_quietly()
    assert returned.is_set()
    assert calls == [1]  # the queued chunk was dropped
