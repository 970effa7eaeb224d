"""Import: a rootfs archive (request body or URL) becomes a one-layer image."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from dockerremote import ENGINE_VERSION
from dockerremote.errors import InvalidArgument
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
    variant: str = ""  # (Moby 23+ imports take the platform's arch and variant)


_GO_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _go_string(s: str) -> str:
    """A JSON string as Go's encoding/json writes it (before Go 1.22): HTML characters and the
    JS line separators escaped, other control characters as \\u00XX, invalid text as U+FFFD."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in _GO_SHORT:
            out.append(_GO_SHORT[ch])
        elif o < 0x20 or ch in "<>&\u2028\u2029":
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(obj: Any) -> str:
    """json.Marshal's bytes for plain values: compact, HTML-escaped, map keys sorted.

    Dicts are written in their own order; callers sort the ones that are Go maps."""
    if isinstance(obj, dict):
        return "{" + ",".join(f"{_go_string(k)}:{go_json(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(go_json(v) for v in obj) + "]"
    if isinstance(obj, str):
        return _go_string(obj)
    return json.dumps(obj)


_GO_MAPS = ("ExposedPorts", "Volumes", "Labels")  # map fields of container.Config


def _go_container_config(raw: dict[str, Any]) -> dict[str, Any]:
    cfg = container_config(raw)
    for key in _GO_MAPS:
        if isinstance(cfg.get(key), dict):
            cfg[key] = dict(sorted(cfg[key].items()))
    return cfg


def import_config_bytes(req: ImportRequest, diff_id: str, created: str) -> bytes:
    """The config dockerd 20.10 writes for an import, byte for byte in shape."""
    cfg: dict[str, Any] = {"architecture": req.architecture}
    if req.message:
        cfg["comment"] = req.message
    cfg["config"] = _go_container_config(req.config)
    cfg["container_config"] = container_config(empty_container_config())
    cfg["created"] = created
    cfg["docker_version"] = ENGINE_VERSION
    history: dict[str, Any] = {"created": created}
    if req.message:
        history["comment"] = req.message
    cfg["history"] = [history]
    cfg["os"] = req.os
    cfg["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
    if req.variant:
        cfg["variant"] = req.variant
    return go_json(cfg).encode()


_APPLY_LAYER = "ApplyLayer exit status 1 stdout:  stderr: "
_DATA_PREFIX = "invalid layer data: "


def _layer_error(exc: InvalidArgument) -> InvalidArgument:
    """An unreadable archive in dockerd's words: its tar extractor's error, behind the prefix
    its ApplyLayer helper adds. Our own refusals (paths leaving the root) keep their text."""
    text = exc.message
    if "outside of the layer root" in text or text.startswith("invalid hardlink"):
        return exc
    if text.startswith(_DATA_PREFIX):
        text = text[len(_DATA_PREFIX):]
        if text.endswith("unexpected EOF") or "end of stream" in text.lower():
            text = "unexpected EOF"
        elif "incorrect data check" in text:
            text = "gzip: invalid checksum"
    return InvalidArgument(_APPLY_LAYER + text)


async def import_image(store: ImageStore, req: ImportRequest, source: AsyncIterator[bytes],
                       on_progress: Callable[[int], None] | None = None) -> ImageRecord:
    ingest = LayerIngest(store.content)
    try:
        await pump(source, ingest.feed, on_progress)
        layer = await asyncio.to_thread(ingest.finish)
    except InvalidArgument as exc:
        ingest.abort()
        raise _layer_error(exc) from exc
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
