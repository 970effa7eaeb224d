"""GET /images/search: the index's v1 search (registry/search.py), filtered as dockerd 20.10 does.

Checks in dockerd's order: `limit` (Go's Atoi; default 25), `filters` (is-automated and
is-official: true/false; stars: a minimum), then the search itself, whose range check of the
limit comes after the index was reached (so an unreachable index is reported first).
"""

from __future__ import annotations

from aiohttp import web

from dockerremote.api import filters as flt
from dockerremote import gojson
from dockerremote.api.app import Ctx, Router
from dockerremote.api.jsonstream import json_response
from dockerremote.errors import DockerRemoteError, InvalidArgument

SEARCH_FILTERS = {"is-automated", "is-official", "stars"}
DEFAULT_LIMIT = 25


def _flag(f: flt.Filters, key: str) -> bool | None:
    """is-automated / is-official: None when absent; UniqueExactMatch on true, then false."""
    if not f.contains(key):
        return None
    values = f.get(key)
    if not values or values == ["true"]:
        return True
    if values == ["false"]:
        return False
    raise flt.invalid_filter(key, values)


async def search_images(ctx: Ctx) -> web.StreamResponse:
    from dockerremote.api.routes.pull import puller
    from dockerremote.registry.auth import decode_registry_auth
    from dockerremote.registry.search import search

    limit_text = ctx.query("limit") or ""
    limit = gojson.parse_int(limit_text, "Atoi") if limit_text else DEFAULT_LIMIT
    f = flt.parse(ctx.query("filters"))
    f.validate(SEARCH_FILTERS)
    automated, official = _flag(f, "is-automated"), _flag(f, "is-official")
    stars = 0
    for value in f.get("stars"):
        try:
            stars = max(stars, gojson.parse_int(value, "Atoi"))
        except DockerRemoteError:
            raise InvalidArgument(f"Invalid filter 'stars={value}'") from None
    auth = decode_registry_auth(ctx.request.headers.get("X-Registry-Auth"))
    meta = {k: v for k, v in ctx.request.headers.items() if k.lower().startswith("x-meta-")}
    results = await search(puller(ctx).registries, ctx.query("term") or "", limit, auth, meta)
    kept = [r for r in results
            if (automated is None or r["is_automated"] == automated)
            and (official is None or r["is_official"] == official)
            and (not f.contains("stars") or r["star_count"] >= stars)]
    return json_response(kept)


def register(router: Router) -> None:
    router.add("GET", "/images/search", search_images)
