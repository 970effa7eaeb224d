"""Docker's JSON shapes for images, per API version (switches from versions.SWITCHES).

Inspect re-marshals the stored config the way Go does: struct fields in declaration order,
unknown keys dropped, map keys sorted, empty omitempty fields left out. Up to 1.41 the
shapes are dockerd 20.10's byte for byte; later versions follow moby's types and the
version gates of its image routes (the rows named in each function).
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any, Callable, Iterable

from dockerremote.api.jsonstream import dumps
from dockerremote.api.versions import ApiVersion
from dockerremote.errors import DockerRemoteError
from dockerremote.oci import manifest as mf
from dockerremote.oci import platform as plat
from dockerremote.oci.config import container_config, format_time, normalize_time, parse_time
from dockerremote.oci.digest import chain_ids
from dockerremote.oci.platform import Platform
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


# The switches that shape a list item (the memo key of list_item_json).
LIST_SWITCHES = ("none_placeholders", "virtual_size", "descriptor", "list_containers_count")


def list_item(store: ImageStore, image: ImageRecord, version: ApiVersion, *,
              tags: list[str] | None = None, digests: list[str] | None = None,
              with_shared_size: bool = False, containers: int | None = None,
              manifests: bool = False) -> dict[str, Any]:
    """One image of GET /images/json (and of /system/df), in moby's Summary field order."""
    if tags is None and digests is None:
        tags, digests = split_refs(store, image)
    if containers is None:
        containers = 0 if version.has("list_containers_count") else -1
    null_if_empty = version.has("none_placeholders")  # before 1.43 an empty list is null
    item: dict[str, Any] = {"Containers": containers, "Created": created_unix(image)}
    if version.has("descriptor"):
        desc = descriptor(store, image)
        if desc is not None:  # omitempty: only images we keep a manifest or index for
            item["Descriptor"] = desc
    item["Id"] = image.id
    item["Labels"] = sorted_map(image.labels)
    if manifests:
        summaries = manifest_summaries(store, image)
        if summaries:  # omitempty
            item["Manifests"] = summaries
    item.update({
        "ParentId": "",
        "RepoDigests": (digests or None) if null_if_empty else list(digests or []),
        "RepoTags": (tags or None) if null_if_empty else list(tags or []),
        "SharedSize": shared_sizes(store, image) if with_shared_size else -1,
        "Size": image.size,
    })
    if version.has("virtual_size"):
        item["VirtualSize"] = image.size
    return item


_ITEM_JSON: dict[tuple, str] = {}
_ITEM_JSON_MAX = 1 << 16


def list_item_json(store: ImageStore, image: ImageRecord, version: ApiVersion, tags: list[str],
                   digests: list[str], shape: tuple[bool, ...]) -> str:
    """list_item as compact JSON, memoized: an image's config never changes, so its item only
    changes with the refs shown and the manifest it was last pulled as, which are part of
    the key, with the version's answers to LIST_SWITCHES (`shape`, asked once per request by
    the caller). Keeps a 10k-image list cheap."""
    target = store.index.target_of(image.id) if shape[2] else None
    key = (image.id, tuple(tags), tuple(digests), shape, target.digest if target else None)
    text = _ITEM_JSON.get(key)
    if text is None:
        if len(_ITEM_JSON) >= _ITEM_JSON_MAX:
            _ITEM_JSON.clear()
        text = _ITEM_JSON[key] = dumps(list_item(store, image, version, tags=tags, digests=digests))
    return text


# -- Descriptor and Manifests: what the store keeps of the manifests an image was pulled as --

_MANIFEST_TYPES = (mf.DOCKER_MANIFEST, mf.OCI_MANIFEST)
_INDEX_TYPES = (mf.DOCKER_LIST, mf.OCI_INDEX)
_ATTESTATION = "attestation-manifest"  # BuildKit's vnd.docker.reference.type


