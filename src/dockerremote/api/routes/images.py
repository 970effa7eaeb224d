"""List, inspect, history, tag, delete and prune."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from dockerremote import reference
from dockerremote.api import filters as flt
from dockerremote.api import platform_param, shapes
from dockerremote.api.app import Ctx, Router
from dockerremote.api.jsonstream import json_response
from dockerremote.errors import DockerRemoteError, InvalidArgument, NotFound
from dockerremote.events import Event
from dockerremote.oci import platform as plat
from dockerremote.oci.config import format_time
from dockerremote.store.images import DeleteRecord
from dockerremote.store.index import ImageRecord
from dockerremote.transfer.dockerfile import go_duration_ns

LIST_FILTERS = {"dangling", "label", "before", "since", "reference"}
PRUNE_FILTERS = {"dangling", "label", "label!", "until"}


async def list_images(ctx: Ctx) -> web.StreamResponse:
    store = ctx.store
    v = ctx.version
    f = flt.parse(ctx.query("filters"))
    legacy = ctx.query("filter")
    if legacy and v.has("legacy_filter_param"):
        f.values.setdefault("reference", []).append(legacy)
    f.validate(LIST_FILTERS | ({"until"} if v.has("list_until_filter") else set()))
    dangling_only = False
    if f.contains("dangling"):
        if f.exact_match("dangling", "true"):
            dangling_only = True
        elif not f.exact_match("dangling", "false"):
            raise flt.invalid_filter("dangling", f.get("dangling"))
    before = since = None  # dockerd compares full-precision times: same second is not "before"
    for name in f.get("before"):
        before = shapes.created_ns(store.resolve(name))
    for name in f.get("since"):
        since = shapes.created_ns(store.resolve(name))
    for value in f.get("until"):  # created strictly before it; several values: the earliest wins
        until = flt.parse_until(value)
        before = until if before is None else min(before, until)
    patterns = f.get("reference")
    shared_size = v.has("list_shared_size") and ctx.query_bool("shared-size")
    manifests = v.has("list_manifests") and ctx.query_bool("manifests")

    globs = [flt.compile_glob_or_none(p) for p in patterns]

    def keep_ref(familiar: str, familiar_name: str) -> bool:
        """reference.FamiliarMatch over the patterns in order: a bad pattern fails when a ref
        reaches it (so never in a store without refs), as dockerd's loop does."""
        for g in globs:
            if g is None:
                raise flt.BadPattern()
            if g.match(familiar) or g.match(familiar_name):
                return True
        return False

    shape = v.key(*shapes.LIST_SWITCHES)
    label_filter = f.contains("label")

    def build() -> bytes:
        items = []
        with store.index.lock:
            for img in shapes.sorted_images(store.index.images.values()):
                if before is not None and shapes.created_ns(img) >= before:
                    continue
                if since is not None and shapes.created_ns(img) <= since:
                    continue
                if label_filter and not f.match_kv_list("label", img.labels):
                    continue
                tags, digests = shapes.split_refs(store, img, keep_ref if patterns else None)
                if not tags and not digests:
                    if f.contains("dangling") and not dangling_only:
                        continue
                    if patterns:
                        continue
                    if img.refs and dangling_only:
                        continue  # every ref was filtered away; the image itself is not dangling
                    if v.has("none_placeholders"):
                        tags, digests = ["<none>:<none>"], ["<none>@<none>"]
                elif dangling_only and tags:
                    continue
                if shared_size or manifests:  # these change with other images: never memoized
                    items.append(shapes.dumps(shapes.list_item(store, img, v, tags=tags, digests=digests,
                                                               with_shared_size=shared_size, manifests=manifests)))
                else:
                    items.append(shapes.list_item_json(store, img, v, tags, digests, shape))
        return ("[" + ",".join(items) + "]\n").encode()

    # Manifests read index and config blobs: that listing runs in a thread (the others are
    # memory only, and a thread hop would cost more than they take).
    data = await asyncio.to_thread(build) if manifests else build()
    return web.Response(body=data, content_type="application/json")


