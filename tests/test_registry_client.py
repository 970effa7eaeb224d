"""The registry client against a real docker-registry (anonymous, htpasswd, token), through a
fault-injecting proxy where a test needs the network to misbehave."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from dockerremote import reference
from dockerremote.errors import DigestMismatch
from dockerremote.registry import errors as rerr
from dockerremote.registry.auth import AuthConfig, TokenCache, decode_registry_auth, parse_challenges
from dockerremote.registry.client import (DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Registries,
                                          Repository)
from dockerremote.registry.hosts import Endpoint, Hosts, validate_mirror
from dockerremote.registry.retry import RetryPolicy, parse_retry_after
from tests.support.proxy import FaultProxy
from tests.support.registry import Registry, free_port, have_registry, non_loopback_ip, start_registry
from tests.support.seed import Pushed, make_layer, push_image, push_index, sha256

pytestmark = pytest.mark.skipif(not have_registry(), reason="docker-registry is not installed")

FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(repo: Repository, digest: str, size: int | None, on_retry: Any = None) -> bytes:
    pieces: list[bytes] = []
    await repo.fetch_blob(digest, size, pieces.append, on_retry=on_retry)
    return b"".join(pieces)


def ref(s: str) -> reference.Reference:
    return reference.parse(s)


class Seeded:
    """One registry with the images every read-only test uses."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self.docker = push_image(reg, "team/app", "docker", [make_layer(1, 400_000), make_layer(2, 3000)])
        self.oci = push_image(reg, "team/app", "oci", [make_layer(3, 2000)], fmt="oci", compression="zstd")
        amd = push_image(reg, "team/app", None, [make_layer(4, 1000)], platform="linux/amd64")
        arm = push_image(reg, "team/app", None, [make_layer(5, 1000)], fmt="docker", platform="linux/arm64/v8")
        self.children = {"linux/amd64": amd, "linux/arm64/v8": arm}
        self.list_digest = push_index(reg, "team/app", "list", self.children)
        oamd = push_image(reg, "team/app", None, [make_layer(4, 1000)], fmt="oci", platform="linux/amd64")
        self.index_digest = push_index(reg, "team/app", "index", {"linux/amd64": oamd}, fmt="oci")
        self.big: Pushed = self.docker

    @property
    def blob(self) -> tuple[str, int]:
        return self.docker.layer_digests[0], self.docker.layer_sizes[0]


def _seeded(auth: str | None) -> Iterator[Seeded]:
    reg = start_registry(auth=auth)
    try:
        yield Seeded(reg)
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def anon() -> Iterator[Seeded]:
    yield from _seeded(None)


@pytest.fixture(scope="module")
def basic() -> Iterator[Seeded]:
    yield from _seeded("basic")


@pytest.fixture(scope="module")
def token() -> Iterator[Seeded]:
    yield from _seeded("token")


@pytest.fixture
def proxy(anon: Seeded) -> Iterator[FaultProxy]:
    with FaultProxy(anon.reg.port) as px:
        yield px


def creds(reg: Registry, **kw: str) -> AuthConfig:
    return AuthConfig(username=reg.username, password=reg.password, serveraddress=reg.host, **kw)


# --------------------------------------------------------------------------- pure parts

def test_decode_registry_auth_as_dockerd() -> None:
    doc = {"username": "u", "password": "p@ss", "serveraddress": "r.example"}
    raw = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()
    assert decode_registry_auth(raw) == AuthConfig(username="u", password="p@ss", serveraddress="r.example")
    assert decode_registry_auth(raw.rstrip("=")) == decode_registry_auth(raw)  # unpadded too
    upper = base64.urlsafe_b64encode(json.dumps({"Username": "u", "Password": "p"}).encode()).decode()
    assert decode_registry_auth(upper) == AuthConfig(username="u", password="p")  # Go: case-insensitive
    for anonymous in (None, "", "e30=", "e30", "!!!notbase64", base64.urlsafe_b64encode(b"[1]").decode(),
                      base64.urlsafe_b64encode(b'{"username": 5}').decode()):
        assert decode_registry_auth(anonymous) is None, anonymous
    tok = base64.urlsafe_b64encode(json.dumps({"identitytoken": "secret-id"}).encode()).decode()
    assert decode_registry_auth(tok) == AuthConfig(identitytoken="secret-id")


def test_auth_config_never_shows_secrets() -> None:
    a = AuthConfig(username="u", password="hunter2", auth=base64.b64encode(b"u:hunter2").decode(),
                   identitytoken="idtok", registrytoken="regtok")
    for text in (repr(a), str(a), f"{a}", repr([a])):
        assert "hunter2" not in text and "idtok" not in text and "regtok" not in text and a.auth not in text
        assert "username='u'" in text
    assert AuthConfig(auth=base64.b64encode(b"x:y:z").decode()).basic() == ("x", "y:z")


def test_parse_challenges() -> None:
    got = parse_challenges(['Bearer realm="https://auth.example/token",service="reg",'
                            'scope="repository:a/b:pull,push",error="insufficient_scope"',
                            'Basic realm="basic-realm", Bearer realm=x'])
    assert [c.scheme for c in got] == ["bearer", "basic", "bearer"]
    assert got[0].params == {"realm": "https://auth.example/token", "service": "reg",
                             "scope": "repository:a/b:pull,push", "error": "insufficient_scope"}
    assert got[1].params == {"realm": "basic-realm"} and got[2].params == {"realm": "x"}
    assert parse_challenges(['Bearer realm="a\\"b"'])[0].params["realm"] == 'a"b'


