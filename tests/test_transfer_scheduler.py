"""Progress cadence, latest-value fan-out and the single-flight scheduler (pure asyncio, no I/O)."""

from __future__ import annotations

import asyncio

import pytest

from dockerremote.transfer.progress import Broadcast, ByteMeter, Event, Kind
from dockerremote.transfer.scheduler import Scheduler


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_meter_cadence_is_dockerds() -> None:
    sent: list[int] = []
    clock = Clock()
    meter = ByteMeter("id", Kind.DOWNLOADING, 10_000, lambda e: sent.append(e.current), clock=clock)
    meter.update(100)          # exactly 1%: not more than the step
    meter.update(101)          # more than 1% since the start: sent
    clock.now = 0.05
    meter.update(300)          # enough bytes but within 100 ms of the last: dropped
    meter.update(350)          # fewer than 1% new since the dropped one: not even considered
    clock.now = 0.2
    meter.update(500)
    meter.update(10_000)       # completion: always, whatever the clock says
    meter.finish()             # already sent: not repeated
    assert sent == [101, 500, 10_000]


def test_meter_step_is_at_most_512k_and_finish_sends_the_last_count() -> None:
    sent: list[int] = []
    clock = Clock()
    meter = ByteMeter("id", Kind.DOWNLOADING, 1 << 30, lambda e: sent.append(e.current), clock=clock)
    meter.update(512 * 1024)
    meter.update(512 * 1024 + 1)
    clock.now = 1
    meter.update(700_000)      # less than 512 KiB since the last
    meter.finish()
    assert sent == [512 * 1024 + 1, 700_000]


def test_broadcast_slow_watcher_sees_latest_only() -> None:
    async def main() -> list[list[Event]]:
        b = Broadcast()
        fast: list[Event] = []
        slow: list[Event] = []
        gate = asyncio.Event()

        async def watch_fast() -> None:
            async for e in b.watch():
                fast.append(e)

        async def watch_slow() -> None:
            async for e in b.watch():
                slow.append(e)
                await gate.wait()

        tasks = [asyncio.create_task(watch_fast()), asyncio.create_task(watch_slow())]
        for i in range(1, 6):
            b.publish(Event(Kind.DOWNLOADING, "x", i, 5))
            await asyncio.sleep(0)  # let the fast watcher run between publications
        gate.set()
        b.publish(Event(Kind.DOWNLOADED, "x"))
        b.close()
        await asyncio.gather(*tasks)
        return [fast, slow]

    fast, slow = asyncio.run(main())
    assert [e.current for e in fast[:5]] == [1, 2, 3, 4, 5] and fast[-1].kind is Kind.DOWNLOADED
    assert slow[0].current == 1 and slow[-1].kind is Kind.DOWNLOADED and len(slow) < len(fast)


def test_single_flight_and_a_leaving_client_does_not_cancel() -> None:
    async def main() -> tuple[int, str, list[Kind]]:
        sched: Scheduler[str] = Scheduler(3)
        release = asyncio.Event()
        starts = 0

        async def start(publish) -> str:  # type: ignore[no-untyped-def]
            nonlocal starts
            starts += 1
            publish(Event(Kind.DOWNLOADING, "a", 1, 2))
            await release.wait()
            publish(Event(Kind.DOWNLOADED, "a"))
            return "record"

        h1 = sched.join("sha256:a", start)
        h2 = sched.join("sha256:a", start)
        await asyncio.sleep(0)
        waiter = asyncio.create_task(h1.result())
        await asyncio.sleep(0)
        waiter.cancel()          # the first client hangs up
        h1.release()
        release.set()
        seen = [e.kind async for e in h2.watch()]
        result = await h2.result()
        h2.release()
        return starts, result, seen

    starts, result, seen = asyncio.run(main())
    assert starts == 1 and result == "record" and seen[-1] is Kind.DOWNLOADED


def test_last_holder_leaving_cancels_and_failures_are_retried() -> None:
    async def main() -> tuple[bool, int, str]:
        sched: Scheduler[str] = Scheduler(1)
        cancelled = asyncio.Event()
        attempts = 0

        async def hang(publish) -> str:  # type: ignore[no-untyped-def]
            try:
                await asyncio.Event().wait()
            finally:
                cancelled.set()
            return ""

        h = sched.join("k", hang)
        await asyncio.sleep(0)
        h.release()
        await asyncio.wait_for(cancelled.wait(), 5)

        async def flaky(publish) -> str:  # type: ignore[no-untyped-def]
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                raise OSError("boom")
            return "ok"

        h1 = sched.join("k", flaky)
        with pytest.raises(OSError):
            await h1.result()
        h2 = sched.join("k", flaky)   # the failure was forgotten: a new attempt
        result = await h2.result()
        h1.release()
        h2.release()
        return cancelled.is_set(), attempts, result

    cancelled, attempts, result = asyncio.run(main())
    assert cancelled and attempts == 2 and result == "ok"


def test_limit_and_waiting() -> None:
    async def main() -> tuple[int, list[Kind]]:
        sched: Scheduler[int] = Scheduler(2)
        running = 0
        peak = 0
        gate = asyncio.Event()

        async def work(publish) -> int:  # type: ignore[no-untyped-def]
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await gate.wait()
            running -= 1
            return 1

        handles = [sched.join(f"k{i}", work, f"id{i}") for i in range(4)]
        for _ in range(3):
            await asyncio.sleep(0)
        third = handles[2]
        first_state = [e.kind async for e in _first(third)]
        gate.set()
        await asyncio.gather(*(h.result() for h in handles))
        for h in handles:
            h.release()
        return peak, first_state

    peak, first_state = asyncio.run(main())
    assert peak == 2 and first_state == [Kind.WAITING]


async def _first(handle):  # type: ignore[no-untyped-def]
    async for e in handle.watch():
        yield e
        return


def test_finished_transfer_stays_joinable_while_held() -> None:
    async def main() -> int:
        sched: Scheduler[str] = Scheduler(3)
        starts = 0

        async def once(publish) -> str:  # type: ignore[no-untyped-def]
            nonlocal starts
            starts += 1
            return "r"

        h1 = sched.join("k", once)
        await h1.result()
        h2 = sched.join("k", once)      # h1 still holds it: reuse the result
        assert await h2.result() == "r"
        h1.release()
        h2.release()
        h3 = sched.join("k", once)      # nobody held it: a new transfer
        await h3.result()
        h3.release()
        return starts

    assert asyncio.run(main()) == 2


def test_aclose_waits_for_the_cancelled_transfer_to_clean_up() -> None:
    async def main() -> tuple[bool, bool]:
        sched: Scheduler[str] = Scheduler(1)
        cleaned = False
        started = asyncio.Event()

        async def work(publish) -> str:  # type: ignore[no-untyped-def]
            nonlocal cleaned
            started.set()
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.sleep(0)  # cleanup that takes a turn of the loop
                cleaned = True
            return ""

        a = sched.join("k", work)
        b = sched.join("k", work)
        await started.wait()
        await a.aclose()             # b still holds it: nothing cancelled, nothing awaited
        still_running = not cleaned
        await b.aclose()             # the last holder: cancelled, and cleaned up on return
        return still_running, cleaned

    assert asyncio.run(main()) == (True, True)
