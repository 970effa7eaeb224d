"""Pull: POST /images/create?fromImage=... (the registry half of /images/create)."""

from __future__ import annotations

from aiohttp import web

from dockerremote.api.app import Ctx
from dockerremote.errors import DockerRemoteError


async def pull_image(ctx: Ctx) -> web.StreamResponse:
    raise DockerRemoteError("pull is not implemented yet")