def test_retry_policy_and_retry_after() -> None:
    p = RetryPolicy(attempts=3, base_delay=1, max_delay=3, jitter=0)
    assert [p.delay(1), p.delay(2), p.delay(3)] == [1, 2, None]
    assert p.delay(1, retry_after=7) == 7 and p.delay(1, retry_after=31) is None
    assert parse_retry_after("12") == 12
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_token_cache_expiry_with_a_clock() -> None:
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    cache.put(("k",), "t1", 300)
    now[0] += 289
    assert cache.get(("k",)) == "t1"
    now[0] += 2  # within 10 s of the end: refresh early
    assert cache.get(("k",)) is None
    cache.put(("k",), "t2", 5)  # shorter than distribution's minimum: counts as 60 s
    now[0] += 49
    assert cache.get(("k",)) == "t2"
    cache.drop(("k",), "other")
    assert cache.get(("k",)) == "t2"
    cache.drop(("k",), "t2")
    assert cache.get(("k",)) is None


def test_blob_workers_are_reused_daemon_threads() -> None:
    """Jobs one after the other run on one kept worker (no thread started per job: starting
    one stalls the event loop); jobs at once get a worker each; all are daemon threads."""
    from dockerremote.registry.blobget import _DaemonWorkers

    workers = _DaemonWorkers()
    ran: list[tuple[int, bool]] = []
    for _ in range(20):
        done = threading.Event()
        workers.submit(lambda d=done: (ran.append((threading.get_ident(), threading.current_thread().daemon)),
                                       d.set()))
        assert done.wait(10)
    assert len(ran) == 20 and all(daemon for _, daemon in ran)
    assert len({tid for tid, _ in ran}) <= 2  # the first worker, at most one more in a race

    gate, started = threading.Event(), threading.Semaphore(0)
    at_once: list[int] = []

    def blocking() -> None:
        at_once.append(threading.get_ident())
        started.release()
        gate.wait(10)

    for _ in range(4):
        workers.submit(blocking)
    for _ in range(4):
        assert started.acquire(timeout=10)  # all four run together: none waits for another
    gate.set()
    assert len(set(at_once)) == 4


def test_idle_blob_connections_are_reused_until_they_are_too_old(monkeypatch: pytest.MonkeyPatch) -> None:
    from dockerremote.registry import blobget

    conns = blobget.BlobConnections("ua", 1, 1)
    key = ("http", "127.0.0.1", 9, None)
    first, reused = conns.take(key, None)
    assert not reused
    conns.give_back(key, first)
    again, reused = conns.take(key, None)
    assert reused and again is first
    conns.give_back(key, again)
    monkeypatch.setattr(blobget, "KEEPALIVE", 0.0)  # every idle one is too old now
    fresh, reused = conns.take(key, None)
    assert not reused and fresh is not first
    conns.close()


def test_hosts_endpoints_and_insecure_rules() -> None:
    async def main() -> None:
        h = Hosts(["http://127.0.0.1:5000", "https://mirror.example/"], ["10.0.0.0/8", "reg.example:5000"])
        eps = await h.endpoints("docker.io")
        assert eps == [Endpoint("http://127.0.0.1:5000", verify_tls=False, mirror=True),
                       Endpoint("https://mirror.example", verify_tls=True, mirror=True),
                       Endpoint("https://registry-1.docker.io")]
        insecure = [Endpoint("https://10.1.2.3:5000", False), Endpoint("http://10.1.2.3:5000", False)]
        assert await h.endpoints("10.1.2.3:5000") == insecure
        assert (await h.endpoints("reg.example:5000"))[1].url == "http://reg.example:5000"
        assert await h.endpoints("localhost:5000") == [Endpoint("https://localhost:5000", False),
                                                       Endpoint("http://localhost:5000", False)]
        assert await h.endpoints("reg.example") == [Endpoint("https://reg.example")]
        assert await h.endpoints("nosuch.invalid:443") == [Endpoint("https://nosuch.invalid:443")]
    run(main())
    for bad in ("ftp://m.example", "https://m.example/path", "https://u:p@m.example"):
        with pytest.raises(Exception, match="invalid mirror"):
            validate_mirror(bad)


# --------------------------------------------------------------------------- manifests and tags

def test_manifest_kinds_and_digests(anon: Seeded) -> None:
    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{anon.reg.host}/team/app"), None)
            cases = [("docker", DOCKER_MANIFEST, anon.docker.manifest_digest),
                     ("oci", OCI_MANIFEST, anon.oci.manifest_digest),
                     ("list", DOCKER_LIST, anon.list_digest), ("index", OCI_INDEX, anon.index_digest)]
            for tag, media_type, digest in cases:
                f = await repo.manifest(tag)
                assert (f.media_type, f.digest) == (media_type, digest), tag
                assert sha256(f.data) == digest
                assert await repo.resolve(tag) == digest
                by_digest = await repo.manifest(digest)
                assert by_digest.data == f.data and by_digest.media_type == media_type
            child = anon.children["linux/arm64/v8"]
            f = await repo.manifest(child.manifest_digest)
            assert f.data == child.manifest_bytes
            assert json.loads(await repo.blob_bytes(child.config_digest, 1 << 20))["variant"] == "v8"
        finally:
            await regs.close()
    run(main())


def test_tags_and_their_pagination(anon: Seeded, proxy: FaultProxy) -> None:
    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{proxy.host}/team/app"), None)
            assert sorted(await repo.tags()) == ["docker", "index", "list", "oci"]
            # first page from the "registry", the next one asked to the real registry with ?last=&n=
            proxy.respond(200, match="/tags/list", headers={
                "Content-Type": "application/json",
                "Link": '</v2/team/app/tags/list?last=docker&n=2>; rel="next"'},
                body=b'{"name":"team/app","tags":["a-first","docker"]}')
            got = await repo.tags()  # (distribution 2.8 does not page tags itself: all of them)
            assert got[:2] == ["a-first", "docker"] and sorted(got[2:]) == ["docker", "index", "list", "oci"]
            assert [s.path for s in proxy.requests("/tags/list")][-1] == "/v2/team/app/tags/list?last=docker&n=2"
            with pytest.raises(rerr.NameUnknown) as e:
                await regs.repository(ref(f"{proxy.host}/team/nope"), None).tags()
            assert e.value.status == 404
            assert e.value.message == (f"repository {proxy.host}/team/nope not found: "
                                       "name unknown: repository name not known to registry")
        finally:
            await regs.close()
    run(main())


