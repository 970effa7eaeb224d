"""Pull end to end: a real registry, our daemon, the docker CLI and docker-py.

Each test seeds deterministic images into a fresh docker-registry and pulls them through
`dockerremote serve`; what the store holds afterwards is checked against what was pushed.
Concurrency tests hold a blob response half-sent in a proxy (HoldingProxy) so that two
pulls provably overlap, without sleeping.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.proc import Engine, Response
from tests.support.proxy import FaultProxy
from tests.support.registry import Registry, registry  # noqa: F401  (fixture)
from tests.support.seed import Pushed, make_layer, push_image, push_index

KB = 1024


def content_size(tar: bytes) -> int:
    """What dockerd reports as a layer's size: the bytes of regular files (and link targets)."""
    import io
    import tarfile

    total = 0
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        for m in t.getmembers():
            if m.isreg():
                total += m.size
            elif m.issym():
                total += len(m.linkname)
    return total


def pull(daemon: Engine, image: str, tag: str | None = None, **params: str) -> Response:
    q = f"fromImage={image}" + (f"&tag={tag}" if tag is not None else "")
    q += "".join(f"&{k}={v}" for k, v in params.items())
    return daemon.request("POST", f"/v1.41/images/create?{q}")


def statuses(r: Response) -> list[tuple[str, str]]:
    return [(m.get("id", ""), m.get("status") or "ERROR " + m.get("error", "")) for m in r.lines()]


def inspect(daemon: Engine, name: str) -> dict[str, Any]:
    r = daemon.request("GET", f"/v1.41/images/{name}/json")
    assert r.status == 200, r.body
    return r.json()


def blob_path(daemon: Engine, digest: str) -> Path:
    return daemon.data_root / "blobs" / "sha256" / digest.split(":", 1)[1]


@pytest.fixture
def app(registry: Registry) -> tuple[Pushed, list[bytes]]:  # noqa: F811
    """team/app:1.2, three gzip layers; tags 1.2 and latest."""
    tars = [make_layer(1, 200 * KB), make_layer(2, 64 * KB), make_layer(3, 8 * KB)]
    p = push_image(registry, "team/app", "1.2", tars)
    push_image(registry, "team/app", "latest", tars[:2])
    return p, tars


# -- by tag, by digest, all tags ------------------------------------------------------------------

def test_cli_pull_by_tag(daemon: Engine, registry: Registry, app: tuple[Pushed, list[bytes]]) -> None:  # noqa: F811
    pushed, tars = app
    name = f"{registry.host}/team/app:1.2"
    r = daemon.docker("pull", name, check=True)
    out = r.stdout.decode()
    assert "1.2: Pulling from team/app" in out
    for d in pushed.layer_digests:
        assert f"{d[7:19]}: Pull complete" in out
    assert f"Digest: {pushed.manifest_digest}" in out
    assert f"Status: Downloaded newer image for {name}" in out
    assert out.rstrip().endswith(name)
    info = inspect(daemon, name)
    assert info["Id"] == pushed.config_digest
    assert info["RepoTags"] == [name]
    assert info["RepoDigests"] == [f"{registry.host}/team/app@{pushed.manifest_digest}"]
    assert info["RootFS"]["Layers"] == pushed.diff_ids
    assert info["Size"] == sum(content_size(t) for t in tars)
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    # the store holds exactly what the registry served, compressed, and the config bytes
    for d in pushed.layer_digests:
        data = blob_path(daemon, d).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == d
    assert blob_path(daemon, pushed.config_digest).read_bytes() == pushed.config_bytes


def test_pull_by_digest_stores_only_the_digest_ref(daemon: Engine, registry: Registry,  # noqa: F811
                                                    app: tuple[Pushed, list[bytes]]) -> None:
    pushed, _ = app
    repo = f"{registry.host}/team/app"
    client = daemon.client()
    image = client.images.pull(f"{repo}@{pushed.manifest_digest}")
    assert image.id == pushed.config_digest
    info = inspect(daemon, pushed.config_digest)
    assert info["RepoTags"] == [] and info["RepoDigests"] == [f"{repo}@{pushed.manifest_digest}"]
    # the `tag` parameter may carry the digest too; pulling again changes nothing
    r = pull(daemon, repo, pushed.manifest_digest)
    assert statuses(r) == [
        (f"{repo}@{pushed.manifest_digest}", "Pulling from team/app"),
        ("", f"Digest: {pushed.manifest_digest}"),
        ("", f"Status: Image is up to date for {repo}@{pushed.manifest_digest}"),
    ]


