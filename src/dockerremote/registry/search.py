"""The index's v1 search API, asked as dockerd 20.10 asks it (registry/service.go Search).

    results = await search(registries, "127.0.0.1:5000/alpine", 25, auth, meta_headers)

The term names its index like a reference does (`host[:port]/rest`; anything else is Docker
Hub's index, https://index.docker.io/v1/). Another index is first pinged at `/v1/_ping`
(any HTTP answer will do), over https, then over http for an insecure registry; then
`GET <index>/v1/search?q=<rest>&n=<limit>` with `X-Docker-Token: true`, Basic credentials when
the caller has a username, and the request's X-Meta-* headers. An identity token (docker
login to a token server) is exchanged for a bearer token of scope `registry:catalog:search`.
Errors carry dockerd's texts; they are all 500 but the limit's (400).
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import aiohttp
from yarl import URL

from dockerremote.errors import DockerRemoteError, InvalidArgument
from dockerremote.registry import auth as _auth
from dockerremote.registry.auth import AuthConfig
from dockerremote.registry.errors import transport_text
from dockerremote.registry.hosts import Endpoint

INDEX_NAME = "docker.io"
INDEX_SERVER = "https://index.docker.io/v1/"
MAX_BODY = 16 << 20
_FIELDS = (("star_count", int, 0), ("is_official", bool, False), ("name", str, ""),
           ("is_automated", bool, False), ("description", str, ""))
_GO_TYPES = {int: "int", bool: "bool", str: "string"}
_JSON_KINDS = {list: "array", dict: "object", str: "string", bool: "bool", int: "number", float: "number"}


def split_term(term: str) -> tuple[str, str]:
    """(index name, remote name) as splitReposSearchTerm: a first part with `.`/`:` or
    `localhost` names an index; anything else searches Docker Hub's."""
    first, sep, rest = term.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        return INDEX_NAME, term
    return first, rest


def index_name(name: str) -> str:
    """ValidateIndexName: index.docker.io is docker.io; no hyphen at either end."""
    if name == "index.docker.io":
        name = INDEX_NAME
    if name.startswith("-") or name.endswith("-"):
        raise DockerRemoteError(f"invalid index name ({name}). Cannot begin or end with a hyphen")
    return name