def test_manifest_errors_carry_dockerd_texts(anon: Seeded) -> None:
    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{anon.reg.host}/team/app"), None)
            with pytest.raises(rerr.ManifestUnknown) as e:
                await repo.manifest("nope")
            assert e.value.status == 404
            assert e.value.message == f"manifest for {anon.reg.host}/team/app:nope not found: manifest unknown: manifest unknown"
            missing = "sha256:" + "0" * 64
            with pytest.raises(rerr.ManifestUnknown, match=f"manifest for {anon.reg.host}/team/app@{missing} not found"):
                await repo.manifest(missing)
            with pytest.raises(rerr.ManifestUnknown):
                await repo.resolve("nope")  # HEAD has no body: the GET behind it gives the text
            port = free_port()  # nothing listens there: https refused, then http refused
            t0 = time.monotonic()
            with pytest.raises(rerr.RegistryUnavailable) as u:  # default policy: refused is final
                await Registries().repository(ref(f"127.0.0.1:{port}/a/b"), None).manifest("x")
            assert time.monotonic() - t0 < 1
            assert u.value.message == f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: connection refused'
        finally:
            await regs.close()
    run(main())


def _served(proxy: FaultProxy, path: str, content_type: str, body: bytes, digest: str | None = None) -> None:
    headers = {"Content-Type": content_type}
    if digest:
        headers["Docker-Content-Digest"] = digest
    proxy.respond(200, match=path, method="GET", headers=headers, body=body)


def test_manifest_media_type_must_match_its_body(anon: Seeded, proxy: FaultProxy) -> None:
    oci_body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}).encode()
    no_type = json.dumps({"schemaVersion": 2, "config": {}, "layers": []}).encode()
    index_no_type = json.dumps({"schemaVersion": 2, "manifests": []}).encode()

    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{proxy.host}/team/app"), None)
            _served(proxy, "/manifests/t1", DOCKER_MANIFEST, oci_body)
            with pytest.raises(rerr.ManifestInvalid) as e:
                await repo.manifest("t1")
            assert e.value.message == (f"mediaType in manifest should be '{DOCKER_MANIFEST}' "
                                       f"not '{OCI_MANIFEST}'")
            _served(proxy, "/manifests/t2", DOCKER_MANIFEST, no_type)  # docker schema2 must say it
            with pytest.raises(rerr.ManifestInvalid, match="not ''"):
                await repo.manifest("t2")
            _served(proxy, "/manifests/t3", OCI_INDEX, oci_body)
            with pytest.raises(rerr.ManifestInvalid, match="if present, mediaType in image index should be"):
                await repo.manifest("t3")
            _served(proxy, "/manifests/t4", OCI_MANIFEST, no_type)  # OCI may omit it
            assert (await repo.manifest("t4")).media_type == OCI_MANIFEST
            _served(proxy, "/manifests/t5", "application/json; charset=utf-8", index_no_type)  # vague: sniffed
            assert (await repo.manifest("t5")).media_type == OCI_INDEX
            _served(proxy, "/manifests/t6", "text/plain", oci_body)
            assert (await repo.manifest("t6")).media_type == OCI_MANIFEST
        finally:
            await regs.close()
    run(main())


def test_manifest_digest_is_verified(anon: Seeded, proxy: FaultProxy) -> None:
    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{proxy.host}/team/app"), None)
            d = anon.docker.manifest_digest
            proxy.flip_byte(30, match="/manifests/")
            with pytest.raises(rerr.ManifestInvalid) as e:
                await repo.manifest(d)
            assert e.value.message == f"manifest verification failed for digest {d}"
            proxy.flip_byte(30, match="/manifests/")  # by tag: checked against Docker-Content-Digest
            with pytest.raises(rerr.ManifestInvalid, match="manifest verification failed"):
                await repo.manifest("docker")
            assert (await repo.manifest("docker")).digest == d
        finally:
            await regs.close()
    run(main())


# --------------------------------------------------------------------------- auth

def test_basic_auth(basic: Seeded) -> None:
    reg = basic.reg

    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{reg.host}/team/app"), creds(reg))
            assert (await repo.manifest("docker")).digest == basic.docker.manifest_digest
            assert sha256(await collect(repo, *basic.blob)) == basic.blob[0]
            auth_field = AuthConfig(auth=base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode())
            assert await regs.repository(ref(f"{reg.host}/team/app"), auth_field).tags()

            wrong = regs.repository(ref(f"{reg.host}/team/app"), AuthConfig(username=reg.username, password="no"))
            with pytest.raises(rerr.Unauthorized) as e:
                await wrong.manifest("docker")
            assert (e.value.status, e.value.message) == (500, "unauthorized: authentication required")
            with pytest.raises(rerr.Unauthorized) as e:
                await regs.repository(ref(f"{reg.host}/team/app"), None).manifest("docker")
            assert e.value.message == f'Head "http://{reg.host}/v2/team/app/manifests/docker": no basic auth credentials'
        finally:
            await regs.close()
    run(main())


