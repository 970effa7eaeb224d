"""POST /auth: what `docker login` and docker-py's login() ask the daemon (registry/login.py)."""

from __future__ import annotations

from aiohttp import web

from dockerremote.api.app import Ctx, Router
from dockerremote.api.jsonstream import json_response
from dockerremote.api.routes.pull import puller
from dockerremote.errors import InvalidArgument

MAX_BODY = 1 << 20


async def post_auth(ctx: Ctx) -> web.StreamResponse:
    from dockerremote.registry.auth import login_from_body
    from dockerremote.registry.login import login

    body = await ctx.request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise InvalidArgument("request body too large")
    try:
        auth = login_from_body(body)
    except ValueError as exc:  # dockerd answers 500 with the decoder's text: a client's mistake
        raise InvalidArgument(str(exc)) from None
    registries = puller(ctx).registries  # the daemon's registry client (registry/client.py)
    status, identity = await login(registries, auth)  # type: ignore[arg-type]
    return json_response({"IdentityToken": identity, "Status": status})


def register(router: Router) -> None:
    router.add("POST", "/auth", post_auth)
