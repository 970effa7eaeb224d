"""List, inspect, history, tag, delete and prune."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from dockerremote import reference
from dockerremote.api import filters as flt
from dockerremote.api import shapes
from dockerremote.api.app import Ctx, Router
from dockerremote.api.jsonstream import json_response
from dockerremote.errors import ImageNotFound, InvalidArgument, InvalidReference
from dockerremote.oci.config import format_time, parse_time
from dockerremote.store.images import DeleteRecord, ImageStore
from dockerremote.store.index import ImageRecord

LIST_FILTERS = {"dangling", "label", "before", "since", "reference"}
PRUNE_FILTERS = {"dangling", "label", "label!", "until"}


def _lookup_for_filter(store: ImageStore, name: str) -> ImageRecord:
    try:
        return store.resolve(name)
    except InvalidReference:
        raise ImageNotFound(name) from None


async def list_images(ctx: Ctx) -> web.StreamResponse:
    store = ctx.store
    f = flt.parse(ctx.query("filters"))
    legacy = ctx.query("filter")
    if legacy and ctx.version.has("legacy_filter_param"):
        f.values.setdefault("reference", []).append(legacy)
    f.validate(LIST_FILTERS)
    dangling_only = False
    if f.contains("dangling"):
        if f.exact_match("dangling", "true"):
            dangling_only = True
        elif not f.exact_match("dangling", "false"):
            raise flt.invalid_filter("dangling", f.get("dangling"))
    show_all = ctx.query_bool("all")
    before = since = None
    for v in f.get("before"):
        before = _lookup_for_filter(store, v).created_unix
    for v in f.get("since"):
        since = _lookup_for_filter(store, v).created_unix
    patterns = f.get("reference")
    for p in patterns:
        flt.glob_match(p, "")  # a bad pattern fails even in an empty store, as dockerd's does

    def keep_ref(ref: reference.Reference) -> bool:
        return any(flt.glob_match(p, ref.familiar) or flt.glob_match(p, ref.familiar_name)
                   for p in patterns)

    items = []
    with store.index.lock:
        for img in shapes.sorted_images(store.index.images.values()):
            if before is not None and img.created_unix >= before:
                continue
            if since is not None and img.created_unix <= since:
                continue
            if f.contains("label") and (img.labels is None or not f.match_kv_list("label", img.labels)):
                continue
            tags, digests = shapes.split_refs(store, img, keep_ref if patterns else None)
            if not tags and not digests:
                if f.contains("dangling") and not dangling_only:
                    continue
                if patterns:
                    continue
                if img.refs and dangling_only:
                    continue  # every ref was filtered away; the image itself is not dangling
                if ctx.version.has("none_placeholders"):
                    tags, digests = ["<none>:<none>"], ["<none>@<none>"]
            elif dangling_only and tags:
                continue
            items.append(shapes.list_item(store, img, ctx.version, tags=tags, digests=digests))
    return json_response(items)


async def inspect_image(ctx: Ctx) -> web.StreamResponse:
    name = ctx.params["name"]
    try:
        img = ctx.store.resolve(name)
    except ImageNotFound as exc:
        raise ImageNotFound(f"{name}: {exc.message}") from None
    exc_img = img
    return json_response(await asyncio.to_thread(shapes.inspect, ctx.store, exc_img, ctx.version))


async def image_history(ctx: Ctx) -> web.StreamResponse:
    img = ctx.store.resolve(ctx.params["name"])
    return json_response(await asyncio.to_thread(shapes.history, ctx.store, img))


def parse_repo_tag(repo: str, tag: str | None) -> reference.Reference:
    """`repo` (maybe with :tag) and `tag` → a tagged reference, as tag and import read them."""
    ref = reference.parse(repo)
    if ref.digest is not None:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    if tag:
        ref = ref.with_tag(tag)
    return ref.tagged_or_latest()


async def tag_image(ctx: Ctx) -> web.StreamResponse:
    repo = ctx.query("repo") or ""
    img = ctx.store.resolve(ctx.params["name"])
    ref = reference.parse(repo)
    if ref.digest is not None:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    if ref.path == "sha256" or ref.familiar_name == "sha256":
        raise InvalidArgument("refusing to create an ambiguous tag using digest algorithm as name")
    tag = ctx.query("tag")
    ref = ref.with_tag(tag) if tag else ref.tagged_or_latest()
    ns = time.time_ns()
    await asyncio.to_thread(ctx.store.set_tag, ref, img.id, format_time(ns // 10**9, ns % 10**9))
    return web.Response(status=201)


def _records(records: list[DeleteRecord]) -> list[dict[str, str]]:
    return [{"Untagged": r.untagged} if r.untagged else {"Deleted": r.deleted or ""} for r in records]


async def delete_image(ctx: Ctx) -> web.StreamResponse:
    records = await asyncio.to_thread(ctx.store.delete, ctx.params["name"], ctx.query_bool("force"))
    return json_response(_records(records))


def parse_until(value: str, now: float | None = None) -> int:
    """Unix time, RFC3339 or a Go duration ago → unix seconds (dockerd's GetTimestamp)."""
    now = time.time() if now is None else now
    try:
        return int(now - go_duration(value))
    except ValueError:
        pass
    try:
        return int(float(value))
    except ValueError:
        pass
    for candidate in (value, value + "Z", value + "T00:00:00Z"):
        try:
            return parse_time(candidate)[0]
        except ValueError:
            continue
    raise InvalidArgument(f'failed to parse value as time or duration: "{value}"')


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def go_duration(text: str) -> float:
    import re

    if not re.fullmatch(r"(\d+(\.\d*)?(ns|us|µs|ms|s|m|h))+", text):
        raise ValueError(text)
    return sum(float(n) * _UNITS[u] for n, _, u in re.findall(r"(\d+(\.\d*)?)(ns|us|µs|ms|s|m|h)", text))


async def prune_images(ctx: Ctx) -> web.StreamResponse:
    f = flt.parse(ctx.query("filters"))
    f.validate(PRUNE_FILTERS)
    dangling = True
    if f.contains("dangling"):
        vals = f.get("dangling")
        if len(vals) != 1 or vals[0].lower() not in ("true", "false", "1", "0"):
            raise flt.invalid_filter("dangling", vals)
        dangling = vals[0].lower() in ("true", "1")
    until = None
    if f.contains("until"):
        vals = f.get("until")
        if len(vals) != 1:
            raise InvalidArgument("can't use more than one until filter")
        until = parse_until(vals[0])

    def keep(img: ImageRecord) -> bool:
        if until is not None and img.created_unix > until:
            return True
        if f.contains("label") and not f.match_kv_list("label", img.labels):
            return True
        if f.contains("label!") and img.labels is not None and any(
                flt.Filters({"l": [v]}).match_kv_list("l", img.labels) for v in f.get("label!")):
            return True
        return False

    records, reclaimed = await asyncio.to_thread(ctx.store.prune, dangling, keep)
    return json_response({"ImagesDeleted": _records(records) or None, "SpaceReclaimed": reclaimed})


def register(router: Router) -> None:
    router.add("GET", "/images/json", list_images)
    router.add("POST", "/images/prune", prune_images)
    router.add("GET", "/images/{name}/json", inspect_image)
    router.add("GET", "/images/{name}/history", image_history)
    router.add("POST", "/images/{name}/tag", tag_image)
    router.add("DELETE", "/images/{name}", delete_image)