def test_token_auth_by_get_cached_per_scope(token: Seeded) -> None:
    reg, issuer = token.reg, token.reg.issuer
    assert issuer is not None

    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            before = len(issuer.requests)
            repo = regs.repository(ref(f"{reg.host}/team/app"), creds(reg))
            assert (await repo.manifest("docker")).digest == token.docker.manifest_digest
            await repo.tags()
            assert sha256(await collect(repo, *token.blob)) == token.blob[0]
            got = await asyncio.gather(*(repo.blob_bytes(token.docker.config_digest, 1 << 20) for _ in range(5)))
            assert all(g == token.docker.config_bytes for g in got)
            again = regs.repository(ref(f"{reg.host}/team/app"), creds(reg))  # the next pull: cache
            await again.manifest("oci")
            asked = issuer.requests[before:]
            assert [(r.method, r.account, r.scopes, r.grant) for r in asked] == [
                ("GET", reg.username, ["repository:team/app:pull"], "basic")]
            # `access_token` instead of `token` works as well
            issuer.token_field = "access_token"
            other = regs.repository(ref(f"{reg.host}/team/other"), creds(reg))
            with pytest.raises(rerr.ManifestUnknown):
                await other.manifest("x")
            assert issuer.requests[-1].scopes == ["repository:team/other:pull"]
        finally:
            issuer.token_field = "both"
            await regs.close()
    run(main())


def test_token_auth_refresh_token_and_registry_token(token: Seeded) -> None:
    reg, issuer = token.reg, token.reg.issuer
    assert issuer is not None

    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{reg.host}/team/app"), AuthConfig(identitytoken=reg.refresh_token))
            assert (await repo.manifest("list")).digest == token.list_digest
            assert issuer.requests[-1].grant == "refresh_token" and issuer.requests[-1].method == "POST"
            assert issuer.requests[-1].account == reg.username

            bad = regs.repository(ref(f"{reg.host}/team/app"), AuthConfig(identitytoken="rt-wrong"))
            with pytest.raises(rerr.Unauthorized) as e:
                await bad.manifest("list")
            assert e.value.message == f'Head "http://{reg.host}/v2/team/app/manifests/list": unauthorized: authentication required'

            n = len(issuer.requests)
            signed = issuer.sign(reg.username, issuer.grant(reg.username, ["repository:team/app:pull"]))
            direct = regs.repository(ref(f"{reg.host}/team/app"), AuthConfig(registrytoken=signed))
            assert (await direct.manifest("oci")).digest == token.oci.manifest_digest
            assert len(issuer.requests) == n  # sent as is, no token service involved
        finally:
            await regs.close()
    run(main())


def test_token_refused_by_registry_is_fetched_again_once(token: Seeded) -> None:
    reg, issuer = token.reg, token.reg.issuer
    assert issuer is not None

    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            issuer.expire_next = 1  # the first token says 300 s but the registry finds it expired
            n = len(issuer.requests)
            repo = regs.repository(ref(f"{reg.host}/team/app"), creds(reg))
            assert (await repo.manifest("docker")).digest == token.docker.manifest_digest
            assert len(issuer.requests) == n + 2
        finally:
            issuer.expire_next = 0
            await regs.close()
    run(main())


def test_token_auth_failures_read_as_dockerd(token: Seeded) -> None:
    reg = token.reg

    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            with pytest.raises(rerr.Denied) as e:
                await regs.repository(ref(f"{reg.host}/team/app"), None).manifest("docker")
            assert e.value.status == 404
            assert e.value.message == (f"pull access denied for {reg.host}/team/app, repository does not exist or "
                                       "may require 'docker login': denied: requested access to the resource is denied")
            wrong = regs.repository(ref(f"{reg.host}/team/app"), AuthConfig(username=reg.username, password="x"))
            with pytest.raises(rerr.Unauthorized) as u:
                await wrong.manifest("docker")
            assert u.value.message == (f'Head "http://{reg.host}/v2/team/app/manifests/docker": '
                                       "unauthorized: incorrect username or password")
            assert u.value.status == 500  # a 401 would send the docker CLI into its login prompt
        finally:
            await regs.close()
    run(main())


