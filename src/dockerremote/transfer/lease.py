"""store.lease() for coroutines: entered and left in a worker thread."""

from __future__ import annotations

import asyncio

from dockerremote.store.images import ImageStore


class AsyncLease:
    """Holds blobs against GC across awaits; leaving may collect garbage, so it runs in a thread
    and is shielded: a cancelled transfer still gives its lease back."""

    def __init__(self, store: ImageStore, digests: list[str]) -> None:
        self._cm = store.lease(digests)

    async def __aenter__(self) -> None:
        await asyncio.to_thread(self._cm.__enter__)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(asyncio.to_thread(self._cm.__exit__, None, None, None))