def test_a_tag_beside_a_digest_finds_the_digest(daemon: Engine, registry: Registry,  # noqa: F811
                                                app: tuple[Pushed, list[bytes]]) -> None:
    """`name:tag@digest` (compose's pinned form) is looked up by the digest alone, whatever the
    tag says, as dockerd's reference store does: inspect, history, tag, save and rmi."""
    import io
    import tarfile

    pushed, _ = app
    repo = f"{registry.host}/team/app"
    assert pull(daemon, repo, "1.2").status == 200
    for name in (f"{repo}:1.2@{pushed.manifest_digest}", f"{repo}:nope@{pushed.manifest_digest}"):
        assert inspect(daemon, name)["Id"] == pushed.config_digest
        assert daemon.request("GET", f"/v1.41/images/{name}/history").status == 200
        r = daemon.request("GET", f"/v1.41/images/get?names={name}")
        assert r.status == 200
        manifest = json.loads(tarfile.open(fileobj=io.BytesIO(r.body)).extractfile("manifest.json").read())
        assert [m["RepoTags"] for m in manifest] == [None]  # a digest is no tag to restore
    assert daemon.request("POST", f"/v1.41/images/{repo}:x@{pushed.manifest_digest}/tag?repo=pinned&tag=1").status == 201
    assert inspect(daemon, "pinned:1")["Id"] == pushed.config_digest
    other = "sha256:" + "0" * 64
    assert daemon.request("GET", f"/v1.41/images/{repo}:1.2@{other}/json").status == 404
    # rmi removes the digest ref (shown as given) and keeps the tags
    r = daemon.request("DELETE", f"/v1.41/images/{repo}:1.2@{pushed.manifest_digest}")
    assert r.status == 200 and r.json() == [{"Untagged": f"{repo}:1.2@{pushed.manifest_digest}"}]
    info = inspect(daemon, pushed.config_digest)
    assert info["RepoDigests"] == [] and f"{repo}:1.2" in info["RepoTags"]


def test_cli_pull_all_tags(daemon: Engine, registry: Registry, app: tuple[Pushed, list[bytes]]) -> None:  # noqa: F811
    pushed, _ = app
    repo = f"{registry.host}/team/app"
    r = daemon.docker("pull", "-a", repo, check=True)
    out = r.stdout.decode()
    assert "1.2: Pulling from team/app" in out and "latest: Pulling from team/app" in out
    assert out.count("Status: ") == 1 and f"Status: Downloaded newer image for {repo}" in out
    tags = json.loads(daemon.request("GET", "/v1.41/images/json").body)
    assert sorted(t for i in tags for t in i["RepoTags"]) == [f"{repo}:1.2", f"{repo}:latest"]
    # the API: an empty tag means every tag; one block per tag, one final Status line
    r2 = pull(daemon, repo, "")
    st = statuses(r2)
    assert [s for _, s in st if s.startswith("Pulling from")] == ["Pulling from team/app"] * 2
    assert st[-1] == ("", f"Status: Image is up to date for {repo}")


def test_repull_is_up_to_date_and_shared_layers_already_exist(daemon: Engine, registry: Registry,  # noqa: F811
                                                               app: tuple[Pushed, list[bytes]]) -> None:
    pushed, tars = app
    repo = f"{registry.host}/team/app"
    assert pull(daemon, repo, "1.2").status == 200
    again = pull(daemon, repo, "1.2")
    assert statuses(again) == [
        ("1.2", "Pulling from team/app"),
        ("", f"Digest: {pushed.manifest_digest}"),
        ("", f"Status: Image is up to date for {repo}:1.2"),
    ]
    other = push_image(registry, "team/other", "1", [tars[0], tars[1], make_layer(9, 4 * KB)])
    before = registry.blob_gets(other.layer_digests[0])
    st = statuses(pull(daemon, f"{registry.host}/team/other", "1"))
    ids = [d[7:19] for d in other.layer_digests]
    assert (ids[0], "Already exists") in st and (ids[1], "Already exists") in st
    assert (ids[2], "Pull complete") in st
    assert st[-1] == ("", f"Status: Downloaded newer image for {registry.host}/team/other:1")
    assert registry.blob_gets(other.layer_digests[0]) == before  # not fetched again


def test_a_stored_layer_after_a_missing_one_is_not_already_exists(daemon: Engine, registry: Registry,  # noqa: F811
                                                                   app: tuple[Pushed, list[bytes]]) -> None:
    """dockerd says "Already exists" only for the leading run of stored layers; a stored layer
    after a missing one goes through the download states, but we do not fetch it again."""
    _, tars = app
    assert pull(daemon, f"{registry.host}/team/app", "1.2").status == 200
    other = push_image(registry, "team/later", "1", [make_layer(21, 4 * KB), tars[1]])
    before = registry.blob_gets(other.layer_digests[1])
    st = statuses(pull(daemon, f"{registry.host}/team/later", "1"))
    new, kept = other.layer_digests[0][7:19], other.layer_digests[1][7:19]
    assert (kept, "Already exists") not in st
    mine = [status for i, status in st if i == kept]
    # dockerd 20.10 (seen on the reference): Pulling fs layer, Verifying Checksum, Download complete,
    # (Extracting), Pull complete; it fetches the blob again, we do not
    assert mine == ["Pulling fs layer", "Verifying Checksum", "Download complete", "Extracting", "Pull complete"]
    # extraction in layer order: the new bottom layer completes first
    assert st.index((new, "Pull complete")) < st.index((kept, "Extracting"))
    assert registry.blob_gets(other.layer_digests[1]) == before  # not fetched again