def test_no_credentials_in_logs(token: Seeded, basic: Seeded, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [token.reg.password, basic.reg.password, token.reg.refresh_token,
                          base64.b64encode(f"{basic.reg.username}:{basic.reg.password}".encode()).decode()]
    messages: list[str] = []

    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            for s, auth in ((token, creds(token.reg)), (basic, creds(basic.reg)),
                            (token, AuthConfig(identitytoken=token.reg.refresh_token))):
                repo = regs.repository(ref(f"{s.reg.host}/team/app"), auth)
                logging.getLogger("test").info("pulling with %r", auth)
                await repo.manifest("docker")
                await collect(repo, *s.blob)
                with pytest.raises(rerr.RegistryError) as e:
                    await repo.manifest("missing")
                messages.append(str(e.value))
            secrets.extend(t.value for t in regs.tokens._tokens.values())  # the bearer tokens
        finally:
            await regs.close()
    run(main())
    text = "\n".join([r.getMessage() for r in caplog.records] + messages)
    assert "GET http://" in text and len(secrets) >= 6  # requests are logged ...
    for secret in secrets:
        assert secret not in text  # ... but never a password, an identity or a bearer token


# --------------------------------------------------------------------------- blobs and faults

def _blob_requests(px: FaultProxy, digest: str) -> list[tuple[int, str | None, str]]:
    return [(s.status, s.headers.get("range"), s.fault) for s in px.requests(f"/blobs/{digest}", "GET")]


def test_blob_bodies_read_to_their_end_keep_their_connection(anon: Seeded, proxy: FaultProxy) -> None:
    """Blobs fetched one after another reuse one kept-alive connection (a body read to its
    Content-Length with read1() used to leave the connection unreturned: one connect per blob)."""
    blobs = list(zip(anon.docker.layer_digests, anon.docker.layer_sizes)) * 3

    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{proxy.host}/team/app"), None)
            for digest, size in blobs:
                data = await collect(repo, digest, size)
                assert len(data) == size and sha256(data) == digest
        finally:
            await regs.close()
    run(main())
    gets = proxy.requests("/blobs/", "GET")
    assert [s.status for s in gets] == [200] * len(blobs)
    assert len({s.connection for s in gets}) == 1


def test_blob_cut_mid_stream_is_resumed_with_range(anon: Seeded, proxy: FaultProxy) -> None:
    digest, size = anon.blob
    proxy.drop_after(100_000)
    retries: list[tuple] = []
    before = anon.reg.accesses()

    async def main() -> bytes:
        regs = Registries(retry=FAST)
        try:
            return await collect(regs.repository(ref(f"{proxy.host}/team/app"), None), digest, size,
                                 on_retry=lambda *a: retries.append(a))
        finally:
            await regs.close()
    data = run(main())
    assert len(data) == size and sha256(data) == digest
    assert _blob_requests(proxy, digest) == [(200, None, "drop"), (206, "bytes=100000-", "")]
    assert [(f, d) for f, d, _ in retries] == [(0, 0.0)]
    served = [a for a in anon.reg.accesses()[len(before):] if a.path.endswith(digest)]
    assert [a.status for a in served] == [200, 206]  # (how much of the first it wrote is a race)
    assert served[1].size == size - 100_000


def test_blob_cut_many_times_and_before_any_byte(anon: Seeded, proxy: FaultProxy) -> None:
    digest, size = anon.blob
    proxy.drop_after(0, times=2)       # nothing delivered: counts as failures, retried with backoff
    proxy.drop_after(50_000, times=3)  # progress each time: resumed at once

    async def main() -> bytes:
        regs = Registries(retry=FAST)
        try:
            return await collect(regs.repository(ref(f"{proxy.host}/team/app"), None), digest, size)
        finally:
            await regs.close()
    assert sha256(run(main())) == digest
    assert [r for _, r, _ in _blob_requests(proxy, digest)] == [
        None, None, None, "bytes=50000-", "bytes=100000-", "bytes=150000-"]


def test_chunked_blob_cut_mid_stream_is_resumed() -> None:
    """A server that sends blobs chunked (no Content-Length), and cuts the first answer before
    its last chunk: the cut is seen (not taken for the end) and the rest asked with Range."""
    import os

    from tests.support.httpserver import serving

    blob = os.urandom(300_000)
    digest = sha256(blob)
    asked: list[str | None] = []

    class Chunked(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/v2/":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                return
            rng = self.headers.get("Range")
            asked.append(rng)
            start = int(rng[len("bytes="):-1]) if rng else 0
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(blob) - 1}/{len(blob)}")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            body = blob[start:]
            cut = not rng
            for i in range(0, len(body), 50_000):
                if cut and i >= 150_000:
                    self.close_connection = True
                    return  # no last chunk: the connection just ends
                part = body[i:i + 50_000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Chunked) as url:
        host = url.split("://", 1)[1]

        async def main() -> bytes:
            regs = Registries(retry=FAST)
            try:
                return await collect(regs.repository(ref(f"{host}/x"), None), digest, len(blob))
            finally:
                await regs.close()
        got = run(main())
    assert got == blob
    assert asked == [None, "bytes=150000-"]


def test_blob_from_a_registry_that_ignores_range(anon: Seeded, proxy: FaultProxy) -> None:
    digest, size = anon.blob
    proxy.drop_after(120_000)
    proxy.ignore_range()  # the resume is answered 200 with the whole blob: its head is skipped

    async def main() -> list[bytes]:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{proxy.host}/team/app"), None)
            pieces: list[bytes] = []
            await repo.fetch_blob(digest, size, pieces.append)
            return pieces
        finally:
            await regs.close()
    chunks = run(main())
    assert sha256(b"".join(chunks)) == digest and sum(map(len, chunks)) == size  # no byte twice
    assert _blob_requests(proxy, digest) == [(200, None, "drop"), (200, "bytes=120000-", "norange")]


def test_blob_429_honours_retry_after(anon: Seeded, proxy: FaultProxy) -> None:
    digest, size = anon.blob
    proxy.respond(429, match=f"/blobs/{digest}", headers={"Retry-After": "1"})
    retries: list[tuple] = []

    async def main() -> bytes:
        regs = Registries(retry=FAST)
        try:
            return await collect(regs.repository(ref(f"{proxy.host}/team/app"), None), digest, size,
                                 on_retry=lambda *a: retries.append(a))
        finally:
            await regs.close()
    t0 = time.monotonic()
    assert sha256(run(main())) == digest
    assert time.monotonic() - t0 >= 0.95  # (the loop may wake a hair early)
    assert [(f, d, type(e)) for f, d, e in retries] == [(1, 1.0, rerr.TooManyRequests)]
    assert [s for s, _, _ in _blob_requests(proxy, digest)] == [429, 200]


def test_blob_503_then_success_and_503_for_ever(anon: Seeded, proxy: FaultProxy) -> None:
    digest, size = anon.blob
    proxy.respond(503, times=2, match=f"/blobs/{digest}")

    async def main() -> None:
        regs = Registries(retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02))
        try:
            repo = regs.repository(ref(f"{proxy.host}/team/app"), None)
            assert sha256(await collect(repo, digest, size)) == digest
            proxy.respond(503, times=-1, match=f"/blobs/{digest}")
            with pytest.raises(rerr.RegistryError) as e:
                await collect(repo, digest, size)
            assert e.value.message == "received unexpected HTTP status: 503 Service Unavailable"
        finally:
            await regs.close()
    run(main())
    assert [s for s, _, _ in _blob_requests(proxy, digest)] == [503, 503, 200, 503, 503, 503]


def test_manifest_5xx_retried_and_long_retry_after_not_waited(anon: Seeded, proxy: FaultProxy) -> None:
    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{proxy.host}/team/app"), None)
            proxy.respond(500, times=2, match="/manifests/docker")
            assert (await repo.manifest("docker")).digest == anon.docker.manifest_digest
            proxy.respond(429, times=-1, match="/manifests/oci", headers={"Retry-After": "3600"})
            t0 = time.monotonic()
            with pytest.raises(rerr.TooManyRequests) as e:
                await repo.manifest("oci")
            assert time.monotonic() - t0 < 5
            assert e.value.message == "toomanyrequests: slow down"
        finally:
            await regs.close()
    run(main())
    assert [s.status for s in proxy.requests("/manifests/docker")] == [500, 500, 200]
    assert [s.status for s in proxy.requests("/manifests/oci")] == [429]


