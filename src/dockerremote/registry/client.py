"""Registry HTTP API v2 client: manifests, tags and blobs of one repository, over every endpoint.

    registries = Registries(mirrors, insecure)                # one per daemon, one aiohttp session
    repo = registries.repository(ref.repository(), auth)       # one repository, one pull
    fetched = await repo.manifest("latest")                   # verified bytes + media type
    await repo.fetch_blob(digest, size, consume)              # consume(piece) on a worker thread;
                                                              # resumed with Range when cut

Each call walks the registry's endpoints in dockerd's order (hosts.py): a mirror that fails in
any way hands over to the next; an https endpoint that cannot be reached hands over to plain
http for insecure registries. The last endpoint's error is the one reported. Authorization
(auth.py) is per endpoint, learnt from its `GET /v2/` challenge or from any later 401.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import aiohttp
from yarl import URL

from dockerremote import __version__
from dockerremote.reference import Reference
from dockerremote.registry import auth as _auth
from dockerremote.registry.auth import AuthConfig, Challenge, TokenCache, TokenError
from dockerremote.registry.blobget import (MAX_REDIRECTS, REDIRECTS, BlobConnections, BlobResponse, BodyReader, Consume,
                                           RequestFailed, next_hop, on_thread, open_blob, tls_for_thread)
from dockerremote.registry.errors import (MAX_ERROR_BODY, BlobInvalid, ConnectFailed, ManifestInvalid,
                                          RegistryError, RegistryUnavailable, Unauthorized, response_error,
                                          transport_text)
from dockerremote.registry.hosts import DEFAULT_CERTS_DIR, Endpoint, Hosts, tls_context
from dockerremote.registry.retry import Attempts, RetryPolicy, parse_retry_after, retryable
from dockerremote.registry.upload import Uploads

log = logging.getLogger(__name__)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX)
ACCEPT = ", ".join(MANIFEST_TYPES)

MAX_MANIFEST = 4 << 20          # containerd's limit too
MAX_TAG_PAGES = 10_000
DOWN_FOR = 30.0                 # an endpoint that could not be reached is tried last for this long
PING_TTL = 600.0                # a learnt challenge is reused for this long

# what a manifest's own mediaType must be, by Content-Type (distribution's unmarshalers)
_MEDIA_TYPE_RULES = {
    DOCKER_MANIFEST: (False, "mediaType in manifest should be '{want}' not '{got}'"),
    DOCKER_LIST: (False, "mediaType in manifest list should be '{want}' not '{got}'"),
    OCI_MANIFEST: (True, "if present, mediaType in manifest should be '{want}' not '{got}'"),
    OCI_INDEX: (True, "if present, mediaType in image index should be '{want}' not '{got}'"),
}
_DIGEST_RE = re.compile(r"^(sha256|sha384|sha512):([a-f0-9]+)$")
_HASH_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}

OnRetry = Callable[[int, float, RegistryError], "Awaitable[None] | None"]
Body = Callable[[], Any]  # makes a request body (bytes, or an async iterator of bytes) afresh


@dataclass(frozen=True)
class Fetched:
    data: bytes              # the exact bytes served, digest verified
    media_type: str          # Content-Type (or the body's mediaType when the server is vague)
    digest: str              # sha256 of data


@dataclass
class _Ping:
    challenges: list[Challenge]
    at: float


class Registries:
    """One per daemon: the endpoints, the learnt challenges and tokens, one aiohttp session, and
    the kept-alive connections blob bodies are read over (blobget.py)."""

    def __init__(self, mirrors: list[str] | tuple[str, ...] = (), insecure: list[str] | tuple[str, ...] = (),
                 max_downloads: int = 3, *, retry: RetryPolicy | None = None,
                 connect_timeout: float = 30.0, read_timeout: float = 60.0,
                 user_agent: str | None = None,
                 certs_dir: str | None = DEFAULT_CERTS_DIR) -> None:
        self.hosts = Hosts(list(mirrors), list(insecure))
        self.max_downloads = max_downloads
        self.retry = retry or RetryPolicy()
        self.certs_dir = certs_dir
        self._tls: dict[Endpoint, Any] = {}
        self.tokens = TokenCache()
        self.user_agent = user_agent or f"dockerremote/{__version__} (compatible; docker/20.10)"
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._pings: dict[Endpoint, _Ping] = {}
        self._ping_locks: dict[Endpoint, asyncio.Lock] = {}
        self._down: dict[Endpoint, float] = {}
        self._proxies = urllib.request.getproxies_environment()
        # blob bodies: read by worker threads, over connections of their own (blobget.py)
        self.blob_connections = BlobConnections(self.user_agent, connect_timeout, read_timeout)
        self._thread_tls: dict[Endpoint, Any] = {}

    # -- lifecycle

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60),
                timeout=self._timeout, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": self.user_agent}, read_bufsize=1 << 20)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.blob_connections.close()

    def repository(self, ref: Reference, auth: AuthConfig | None = None, push: bool = False,
                   meta_headers: dict[str, str] | None = None) -> "Repository":
        return Repository(self, ref.repository(), auth, push, meta_headers or {})

    # -- per-endpoint state shared by every repository

    async def ssl_for(self, ep: Endpoint) -> Any:
        """True: the system's CAs; False: no check; an SSLContext when certs.d/<host> has files."""
        if ep not in self._tls:
            if not ep.url.startswith("https://"):
                self._tls[ep] = None
            else:  # reads files: off the event loop, once per endpoint
                self._tls[ep] = await asyncio.to_thread(tls_context, self.certs_dir, ep.host, ep.verify_tls)
        return self._tls[ep]

    async def thread_tls_for(self, ep: Endpoint) -> Any:
        """ssl_for(ep) as an SSLContext for the blocking blob client (made once per endpoint)."""
        if ep not in self._thread_tls:
            self._thread_tls[ep] = await asyncio.to_thread(tls_for_thread, await self.ssl_for(ep))
        return self._thread_tls[ep]

    def proxy_for(self, url: str) -> str | None:
        """The proxy for url from HTTP(S)_PROXY / NO_PROXY, as Go's ProxyFromEnvironment
        decides: localhost and loopback addresses are always reached directly."""
        if not self._proxies:
            return None
        u = urllib.parse.urlsplit(url)
        host = u.hostname or ""
        if host == "localhost" or _is_loopback(host):
            return None
        if urllib.request.proxy_bypass_environment(host, self._proxies):
            return None
        return self._proxies.get(u.scheme) or self._proxies.get("all")

    def mark_down(self, ep: Endpoint) -> None:
        self._down[ep] = time.monotonic() + DOWN_FOR

    def is_down(self, ep: Endpoint) -> bool:
        until = self._down.get(ep)
        if until is None:
            return False
        if time.monotonic() >= until:
            del self._down[ep]
            return False
        return True

    def learn(self, ep: Endpoint, challenges: list[Challenge]) -> None:
        self._pings[ep] = _Ping(challenges, time.monotonic())

    def known_challenges(self, ep: Endpoint) -> list[Challenge] | None:
        p = self._pings.get(ep)
        return p.challenges if p is not None else None

    async def ping(self, ep: Endpoint) -> list[Challenge]:
        """The endpoint's challenges from `GET /v2/` (cached); RegistryUnavailable if no answer."""
        p = self._pings.get(ep)
        if p is not None and time.monotonic() - p.at < PING_TTL:
            return p.challenges
        lock = self._ping_locks.setdefault(ep, asyncio.Lock())
        async with lock:
            p = self._pings.get(ep)
            if p is not None and time.monotonic() - p.at < PING_TTL:
                return p.challenges
            session = await self.session()
            url = f"{ep.url}/v2/"
            try:
                async with session.get(url, ssl=await self.ssl_for(ep), proxy=self.proxy_for(url),
                                       allow_redirects=True) as resp:
                    await resp.content.read(MAX_ERROR_BODY)
                    challenges = _auth.parse_challenges(resp.headers.getall("WWW-Authenticate", []))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                self.mark_down(ep)
                raise RegistryUnavailable(f'Get "{url}": {transport_text(exc, url)}',
                                          isinstance(exc, aiohttp.ClientConnectorError)) from None
            log.debug("ping %s: %s", ep.url, [c.scheme for c in challenges])
            self.learn(ep, challenges)
            return challenges