def for_platform(ctx: Ctx, img: ImageRecord, name: str, want: plat.Platform) -> ImageRecord:
    """The image of platform `want` behind `name`: the one it resolved to if that matches, else
    the stored image of that platform in the index it was pulled as; 404 otherwise (dockerd's
    graph-driver text)."""
    have = shapes.image_platform(ctx.store, img)
    if plat.matches(want, have):
        return img
    sibling = shapes.platform_sibling(ctx.store, img, want)
    if sibling is not None:
        return sibling
    raise NotFound(f"image with reference {name} was found but does not match the specified platform: "
                   f"wanted {want}, actual: {have}")


async def inspect_image(ctx: Ctx) -> web.StreamResponse:
    name = ctx.params["name"]
    q = ctx.request.query
    manifests = ctx.version.has("inspect_manifests") and ctx.query_bool("manifests")
    platform = platform_param.one(q, "platform", ctx.version, "inspect_platform")
    if manifests and platform is not None:
        raise InvalidArgument("conflicting options: manifests and platform options cannot both be set")
    try:
        img = ctx.store.resolve(name)
    except DockerRemoteError as exc:  # 20.10 wraps any lookup error, keeping its status
        wrapped = DockerRemoteError(f"no such image: {name}: {exc.message}")
        wrapped.status = exc.status
        raise wrapped from None
    if platform is not None:
        img = await asyncio.to_thread(for_platform, ctx, img, name, platform)
    return json_response(await asyncio.to_thread(shapes.inspect, ctx.store, img, ctx.version, manifests))


async def image_history(ctx: Ctx) -> web.StreamResponse:
    name = ctx.params["name"]
    platform = platform_param.one(ctx.request.query, "platform", ctx.version, "history_platform")
    img = ctx.store.resolve(name)
    if platform is not None:
        img = await asyncio.to_thread(for_platform, ctx, img, name, platform)
    return json_response(await asyncio.to_thread(shapes.history, ctx.store, img))


