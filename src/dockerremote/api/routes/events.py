"""GET /events: image events as dockerd 20.10 writes them, replayed for since/until, then live.

`since` and `until` are Unix times (`<seconds>[.<fraction>]`, as the CLI sends them after
turning durations and dates into times). Either one replays the kept events (the last 256)
up to `until`; an `until` in the past ends the stream after the replay, one in the future ends
it then. Filters follow dockerd's events.Filter: `type`, `event`, `image` (the ID, the name, or
either without its tag), `label` (on the attributes), `scope`; keys of other object types
match an image event by prefix of its ID or name (a quirk kept), unknown keys are ignored.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from dockerremote import reference
from dockerremote.api import filters as flt
from dockerremote import gojson
from dockerremote.api.app import Ctx, Router
from dockerremote.api.jsonstream import dumps
from dockerremote.errors import InvalidArgument
from dockerremote.events import Event

# dockerd's fuzzyMatchName filters: a value matches the actor's ID or name by prefix
_FUZZY = ("container", "plugin", "volume", "network", "node", "service", "secret", "config", "daemon")
_FUZZY_EVENTS = ("health_status", "exec_create", "exec_start")
TICK = 1.0  # seconds between checks that the watcher is still there


def parse_timestamp(value: str) -> int:
    """timetypes.ParseTimestamps: `<seconds>[.<fraction>]` → nanoseconds; Go's ParseInt errors (500)."""
    sec, dot, frac = value.partition(".")
    seconds = gojson.parse_int(sec)
    nanos = 0
    if dot:
        n = gojson.parse_int(frac)
        nanos = int(n * 10.0 ** (9 - len(frac)))  # "should already be in nanoseconds" (dockerd)
    return seconds * 10**9 + nanos


def _strip_tag(name: str) -> str:
    try:
        return reference.parse(name).familiar_name
    except InvalidArgument:
        return name


def _fuzzy(f: flt.Filters, key: str, *sources: str) -> bool:
    values = f.get(key)
    return not values or any(s.startswith(v) for v in values for s in sources)


def matches(f: flt.Filters, ev: Event) -> bool:
    """dockerd's events.Filter.Include for an image event."""
    if any(v in _FUZZY_EVENTS for v in f.get("event")):  # then every event value is a prefix
        if not _fuzzy(f, "event", ev.action):
            return False
    elif not f.exact_match("event", ev.action):
        return False
    if not f.exact_match("type", ev.type):
        return False
    if f.contains("scope") and not f.exact_match("scope", "local"):
        return False
    name = ev.attributes.get("name", "")
    for key in _FUZZY:
        if not _fuzzy(f, key, ev.id, name):
            return False
    if f.contains("image") and not any(f.exact_match("image", v) for v in
                                       (ev.id, name, _strip_tag(ev.id), _strip_tag(name))):
        return False
    return not f.contains("label") or f.match_kv_list("label", ev.attributes)


def render(ev: Event) -> bytes:
    """events.Message as Go's json.Encoder writes it: HTML escaped, attributes sorted, an empty
    id left out (the prune event), one message per line."""
    msg: dict = {"status": ev.action}
    if ev.id:
        msg["id"] = ev.id
    msg.update({"Type": ev.type, "Action": ev.action,
                "Actor": {"ID": ev.id, "Attributes": dict(sorted(ev.attributes.items()))},
                "scope": "local", "time": ev.time_nano // 10**9, "timeNano": ev.time_nano})
    text = dumps(msg).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (text + "\n").encode()


async def events(ctx: Ctx) -> web.StreamResponse:
    since_text, until_text = ctx.query("since") or "", ctx.query("until") or ""
    since = parse_timestamp(since_text) if since_text else None
    until = parse_timestamp(until_text) if until_text else None
    if since is not None and until is not None and until < since:
        raise InvalidArgument(f"`since` time ({since_text}) cannot be after `until` time ({until_text})")
    f = flt.parse(ctx.query("filters"))
    bus = ctx.events
    past, queue, token = bus.subscribe()
    resp = web.StreamResponse()
    resp.content_type = "application/json"
    resp.enable_chunked_encoding()
    try:
        await resp.prepare(ctx.request)
        if since is not None or until is not None:  # dockerd replays only when asked for a window
            for ev in past:
                if (since is None or ev.time_nano >= since) and (until is None or ev.time_nano <= until) \
                        and matches(f, ev):
                    await resp.write(render(ev))
        if until is not None and until <= time.time_ns():
            return resp
        getter: asyncio.Future[Event] | None = None
        try:
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(queue.get())
                left = None if until is None else (until - time.time_ns()) / 1e9
                if left is not None and left <= 0:
                    return resp
                # look up now and then: a watcher whose client left, or a daemon shutting
                # down, ends here instead of waiting for the next event
                done, _ = await asyncio.wait({getter}, timeout=TICK if left is None else min(TICK, left))
                if not done:
                    if _gone(ctx.request):
                        return resp
                    continue
                ev, getter = getter.result(), None
                if until is not None and ev.time_nano > until:
                    return resp
                if matches(f, ev):
                    await resp.write(render(ev))
        finally:
            if getter is not None:
                getter.cancel()
    except ConnectionError:  # the client went away
        return resp
    finally:
        bus.unsubscribe(token)


def _gone(request: web.Request) -> bool:
    """The client hung up, or the server is shutting down (aiohttp's protocol says force-close)."""
    transport = request.transport
    return transport is None or transport.is_closing() or bool(getattr(request.protocol, "_force_close", False))


def register(router: Router) -> None:
    router.add("GET", "/events", events)