class Repository(Uploads):
    """One repository on one registry, for one set of credentials (docker.io: mirrors first)."""

    def __init__(self, registries: Registries, name: Reference, auth: AuthConfig | None, push: bool,
                 meta_headers: dict[str, str]) -> None:
        self.registries = registries
        self.name = name
        self.auth = auth
        self.push = push
        self.scopes = [_auth.scope(name.path, push)]
        self.meta_headers = {k: v for k, v in meta_headers.items() if k.lower().startswith("x-meta-")}
        self._endpoints: list[Endpoint] | None = None

    def __repr__(self) -> str:
        return f"Repository({self.name.name!r}, auth={self.auth!r})"

    # -- public operations

    async def resolve(self, tag_or_digest: str) -> str:
        """The manifest's digest: HEAD, or a verified GET when HEAD does not tell."""
        async def op(ep: Endpoint, final: bool) -> str | None:
            url = self._url(ep, f"manifests/{tag_or_digest}")
            resp = await self._send(ep, "HEAD", url, {"Accept": ACCEPT}, **_retries(ep, final))
            try:
                served = resp.headers.get("Docker-Content-Digest", "")
                if resp.status == 200 and _DIGEST_RE.match(served):
                    if _is_digest(tag_or_digest) and served != tag_or_digest:
                        raise ManifestInvalid(f"manifest verification failed for digest {tag_or_digest}")
                    return served
                return None  # no digest or an error: a GET tells more (HEAD has no error body)
            finally:
                resp.release()

        digest = await self._each(op)
        if digest is not None:
            return digest
        return (await self.manifest(tag_or_digest)).digest

    async def manifest(self, tag_or_digest: str) -> Fetched:
        """GET the manifest with the four Accept types; digest and media type checked."""
        async def op(ep: Endpoint, final: bool) -> Fetched:
            url = self._url(ep, f"manifests/{tag_or_digest}")
            resp = await self._send(ep, "GET", url, {"Accept": ACCEPT}, **_retries(ep, final))
            try:
                if resp.status != 200:
                    raise await self._error(resp, tag_or_digest)
                data = await _read_limited(resp, MAX_MANIFEST, "manifest")
                content_type = resp.headers.get("Content-Type", "")
                served = resp.headers.get("Docker-Content-Digest", "")
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise RegistryUnavailable(f'Get "{_shown(url)}": {transport_text(exc, url)}') from None
            finally:
                resp.release()
            return _check_manifest(data, content_type, tag_or_digest, served)

        try:
            return await self._each(op)
        except Unauthorized as exc:
            # dockerd resolves a tag with HEAD first (a digest with GET): its auth failures say so
            if exc.message.startswith('Get "') and not _is_digest(tag_or_digest):
                exc.message = 'Head "' + exc.message[5:]
                exc.args = (exc.message,)
            raise

    async def tags(self) -> list[str]:
        """Every tag, following the Link header's next pages."""
        async def op(ep: Endpoint, final: bool) -> list[str]:
            url: str | None = self._url(ep, "tags/list")
            out: list[str] = []
            for _ in range(MAX_TAG_PAGES):
                assert url is not None
                resp = await self._send(ep, "GET", url, **_retries(ep, final))
                try:
                    if resp.status != 200:
                        raise await self._error(resp, None)
                    body = await _read_limited(resp, 64 << 20, "tag list")
                    link = resp.headers.get("Link", "")
                    base = resp.url
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    raise RegistryUnavailable(f'Get "{_shown(url)}": {transport_text(exc, url)}') from None
                finally:
                    resp.release()
                try:
                    doc = json.loads(body)
                    page = doc.get("tags") or []
                    if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                        raise ValueError
                except (ValueError, AttributeError):
                    raise RegistryError(f"invalid tag list from {ep.host}") from None
                out += page
                url = _next_link(link, base)
                if url is None:
                    return out
            raise RegistryError(f"tag list of {self.name.familiar_name} does not end")

        return await self._each(op)

    async def fetch_blob(self, digest: str, size: int | None, consume: Consume,
                         on_retry: OnRetry | None = None,
                         on_progress: Callable[[int], None] | None = None) -> None:
        """Stream a blob from offset 0 into `consume`, as served (the caller hashes and verifies).

        consume(piece) runs on a worker thread (the one reading the body), pieces in order, every
        byte once; what it raises ends the fetch and is raised here as it is. on_progress(bytes
        so far) is called on the event loop. A connection cut mid-blob is resumed with
        `Range: bytes=<n>-` (a registry that ignores Range answers 200: its first n bytes are
        skipped). 429 (Retry-After) / 5xx / failures to connect are retried with backoff, at
        most policy.attempts tries without progress. A mirror that fails hands over to the next
        endpoint, continuing at the same offset. `on_retry(failures, delay, error)` is called
        before each wait (delay 0 for an immediate resume). Raises RegistryError subclasses;
        BlobInvalid when the registry serves more or fewer bytes than `size`.
        """
        endpoints = await self._live_endpoints()
        policy = self.registries.retry
        offset = 0
        attempts = Attempts(policy)
        i = 0
        while True:
            ep = endpoints[i]
            url = self._url(ep, f"blobs/{digest}")
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            err: RegistryError | None = None
            progressed = 0
            try:
                resp = await self._send(ep, "GET", url, headers, retry_status=False, retry_transport=False,
                                        follow=self._follow_blob)
            except RegistryError as exc:
                err = exc
            else:
                try:
                    if resp.status not in (200, 206):
                        err = await self._error(resp, None)
                    else:
                        skip = _skip_for(resp, offset, size, digest)
                        body = BodyReader(resp, consume, skip, None if size is None else size - offset,
                                          digest, size, offset, on_progress)
                        await body.read()
                        progressed = body.consumed
                        offset += progressed
                        if body.broke is not None:
                            err = RegistryUnavailable(f'Get "{_shown(url)}": {transport_text(body.broke)}')
                        elif body.skip:
                            err = RegistryUnavailable(f'Get "{_shown(url)}": unexpected EOF')
                finally:
                    resp.release()
                if err is None:
                    if size is None or offset == size:
                        return
                    if resp.content_length is not None:
                        raise BlobInvalid(f"blob {digest} is shorter than its size {size}: {offset} bytes")
                    err = RegistryUnavailable(f'Get "{_shown(url)}": unexpected EOF')
            # -- the attempt failed
            assert err is not None
            if i + 1 < len(endpoints) and not progressed and (ep.mirror or isinstance(err, RegistryUnavailable)):
                log.info("blob %s from %s failed (%s); next endpoint", digest, ep.url, err.message)
                i += 1
                continue
            if not _worth_retrying(err):
                raise err
            delay = attempts.delay_after(err, progressed, err.retry_after)
            log.info("blob %s: %s; retry %d at offset %d in %.2fs", digest, err.message, attempts.failures,
                     offset, delay)
            await attempts.wait(delay, err, on_retry)

    async def blob_bytes(self, digest: str, max_size: int) -> bytes:
        """A small blob (a config) in memory, its digest verified."""
        m = _DIGEST_RE.match(digest)
        if m is None or len(m.group(2)) != _HASH_LEN[m.group(1)]:
            raise BlobInvalid(f"invalid digest {digest!r}")
        h = hashlib.new(m.group(1))
        out = bytearray()

        def consume(piece: bytes) -> None:  # on the reading thread
            out.extend(piece)
            if len(out) > max_size:
                raise BlobInvalid(f"blob {digest} is larger than {max_size} bytes")
            h.update(piece)

        await self.fetch_blob(digest, None, consume)
        if h.hexdigest() != m.group(2):
            raise BlobInvalid(f"blob verification failed for digest {digest}")
        return bytes(out)

    # -- endpoints

    async def _all_endpoints(self) -> list[Endpoint]:
        if self._endpoints is None:
            eps = await self.registries.hosts.endpoints(self.name.domain)
            # mirrors serve pulls only (dockerd's LookupPushEndpoints)
            self._endpoints = [e for e in eps if not e.mirror] if self.push else eps
        return self._endpoints

    async def _live_endpoints(self) -> list[Endpoint]:
        """The endpoints in order, less those that could not be reached lately (all if none can)."""
        eps = await self._all_endpoints()
        return [e for e in eps if not self.registries.is_down(e)] or eps

    async def _each(self, op: Callable[[Endpoint, bool], Awaitable[Any]]) -> Any:
        """Run op(endpoint, final) on each endpoint until one succeeds; else the last error.

        Hand over to the next endpoint: from a mirror on any error (dockerd's continueOnError for
        mirrors), from any endpoint that could not be reached (insecure https → http). Mirrors
        hand over at once; other endpoints retry 429/5xx, and only the final one retries a
        failure to connect.
        """
        endpoints = await self._live_endpoints()
        last: RegistryError | None = None
        for n, ep in enumerate(endpoints):
            more = n + 1 < len(endpoints)
            try:
                return await op(ep, not more)
            except RegistryError as exc:
                last = exc
                if more and (ep.mirror or isinstance(exc, RegistryUnavailable)):
                    log.info("%s: %s; trying the next endpoint", ep.url, exc.message)
                    continue
                raise
        assert last is not None
        raise last

    def _url(self, ep: Endpoint, suffix: str) -> str:
        return f"{ep.url}/v2/{self.name.path}/{suffix}"

    # -- one request: auth, redirects, retries

    async def _authorization(self, ep: Endpoint, method: str, url: str, fresh: bool = False,
                             ) -> tuple[str | None, tuple | None]:
        """The Authorization header for ep (and the token's cache key, to drop it if refused)."""
        if self.auth is not None and self.auth.registrytoken:
            return f"Bearer {self.auth.registrytoken}", None
        challenges = await self.registries.ping(ep)
        for ch in challenges:
            if ch.scheme == "bearer":
                return await self._bearer(ep, ch, method, url, fresh)
        for ch in challenges:
            if ch.scheme == "basic":
                creds = self.auth.basic() if self.auth else None
                if not creds:
                    raise Unauthorized(f'{method.capitalize()} "{_shown(url)}": no basic auth credentials')
                return _auth.basic_authorization(*creds), None
        return None, None

    async def _bearer(self, ep: Endpoint, ch: Challenge, method: str, url: str, fresh: bool,
                      ) -> tuple[str, tuple]:
        tokens = self.registries.tokens
        key = (ch.params.get("realm", ""), ch.params.get("service", ""), tuple(self.scopes),
               self.auth.key if self.auth else "")
        if not fresh:
            cached = tokens.get(key)
            if cached:
                return f"Bearer {cached}", key
        async with tokens.lock(key):  # one fetch per key, however many downloads wait for it
            cached = tokens.get(key)
            if cached and not fresh:
                return f"Bearer {cached}", key
            session = await self.registries.session()
            realm = ch.params.get("realm", "")
            try:
                # the token service is reached like its registry (dockerd shares the transport)
                token, expires_in = await _auth.fetch_token(
                    session, ch, self.scopes, self.auth, ssl=await self.registries.ssl_for(ep),
                    proxy=self.registries.proxy_for(realm))
            except TokenError as exc:
                cls = Unauthorized if exc.code == "UNAUTHORIZED" or exc.http_status == 401 else RegistryError
                raise cls(f'{method.capitalize()} "{_shown(url)}": {exc.message}', exc.code,
                          exc.http_status) from None
            tokens.put(key, token, expires_in)
            return f"Bearer {token}", key

    async def _send(self, ep: Endpoint, method: str, url: str, headers: dict[str, str] | None = None,
                    *, retry_status: bool = True, retry_transport: bool = True,
                    body: Body | None = None, follow: "_Follow | None" = None) -> Any:
        """One request with auth; redirects followed (Authorization kept only on the same origin);
        a refused cached token replaced once; 429/5xx/unreachable retried with backoff when
        asked (a failure to connect is not retried here; fetch_blob() retries it). Returns the
        final response, whatever its status. `body` makes a fresh payload for each attempt.
        `follow` makes the request: aiohttp (_follow) unless told (_follow_blob)."""
        policy = self.registries.retry
        failures = 0
        while True:
            try:
                resp = await self._attempt(ep, method, url, headers, body, follow or self._follow)
            except RegistryUnavailable as exc:
                failures += 1
                # a registry that refuses connections or has no address fails the request at
                # once, as in dockerd; a connection that broke is worth another try
                delay = policy.delay(failures) if retry_transport and not exc.connect_failed else None
                if delay is None:
                    raise
                log.info("%s %s: %s; retry in %.2fs", method, _shown(url), exc.message, delay)
                await asyncio.sleep(delay)
                continue
            if retry_status and retryable(resp.status):
                failures += 1
                after = parse_retry_after(resp.headers.get("Retry-After"))
                delay = policy.delay(failures, after)
                if delay is not None:
                    resp.release()
                    log.info("%s %s: HTTP %d; retry in %.2fs", method, _shown(url), resp.status, delay)
                    await asyncio.sleep(delay)
                    continue
            return resp

    async def _attempt(self, ep: Endpoint, method: str, url: str, headers: dict[str, str] | None,
                       body: Body | None, follow: "_Follow") -> Any:
        authz, key = await self._authorization(ep, method, url)
        resp = await follow(ep, method, url, headers, authz, body)
        if resp.status == 401:
            challenges = _auth.parse_challenges(resp.headers.getall("WWW-Authenticate", []))
            known = self.registries.known_challenges(ep)
            changed = bool(challenges) and known is not None and \
                {c.scheme for c in challenges} != {c.scheme for c in known}
            if changed:  # the registry asks differently than /v2/ said: learn, ask again once
                self.registries.learn(ep, challenges)
                resp.release()
                authz, key = await self._authorization(ep, method, url)
                return await follow(ep, method, url, headers, authz, body)
            if key is not None and not _insufficient_scope(challenges):
                self.registries.tokens.drop(key, authz.split(" ", 1)[1] if authz else "")
                resp.release()
                authz, key = await self._authorization(ep, method, url, fresh=True)
                return await follow(ep, method, url, headers, authz, body)
        return resp

    async def _follow(self, ep: Endpoint, method: str, url: str, headers: dict[str, str] | None,
                      authz: str | None, body: Body | None = None) -> aiohttp.ClientResponse:
        session = await self.registries.session()
        h = {**self.meta_headers, **(headers or {})}
        if authz:
            h["Authorization"] = authz
        origin = URL(url).origin()
        target = URL(url)
        tls = await self.registries.ssl_for(ep)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                resp = await session.request(method, target, headers=h, allow_redirects=False,
                                             data=body() if body is not None else None,
                                             ssl=tls if target.scheme == "https" else None,
                                             proxy=self.registries.proxy_for(str(target)))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                if target.origin() == origin and isinstance(exc, aiohttp.ClientConnectorError):
                    self.registries.mark_down(ep)  # could not even connect: try it last for a while
                raise RegistryUnavailable(f'{method.capitalize()} "{_shown(str(target), origin)}": '
                                          f'{transport_text(exc, url)}',
                                          isinstance(exc, aiohttp.ClientConnectorError)) from None
            log.debug("%s %s -> %d", method, _shown(str(target), origin), resp.status)
            location = resp.headers.get("Location")
            if resp.status not in REDIRECTS or not location:
                return resp
            resp.release()
            if resp.status == 303:
                method = "GET"
                body = None
            target = next_hop(target, location, origin, h)
        raise RegistryError(f'{method.capitalize()} "{_shown(url)}": stopped after {MAX_REDIRECTS} redirects')

    async def _follow_blob(self, ep: Endpoint, method: str, url: str, headers: dict[str, str] | None,
                           authz: str | None, body: Body | None = None) -> BlobResponse:
        """_follow() for a blob GET, by the blocking client on a worker thread: its body is then
        read on a worker thread too (BodyReader), never on the event loop."""
        assert method == "GET" and body is None
        h = {**self.meta_headers, **(headers or {})}
        if authz:
            h["Authorization"] = authz
        tls = await self.registries.thread_tls_for(ep)
        try:
            return await on_thread(open_blob, self.registries.blob_connections, url, h, tls,
                                    self.registries.proxy_for, on_abandon=BlobResponse.release)
        except RequestFailed as exc:
            origin = URL(url).origin()
            connect_failed = isinstance(exc.error, ConnectFailed)
            if connect_failed and URL(exc.url).origin() == origin:
                self.registries.mark_down(ep)  # could not even connect: try it last for a while
            raise RegistryUnavailable(f'Get "{_shown(exc.url, origin)}": {transport_text(exc.error, exc.url)}',
                                      connect_failed) from None

    async def _error(self, resp: Any, tag_or_digest: str | None) -> RegistryError:
        ref = None
        if tag_or_digest is not None:
            r = (Reference(self.name.domain, self.name.path, None, tag_or_digest) if _is_digest(tag_or_digest)
                 else Reference(self.name.domain, self.name.path, tag_or_digest))
            ref = r.familiar
        return await response_error(resp, ref=ref, name=self.name.familiar_name)


