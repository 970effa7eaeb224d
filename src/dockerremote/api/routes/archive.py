"""Save (GET /images/{name}/get, /images/get) and load (POST /images/load)."""

from __future__ import annotations

import asyncio
import logging

from typing import AsyncIterator

from aiohttp import web

from dockerremote.api import platform_param, shapes
from dockerremote.api.app import Ctx, Router
from dockerremote.api.jsonstream import JsonStream
from dockerremote.api.progress import progress_message
from dockerremote.api.routes.system import host_arch
from dockerremote.errors import DockerRemoteError, NotFound
from dockerremote.oci import platform as plat
from dockerremote.oci.digest import short_id
from dockerremote.transfer.archive import SaveAborted, plan_save, write_archive
from dockerremote.transfer.loader import LoadError, load_archive

log = logging.getLogger(__name__)


async def save_one(ctx: Ctx) -> web.StreamResponse:
    return await _save(ctx, [ctx.params["name"]])


async def save_many(ctx: Ctx) -> web.StreamResponse:
    return await _save(ctx, ctx.request.query.getall("names", []))


def _archive_platforms(ctx: Ctx) -> list[plat.Platform]:
    """save/load `platform` (1.48+; several values from 1.52), checked before anything runs."""
    return platform_param.several(ctx.request.query, "platform", ctx.version, "archive_platform",
                                  "archive_platforms")


def _check_platforms(ctx: Ctx, names: list[str], wanted: list[plat.Platform]) -> None:
    """Each named image must be of one of the platforms asked for (the graph-driver store's
    rule: a name holds one image, of one platform)."""
    for name in names:
        img = ctx.store.resolve(name)
        have = shapes.image_platform(ctx.store, img)
        if not any(plat.matches(w, have) for w in wanted):
            raise NotFound(f"image with reference {name} was found but does not match the specified "
                           f"platform: wanted {wanted[0]}, actual: {have}")


async def _save(ctx: Ctx, names: list[str]) -> web.StreamResponse:
    # Every lookup error happens here, before the 200: unknown names are real HTTP errors.
    wanted = _archive_platforms(ctx)
    if wanted:
        await asyncio.to_thread(_check_platforms, ctx, names, wanted)
    plan = await asyncio.to_thread(plan_save, ctx.store, names)
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/x-tar"
    resp.enable_chunked_encoding()
    try:
        await resp.prepare(ctx.request)
        for img in plan.images:
            ctx.events.image("save", img.id, img.id, img.labels)
        await write_archive(ctx.store, plan.members, resp.write)
        # Leases go (and a racing delete's leftovers are collected) before the last chunk,
        # so a client that has read the whole archive sees the store settled.
        await asyncio.to_thread(plan.release)
        await resp.write_eof()
    except (SaveAborted, OSError) as exc:
        # The status is sent: cut the connection so the client sees a broken transfer, never
        # a well-formed but incomplete tar. (OSError: the client went away, nothing to tell.)
        if not isinstance(exc, ConnectionError):
            log.error("save aborted: %s", exc)
        if ctx.request.transport is not None:
            ctx.request.transport.abort()
    finally:
        await asyncio.to_thread(plan.release)
    return resp


async def _body(ctx: Ctx) -> AsyncIterator[bytes]:
    content = ctx.request.content
    while True:
        try:
            chunk = await content.readany()
        except Exception as exc:  # noqa: BLE001 - a broken upload (the client went away mid-body)
            raise LoadError("unexpected EOF") from exc
        if not chunk:
            return
        yield chunk


async def _drain(ctx: Ctx) -> None:
    """Read what is left of a failed upload, so the client gets to read our error line."""
    try:
        while await ctx.request.content.readany():
            pass
    except Exception:  # noqa: BLE001 - the client is gone; nothing to tell it
        pass


async def load(ctx: Ctx) -> web.StreamResponse:
    # Always 200 with JSON lines (the CLI renders only application/json); errors in-stream.
    # A bad `platform` is a 400 before the body is read (moby parses it first). Its value is
    # not used: an archive's images load whatever their platform, as the graph-driver store.
    _archive_platforms(ctx)
    quiet = ctx.query_bool("quiet", True)
    stream = JsonStream(ctx.request)

    async def on_layer(diff_id: str, size: int) -> None:
        # dockerd's progress reader reports the finished layer twice: at size, then at EOF.
        line = progress_message("Loading layer", size, size, short_id(diff_id))
        await stream.send(line)
        await stream.send(line)

    async def on_message(text: str) -> None:
        await stream.send({"stream": text} if text else {})

    error: str | None = None
    try:
        images = await load_archive(ctx.store, _body(ctx), arch=host_arch(), on_message=on_message,
                                    on_layer=None if quiet else on_layer)
        for img in images:
            ctx.events.image("load", img.id, img.id, img.labels)
    except DockerRemoteError as exc:
        error = exc.message
    except ConnectionError:
        pass  # writing a line failed: the client is gone; load_archive has cleaned up
    except Exception as exc:  # our side failed: still in-stream, as dockerd does
        log.exception("load failed")
        error = str(exc) or exc.__class__.__name__
    try:
        if error is not None:
            await _drain(ctx)
            await stream.fail(error)
        return await stream.finish()
    except ConnectionError:  # nobody left to tell
        if ctx.request.transport is not None:
            ctx.request.transport.abort()
        return stream.response or web.Response()


def register(router: Router) -> None:
    router.add("POST", "/images/load", load)
    router.add("GET", "/images/get", save_many)
    router.add("GET", "/images/{name}/get", save_one)
