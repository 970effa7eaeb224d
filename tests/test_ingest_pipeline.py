"""The staged layer ingest used by pull: same results as feed(), errors and cancellation handled."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import AsyncIterator

import pytest

from dockerremote.errors import DigestMismatch
from dockerremote.store.content import ContentStore
from dockerremote.transfer.ingest import LayerIngest, pump_stages
from tests.support.seed import compress, make_layer, sha256


async def chunks(data: bytes, size: int = 64 << 10) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]
        await asyncio.sleep(0)


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
    total = asyncio.run(pump_stages(chunks(blob), staged.stages(split)))
    got = staged.finish(sha256(blob), sha256(tar))
    assert total == len(blob) and got == expected
    assert (b.path(sha256(blob))).read_bytes() == blob


def test_corrupt_bytes_are_a_digest_mismatch_not_a_decompress_error(tmp_path: Path) -> None:
    tar = make_layer(6, 100 << 10)
    blob = bytearray(compress(tar, "gzip"))
    good = sha256(bytes(blob))
    blob[200] ^= 0xFF
    store = ContentStore(tmp_path)
    ingest = LayerIngest(store, True, good)
    asyncio.run(pump_stages(chunks(bytes(blob)), ingest.stages()))
    with pytest.raises(DigestMismatch):
        ingest.finish(good, sha256(tar))
    assert not store.exists(good) and not any(store.ingest_dir.iterdir())


def test_pipeline_order_and_first_error() -> None:
    seen: list[int] = []

    def double(pieces: list[bytes], fwd) -> None:  # type: ignore[no-untyped-def]
        fwd([x * 2 for x in pieces])

    def record(pieces: list[bytes], fwd) -> None:  # type: ignore[no-untyped-def]
        for x in pieces:
            if x == b"\x05\x05":
                raise ValueError("five")
            seen.append(x[0])

    async def ten() -> AsyncIterator[bytes]:
        for i in range(10):
            yield bytes([i])

    with pytest.raises(ValueError, match="five"):
        asyncio.run(pump_stages(ten(), [double, record], batch=1))  # batch=1: a hand-off per byte
    assert seen == [0, 1, 2, 3, 4]


def test_a_busy_stage_holds_the_source_back() -> None:
    """Back-pressure: while the first stage is busy, at most `batch` bytes wait before it."""
    gate = threading.Semaphore(0)
    taken: list[int] = []

    def stage(pieces: list[bytes], fwd) -> None:  # type: ignore[no-untyped-def]
        gate.acquire(timeout=10)
        taken.append(sum(map(len, pieces)))

    async def main() -> int:
        read = 0

        async def source() -> AsyncIterator[bytes]:
            nonlocal read
            for _ in range(40):
                read += 1
                yield b"x" * 100

        task = asyncio.create_task(pump_stages(source(), [stage], batch=300))
        for _ in range(50):
            await asyncio.sleep(0)
        held_back = read  # the stage finished nothing yet: one chunk in it, a batch queued, one gathering
        for _ in range(40):
            gate.release()
        await task
        return held_back

    held_back = asyncio.run(main())
    assert held_back <= 1 + 3 + 3 + 1, held_back  # of 40: bounded by the batch, not the source
    assert sum(taken) == 4000


def test_cancelled_pump_waits_for_its_stages() -> None:
    """A cancelled pump returns only once its stages are done: no thread goes on working
    for a transfer that is gone, and what was still queued is dropped, not processed."""
    release = threading.Event()
    calls: list[int] = []
    started, returned = threading.Event(), threading.Event()

    def slow(pieces: list[bytes], fwd) -> None:  # type: ignore[no-untyped-def]
        calls.append(len(pieces))
        started.set()
        release.wait(10)
        returned.set()

    async def main() -> None:
        async def endless() -> AsyncIterator[bytes]:
            while True:
                yield b"x" * 1000
                await asyncio.sleep(0)

        task = asyncio.create_task(pump_stages(endless(), [slow, slow]))
        assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        task.cancel()
        asyncio.get_running_loop().call_later(0.05, release.set)  # the stage ends on its own time
        with pytest.raises(asyncio.CancelledError):
            await task
        assert returned.is_set()  # the pump waited for the stage it had started

    asyncio.run(main())
    assert len(calls) <= 2  # the chunk being worked on (and the next stage's); the queue was dropped