_Follow = Callable[..., Awaitable[Any]]  # _follow / _follow_blob: (ep, method, url, headers, authz, body)


# --------------------------------------------------------------------------- helpers

def _retries(ep: Endpoint, final: bool) -> dict[str, bool]:
    """Mirrors hand over instead of retrying; others retry statuses, the final one also dial failures."""
    return {"retry_status": final or not ep.mirror, "retry_transport": final}


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_digest(s: str) -> bool:
    return ":" in s


def _shown(url: str, origin: URL | None = None) -> str:
    """A URL for messages and logs: the query of a foreign (storage) URL may hold a signature."""
    u = URL(url)
    if origin is not None and u.origin() != origin:
        return str(u.with_query(None))
    return url


def _insufficient_scope(challenges: list[Challenge]) -> bool:
    return any(c.scheme == "bearer" and c.params.get("error") == "insufficient_scope" for c in challenges)


def _worth_retrying(err: RegistryError) -> bool:
    if isinstance(err, RegistryUnavailable):
        return True
    return err.http_status is not None and retryable(err.http_status)


def _skip_for(resp: BlobResponse, offset: int, size: int | None, digest: str) -> int:
    """Bytes to drop from the start of this response so the stream continues at `offset`."""
    if resp.status == 206:
        m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
        if m is None:
            raise BlobInvalid(f"blob {digest}: partial response without a Content-Range")
        start = int(m.group(1))
        total = m.group(3)
        if total != "*" and size is not None and int(total) != size:
            raise BlobInvalid(f"blob {digest} has {total} bytes, its descriptor says {size}")
        if start > offset:
            raise BlobInvalid(f"blob {digest}: asked for bytes from {offset}, got from {start}")
        return offset - start
    length = resp.content_length
    if length is not None and size is not None and length != size:
        raise BlobInvalid(f"blob {digest} has {length} bytes, its descriptor says {size}")
    return offset  # 200: the whole blob again (Range ignored): skip what the caller already has