def test_flipped_byte_is_delivered_as_is(anon: Seeded, proxy: FaultProxy) -> None:
    digest, size = anon.blob
    proxy.flip_byte(12345, match=f"/blobs/{digest}")
    proxy.flip_byte(3, match=f"/blobs/{anon.docker.config_digest}")

    async def main() -> bytes:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{proxy.host}/team/app"), None)
            data = await collect(repo, digest, size)
            with pytest.raises(rerr.BlobInvalid) as e:
                await repo.blob_bytes(anon.docker.config_digest, 1 << 20)
            assert isinstance(e.value, DigestMismatch)
            assert e.value.message == f"blob verification failed for digest {anon.docker.config_digest}"
            return data
        finally:
            await regs.close()
    data = run(main())
    assert len(data) == size and sha256(data) != digest  # the caller's digest check catches it
    good = bytearray(data)
    good[12345] ^= 0xFF
    assert sha256(bytes(good)) == digest


def test_cancelled_fetch_waits_for_its_reading_thread(anon: Seeded) -> None:
    """consume() runs on the thread reading the body; a fetch that is cancelled returns only
    once that thread is done with consume, and nothing is consumed after: nothing runs on for
    a download that is gone (its ingest is thrown away right after)."""
    digest, size = anon.blob
    entered, release, left = threading.Event(), threading.Event(), threading.Event()
    calls: list[int] = []

    def consume(piece: bytes) -> None:
        calls.append(threading.get_ident())
        entered.set()
        release.wait(10)
        left.set()

    async def main() -> int:
        regs = Registries(retry=FAST)
        loop = asyncio.get_running_loop()
        try:
            repo = regs.repository(ref(f"{anon.reg.host}/team/app"), None)
            task = asyncio.create_task(repo.fetch_blob(digest, size, consume))
            assert await loop.run_in_executor(None, entered.wait, 10)
            task.cancel()
            loop.call_later(0.05, release.set)  # consume returns on its own time
            with pytest.raises(asyncio.CancelledError):
                await task
            assert left.is_set()  # the cancel waited for consume to return
            return len(calls)
        finally:
            await regs.close()

    seen = run(main())
    assert calls and calls[0] != threading.get_ident()  # not on the event loop's thread
    assert len(calls) == seen  # nothing consumed once the fetch was cancelled


def test_blob_size_is_enforced(anon: Seeded) -> None:
    digest, size = anon.blob

    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{anon.reg.host}/team/app"), None)
            with pytest.raises(rerr.BlobInvalid, match=f"has {size} bytes, its descriptor says {size - 1}"):
                await collect(repo, digest, size - 1)
            with pytest.raises(rerr.BlobInvalid, match="larger than 1000 bytes"):
                await repo.blob_bytes(digest, 1000)
            with pytest.raises(rerr.RegistryError, match="blob unknown: blob unknown to registry"):
                await collect(repo, "sha256:" + "1" * 64, None)
        finally:
            await regs.close()
    run(main())