def test_tag_moves_and_digest_ref_is_kept(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    repo = f"{registry.host}/team/mv"
    first = push_image(registry, "team/mv", "t", [make_layer(11, 4 * KB)])
    assert pull(daemon, repo, "t").status == 200
    second = push_image(registry, "team/mv", "t", [make_layer(12, 4 * KB)])
    st = statuses(pull(daemon, repo, "t"))
    assert st[-1] == ("", f"Status: Downloaded newer image for {repo}:t")
    new = inspect(daemon, f"{repo}:t")
    assert new["Id"] == second.config_digest
    assert new["RepoDigests"] == [f"{repo}@{second.manifest_digest}"]
    old = inspect(daemon, first.config_digest)  # dangling now, still known by its digest
    assert old["RepoTags"] == [] and old["RepoDigests"] == [f"{repo}@{first.manifest_digest}"]


# -- formats and platforms -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, compression", [("oci", "gzip"), ("oci", "zstd"), ("docker", "none"),
                                              ("oci", ["zstd", "gzip", "none"])])
def test_formats_and_compressions(daemon: Engine, registry: Registry, fmt: str,  # noqa: F811
                                  compression: str | list[str]) -> None:
    tars = [make_layer(21, 32 * KB), make_layer(22, 16 * KB), make_layer(23, 1 * KB)]
    n = len(compression) if isinstance(compression, list) else 1
    p = push_image(registry, "team/fmt", "x", tars[:n], fmt=fmt, compression=compression)
    r = pull(daemon, f"{registry.host}/team/fmt", "x")
    assert r.status == 200 and statuses(r)[-1][1].startswith("Status: Downloaded newer image"), r.body
    info = inspect(daemon, f"{registry.host}/team/fmt:x")
    assert info["Id"] == p.config_digest and info["RootFS"]["Layers"] == p.diff_ids
    assert info["Size"] == sum(content_size(t) for t in tars[:n])
    for d in p.layer_digests:  # layers stay as the registry served them
        assert blob_path(daemon, d).stat().st_size == p.layer_sizes[p.layer_digests.index(d)]


@pytest.fixture
def multi(registry: Registry) -> dict[str, Any]:  # noqa: F811
    base = make_layer(31, 16 * KB)
    kids = {plat: push_image(registry, "team/multi", None, [base, make_layer(32 + i, 4 * KB)], platform=plat)
            for i, plat in enumerate(["linux/amd64", "linux/arm64/v8", "linux/arm/v7"])}
    return {"kids": kids, "list": push_index(registry, "team/multi", "1", kids),
            "index": push_index(registry, "team/multi", "oci", kids, fmt="oci")}


def test_cli_platform_from_a_list(daemon: Engine, registry: Registry, multi: dict[str, Any]) -> None:  # noqa: F811
    name = f"{registry.host}/team/multi:1"
    daemon.docker("pull", "--platform", "linux/arm64", name, check=True)
    info = inspect(daemon, name)
    assert info["Id"] == multi["kids"]["linux/arm64/v8"].config_digest and info["Architecture"] == "arm64"
    assert info["RepoDigests"] == [f"{registry.host}/team/multi@{multi['list']}"]  # the LIST digest
    r = pull(daemon, f"{registry.host}/team/multi", "oci", platform="linux/arm")
    assert r.status == 200 and ("", f"Digest: {multi['index']}") in statuses(r)
    assert inspect(daemon, f"{registry.host}/team/multi:oci")["Id"] == multi["kids"]["linux/arm/v7"].config_digest
    # default platform: the host's
    client = daemon.client()
    img = client.images.pull(f"{registry.host}/team/multi", tag="1")
    assert img.id == multi["kids"]["linux/amd64"].config_digest


def test_missing_platform_is_an_in_stream_error(daemon: Engine, registry: Registry,  # noqa: F811
                                                multi: dict[str, Any]) -> None:
    r = pull(daemon, f"{registry.host}/team/multi", "1", platform="linux/s390x")
    assert r.status == 200
    msg = "no matching manifest for linux/s390x in the manifest list entries"
    assert r.lines() == [{"status": "Pulling from team/multi", "id": "1"},
                         {"errorDetail": {"message": msg}, "error": msg}]
    cli = daemon.docker("pull", "--platform", "linux/s390x", f"{registry.host}/team/multi:1")
    assert cli.returncode != 0 and msg in cli.stderr.decode()