async def tag_image(ctx: Ctx) -> web.StreamResponse:
    """TagImage: source first, then the new name; a `tag` replaces any tag or digest in `repo`."""
    img = ctx.store.resolve(ctx.params["name"])
    ref = reference.parse(ctx.query("repo") or "")
    tag = ctx.query("tag")
    if tag:
        ref = ref.repository().with_tag(tag)
    if ref.digest is not None:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    if ref.familiar_name == "sha256":
        raise InvalidArgument("refusing to create an ambiguous tag using digest algorithm as name")
    ns = time.time_ns()
    await asyncio.to_thread(ctx.store.set_tag, ref.tagged_or_latest(), img.id,
                            format_time(ns // 10**9, ns % 10**9))
    ctx.events.image("tag", img.id, ref.familiar, img.labels)
    return web.Response(status=201)


def _records(records: list[DeleteRecord]) -> list[dict[str, str]]:
    return [{"Untagged": r.untagged} if r.untagged else {"Deleted": r.deleted or ""} for r in records]


async def delete_image(ctx: Ctx) -> web.StreamResponse:
    name = ctx.params.get("name", "")
    if not name.strip():
        raise InvalidArgument("image name cannot be blank")
    platforms = platform_param.several(ctx.request.query, "platforms", ctx.version, "delete_platforms")
    img = ctx.store.resolve(name)
    if platforms:
        return await _delete_platforms(ctx, name, img, platforms)
    records = await asyncio.to_thread(ctx.store.delete, name, ctx.query_bool("force"))
    # dockerd logs an untag for the ref named (not for the digest refs it cleans up with it),
    # one per ref when deleting by ID, and a delete for the image
    by_ref = not (img.id.startswith(name) or img.id[7:].startswith(name))
    for i, r in enumerate(records):
        if r.untagged and not (by_ref and i > 0):
            ctx.events.image("untag", img.id, img.id, img.labels)
        elif r.deleted == img.id:
            ctx.events.image("delete", img.id, img.id)
    return json_response(_records(records))


async def _delete_platforms(ctx: Ctx, name: str, img: ImageRecord,
                            platforms: list[plat.Platform]) -> web.StreamResponse:
    """DELETE with `platforms` (1.50+): remove the image of each platform behind `name`. The
    image the name resolves to goes as a plain delete of the name; another platform's image
    of the same index goes by its ID, with the usual conflict rules. Every platform must
    have a stored image (404 otherwise, before anything is removed)."""
    targets = [await asyncio.to_thread(for_platform, ctx, img, name, p) for p in platforms]
    records: list[DeleteRecord] = []
    for target in dict.fromkeys(t.id for t in targets):
        doomed = ctx.store.get(target)
        if doomed is None:
            continue
        by = name if target == img.id else target
        out = await asyncio.to_thread(ctx.store.delete, by, ctx.query_bool("force"))
        for r in out:
            if r.untagged:
                ctx.events.image("untag", doomed.id, doomed.id, doomed.labels)
            elif r.deleted == doomed.id:
                ctx.events.image("delete", doomed.id, doomed.id)
        records += out
    return json_response(_records(records))


async def prune_images(ctx: Ctx) -> web.StreamResponse:
    f = flt.parse(ctx.query("filters"))
    f.validate(PRUNE_FILTERS)
    dangling = True
    if f.contains("dangling"):  # ExactMatch semantics: case-sensitive, `false` wins
        if f.exact_match("dangling", "false") or f.exact_match("dangling", "0"):
            dangling = False
        elif not (f.exact_match("dangling", "true") or f.exact_match("dangling", "1")):
            raise flt.invalid_filter("dangling", f.get("dangling"))
    until = None
    if f.contains("until"):
        vals = f.get("until")
        if len(vals) > 1:
            raise InvalidArgument("more than one until filter specified")
        until = flt.parse_until(vals[0]) if vals else None

    def keep(img: ImageRecord) -> bool:
        if until is not None and shapes.created_ns(img) > until:
            return True
        if not f.match_kv_list("label", img.labels):
            return True
        # label! values must all match to spare an image (dockerd's matchLabels)
        return f.contains("label!") and f.match_kv_list("label!", img.labels)

    with ctx.store.index.lock:  # who is who before the prune, to name the events after it
        owners = {shapes.stored_ref(n).familiar: img for img in ctx.store.index.images.values()
                  for n in img.refs}
        images = dict(ctx.store.index.images)
    records, reclaimed = await asyncio.to_thread(ctx.store.prune, dangling, keep)
    for r in records:
        if r.untagged and r.untagged in owners:
            img = owners[r.untagged]
            ctx.events.image("untag", img.id, img.id, img.labels)
        elif r.deleted in images:
            ctx.events.image("delete", r.deleted, r.deleted)
    ctx.events.publish(Event("image", "prune", "", {"reclaimed": str(reclaimed)}))
    return json_response({"ImagesDeleted": _records(records) or None, "SpaceReclaimed": reclaimed})


def register(router: Router) -> None:
    router.add("GET", "/images/json", list_images)
    router.add("POST", "/images/prune", prune_images)
    router.add("GET", "/images/{name}/json", inspect_image)
    router.add("GET", "/images/{name}/history", image_history)
    router.add("POST", "/images/{name}/tag", tag_image)
    router.add("DELETE", "/images/{name}", delete_image)
    router.add("DELETE", "/images/", delete_image)  # an empty name: dockerd's "cannot be blank"


def go_duration(text: str) -> float:
    """A Go duration in seconds (ValueError if it is not one); kept for routes/events.py."""
    return go_duration_ns(text) / 1e9