def descriptor(store: ImageStore, image: ImageRecord) -> dict[str, Any] | None:
    """The OCI descriptor of the index or manifest the image was last pulled as; None for an
    image that never had one here (imported, loaded from a docker-save archive)."""
    t = store.index.target_of(image.id)
    if t is None:
        return None
    return {"mediaType": t.media_type, "digest": t.digest, "size": t.size}


def descriptor_json(d: mf.Descriptor) -> dict[str, Any]:
    """ocispec.Descriptor as Go marshals it (omitempty fields left out)."""
    out: dict[str, Any] = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
    if d.urls:
        out["urls"] = list(d.urls)
    if d.annotations:
        out["annotations"] = dict(sorted(d.annotations.items()))
    if d.platform is not None:
        out["platform"] = d.platform.to_json()
    return out


@functools.lru_cache(maxsize=1024)
def _parsed(data: bytes, media_type: str) -> mf.Manifest:
    return mf.parse(data, media_type)


def _stored_manifest(store: ImageStore, digest: str, media_type: str) -> mf.Manifest | None:
    try:
        return _parsed(store.content.read(digest), media_type)
    except (FileNotFoundError, DockerRemoteError):
        return None


def image_platform(store: ImageStore, image: ImageRecord) -> Platform:
    """The platform an image's config declares (the os defaults to linux, as inspect's)."""
    try:
        cfg = json.loads(store.config_bytes(image))
    except (DockerRemoteError, ValueError):
        cfg = {}
    return Platform(str(cfg.get("os") or image.os or "linux"), str(cfg.get("architecture") or image.architecture),
                    str(cfg.get("variant") or ""), str(cfg.get("os.version") or ""))


def _local_image(store: ImageStore, manifest_digest: str) -> ImageRecord | None:
    """A stored image that was pulled through this manifest (its config and layers are here)."""
    for image_id in sorted(store.index.manifest_images.get(manifest_digest, ())):
        img = store.index.images.get(image_id)
        if img is not None:
            return img
    return None


def manifest_summary(store: ImageStore, d: mf.Descriptor, platform: Platform | None) -> dict[str, Any]:
    """moby's ManifestSummary of one manifest: available when its image is fully stored here."""
    img = _local_image(store, d.digest)
    if d.annotations.get("vnd.docker.reference.type") == _ATTESTATION:
        kind = "attestation"
    elif mf.base_media_type(d.media_type) in _MANIFEST_TYPES:
        kind = "image"
    else:
        kind = "unknown"
    content = unpacked = 0
    if img is not None:
        layers = [store.index.layers.get(b) for b in img.layers]
        content = d.size + len(store.config_bytes(img)) + sum(lay.blob_size for lay in layers if lay)
        unpacked = img.size
    elif d.digest in store.index.blob_users:
        content = d.size
    out: dict[str, Any] = {"ID": d.digest, "Descriptor": descriptor_json(d), "Available": img is not None,
                           "Size": {"Content": content, "Total": content + unpacked}, "Kind": kind}
    if kind == "image":
        p = platform or (image_platform(store, img) if img is not None else Platform("", ""))
        out["ImageData"] = {"Platform": p.to_json(), "Size": {"Unpacked": unpacked}, "Containers": []}
    elif kind == "attestation":
        out["AttestationData"] = {"For": d.annotations.get("vnd.docker.reference.digest", "")}
    return out


def manifest_summaries(store: ImageStore, image: ImageRecord) -> list[dict[str, Any]]:
    """The Manifests field: every manifest of the index the image was pulled as (available or
    not), or its one manifest; empty for an image without a stored target."""
    t = store.index.target_of(image.id)
    if t is None:
        return []
    if mf.base_media_type(t.media_type) in _INDEX_TYPES:
        index = _stored_manifest(store, t.digest, t.media_type)
        if not isinstance(index, mf.ManifestIndex):
            return []
        return [manifest_summary(store, d, d.platform) for d in index.manifests]
    d = mf.Descriptor(t.media_type, t.digest, t.size, image_platform(store, image))
    return [manifest_summary(store, d, d.platform)]


