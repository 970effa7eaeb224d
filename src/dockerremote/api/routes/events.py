"""GET /events: image events as dockerd writes them, replayed for `since`, streamed live."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from dockerremote import reference
from dockerremote.api import filters as flt
from dockerremote.api.app import Ctx, Router
from dockerremote.api.jsonstream import dumps
from dockerremote.api.routes.images import go_duration
from dockerremote.errors import InvalidArgument
from dockerremote.events import Event
from dockerremote.oci.config import parse_time

EVENT_FILTERS = {"type", "event", "image", "label", "container", "daemon", "network", "node",
                 "plugin", "scope", "secret", "service", "volume", "config"}


def parse_timestamp(value: str, now: float) -> int:
    """dockerd's GetTimestamp: unix[.nanos], RFC3339-ish, or a duration before now → nanoseconds."""
    try:
        return int((now - go_duration(value)) * 1e9)
    except ValueError:
        pass
    if value.replace(".", "", 1).isdigit():
        sec, _, frac = value.partition(".")
        return int(sec) * 10**9 + int((frac or "0")[:9].ljust(9, "0"))
    for candidate in (value, value + "Z", value + "T00:00:00Z"):
        try:
            s, n = parse_time(candidate)
            return s * 10**9 + n
        except ValueError:
            continue
    raise InvalidArgument(f'failed to parse value as time or duration: "{value}"')


def _strip_tag(name: str) -> str:
    try:
        return reference.parse(name).familiar_name
    except InvalidArgument:
        return name


def matches(f: flt.Filters, ev: Event) -> bool:
    if not f.exact_match("type", ev.type) or not f.exact_match("event", ev.action):
        return False
    if f.contains("scope") and not f.exact_match("scope", "local"):
        return False
    if f.contains("image"):
        name = ev.attributes.get("name", "")
        if not any(f.exact_match("image", v) for v in (ev.id, name, _strip_tag(ev.id), _strip_tag(name))):
            return False
    if f.contains("label") and not f.match_kv_list("label", ev.attributes):
        return False
    for other in ("container", "network", "volume", "plugin", "daemon", "node", "service", "secret", "config"):
        if f.contains(other):
            return False  # we only ever emit image events
    return True


def render(ev: Event) -> bytes:
    return (dumps({
        "status": ev.action, "id": ev.id, "Type": ev.type, "Action": ev.action,
        "Actor": {"ID": ev.id, "Attributes": ev.attributes}, "scope": "local",
        "time": ev.time_nano // 10**9, "timeNano": ev.time_nano}) + "\n").encode()


async def events(ctx: Ctx) -> web.StreamResponse:
    now = time.time()
    f = flt.parse(ctx.query("filters"))
    f.validate(EVENT_FILTERS)
    since = parse_timestamp(ctx.query("since") or "", now) if ctx.query("since") else None
    until = parse_timestamp(ctx.query("until") or "", now) if ctx.query("until") else None
    if since is not None and until is not None and since > until:
        raise InvalidArgument("`since` time must be before `until` time")
    bus = ctx.events
    past, queue, token = bus.subscribe()
    resp = web.StreamResponse()
    resp.content_type = "application/json"
    resp.enable_chunked_encoding()
    try:
        await resp.prepare(ctx.request)
        for ev in past:
            if since is not None and ev.time_nano >= since and (until is None or ev.time_nano <= until) \
                    and matches(f, ev):
                await resp.write(render(ev))
        if until is not None and until <= time.time_ns():
            return resp
        while True:
            timeout = None if until is None else max(0.0, (until - time.time_ns()) / 1e9)
            try:
                ev = await asyncio.wait_for(queue.get(), timeout)
            except asyncio.TimeoutError:
                return resp
            if until is not None and ev.time_nano > until:
                return resp
            if matches(f, ev):
                await resp.write(render(ev))
    finally:
        bus.unsubscribe(token)


def register(router: Router) -> None:
    router.add("GET", "/events", events)