class _Storage:
    """Blob storage on another origin (like S3 behind a registry): serves bytes, records headers."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.headers: list[dict[str, str]] = []
        store = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                store.headers.append({k.lower(): v for k, v in self.headers.items()})
                data = blobs.get(self.path.split("?")[0].rsplit("/", 1)[-1])
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

        self.server = ThreadingHTTPServer(("127.0.0.2", 0), H)  # another host: another origin
        self.url = f"http://127.0.0.2:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_redirect_to_storage_does_not_leak_authorization(basic: Seeded) -> None:
    reg = basic.reg
    digest, _ = basic.blob
    blob = None

    async def fetch_direct() -> bytes:
        regs = Registries(retry=FAST)
        try:
            return await collect(regs.repository(ref(f"{reg.host}/team/app"), creds(reg)), *basic.blob)
        finally:
            await regs.close()
    blob = run(fetch_direct())
    storage = _Storage({digest: blob})
    try:
        with FaultProxy(reg.port) as px:
            px.redirect(storage.url + "/store", match=f"/blobs/{digest}")

            async def main() -> bytes:
                regs = Registries(retry=FAST)
                try:
                    return await collect(regs.repository(ref(f"{px.host}/team/app"), creds(reg)), *basic.blob)
                finally:
                    await regs.close()
            assert sha256(run(main())) == digest
            asked = px.requests(f"/blobs/{digest}")
            assert len(asked) == 1 and asked[0].status == 307
            assert asked[0].headers["authorization"].startswith("Basic ")
    finally:
        storage.stop()
    assert len(storage.headers) == 1 and "authorization" not in storage.headers[0]


def test_meta_headers_are_forwarded(anon: Seeded, proxy: FaultProxy) -> None:
    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{proxy.host}/team/app"), None,
                                   meta_headers={"X-Meta-Build": "42", "X-Other": "no"})
            await repo.manifest("docker")
        finally:
            await regs.close()
    run(main())
    seen = proxy.requests("/manifests/docker")[0].headers
    assert seen["x-meta-build"] == "42" and "x-other" not in seen


class _ForwardProxy(BaseHTTPRequestHandler):
    """A forward proxy: absolute-URL GETs are fetched for the client, CONNECT is tunnelled.
    Every request is recorded in `seen` as (method, target, Proxy-Authorization)."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        import http.client

        self.seen.append(("GET", self.path, self.headers.get("Proxy-Authorization")))
        host, path = self.path.split("://", 1)[1].split("/", 1)
        conn = http.client.HTTPConnection(host, timeout=10)
        conn.request("GET", "/" + path, headers={k: v for k, v in self.headers.items()
                                                 if k.lower() not in ("proxy-authorization", "connection")})
        r = conn.getresponse()
        body = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self) -> None:  # noqa: N802
        import select
        import socket

        self.seen.append(("CONNECT", self.path, self.headers.get("Proxy-Authorization")))
        host, port = self.path.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.send_response(200)
        self.end_headers()
        self.close_connection = True
        ends = [self.connection, upstream]
        while True:
            ready, _, _ = select.select(ends, [], [], 10)
            if not ready:
                break
            for s in ready:
                data = s.recv(65536)
                if not data:
                    upstream.close()
                    return
                (upstream if s is self.connection else self.connection).sendall(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.skipif(non_loopback_ip() is None, reason="no address outside 127.0.0.0/8")
def test_proxy_from_the_environment_as_go_decides(anon: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP(S)_PROXY with credentials carries every request to a registry elsewhere (https
    through a CONNECT tunnel, plain http by absolute URL, Proxy-Authorization on both); a
    loopback registry is reached directly, as Go's ProxyFromEnvironment decides."""
    reg = start_registry(ip=non_loopback_ip() or "")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _ForwardProxy.seen = []
    proxy_url = f"http://pu:pp@127.0.0.1:{server.server_address[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, proxy_url)
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    try:
        img = push_image(reg, "far/app", "1", [make_layer(7, 50_000)])

        async def main() -> tuple[bytes, bytes]:
            # insecure: https is tried first (tunnelled, it meets plain HTTP), then http
            regs = Registries(insecure=[reg.host], retry=FAST)
            try:
                far = regs.repository(ref(f"{reg.host}/far/app"), None)
                await far.manifest("1")
                got_far = await collect(far, img.layer_digests[0], img.layer_sizes[0])
                near = regs.repository(ref(f"{anon.reg.host}/team/app"), None)
                await near.manifest("docker")
                return got_far, await collect(near, *anon.blob)
            finally:
                await regs.close()
        got_far, got_near = run(main())
    finally:
        server.shutdown()
        server.server_close()
        reg.stop()
    assert sha256(got_far) == img.layer_digests[0] and sha256(got_near) == anon.blob[0]
    auth = "Basic " + base64.b64encode(b"pu:pp").decode()
    base = f"http://{reg.host}/v2/far/app"
    assert ("CONNECT", reg.host, auth) in _ForwardProxy.seen
    assert ("GET", f"{base}/manifests/1", auth) in _ForwardProxy.seen
    assert ("GET", f"{base}/blobs/{img.layer_digests[0]}", auth) in _ForwardProxy.seen
    assert not [s for s in _ForwardProxy.seen if anon.reg.host in s[1]]  # loopback: direct


# --------------------------------------------------------------------------- endpoints

def test_mirror_fallback(anon: Seeded) -> None:
    """docker.io through mirrors: a dead one, one without the image, one that works."""
    reg = anon.reg
    hub = push_image(reg, "library/alpine", "latest", [make_layer(7, 5000)])
    empty = start_registry()
    dead = f"http://127.0.0.1:{free_port()}"
    try:
        with FaultProxy(reg.port) as good:
            async def main() -> None:
                regs = Registries([dead, empty.url, good.url], retry=FAST)
                try:
                    repo = regs.repository(ref("alpine"), None)
                    f = await repo.manifest("latest")
                    assert f.digest == hub.manifest_digest
                    data = await collect(repo, hub.layer_digests[0], hub.layer_sizes[0])
                    assert sha256(data) == hub.layer_digests[0]
                    assert await repo.tags() == ["latest"]
                    # a mirror failing with 5xx hands over at once (no retries on a mirror)
                    good.respond(503, times=-1, match="/manifests/")
                    with pytest.raises(rerr.RegistryError) as e:
                        await repo.manifest("latest")  # ... to the origin, unreachable here
                    if isinstance(e.value, rerr.RegistryUnavailable):  # (no internet on test machines)
                        assert e.value.message.startswith('Get "https://registry-1.docker.io/v2/": dial tcp')
                finally:
                    await regs.close()
            run(main())
            assert [s.status for s in good.requests("/manifests/")] == [200, 503]
        assert empty.manifest_gets("latest") == 2  # once per call: said unknown, handed over
    finally:
        empty.stop()


def test_insecure_loopback_registry_over_plain_http(anon: Seeded) -> None:
    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            for host in (anon.reg.host, f"localhost:{anon.reg.port}"):
                repo = regs.repository(ref(f"{host}/team/app"), None)
                assert (await repo.manifest("oci")).digest == anon.oci.manifest_digest
            eps = await regs.repository(ref(f"{anon.reg.host}/team/app"), None)._all_endpoints()
            assert [e.url for e in eps] == [f"https://{anon.reg.host}", f"http://{anon.reg.host}"]
            assert regs.is_down(eps[0])  # https failed its handshake: skipped for a while
            assert not regs.is_down(eps[1])
        finally:
            await regs.close()
    run(main())


# --------------------------------------------------------------------------- dockerd agrees

def test_error_texts_match_reference_dockerd(anon: Seeded, basic: Seeded, token: Seeded, dockerd: Any) -> None:
    """The same failures, asked of the reference dockerd 20.10 and of our client: same words."""
    def dockerd_message(image: str, auth: AuthConfig | None) -> str:
        headers = {}
        if auth is not None:
            fields = {k: getattr(auth, k) for k in ("username", "password", "identitytoken") if getattr(auth, k)}
            headers["X-Registry-Auth"] = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()
        r = dockerd.request("POST", f"/v1.41/images/create?fromImage={image}", headers=headers)
        assert r.status != 200, r.body
        return r.json()["message"]

    port = free_port()
    cases = [
        (f"{anon.reg.host}/team/app", "nope", None),
        (f"{basic.reg.host}/team/app", "docker", None),
        (f"{basic.reg.host}/team/app", basic.docker.manifest_digest, None),
        (f"{basic.reg.host}/team/app", "docker", AuthConfig(username=basic.reg.username, password="x")),
        (f"{token.reg.host}/team/app", "docker", None),
        (f"{token.reg.host}/team/app", "docker", AuthConfig(username=token.reg.username, password="x")),
        (f"{token.reg.host}/team/app", "docker", AuthConfig(identitytoken="rt-wrong")),
        (f"127.0.0.1:{port}/team/app", "docker", None),
    ]

    async def ours(name: str, tag: str, auth: AuthConfig | None) -> str:
        regs = Registries(retry=FAST)
        try:
            await regs.repository(ref(name), auth).manifest(tag)
        except rerr.RegistryError as exc:
            return exc.message
        finally:
            await regs.close()
        raise AssertionError("no error")

    for name, tag, auth in cases:
        image = f"{name}@{tag}" if ":" in tag else f"{name}:{tag}"
        assert run(ours(name, tag, auth)) == dockerd_message(image, auth), (name, tag, auth)


def test_schema1_is_handed_over_with_its_media_type() -> None:
    from tests.support.seed import SCHEMA1_SIGNED, push_schema1

    reg = start_registry(schema1=True)
    try:
        digest, _ = push_schema1(reg, "team/old", "v1", [make_layer(1, 1000), make_layer(2, 500)])

        async def main() -> None:
            regs = Registries(retry=FAST)
            try:
                f = await regs.repository(ref(f"{reg.host}/team/old"), None).manifest("v1")
                assert (f.media_type, f.digest) == (SCHEMA1_SIGNED, digest)
                assert json.loads(f.data)["schemaVersion"] == 1  # refusing it is the pull's call
            finally:
                await regs.close()
        run(main())
    finally:
        reg.stop()


def test_parallel_downloads_share_one_token_fetch(token: Seeded) -> None:
    reg, issuer = token.reg, token.reg.issuer
    assert issuer is not None

    async def main() -> None:
        regs = Registries(retry=FAST)
        try:
            repo = regs.repository(ref(f"{reg.host}/team/app"), creds(reg, email="x@example"))
            n = len(issuer.requests)
            digests = [token.docker.config_digest, *token.docker.layer_digests, token.oci.layer_digests[0]]
            got = await asyncio.gather(*(repo.blob_bytes(d, 1 << 20) for d in digests * 3))
            assert [sha256(g) for g in got] == digests * 3
            assert len(issuer.requests) == n + 1  # single flight per (realm, service, scope, creds)
        finally:
            await regs.close()
    run(main())


def test_mirror_without_a_blob_hands_over(anon: Seeded) -> None:
    reg = anon.reg
    hub = push_image(reg, "library/busybox", "latest", [make_layer(8, 300_000)])
    digest, size = hub.layer_digests[0], hub.layer_sizes[0]
    with FaultProxy(reg.port) as first, FaultProxy(reg.port) as second:
        first.respond(404, match=f"/blobs/{digest}", times=-1,
                      body=b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}')
        second.drop_after(50_000, times=-1)  # cuts every response, but each one makes progress

        async def main() -> None:
            regs = Registries([first.url, second.url], retry=FAST)
            try:
                repo = regs.repository(ref("busybox"), None)
                assert (await repo.manifest("latest")).digest == hub.manifest_digest
                assert sha256(await collect(repo, digest, size)) == digest
                ranges = [s.headers.get("range") for s in second.requests("/blobs/")]
                assert ranges == [None] + [f"bytes={n}-" for n in range(50_000, size, 50_000)]
                second.clear()
                second.drop_after(0, times=-1)  # now nothing at all: on to the origin (unreachable)
                with pytest.raises(rerr.RegistryError) as e:
                    await collect(repo, digest, size)
                if isinstance(e.value, rerr.RegistryUnavailable):  # (no internet on test machines)
                    assert e.value.message.startswith('Get "https://registry-1.docker.io/v2/"')
            finally:
                await regs.close()
        run(main())
        assert [s.status for s in first.requests("/blobs/")] == [404, 404]
        assert [s.body_bytes for s in second.requests("/blobs/")] == [0]
    assert size > 100_000


@pytest.mark.skipif(non_loopback_ip() is None, reason="no address outside 127.0.0.0/8")
def test_secure_registry_checks_certificates_and_reads_certs_d(tmp_path: Any) -> None:
    """A registry outside 127.0.0.0/8 is https with verification; certs.d/<host>/ca.crt adds a CA."""
    reg = start_registry(ip=non_loopback_ip() or "", tls=True, auth="basic")
    try:
        img = push_image(reg, "team/app", "1", [make_layer(1, 1000)])

        async def main() -> None:
            unknown = Registries(retry=FAST, certs_dir=str(tmp_path))
            trusted = Registries(retry=FAST, certs_dir=str(tmp_path / "certs.d"))
            (tmp_path / "certs.d" / reg.host).mkdir(parents=True)
            (tmp_path / "certs.d" / reg.host / "ca.crt").write_bytes(reg.ca_pem or b"")
            insecure = Registries(retry=FAST, insecure=[reg.host])
            try:
                with pytest.raises(rerr.RegistryUnavailable) as e:
                    await unknown.repository(ref(f"{reg.host}/team/app"), creds(reg)).manifest("1")
                assert e.value.message == f'Get "https://{reg.host}/v2/": x509: certificate signed by unknown authority'
                for regs in (trusted, insecure):
                    repo = regs.repository(ref(f"{reg.host}/team/app"), creds(reg))
                    assert (await repo.manifest("1")).digest == img.manifest_digest
                    assert sha256(await collect(repo, img.layer_digests[0], img.layer_sizes[0])) == img.layer_digests[0]
                eps = await insecure.repository(ref(f"{reg.host}/team/app"), None)._all_endpoints()
                assert [e.url for e in eps] == [f"https://{reg.host}", f"http://{reg.host}"]
            finally:
                for r in (unknown, trusted, insecure):
                    await r.close()
        run(main())
    finally:
        reg.stop()
