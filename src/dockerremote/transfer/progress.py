"""Neutral progress events, dockerd's update cadence, and latest-value fan-out.

transfer/ never formats Docker JSON: pipelines emit `Event`s and the api layer turns
them into stream lines. A transfer shared by several clients publishes its state to a
`Broadcast`; each watcher gets the latest state whenever it looks, so a slow client
skips intermediate states instead of slowing the transfer (moby's transfer manager
does the same).
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable


class Kind(enum.Enum):
    PULLING = "pulling"          # id = tag or full reference, text = repository path
    EXISTS = "exists"            # a layer already in the store
    QUEUED = "queued"            # a layer that will be fetched
    WAITING = "waiting"          # ... but every download slot is busy
    DOWNLOADING = "downloading"  # current / total bytes of the blob
    RETRYING = "retrying"        # current = seconds before the next attempt
    VERIFYING = "verifying"
    DOWNLOADED = "downloaded"
    EXTRACTING = "extracting"    # current / total bytes
    LAYER_DONE = "layer_done"
    DIGEST = "digest"            # text = manifest (or list) digest
    STATUS = "status"            # text = familiar ref, current = 1 if something changed
    WARNING = "warning"          # text
    # push (transfer/push.py); WAITING and RETRYING are shared with pulls
    REFERS = "refers"            # text = the repository's full name
    PREPARING = "preparing"      # a layer the push will take care of
    LAYER_EXISTS = "layer_exists"  # the registry has it already
    MOUNTED = "mounted"          # text = the repository (path) it was mounted from
    PUSHING = "pushing"          # current / total bytes (of the layer tar, as dockerd counts)
    PUSHED = "pushed"
    PUSH_RESULT = "push_result"  # text = tag, id = manifest digest, current = manifest size


@dataclass(frozen=True)
class Event:
    kind: Kind
    id: str = ""
    current: int = 0
    total: int = 0
    text: str = ""


Emit = Callable[[Event], None]


class RateLimiter:
    """At most one event per `interval` seconds, burst 1 (Go's rate.NewLimiter(Every(d), 1))."""

    def __init__(self, interval: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._next = float("-inf")

    def allow(self) -> bool:
        now = self._clock()
        if now >= self._next:
            self._next = now + self._interval
            return True
        return False


class ByteMeter:
    """dockerd's progress reader cadence: publish after more than min(512 KiB, 1% of the
    total) new bytes, at most every 100 ms, and always when the count reaches the total."""

    def __init__(self, id_: str, kind: Kind, total: int, emit: Emit,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._id, self._kind, self._total, self._emit = id_, kind, total, emit
        self._step = min(512 * 1024, int(0.01 * total)) if total > 0 else 512 * 1024
        self._last = 0
        self._sent = -1
        self._limiter = RateLimiter(clock=clock)
        self.current = 0

    def update(self, current: int) -> None:
        self.current = current
        if current - self._last > self._step:
            if current == self._total or self._limiter.allow():
                self._send()
            self._last = current

    def finish(self) -> None:
        """The final count, always sent (unless it was the last one sent)."""
        if self._sent != self.current:
            self._send()

    def _send(self) -> None:
        self._sent = self.current
        self._emit(Event(self._kind, self._id, self.current, self._total))


class Broadcast:
    """The latest state of one transfer, watched by any number of clients (event loop only)."""

    def __init__(self) -> None:
        self._latest: Event | None = None
        self._seq = 0
        self._closed = False
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def latest(self) -> Event | None:
        return self._latest

    def publish(self, event: Event) -> None:
        self._latest = event
        self._seq += 1
        self._wake()

    def close(self) -> None:
        """No more states: watchers end after the latest one."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def watch(self) -> AsyncIterator[Event]:
        """Yield the latest state each time it changed since the last look, until closed."""
        seen = 0
        while True:
            if self._seq > seen and self._latest is not None:
                seen = self._seq
                yield self._latest
                continue
            if self._closed:
                return
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            await fut
