"""The aiohttp application: version prefixes, routing, common headers, errors → HTTP.

One catch-all aiohttp route hands every request to our own small router, because
dockerd's paths are not aiohttp's: `{name}` is greedy across `/` and `:`, and any path
may carry a `/vX.Y` prefix that selects the response shape.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

from dockerremote import ENGINE_VERSION, __version__
from dockerremote.api import versions
from dockerremote.api.jsonstream import dumps
from dockerremote.api.versions import ApiVersion
from dockerremote.config import Settings
from dockerremote.errors import DockerRemoteError
from dockerremote.events import EventBus
from dockerremote.store.images import ImageStore

log = logging.getLogger(__name__)

Handler = Callable[["Ctx"], Awaitable[web.StreamResponse]]

SERVER_HEADER = f"Docker/{ENGINE_VERSION}+dockerremote.{__version__} (linux)"
_VERSION_PREFIX = re.compile(r"^/v([0-9.]+)(/.*)$")

STORE_KEY = web.AppKey("store", ImageStore)
SETTINGS_KEY = web.AppKey("settings", Settings)
# Per-daemon objects a route module makes on first use (e.g. the registry client); each one
# with an async close() is closed when the app shuts down.
SERVICES_KEY = web.AppKey("services", dict)


@dataclass
class Ctx:
    """What a handler gets: the request, the URL's API version and path parameters."""

    request: web.Request
    version: ApiVersion
    params: dict[str, str]
    store: ImageStore
    settings: Settings
    events: EventBus

    def query(self, name: str, default: str | None = None) -> str | None:
        return self.request.query.get(name, default)

    def query_bool(self, name: str, default: bool = False) -> bool:
        value = self.request.query.get(name)
        if value is None:
            return default
        return value.strip().lower() not in ("", "0", "no", "false", "none")


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>.+)", pattern)
        self._routes.append((method, re.compile(f"^{regex}$"), handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        for m, regex, handler in self._routes:
            if m == method:
                found = regex.match(path)
                if found:
                    return handler, found.groupdict()
        return None


def error_response(status: int, message: str) -> web.Response:
    return web.Response(body=(dumps({"message": message}) + "\n").encode(), status=status,
                        content_type="application/json")


def _common_headers(resp: web.StreamResponse, version: str, experimental: bool = True) -> None:
    resp.headers["Server"] = SERVER_HEADER
    resp.headers["Api-Version"] = version
    resp.headers["Ostype"] = "linux"
    if experimental:
        resp.headers["Docker-Experimental"] = "false"


def make_app(store: ImageStore, settings: Settings) -> web.Application:
    from dockerremote.api.routes import archive, auth, create, events, images, pull, push, search, system

    bus = EventBus()
    router = Router()
    for module in (system, auth, events, create, archive, search, push, images, pull):  # archive's /images/get before images/{name}
        module.register(router)

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        routed = request.get("routed")
        if routed:  # dockerd leaves Docker-Experimental off its version-check errors
            _common_headers(response, versions.render(versions.MAX_VERSION),
                            experimental=routed != "version-error")

    async def dispatch(request: web.Request) -> web.StreamResponse:
        path = request.path
        version_text = None
        m = _VERSION_PREFIX.match(path)
        if m:
            version_text, path = m.group(1), m.group(2)
        method = request.method
        if method == "OPTIONS":  # dockerd answers any OPTIONS (CORS preflight) with its headers
            request["routed"] = True
            return web.Response(status=200)
        found = router.match("GET" if method == "HEAD" and path == "/_ping" else method, path)
        if found is None:
            return error_response(404, "page not found")
        request["routed"] = True
        handler, params = found
        try:
            try:
                version = versions.check(version_text) if version_text else versions.MAX_VERSION
            except DockerRemoteError:
                request["routed"] = "version-error"
                raise
            api_version = ApiVersion(version)
            request[versions.REQUEST_KEY] = api_version  # streams shape their lines by it (jsonstream)
            ctx = Ctx(request, api_version, params, store, settings, bus)
            return await handler(ctx)
        except DockerRemoteError as exc:
            return error_response(exc.status, exc.message)
        except web.HTTPException:
            raise
        except Exception as exc:  # the last net: a 500 with the text, and the trace in our log
            log.exception("%s %s failed", method, request.path)
            return error_response(500, str(exc) or exc.__class__.__name__)

    app = web.Application()
    app[STORE_KEY] = store
    app[SETTINGS_KEY] = settings
    app[SERVICES_KEY] = {}

    async def close_services(app: web.Application) -> None:
        for service in reversed(list(app[SERVICES_KEY].values())):
            close = getattr(service, "close", None)
            if close is not None:
                await close()

    app.on_cleanup.append(close_services)
    app.on_response_prepare.append(on_prepare)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