def test_platform_mismatch_of_a_single_arch_image_warns(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    p = push_image(registry, "team/single", "latest", [make_layer(41, 4 * KB)], platform="linux/arm/v7")
    repo = f"{registry.host}/team/single"
    r = pull(daemon, repo, "latest", platform="linux/arm/v5")
    assert inspect(daemon, f"{repo}:latest")["Id"] == p.config_digest  # pulled anyway, as 20.10 does
    assert r.lines()[-1] == {"status": f"WARNING: image with reference {repo} was found but does not match "
                                       "the specified platform: wanted linux/arm/v5, actual: linux/arm/v7"}


def test_an_os_other_than_linux_is_refused_as_dockerd_does(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    """The platform asked for names another OS: refused before any layer line. An image whose
    config says windows: refused when the config arrives (its layers were listed already).
    Nothing is stored either way; an OS other than Linux in the config is refused too."""
    linux = push_image(registry, "team/os", "linux", [make_layer(42, 4 * KB)])
    win = push_image(registry, "team/os", "win", [make_layer(43, 4 * KB)], platform="windows/amd64")
    bsd = push_image(registry, "team/os", "bsd", [make_layer(44, 4 * KB)], platform="freebsd/amd64")
    repo = f"{registry.host}/team/os"
    win_msg = 'image operating system "windows" cannot be used on this platform'
    unsupported = "operating system is not supported"
    for tag, platform, msg in (("linux", "windows/amd64", unsupported), ("linux", "FreeBSD", unsupported),
                               ("win", "windows/amd64", win_msg), ("win", "linux/amd64", win_msg),
                               ("bsd", "linux", unsupported)):
        r = pull(daemon, repo, tag, platform=platform)
        assert r.status == 200
        lines = r.lines()
        assert lines[0] == {"status": "Pulling from team/os", "id": tag}
        assert lines[-1] == {"errorDetail": {"message": msg}, "error": msg}, (tag, platform)
        if platform.lower().startswith(("windows", "freebsd")):
            assert len(lines) == 2  # no layer line at all
    r = pull(daemon, repo, "win")  # no platform asked: the layers are listed, then the config refused
    assert r.lines()[-1] == {"errorDetail": {"message": win_msg}, "error": win_msg}
    assert {"status": "Pulling fs layer", "progressDetail": {}, "id": win.layer_digests[0][7:19]} in r.lines()
    for p in (linux, win, bsd):
        assert daemon.request("GET", f"/v1.41/images/{p.config_digest}/json").status == 404
    cli = daemon.docker("pull", f"{repo}:win")
    assert cli.returncode != 0 and win_msg in cli.stderr.decode()
    assert pull(daemon, repo, "linux", platform="linux/amd64").lines()[-1]["status"].startswith("Status: Downloaded")


# -- errors before the stream ------------------------------------------------------------------

def test_errors_before_the_stream(daemon: Engine, registry: Registry, app: tuple[Pushed, list[bytes]]) -> None:  # noqa: F811
    repo = f"{registry.host}/team/app"
    cases = [
        ((repo, "nope"), 404, f"manifest for {repo}:nope not found: manifest unknown: manifest unknown"),
        ((f"{registry.host}/team/nothere", "1"), 404, None),
        ((f"{registry.host}/Team/app", "1"), 400, "invalid reference format: repository name must be lowercase"),
        ((repo, "a:b"), 400, "invalid tag format"),
        (("scratch", "latest"), 403, "'scratch' is a reserved name"),
    ]
    for (image, tag), status, message in cases:
        r = pull(daemon, image, tag)
        assert r.status == status, (image, tag, r.body)
        assert r.headers["content-type"] == "application/json"
        if message:
            assert r.json() == {"message": message}
    r = pull(daemon, repo, "1.2", platform="a/b/c/d")
    assert (r.status, r.json()) == (400, {"message": '"a/b/c/d": cannot parse platform specifier: invalid argument'})
    cli = daemon.docker("pull", f"{repo}:nope")
    assert cli.returncode != 0
    assert f"manifest for {repo}:nope not found: manifest unknown" in cli.stderr.decode()
    import docker.errors

    with pytest.raises(docker.errors.NotFound):
        daemon.client().images.pull(repo, tag="nope")


def test_unreachable_registry_is_a_500(daemon: Engine) -> None:
    from tests.support.registry import free_port

    host = f"127.0.0.1:{free_port()}"
    r = pull(daemon, f"{host}/x", "1")
    assert r.status == 500 and r.json()["message"]
    # a name that does not resolve is named as written, as Go prints it (the URL lowers nothing)
    r = pull(daemon, "NoSuch.Invalid/x", "1")
    assert r.status == 500
    message = r.json()["message"]
    assert message.startswith('Get "https://NoSuch.Invalid/v2/": dial tcp: lookup NoSuch.Invalid on '), message
    assert message.endswith(": no such host"), message


def test_digest_mismatch_in_manifest_and_config_count(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    """A config whose diff_ids do not match the manifest's layers is refused, nothing committed."""
    from tests.support.seed import DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, compress, push_blob, put_manifest
    from tests.support.seed import image_config, sha256

    tar = make_layer(51, 4 * KB)
    blob = compress(tar, "gzip")
    push_blob(registry, "team/bad", blob)
    config = image_config([sha256(b"not the tar")])
    push_blob(registry, "team/bad", config)
    m = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
         "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": sha256(config)},
         "layers": [{"mediaType": DOCKER_LAYER_GZIP, "size": len(blob), "digest": sha256(blob)}]}
    put_manifest(registry, "team/bad", "diff", json.dumps(m).encode(), DOCKER_MANIFEST)
    r = pull(daemon, f"{registry.host}/team/bad", "diff")
    assert r.lines()[-1]["error"] == "layers from manifest don't match image configuration"
    assert not blob_path(daemon, sha256(blob)).exists()  # never stored: its DiffID was wrong
    assert json.loads(daemon.request("GET", "/v1.41/images/json").body) == []


# -- concurrency ---------------------------------------------------------------------------------

class HoldingProxy(FaultProxy):
    """A FaultProxy that can hold one blob's response after `after` body bytes until released."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self._holds: list[tuple[str, int, asyncio.Event, threading.Event]] = []

    def hold(self, digest: str, after: int) -> threading.Event:
        """Arm a hold; returns an Event set once the response is held. Call release() later."""
        reached = threading.Event()
        gate = asyncio.run_coroutine_threadsafe(_make_event(), self._loop).result(5)
        self._holds.append((digest, after, gate, reached))
        return reached

    def release(self) -> None:
        for _, _, gate, _ in self._holds:
            self._loop.call_soon_threadsafe(gate.set)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The daemon tries https first on loopback registries; a plain-HTTP server answers a TLS
        # ClientHello at once (Go's says 400), so the client falls back to http without waiting
        # for its connect timeout. FaultProxy alone would wait for a request head forever.
        try:
            first = await reader.readexactly(1)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        if first == b"\x16":
            writer.write(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
            writer.close()
            return
        reader._buffer[0:0] = first  # put the byte back (StreamReader has no unread)
        await super()._client(reader, writer)

    async def _relay(self, method, up, writer, seen, fault):  # type: ignore[no-untyped-def,override]
        for digest, after, gate, reached in self._holds:
            if method == "GET" and seen.path.endswith("/blobs/" + digest) and not gate.is_set():
                writer = _GatedWriter(writer, after, gate, reached)
                break
        return await super()._relay(method, up, writer, seen, fault)


async def _make_event() -> asyncio.Event:
    return asyncio.Event()


class _GatedWriter:
    """Passes the response through; once `after` body bytes went out, waits for the gate."""

    def __init__(self, writer: asyncio.StreamWriter, after: int, gate: asyncio.Event,
                 reached: threading.Event) -> None:
        self._w, self._after, self._gate, self._reached = writer, after, gate, reached
        self._head = True
        self._sent = 0

    @property
    def transport(self):  # type: ignore[no-untyped-def]
        return self._w.transport

    def write(self, data: bytes) -> None:
        if self._head:
            self._head = False
        else:
            self._sent += len(data)
        self._w.write(data)

    async def drain(self) -> None:
        await self._w.drain()
        if self._sent >= self._after and not self._gate.is_set():
            self._reached.set()
            await self._gate.wait()


@pytest.fixture
def proxy(registry: Registry) -> Iterator[HoldingProxy]:  # noqa: F811
    with HoldingProxy(registry.port) as px:
        yield px


@pytest.fixture
def big(registry: Registry) -> Pushed:  # noqa: F811
    """team/big: a 2 MiB (compressed) first layer and two small ones."""
    return push_image(registry, "team/big", "1",
                      [make_layer(61, 4 << 20, binary_fraction=0.5), make_layer(62, 8 * KB), make_layer(63, 8 * KB)])


class StreamReader:
    """A pull whose JSON lines are read as they come, from a raw socket."""

    def __init__(self, daemon: Engine, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(daemon.sock)
        self.sock.sendall(f"POST {path} HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n".encode())
        self.f = self.sock.makefile("rb")
        status = self.f.readline()
        assert b" 200 " in status, status
        while self.f.readline() not in (b"\r\n", b""):
            pass
        self.lines: list[dict] = []
        self.done = False

    def until(self, pred) -> dict:  # type: ignore[no-untyped-def]
        """Read messages until one satisfies pred (chunked framing: size line, data, CRLF)."""
        while True:
            size = int(self.f.readline().strip() or b"0", 16)
            if size == 0:
                self.done = True
                raise AssertionError(f"stream ended before the awaited message: {self.lines}")
            data = self.f.read(size)
            self.f.readline()
            for raw in data.split(b"\r\n"):
                if raw.strip():
                    msg = json.loads(raw)
                    self.lines.append(msg)
                    if pred(msg):
                        return msg

    def rest(self) -> list[dict]:
        try:
            self.until(lambda m: False)
        except AssertionError:
            pass
        return self.lines

    def close(self) -> None:
        self.f.close()
        self.sock.close()


def _downloading(digest: str):  # type: ignore[no-untyped-def]
    return lambda m: m.get("id") == digest[7:19] and m.get("status") == "Downloading"


def test_two_concurrent_pulls_fetch_each_blob_once(daemon: Engine, registry: Registry,  # noqa: F811
                                                   proxy: HoldingProxy, big: Pushed) -> None:
    path = f"/v1.41/images/create?fromImage={proxy.host}/team/big&tag=1"
    held = proxy.hold(big.layer_digests[0], after=1 << 20)
    a = StreamReader(daemon, path)
    assert held.wait(30), "the first pull never reached the held blob"
    a.until(_downloading(big.layer_digests[0]))
    b = StreamReader(daemon, path)
    b.until(_downloading(big.layer_digests[0]))  # b watches a's download: it has joined it
    proxy.release()
    ends = sorted(s.rest()[-1]["status"] for s in (a, b))
    for s in (a, b):
        s.close()
    # both pulls completed; the one that committed second found the tag already there (as dockerd)
    assert ends[0] == f"Status: Downloaded newer image for {proxy.host}/team/big:1", ends
    assert ends[1].endswith(f" for {proxy.host}/team/big:1"), ends
    for d in [big.config_digest, *big.layer_digests]:
        assert registry.blob_gets(d) == 1, d
    assert inspect(daemon, f"{proxy.host}/team/big:1")["Id"] == big.config_digest


def test_a_client_hanging_up_does_not_cancel_a_shared_download(daemon: Engine, registry: Registry,  # noqa: F811
                                                                proxy: HoldingProxy, big: Pushed) -> None:
    path = f"/v1.41/images/create?fromImage={proxy.host}/team/big&tag=1"
    held = proxy.hold(big.layer_digests[0], after=1 << 20)
    a = StreamReader(daemon, path)
    assert held.wait(30)
    a.until(_downloading(big.layer_digests[0]))
    b = StreamReader(daemon, path)
    b.until(_downloading(big.layer_digests[0]))
    a.sock.shutdown(socket.SHUT_RDWR)  # the first client hangs up mid-download
    a.close()
    proxy.release()
    assert b.rest()[-1] == {"status": f"Status: Downloaded newer image for {proxy.host}/team/big:1"}, b.lines
    b.close()
    assert registry.blob_gets(big.layer_digests[0]) == 1
    info = inspect(daemon, f"{proxy.host}/team/big:1")
    assert info["RootFS"]["Layers"] == big.diff_ids


def test_deleting_an_image_while_a_pull_shares_its_layers(daemon: Engine, registry: Registry,  # noqa: F811
                                                          proxy: HoldingProxy) -> None:
    shared = make_layer(71, 64 * KB)
    x = push_image(registry, "team/x", "1", [shared, make_layer(72, 8 * KB)])
    y = push_image(registry, "team/y", "1", [shared, make_layer(73, 2 << 20, binary_fraction=1.0)])
    assert pull(daemon, f"{proxy.host}/team/x", "1").status == 200
    held = proxy.hold(y.layer_digests[1], after=1 << 20)
    s = StreamReader(daemon, f"/v1.41/images/create?fromImage={proxy.host}/team/y&tag=1")
    assert held.wait(30)
    s.until(_downloading(y.layer_digests[1]))
    assert (y.layer_digests[0][7:19], "Already exists") in [(m.get("id"), m.get("status")) for m in s.lines]
    # the other image goes away while the pull that shares its first layer runs
    daemon.docker("rmi", f"{proxy.host}/team/x:1", check=True)
    daemon.docker("image", "prune", "-af", check=True)
    assert blob_path(daemon, x.layer_digests[0]).exists()        # leased by the pull: kept
    assert not blob_path(daemon, x.layer_digests[1]).exists()    # x's own layer: gone
    proxy.release()
    assert s.rest()[-1] == {"status": f"Status: Downloaded newer image for {proxy.host}/team/y:1"}, s.lines
    s.close()
    info = inspect(daemon, f"{proxy.host}/team/y:1")
    assert info["RootFS"]["Layers"] == y.diff_ids
    for d in y.layer_digests:
        assert blob_path(daemon, d).exists()
    # and the layer is really usable: delete y, and the shared blob is collected at last
    daemon.docker("rmi", f"{proxy.host}/team/y:1", check=True)
    assert not blob_path(daemon, y.layer_digests[0]).exists()


def test_max_concurrent_downloads_queues_the_rest(registry: Registry) -> None:  # noqa: F811
    from tests.support.proc import start_daemon, stop

    p = push_image(registry, "team/many", "1", [make_layer(80 + i, 4 * KB) for i in range(4)])
    d = start_daemon(extra=["--max-concurrent-downloads", "1"])
    try:
        st = statuses(pull(d, f"{registry.host}/team/many", "1"))
        waiting = [i for i, s in st if s == "Waiting"]
        assert len(waiting) >= 2, st   # with one slot, at least the last layers had to wait
        assert st[-1][1].startswith("Status: Downloaded newer image")
        assert inspect(d, f"{registry.host}/team/many:1")["Id"] == p.config_digest
    finally:
        stop(d)


def test_docker_py_stream_decode(daemon: Engine, registry: Registry, app: tuple[Pushed, list[bytes]]) -> None:  # noqa: F811
    pushed, _ = app
    api = daemon.api_client()
    msgs = list(api.pull(f"{registry.host}/team/app", tag="1.2", stream=True, decode=True))
    assert msgs[0] == {"status": "Pulling from team/app", "id": "1.2"}
    assert msgs[-2] == {"status": f"Digest: {pushed.manifest_digest}"}
    assert msgs[-1] == {"status": f"Status: Downloaded newer image for {registry.host}/team/app:1.2"}
    done = [m["id"] for m in msgs if m.get("status") == "Pull complete"]
    assert done == [d[7:19] for d in pushed.layer_digests]  # extraction in layer order


def test_distribution_inspect(daemon: Engine, registry: Registry, app: tuple[Pushed, list[bytes]],  # noqa: F811
                              multi: dict[str, Any]) -> None:
    pushed, _ = app
    r = daemon.request("GET", f"/v1.41/distribution/{registry.host}/team/app:1.2/json")
    assert r.status == 200 and r.json() == {
        "Descriptor": {"mediaType": pushed.media_type, "digest": pushed.manifest_digest, "size": pushed.size},
        "Platforms": [{"architecture": "amd64", "os": "linux"}]}
    r = daemon.request("GET", f"/v1.41/distribution/{registry.host}/team/multi:1/json")
    assert r.json()["Descriptor"]["digest"] == multi["list"]
    assert r.json()["Platforms"] == [{"architecture": "amd64", "os": "linux"},
                                     {"architecture": "arm64", "os": "linux", "variant": "v8"},
                                     {"architecture": "arm", "os": "linux", "variant": "v7"}]
    data = daemon.client().images.get_registry_data(f"{registry.host}/team/multi:1")
    assert data.id == multi["list"] and data.has_platform("linux/amd64")
    r = daemon.request("GET", f"/v1.41/distribution/{registry.host}/team/app:nope/json")
    assert r.status == 404
    r = daemon.request("GET", f"/v1.41/distribution/{pushed.config_digest}/json")
    assert (r.status, r.json()) == (500, {"message": "no manifest found for full image ID"})


# -- faults between the daemon and the registry -----------------------------------------------------

def test_dropped_connection_is_resumed(daemon: Engine, registry: Registry,  # noqa: F811
                                       proxy: HoldingProxy, big: Pushed) -> None:
    proxy.drop_after(300_000, match=big.layer_digests[0])
    r = pull(daemon, f"{proxy.host}/team/big", "1")
    assert statuses(r)[-1][1] == f"Status: Downloaded newer image for {proxy.host}/team/big:1", r.body
    ranged = [s for s in proxy.requests(big.layer_digests[0], "GET") if "range" in s.headers]
    assert ranged and ranged[0].headers["range"] == "bytes=300000-"
    assert inspect(daemon, f"{proxy.host}/team/big:1")["RootFS"]["Layers"] == big.diff_ids


def test_flipped_byte_is_caught_and_nothing_is_stored(daemon: Engine, registry: Registry,  # noqa: F811
                                                      proxy: HoldingProxy, big: Pushed) -> None:
    bad = big.layer_digests[1]
    proxy.flip_byte(100, match=bad)
    r = pull(daemon, f"{proxy.host}/team/big", "1")
    assert r.status == 200
    msg = f"filesystem layer verification failed for digest {bad}"
    assert r.lines()[-1] == {"errorDetail": {"message": msg}, "error": msg}
    assert not blob_path(daemon, bad).exists()
    assert json.loads(daemon.request("GET", "/v1.41/images/json").body) == []
    assert not any((daemon.data_root / "ingest").iterdir())  # no partial file left behind
    # the config and manifest, stored while the layers downloaded, went with the failed pull
    assert not blob_path(daemon, big.config_digest).exists()
    assert not blob_path(daemon, big.manifest_digest).exists()
    # the CLI shows the same; a clean retry then works
    proxy.flip_byte(100, match=bad)
    cli = daemon.docker("pull", f"{proxy.host}/team/big:1")
    assert cli.returncode != 0 and msg in cli.stderr.decode()
    assert daemon.docker("pull", f"{proxy.host}/team/big:1").returncode == 0
    assert blob_path(daemon, bad).exists()


def test_429_and_503_are_retried(daemon: Engine, registry: Registry,  # noqa: F811
                                 proxy: HoldingProxy, big: Pushed) -> None:
    proxy.respond(503, match="/manifests/")
    proxy.respond(429, match=big.layer_digests[2], method="GET", headers={"Retry-After": "1"})
    r = pull(daemon, f"{proxy.host}/team/big", "1")
    st = statuses(r)
    assert st[-1][1] == f"Status: Downloaded newer image for {proxy.host}/team/big:1", r.body
    assert (big.layer_digests[2][7:19], "Retrying in 1 second") in st
    assert [s.status for s in proxy.requests(big.layer_digests[2], "GET")][:2] == [429, 200]
    assert not proxy.pending()


# -- credentials ----------------------------------------------------------------------------------

def _login(daemon: Engine, reg: Registry) -> None:
    """What `docker login` leaves behind: the CLI then sends X-Registry-Auth on pull."""
    import base64

    cfg = daemon.workdir / "docker-config"
    cfg.mkdir(exist_ok=True)
    auth = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    (cfg / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))


@pytest.mark.parametrize("auth", ["basic", "token"])
def test_pull_with_credentials(daemon: Engine, auth: str) -> None:
    from tests.support.registry import start_registry

    reg = start_registry(auth=auth)
    try:
        p = push_image(reg, "private/app", "1", [make_layer(90, 8 * KB)])
        name = f"{reg.host}/private/app:1"
        anonymous = daemon.docker("pull", name)
        assert anonymous.returncode != 0
        _login(daemon, reg)
        daemon.docker("pull", name, check=True)
        assert inspect(daemon, name)["Id"] == p.config_digest
        # docker-py with explicit credentials, for a tag the CLI did not pull
        push_image(reg, "private/app", "2", [make_layer(91, 8 * KB)])
        img = daemon.client().images.pull(f"{reg.host}/private/app", tag="2",
                                          auth_config={"username": reg.username, "password": reg.password})
        assert img.tags == [f"{reg.host}/private/app:2"]
        import docker.errors

        with pytest.raises(docker.errors.APIError):
            daemon.client().images.pull(f"{reg.host}/private/app", tag="2",
                                        auth_config={"username": reg.username, "password": "wrong"})
    finally:
        reg.stop()


# -- docker.io through a mirror, the seed's request, legacy parameters, events ------------------------

def test_docker_io_through_a_mirror(registry: Registry) -> None:  # noqa: F811
    """`docker pull alpine` = docker.io/library/alpine:latest, served by --registry-mirror."""
    from tests.support.proc import start_daemon, stop

    alpine = push_image(registry, "library/alpine", "latest", [make_layer(95, 8 * KB)])
    push_image(registry, "library/base", "1", [make_layer(96, 4 * KB)])
    push_image(registry, "library/base", "2", [make_layer(97, 4 * KB)])
    d = start_daemon(extra=["--registry-mirror", registry.url])
    try:
        out = d.docker("pull", "alpine", check=True).stdout.decode()
        assert "latest: Pulling from library/alpine" in out
        assert "Status: Downloaded newer image for alpine:latest" in out
        assert out.rstrip().endswith("docker.io/library/alpine:latest")
        info = inspect(d, "alpine")
        assert info["RepoTags"] == ["alpine:latest"]
        assert info["RepoDigests"] == [f"alpine@{alpine.manifest_digest}"]
        # the seed's request: no tag at all means every tag of library/base
        st = statuses(pull(d, "base"))
        assert [s for _, s in st if s.startswith("Pulling from")] == ["Pulling from library/base"] * 2
        assert st[-1] == ("", "Status: Downloaded newer image for base")
        tags = sorted(t for i in d.request("GET", "/v1.41/images/json").json() for t in i["RepoTags"] or [])
        assert tags == ["alpine:latest", "base:1", "base:2"]
    finally:
        stop(d)


def test_legacy_registry_parameter_and_pull_events(daemon: Engine, registry: Registry,  # noqa: F811
                                                   app: tuple[Pushed, list[bytes]]) -> None:
    import time

    pushed, _ = app
    since = int(time.time())
    r = pull(daemon, "team/app", "1.2", registry=registry.host)
    assert statuses(r)[-1] == ("", f"Status: Downloaded newer image for {registry.host}/team/app:1.2")
    r = pull(daemon, f"{registry.host}/team/app", pushed.manifest_digest)
    assert r.status == 200
    assert pull(daemon, f"{registry.host}/team/app", "nope").status == 404   # no event for a failure
    events = daemon.request("GET", f"/v1.41/events?since={since}&until={int(time.time()) + 1}"
                                   '&filters={"event":["pull"]}')
    got = [(e["id"], e["Actor"]["Attributes"]["name"])
           for e in map(json.loads, events.body.decode().split())]
    assert got == [(f"{registry.host}/team/app:1.2", f"{registry.host}/team/app"),
                   (f"{registry.host}/team/app@{pushed.manifest_digest}", f"{registry.host}/team/app")]


def test_the_manifests_pulled_are_kept_as_the_image_descriptor(daemon: Engine, registry: Registry,  # noqa: F811
                                                                multi: dict[str, Any],
                                                                app: tuple[Pushed, list[bytes]]) -> None:
    """API >= 1.48 shows the index (or manifest) an image was pulled as: the store keeps them."""
    pushed, _ = app
    assert pull(daemon, f"{registry.host}/team/multi", "1", platform="linux/arm64").status == 200
    assert pull(daemon, f"{registry.host}/team/app", "1.2").status == 200
    multi_info = daemon.request("GET", f"/v1.48/images/{registry.host}/team/multi:1/json").json()
    assert multi_info["Descriptor"]["digest"] == multi["list"]
    assert multi_info["Descriptor"]["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    app_info = daemon.request("GET", f"/v1.48/images/{registry.host}/team/app:1.2/json").json()
    assert app_info["Descriptor"] == {"mediaType": pushed.media_type, "digest": pushed.manifest_digest,
                                      "size": pushed.size}
    assert blob_path(daemon, multi["list"]).exists() and blob_path(daemon, pushed.manifest_digest).exists()
    kid = multi["kids"]["linux/arm64/v8"]
    assert blob_path(daemon, kid.manifest_digest).read_bytes() == kid.manifest_bytes
    daemon.docker("rmi", f"{registry.host}/team/app:1.2", check=True)  # and they go with the image
    assert not blob_path(daemon, pushed.manifest_digest).exists()
