"""POST /images/{name}/push: the push pipeline's events as dockerd 20.10's progress stream.

The first line ("The push refers to repository [...]") goes out before the image is looked
up, so nearly every failure is an errorDetail line in a 200 stream; only a name or tag that
does not parse, or auth that cannot be read, are HTTP errors (moby's order).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from dockerremote import reference
from dockerremote.api import platform_param
from dockerremote.api.app import Ctx, Router
from dockerremote.api.jsonstream import JsonStream, run_transfer
from dockerremote.api.routes.pull import transfer_event
from dockerremote.api.progress import bar
from dockerremote.errors import InvalidArgument, InvalidReference
from dockerremote.reference import Reference
from dockerremote.transfer.progress import Event, Kind
from dockerremote.transfer.push import Pusher, PushRequest

log = logging.getLogger(__name__)

_SERVICE = "pusher"
MAX_AUTH_BODY = 1 << 20

_PLAIN = {Kind.PREPARING: "Preparing", Kind.WAITING: "Waiting", Kind.LAYER_EXISTS: "Layer already exists",
          Kind.PUSHED: "Pushed"}


def messages(event: Event) -> list[dict[str, Any]]:
    """One neutral push event as dockerd's JSON message(s)."""
    k = event.kind
    if k in _PLAIN:
        return [{"status": _PLAIN[k], "progressDetail": {}, "id": event.id}]
    if k is Kind.PUSHING:
        detail = {}  # Go's JSONProgress: omitempty on both numbers
        if event.current:
            detail["current"] = event.current
        if event.total:
            detail["total"] = event.total
        return [{"status": "Pushing", "progressDetail": detail, "progress": bar(event.current, event.total),
                 "id": event.id}]
    if k is Kind.MOUNTED:
        return [{"status": f"Mounted from {event.text}", "progressDetail": {}, "id": event.id}]
    if k is Kind.RETRYING:
        unit = "second" if event.current == 1 else "seconds"
        return [{"status": f"Retrying in {event.current} {unit}", "progressDetail": {}, "id": event.id}]
    if k is Kind.REFERS:
        return [{"status": f"The push refers to repository [{event.text}]"}]
    if k is Kind.PUSH_RESULT:
        return [{"status": f"{event.text}: digest: {event.id} size: {event.current}"},
                {"progressDetail": {}, "aux": {"Tag": event.text, "Digest": event.id, "Size": event.current}}]
    raise ValueError(f"no message for {k}")


def pusher(ctx: Ctx) -> Pusher:
    """The daemon's Pusher, sharing the pull side's Registries (one session, one token cache)."""
    from dockerremote.api.app import SERVICES_KEY
    from dockerremote.api.routes.pull import puller

    services = ctx.request.app[SERVICES_KEY]
    if _SERVICE not in services:
        services[_SERVICE] = Pusher(ctx.store, puller(ctx).registries, ctx.settings.max_concurrent_uploads)
    return services[_SERVICE]


async def _auth(ctx: Ctx) -> Any:
    """X-Registry-Auth; without it, 20.10 reads the auth JSON from the body (docker-py sends `{}`)."""
    from dockerremote.registry.auth import auth_from_body, decode_registry_auth

    header = ctx.request.headers.get("X-Registry-Auth", "")
    if header:
        return decode_registry_auth(header)
    body = await ctx.request.content.read(MAX_AUTH_BODY)
    try:
        return auth_from_body(body)
    except ValueError as exc:
        raise InvalidArgument(f"Bad parameters and missing X-Registry-Auth: {exc}") from None


def push_reference(name: str, tag: str) -> Reference:
    """The name (any reference) with `tag` put in, as dockerd's reference.WithTag."""
    ref = reference.parse(name)
    if tag:
        if not reference.TAG_RE.match(tag):
            raise InvalidReference("invalid tag format")
        ref = Reference(ref.domain, ref.path, tag, ref.digest)
    return ref


async def push_image(ctx: Ctx) -> web.StreamResponse:
    auth = await _auth(ctx)
    ref = push_reference(ctx.params["name"], ctx.query("tag") or "")
    # 1.46+: a JSON OCI platform; validated (400 as moby) — our images are single-platform
    platform_param.one(ctx.request.query, "platform", ctx.version, "push_platform")
    meta = {k: v for k, v in ctx.request.headers.items() if k.lower().startswith("x-meta-")}
    req = PushRequest(ref=ref, auth=auth, meta_headers=meta)

    async def work(emit: Callable[[Event], Awaitable[None]]) -> None:
        await pusher(ctx).push(req, emit)
        await asyncio.to_thread(transfer_event, ctx, "push", ref)

    return await run_transfer(JsonStream(ctx.request), work, messages, f"push of {ref}", log)


def register(router: Router) -> None:
    router.add("POST", "/images/{name}/push", push_image)
