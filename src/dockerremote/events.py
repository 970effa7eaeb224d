"""The daemon's event bus: what happened to images, kept briefly and fanned out to watchers.

Neutral data only; the api layer renders dockerd's JSON. Like dockerd, the last 256 events
are kept for `since` replays.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from dataclasses import dataclass, field

HISTORY = 256


@dataclass(frozen=True)
class Event:
    type: str      # "image"
    action: str    # pull, push, tag, untag, delete, import, load, save
    id: str        # the actor ID: an image ID, or the reference for pull/push
    attributes: dict[str, str] = field(default_factory=dict)
    time_nano: int = field(default_factory=time.time_ns)


class EventBus:
    """Thread-safe publish; asyncio subscribers get every event published after they joined."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: collections.deque[Event] = collections.deque(maxlen=HISTORY)
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]] = set()

    def publish(self, event: Event) -> None:
        with self._lock:
            self._history.append(event)
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            loop.call_soon_threadsafe(queue.put_nowait, event)

    def image(self, action: str, actor_id: str, name: str, labels: dict[str, str] | None = None) -> None:
        attributes = dict(labels or {})
        attributes["name"] = name
        self.publish(Event("image", action, actor_id, attributes))

    def subscribe(self) -> tuple[list[Event], asyncio.Queue[Event], object]:
        """(past events, queue of new ones, token for unsubscribe) taken atomically."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        token = (asyncio.get_running_loop(), queue)
        with self._lock:
            past = list(self._history)
            self._subscribers.add(token)
        return past, queue, token

    def unsubscribe(self, token: object) -> None:
        with self._lock:
            self._subscribers.discard(token)  # type: ignore[arg-type]
