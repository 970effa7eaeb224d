"""Docker's JSON shapes for images, per API version (switches from versions.SWITCHES).

Inspect re-marshals the stored config the way Go does: struct fields in declaration order,
unknown keys dropped, map keys sorted, empty omitempty fields left out.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any, Callable, Iterable

from dockerremote.api.jsonstream import dumps
from dockerremote.api.versions import ApiVersion
from dockerremote.errors import DockerRemoteError
from dockerremote.oci.config import container_config, format_time, normalize_time, parse_time
from dockerremote.oci.digest import chain_ids
from dockerremote.store.images import ImageStore, stored_ref
from dockerremote.store.index import ImageRecord

ZERO_TIME = "0001-01-01T00:00:00Z"
GO_ZERO_UNIX = -62135596800  # time.Time{}.Unix(): what dockerd reports for a missing `created`
_MAP_FIELDS = ("ExposedPorts", "Volumes", "Labels")
_HEALTH_FIELDS = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")


def now_rfc3339() -> str:
    ns = time.time_ns()
    return format_time(ns // 1_000_000_000, ns % 1_000_000_000)


@functools.lru_cache(maxsize=65536)
def _time_ns(created: str) -> int:
    if not created:
        return GO_ZERO_UNIX * 10**9
    try:
        secs, nanos = parse_time(created)
    except ValueError:
        return GO_ZERO_UNIX * 10**9
    return secs * 10**9 + nanos


def created_ns(image: ImageRecord) -> int:
    """The image's creation time in unix nanoseconds (before/since/until compare these)."""
    return _time_ns(image.created)


def created_unix(image: ImageRecord) -> int:
    return image.created_unix if image.created else GO_ZERO_UNIX


def sorted_images(images: Iterable[ImageRecord]) -> list[ImageRecord]:
    """Newest first by Created seconds, as dockerd sorts (its order within a second is
    arbitrary; ours is the order the images arrived in the store, newest first)."""
    return sorted(images, key=lambda i: (i.created_unix, i.seq), reverse=True)


@functools.lru_cache(maxsize=1 << 17)
def _familiar(name: str) -> tuple[str, str, bool]:
    """(familiar string, familiar name, is a digest ref) of a stored ref: computed once per name."""
    ref = stored_ref(name)
    return ref.familiar, ref.familiar_name, ref.digest is not None


def split_refs(store: ImageStore, image: ImageRecord,
               keep: Callable[[str, str], bool] | None = None) -> tuple[list[str], list[str]]:
    """(RepoTags, RepoDigests) as familiar strings sorted by the full name; `keep(familiar,
    familiar_name)` selects refs (the list's reference filter)."""
    tags: list[str] = []
    digests: list[str] = []
    for name in sorted(image.refs) if len(image.refs) > 1 else image.refs:
        familiar, familiar_name, is_digest = _familiar(name)
        if keep is not None and not keep(familiar, familiar_name):
            continue
        (digests if is_digest else tags).append(familiar)
    return tags, digests


def shared_sizes(store: ImageStore, image: ImageRecord) -> int:
    users = store.index.chain_users
    total = 0
    for c, blob in zip(chain_ids(image.diff_ids), image.layers):
        if users[c] > 1:
            layer = store.index.layers.get(blob)
            total += layer.size if layer else 0
    return total


def sorted_map(value: Any) -> Any:
    """A Go map marshals with its keys sorted (most stored configs already are: check first)."""
    if not isinstance(value, dict):
        return value
    prev = None
    for k in value:
        if prev is not None and k < prev:
            return dict(sorted(value.items()))
        prev = k
    return value


def list_item(store: ImageStore, image: ImageRecord, version: ApiVersion, *,
              tags: list[str] | None = None, digests: list[str] | None = None,
              with_shared_size: bool = False, containers: int = -1) -> dict[str, Any]:
    if tags is None and digests is None:
        tags, digests = split_refs(store, image)
    item: dict[str, Any] = {
        "Containers": containers,
        "Created": created_unix(image),
        "Id": image.id,
        "Labels": sorted_map(image.labels),
        "ParentId": "",
        "RepoDigests": digests or None,
        "RepoTags": tags or None,
        "SharedSize": shared_sizes(store, image) if with_shared_size else -1,
        "Size": image.size,
    }
    if version.has("virtual_size"):
        item["VirtualSize"] = image.size
    return item