async def search(registries: Any, term: str, limit: int, auth: AuthConfig | None,
                 meta_headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The index's results, each with dockerd's five fields in dockerd's order."""
    if "://" in term:
        raise DockerRemoteError('Invalid repository name (ex: "registry.domain.tld/myrepos")')
    name, remote = split_term(term)
    name = index_name(name)
    session = await registries.session()
    headers = {k: v for k, v in (meta_headers or {}).items() if k.lower().startswith("x-meta-")}
    if name == INDEX_NAME:
        base, ep = INDEX_SERVER, Endpoint("https://index.docker.io")
        if remote.startswith("library/"):  # "library/foo" is stored (and searched) as "foo"
            remote = remote.split("/", 1)[1]
    else:
        base, ep = await _v1_endpoint(registries, session, name, headers)
    if not 1 <= limit <= 100:
        raise InvalidArgument(f"Limit {limit} is outside the range of [1, 100]")
    url = f"{base}search?q={urllib.parse.quote_plus(remote, safe='')}&n={limit}"
    headers["X-Docker-Token"] = "true"
    authorization = await _authorization(registries, session, ep, auth, name)
    if authorization:
        headers["Authorization"] = authorization
    try:
        # encoded=True: the query goes as Go's QueryEscape wrote it (yarl would turn %2F into /)
        async with session.get(URL(url, encoded=True), headers=headers, ssl=await registries.ssl_for(ep),
                               proxy=registries.proxy_for(url), allow_redirects=True) as resp:
            status = resp.status
            body = await resp.content.read(MAX_BODY)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise DockerRemoteError(f'Get "{url}": {transport_text(exc, url)}') from None
    if status != 200:
        raise DockerRemoteError(f"Unexpected status code {status}")
    return _results(body)


async def _v1_endpoint(registries: Any, session: aiohttp.ClientSession, name: str,
                       headers: dict[str, str]) -> tuple[str, Endpoint]:
    """newV1Endpoint + validateEndpoint: https, or http for an insecure registry."""
    insecure = await registries.hosts.is_insecure(name)
    https = Endpoint(f"https://{name}", verify_tls=not insecure)
    err = await _ping(registries, session, https, headers)
    if err is None:
        return f"https://{name}/v1/", https
    if not insecure:
        raise DockerRemoteError(
            f"invalid registry endpoint https://{name}/v1/: {err}. If this private registry supports only "
            f"HTTP or HTTPS with an unknown CA certificate, please add `--insecure-registry {name}` to the "
            "daemon's arguments. In the case of HTTPS, if you have access to the registry's CA certificate, "
            f"no need for the flag; simply place the CA certificate at /etc/docker/certs.d/{name}/ca.crt")
    http = Endpoint(f"http://{name}", verify_tls=False)
    err2 = await _ping(registries, session, http, headers)
    if err2 is None:
        return f"http://{name}/v1/", http
    raise DockerRemoteError(f'invalid registry endpoint "http://{name}/v1/". HTTPS attempt: {err}. '
                            f"HTTP attempt: {err2}")


async def _ping(registries: Any, session: aiohttp.ClientSession, ep: Endpoint, headers: dict[str, str]) -> str | None:
    """None if `<ep>/v1/_ping` answers at all (dockerd takes any status), else why not."""
    url = f"{ep.url}/v1/_ping"
    try:
        async with session.get(url, headers=headers, ssl=await registries.ssl_for(ep),
                               proxy=registries.proxy_for(url), allow_redirects=True) as resp:
            await resp.content.read(MAX_BODY)
        return None
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return f'Get "{url}": {transport_text(exc, url)}'


async def _authorization(registries: Any, session: aiohttp.ClientSession, ep: Endpoint,
                         auth: AuthConfig | None, name: str) -> str | None:
    if auth is None:
        return None
    if auth.identitytoken and auth.username and name != INDEX_NAME:
        token = await _search_token(registries, session, ep, auth)
        if token:
            return f"Bearer {token}"
    creds = auth.basic()
    if creds and creds[0]:
        return _auth.basic_authorization(*creds)
    return None


async def _search_token(registries: Any, session: aiohttp.ClientSession, ep: Endpoint,
                        auth: AuthConfig) -> str | None:
    """A bearer token for registry:catalog:search from the registry's /v2/ challenge, if it has one."""
    try:
        challenges = await registries.ping(ep)
    except DockerRemoteError:
        return None
    for ch in challenges:
        if ch.scheme == "bearer":
            try:
                token, _ = await _auth.fetch_token(session, ch, ["registry:catalog:search"], auth,
                                                   ssl=await registries.ssl_for(ep),
                                                   proxy=registries.proxy_for(ch.params.get("realm", "")))
            except DockerRemoteError as exc:
                raise DockerRemoteError(exc.message) from None
            return token
    return None


def _results(body: bytes) -> list[dict[str, Any]]:
    """SearchResults.results re-encoded with dockerd's fields, order and zero values."""
    prefix = "error decoding registry search results: "
    try:
        doc = json.loads(body)
    except ValueError as exc:
        text = "unexpected EOF" if not body.strip() else f"invalid character {chr(body.strip()[0])!r} " \
                                                        "looking for beginning of value"
        raise DockerRemoteError(prefix + ("EOF" if not body.strip() else text)) from exc
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise DockerRemoteError(prefix + f"json: cannot unmarshal {_JSON_KINDS.get(type(doc), 'value')} into "
                                "Go value of type registry.SearchResults")
    items = doc.get("results")
    if items is None:
        return []
    if not isinstance(items, list):
        raise DockerRemoteError(prefix + f"json: cannot unmarshal {_JSON_KINDS.get(type(items), 'value')} into "
                                "Go struct field SearchResults.results of type []registry.SearchResult")
    out = []
    for item in items:
        if not isinstance(item, dict):
            item = {}
        row: dict[str, Any] = {}
        for key, kind, zero in _FIELDS:
            value = item.get(key, zero)
            if value is None:
                value = zero
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise DockerRemoteError(prefix + f"json: cannot unmarshal {_JSON_KINDS.get(type(value), 'value')} "
                                        f"into Go struct field SearchResult.results.{key} of type {_GO_TYPES[kind]}")
            row[key] = value
        out.append(row)
    return out
