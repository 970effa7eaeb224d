"""Import: a rootfs archive (request body or URL) becomes a one-layer image."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from dockerremote import ENGINE_VERSION
from dockerremote.oci.config import container_config, format_time
from dockerremote.reference import Reference
from dockerremote.store.images import ImageStore
from dockerremote.store.index import ImageRecord
from dockerremote.transfer.changes import empty_container_config
from dockerremote.transfer.ingest import LayerIngest, pump


@dataclass
class ImportRequest:
    config: dict[str, Any]  # the container config, changes applied
    message: str
    architecture: str
    os: str = "linux"
    ref: Reference | None = None


def import_config_bytes(req: ImportRequest, diff_id: str, created: str) -> bytes:
    """The config dockerd 20.10 writes for an import, byte for byte in shape."""
    cfg: dict[str, Any] = {"architecture": req.architecture}
    if req.message:
        cfg["comment"] = req.message
    cfg["config"] = container_config(req.config)
    cfg["container_config"] = container_config(empty_container_config())
    cfg["created"] = created
    cfg["docker_version"] = ENGINE_VERSION
    history: dict[str, Any] = {"created": created}
    if req.message:
        history["comment"] = req.message
    cfg["history"] = [history]
    cfg["os"] = req.os
    cfg["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
    return json.dumps(cfg, separators=(",", ":"), ensure_ascii=False).encode()


async def import_image(store: ImageStore, req: ImportRequest, source: AsyncIterator[bytes],
                       on_progress: Callable[[int], None] | None = None) -> ImageRecord:
    ingest = LayerIngest(store.content)
    try:
        await pump(source, ingest.feed, on_progress)
        layer = await asyncio.to_thread(ingest.finish)
    except BaseException:
        ingest.abort()
        raise
    ns = time.time_ns()
    created = format_time(ns // 10**9, ns % 10**9)
    config = import_config_bytes(req, layer.diff_id, created)

    def commit() -> ImageRecord:
        with store.lease([layer.blob_digest]):
            refs = [req.ref] if req.ref is not None else []
            image, _ = store.commit_image(config, [layer], refs=refs, tag_time=created if refs else None)
            return image

    return await asyncio.to_thread(commit)