def platform_sibling(store: ImageStore, image: ImageRecord, want: Platform) -> ImageRecord | None:
    """The stored image for `want` in the index `image` was pulled as (None without one)."""
    t = store.index.target_of(image.id)
    if t is None or mf.base_media_type(t.media_type) not in _INDEX_TYPES:
        return None
    index = _stored_manifest(store, t.digest, t.media_type)
    if not isinstance(index, mf.ManifestIndex):
        return None
    for d in index.manifests:
        if d.platform is not None and plat.matches(want, d.platform):
            found = _local_image(store, d.digest)
            if found is not None:
                return found
    return None


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


# The image config as moby 29 shows it (dockerspec.DockerOCIImageConfig, every field omitempty)
_OCI_CONFIG_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                      "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell")
# ...and the ones API 1.50 and 1.51 still show when empty (moby's legacyConfigFields)
_ALWAYS_CONFIG_FIELDS = {"Cmd": None, "Entrypoint": None, "Env": None, "Labels": None, "OnBuild": None,
                         "User": "", "Volumes": None, "WorkingDir": ""}


def oci_config(raw: Any, version: ApiVersion) -> dict[str, Any]:
    """Config from API 1.50 on: the OCI image config fields only. Up to 1.51 the fields of
    _ALWAYS_CONFIG_FIELDS are there even when empty, and moby merges them through a map (so
    the keys come sorted); at 1.52 empty fields are left out, in the struct's order."""
    full = go_container_config(raw)
    out = {k: full[k] for k in _OCI_CONFIG_FIELDS if k in full and full[k] not in (None, "", [], {}, False)}
    if version.has("inspect_empty_fields"):
        merged = dict(_ALWAYS_CONFIG_FIELDS)
        merged.update(out)
        return dict(sorted(merged.items()))
    return out


def inspect(store: ImageStore, image: ImageRecord, version: ApiVersion,
            manifests: bool = False) -> dict[str, Any]:
    """GET /images/{name}/json. Up to 1.51 in dockerd's (20.10, then moby 28) field order with
    every field present; at 1.52 in the v1.52 spec's order with empty fields left out."""
    cfg = json.loads(store.config_bytes(image))
    tags, digests = split_refs(store, image)
    history = cfg.get("history") or []
    comment = cfg.get("comment") or (history[-1].get("comment", "") if history else "") or ""
    created = normalize_time(cfg["created"]) if cfg.get("created") else (
        ZERO_TIME if version.has("inspect_zero_created") else None)
    raw_config = cfg.get("config")
    if version.has("inspect_container_fields"):
        config = go_container_config(raw_config) if isinstance(raw_config, dict) else None
    elif version.has("inspect_empty_fields"):
        config = oci_config(raw_config, version) if isinstance(raw_config, dict) else None
    else:
        config = oci_config(raw_config, version)
    desc = descriptor(store, image) if version.has("descriptor") else None
    summaries = manifest_summaries(store, image) if manifests else []
    docker_version = cfg.get("docker_version") or ""
    author = cfg.get("author") or ""

    out: dict[str, Any] = {"Id": image.id}
    if not version.has("inspect_empty_fields"):  # 1.52: the spec's order, empty fields left out
        if desc is not None:
            out["Descriptor"] = desc
        if summaries:
            out["Manifests"] = summaries
        out.update({"RepoTags": tags, "RepoDigests": digests})
        for key, value in (("Comment", comment), ("Created", created), ("DockerVersion", docker_version),
                           ("Author", author)):
            if value:
                out[key] = value
        out["Config"] = config
    else:
        out.update({"RepoTags": tags, "RepoDigests": digests, "Parent": "", "Comment": comment})
        if created is not None:
            out["Created"] = created
        if version.has("container_config"):
            out["Container"] = cfg.get("container") or ""
            out["ContainerConfig"] = go_container_config(cfg.get("container_config"))
        out.update({"DockerVersion": docker_version, "Author": author, "Config": config})
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
    if version.has("inspect_empty_fields"):  # moby 28's struct: Descriptor and Manifests last
        if desc is not None:
            out["Descriptor"] = desc
        if summaries:
            out["Manifests"] = summaries
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
