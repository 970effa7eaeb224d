"""`docker login` through the daemon (POST /auth): check credentials against a registry.

What dockerd 20.10 does (registry.loginV2 over LookupPushEndpoints): for each endpoint of the
server address, mirrors excluded (credentials for a registry never go to a mirror), `GET /v2/`;
a registry that asks for nothing accepts any login; a Basic challenge is answered with the
credentials, a Bearer one by the token service (asked for a refresh token, which comes back as
the IdentityToken). An endpoint that is not a registry at all (no answer, or no
`Docker-Distribution-API-Version`) hands over to the next; the last error is the answer.
Nothing is cached: a login checks the credentials it is given, now.

Texts and statuses as dockerd's:
    200 {"IdentityToken": "", "Status": "Login Succeeded"}
    500 login attempt to http://host/v2/ failed with status: 401 Unauthorized   (Basic refused)
    500 Get "http://host/v2/": no basic auth credentials
    401 Get "http://host/v2/": unauthorized: incorrect username or password     (token refused)
    500 Get "http://host/v2/": dial tcp 127.0.0.1:1: connect: connection refused
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from dockerremote.reference import DEFAULT_DOMAIN
from dockerremote.registry import auth as _auth
from dockerremote.registry.auth import AuthConfig, TokenError
from dockerremote.registry.errors import (LoginUnauthorized, RegistryError, RegistryUnavailable,
                                          transport_text)
from dockerremote.registry.hosts import Endpoint

if TYPE_CHECKING:
    from dockerremote.registry.client import Registries

MAX_BODY = 64 << 10
# the names the CLI and clients use for Docker Hub: its login goes to registry-1.docker.io
_HUB_NAMES = {"index.docker.io", "registry-1.docker.io", "docker.io"}


class _NotARegistry(Exception):
    """This endpoint does not speak the registry API: try the next one (dockerd's fallbackError)."""

    def __init__(self, error: RegistryError) -> None:
        self.error = error


def login_domain(server_address: str) -> str:
    """The registry a login is for: the host of serveraddress (Docker Hub when empty)."""
    if not server_address:
        return DEFAULT_DOMAIN
    url = server_address if server_address.startswith(("http://", "https://")) else "https://" + server_address
    host = urlsplit(url).netloc
    return DEFAULT_DOMAIN if host in _HUB_NAMES or not host else host


async def login(registries: "Registries", auth: AuthConfig) -> tuple[str, str]:
    """("Login Succeeded", identity token) or the registry's refusal as a RegistryError."""
    domain = login_domain(auth.serveraddress)
    endpoints = [ep for ep in await registries.hosts.endpoints(domain) if not ep.mirror]
    last: RegistryError | None = None
    for ep in endpoints:
        try:
            return await _login_at(registries, ep, auth)
        except _NotARegistry as exc:
            last = exc.error
    assert last is not None
    raise last


async def _login_at(registries: "Registries", ep: Endpoint, auth: AuthConfig) -> tuple[str, str]:
    session = await registries.session()
    url = f"{ep.url}/v2/"
    ssl = await registries.ssl_for(ep)
    proxy = registries.proxy_for(url)

    async def get(headers: dict[str, str]) -> aiohttp.ClientResponse:
        try:
            async with session.get(url, headers=headers, ssl=ssl, proxy=proxy, allow_redirects=True) as resp:
                await resp.content.read(MAX_BODY)
                return resp
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise _NotARegistry(RegistryUnavailable(f'Get "{url}": {transport_text(exc, url)}')) from None

    ping = await get({})
    is_registry = "registry/2.0" in ping.headers.get("Docker-Distribution-API-Version", "")
    challenges = _auth.parse_challenges(ping.headers.getall("WWW-Authenticate", [])) if ping.status == 401 else []
    identity = auth.identitytoken
    headers: dict[str, str] = {}
    bearer = next((c for c in challenges if c.scheme == "bearer"), None)
    basic = next((c for c in challenges if c.scheme == "basic"), None)
    if bearer is not None:
        try:
            doc = await _auth.fetch_token_response(session, bearer, [], auth, ssl=ssl,
                                                   proxy=registries.proxy_for(bearer.params.get("realm", "")),
                                                   offline=True)
        except TokenError as exc:
            cls = LoginUnauthorized if exc.code == "UNAUTHORIZED" or exc.http_status == 401 else RegistryError
            raise cls(f'Get "{url}": {exc.message}', exc.code, exc.http_status) from None
        headers["Authorization"] = f"Bearer {doc['token']}"
        refresh = doc.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            identity = refresh
    elif basic is not None:
        creds = auth.basic()
        if not creds:
            raise RegistryError(f'Get "{url}": no basic auth credentials')
        headers["Authorization"] = _auth.basic_authorization(*creds)
    resp = ping if not headers and ping.status == 200 else await get(headers)
    if resp.status == 200:
        return "Login Succeeded", identity
    try:
        phrase = HTTPStatus(resp.status).phrase
    except ValueError:
        phrase = ""
    err = RegistryError(f"login attempt to {url} failed with status: {resp.status} {phrase}".rstrip())
    if not is_registry:
        raise _NotARegistry(err)
    raise err