_ITEM_JSON: dict[tuple, str] = {}
_ITEM_JSON_MAX = 1 << 16


def list_item_json(store: ImageStore, image: ImageRecord, version: ApiVersion, tags: list[str],
                   digests: list[str], virtual_size: bool) -> str:
    """list_item as compact JSON, memoized: an image's config never changes, so its item only
    changes with the refs shown, which are part of the key. Keeps a 10k-image list cheap.
    `virtual_size` is version.has("virtual_size"), asked once per request by the caller."""
    key = (image.id, tuple(tags), tuple(digests), virtual_size)
    text = _ITEM_JSON.get(key)
    if text is None:
        if len(_ITEM_JSON) >= _ITEM_JSON_MAX:
            _ITEM_JSON.clear()
        text = _ITEM_JSON[key] = dumps(list_item(store, image, version, tags=tags, digests=digests))
    return text


def go_container_config(raw: Any) -> dict[str, Any]:
    """container.Config as Go re-marshals it (maps sorted, HealthConfig in field order)."""
    cfg = container_config(raw)
    for key in _MAP_FIELDS:
        if isinstance(cfg.get(key), dict):
            cfg[key] = {k: {} if key != "Labels" else v for k, v in sorted(cfg[key].items())}
    health = cfg.get("Healthcheck")
    if isinstance(health, dict):
        cfg["Healthcheck"] = {k: health[k] for k in _HEALTH_FIELDS if health.get(k)}
    return cfg


def inspect(store: ImageStore, image: ImageRecord, version: ApiVersion) -> dict[str, Any]:
    cfg = json.loads(store.config_bytes(image))
    tags, digests = split_refs(store, image)
    history = cfg.get("history") or []
    comment = cfg.get("comment") or (history[-1].get("comment", "") if history else "")
    out: dict[str, Any] = {"Id": image.id, "RepoTags": tags, "RepoDigests": digests, "Parent": "",
                           "Comment": comment or "",
                           "Created": normalize_time(cfg["created"]) if cfg.get("created") else ZERO_TIME}
    if version.has("container_config"):
        out["Container"] = cfg.get("container") or ""
        out["ContainerConfig"] = go_container_config(cfg.get("container_config"))
    out["DockerVersion"] = cfg.get("docker_version") or ""
    out["Author"] = cfg.get("author") or ""
    out["Config"] = go_container_config(cfg["config"]) if isinstance(cfg.get("config"), dict) else None
    out["Architecture"] = cfg.get("architecture") or ""
    if cfg.get("variant"):
        out["Variant"] = cfg["variant"]
    out["Os"] = cfg.get("os") or "linux"  # img.OperatingSystem() defaults to the host's
    if cfg.get("os.version"):
        out["OsVersion"] = cfg["os.version"]
    out["Size"] = image.size
    if version.has("virtual_size"):
        out["VirtualSize"] = image.size
    out["GraphDriver"] = {"Data": None, "Name": "dockerremote"}
    rootfs: dict[str, Any] = {"Type": "layers"}
    if image.diff_ids:
        rootfs["Layers"] = list(image.diff_ids)
    out["RootFS"] = rootfs
    out["Metadata"] = {"LastTagTime": image.last_tag_time or ZERO_TIME}
    return out


def _history_created(h: dict[str, Any]) -> int:
    try:
        return parse_time(h["created"])[0] if h.get("created") else GO_ZERO_UNIX
    except ValueError:
        return GO_ZERO_UNIX


def history(store: ImageStore, image: ImageRecord) -> list[dict[str, Any]]:
    cfg = json.loads(store.config_bytes(image))
    sizes = [store.index.layers[b].size if b in store.index.layers else 0 for b in image.layers]
    tags, _ = split_refs(store, image)
    entries: list[dict[str, Any]] = []
    layer_i = 0
    for h in cfg.get("history") or []:
        size = 0
        if not h.get("empty_layer"):
            if layer_i >= len(image.diff_ids):
                raise DockerRemoteError("too many non-empty layers in History section")
            size = sizes[layer_i] if layer_i < len(sizes) else 0
            layer_i += 1
        entries.append({"Comment": h.get("comment", ""), "Created": _history_created(h),
                        "CreatedBy": h.get("created_by", ""), "Id": "<missing>", "Size": size,
                        "Tags": None})
    entries.reverse()
    if entries:
        entries[0]["Id"] = image.id
        entries[0]["Tags"] = tags or None
    return entries
