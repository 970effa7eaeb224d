"""Single-flight transfers keyed by blob digest, under one daemon-wide concurrency limit.

Two pulls that need the same blob share one download: the second joins the first and
watches its progress. The download runs in its own task, owned by the scheduler, not by
any client: a client that hangs up only drops its handle, and the download is cancelled
only when nobody is left waiting for it. A finished download stays joinable while some
handle still holds it (its pull has not committed yet), so a pull arriving in between
reuses the result instead of fetching again; a failed one is forgotten at once, so the
next join retries.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import AsyncIterator, Awaitable, Callable, Generic, TypeVar

from dockerremote.transfer.progress import Broadcast, Event, Kind

T = TypeVar("T")
Start = Callable[[Callable[[Event], None]], Awaitable[T]]

# The slot of the transfer running in the current task (set by Scheduler._run).
_slot: contextvars.ContextVar["_Slot | None"] = contextvars.ContextVar("transfer_slot", default=None)


class _Slot:
    """One of the scheduler's `limit` places, given back once (early, or when the transfer ends)."""

    def __init__(self, sem: asyncio.Semaphore) -> None:
        self._sem = sem
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._sem.release()


def release_slot() -> None:
    """Called from inside a transfer whose CPU-heavy part is over: the next queued transfer
    starts while this one waits on the disk (fsync, rename, commit)."""
    slot = _slot.get()
    if slot is not None:
        slot.release()


class _Transfer(Generic[T]):
    def __init__(self, key: str) -> None:
        self.key = key
        self.broadcast = Broadcast()
        self.holders = 0
        self.task: asyncio.Task[T] | None = None


class Handle(Generic[T]):
    """One client's hold on a shared transfer. Release it exactly once (use `async with`)."""

    def __init__(self, scheduler: "Scheduler[T]", transfer: _Transfer[T]) -> None:
        self._scheduler = scheduler
        self._transfer = transfer
        self._released = False

    @property
    def key(self) -> str:
        return self._transfer.key

    def watch(self) -> AsyncIterator[Event]:
        """The transfer's states, latest first; ends when the transfer ends."""
        return self._transfer.broadcast.watch()

    async def result(self) -> T:
        """Wait for the transfer; being cancelled here never cancels the transfer itself."""
        assert self._transfer.task is not None
        return await asyncio.shield(self._transfer.task)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._scheduler._release(self._transfer)

    async def aclose(self) -> None:
        """Release; if that cancelled the transfer (nobody else waits), wait until it stopped,
        so whatever it was writing is cleaned up before the caller reports anything."""
        task = self._transfer.task
        was_running = task is not None and not task.done()
        self.release()
        if was_running and task is not None and task.cancelling():
            await asyncio.wait([task])

    async def __aenter__(self) -> "Handle[T]":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Scheduler(Generic[T]):
    """Runs at most `limit` transfers at once; a queued one reports Kind.WAITING."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._active: dict[str, _Transfer[T]] = {}
        self.started = 0  # transfers actually started (for tests and stats)

    def join(self, key: str, start: Start[T], id_: str = "") -> Handle[T]:
        """Hold the transfer for `key`, starting it with `start(publish)` if none is live."""
        transfer = self._active.get(key)
        if transfer is None:
            transfer = _Transfer(key)
            self._active[key] = transfer
            transfer.task = asyncio.get_running_loop().create_task(self._run(transfer, start, id_))
            transfer.task.add_done_callback(lambda t: self._done(transfer, t))
        transfer.holders += 1
        return Handle(self, transfer)

    def active(self, key: str) -> bool:
        return key in self._active

    async def _run(self, transfer: _Transfer[T], start: Start[T], id_: str) -> T:
        try:
            if self._slots.locked():
                transfer.broadcast.publish(Event(Kind.WAITING, id_))
            await self._slots.acquire()
            slot = _Slot(self._slots)
            _slot.set(slot)  # this task's own context: only this transfer sees it
            try:
                self.started += 1
                return await start(transfer.broadcast.publish)
            finally:
                slot.release()
        finally:
            transfer.broadcast.close()

    def _done(self, transfer: _Transfer[T], task: asyncio.Task[T]) -> None:
        if task.cancelled() or task.exception() is not None:  # retrieving it also silences asyncio
            self._forget(transfer)
        elif transfer.holders == 0:
            self._forget(transfer)

    def _release(self, transfer: _Transfer[T]) -> None:
        transfer.holders -= 1
        if transfer.holders > 0:
            return
        assert transfer.task is not None
        if not transfer.task.done():
            transfer.task.cancel()  # nobody waits for it any more
        self._forget(transfer)

    def _forget(self, transfer: _Transfer[T]) -> None:
        if self._active.get(transfer.key) is transfer:
            del self._active[transfer.key]