async def _read_limited(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    if resp.content_length is not None and resp.content_length > limit:
        raise RegistryError(f"{what} too big: {resp.content_length} bytes (limit {limit})")
    data = await resp.content.read(limit + 1)
    while len(data) <= limit:
        more = await resp.content.read(limit + 1 - len(data))
        if not more:
            break
        data += more
    if len(data) > limit:
        raise RegistryError(f"{what} too big: more than {limit} bytes")
    return data


def _next_link(link: str, base: URL) -> str | None:
    for part in link.split(","):
        m = re.match(r'\s*<([^>]*)>\s*;(.*)$', part)
        if m and re.search(r'rel\s*=\s*"?next"?', m.group(2)):
            return str(base.join(URL(m.group(1))))
    return None


def _sniff(doc: dict) -> str:
    """The media type of a manifest served with a vague Content-Type, from its shape."""
    mt = doc.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    if doc.get("schemaVersion") == 1:
        return SCHEMA1_SIGNED if "signatures" in doc else SCHEMA1
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc or "layers" in doc:
        return OCI_MANIFEST
    return ""


def _check_manifest(data: bytes, content_type: str, tag_or_digest: str, served_digest: str) -> Fetched:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    ct = content_type.split(";", 1)[0].strip().lower()
    if ct == SCHEMA1_SIGNED:
        # its digest is of the payload without the JWS signatures; pulls refuse schema1 anyway,
        # so it is handed over as served, unverified, under the registry's digest
        return Fetched(data, ct, served_digest if _DIGEST_RE.match(served_digest) else digest)
    m = _DIGEST_RE.match(tag_or_digest) if _is_digest(tag_or_digest) else None
    if _is_digest(tag_or_digest):
        if m is None or len(m.group(2)) != _HASH_LEN[m.group(1)] or \
                hashlib.new(m.group(1), data).hexdigest() != m.group(2):
            raise ManifestInvalid(f"manifest verification failed for digest {tag_or_digest}")
    elif served_digest.startswith("sha256:") and served_digest != digest:
        raise ManifestInvalid(f"manifest verification failed for digest {served_digest}")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ManifestInvalid(f"invalid manifest: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestInvalid("invalid manifest: not a JSON object")
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise ManifestInvalid("invalid manifest: mediaType is not a string")
    if ct in _MEDIA_TYPE_RULES:
        optional, text = _MEDIA_TYPE_RULES[ct]
        if (body_type or "") != ct and not (optional and not body_type):
            raise ManifestInvalid(text.format(want=ct, got=body_type or ""))
        return Fetched(data, ct, digest)
    if ct in (SCHEMA1, SCHEMA1_SIGNED):
        return Fetched(data, ct, digest)
    return Fetched(data, _sniff(doc) or ct, digest)
