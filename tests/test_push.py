"""Push end to end: our daemon pushes to a real docker-registry; the docker CLI and docker-py drive it.

What the registry holds afterwards is read back over its HTTP API and pulled back, and must be
the image byte for byte (config = image ID, layers = the DiffIDs once inflated, manifest digest
= the one the stream announced). Error lines and the fixed lines of the stream are compared
with the reference dockerd 20.10 pushing the same image to the same registry.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import urllib.parse
from typing import Any, Iterator

import pytest

from dockerremote.api.progress import bar
from tests.support.proc import Engine, Response
from tests.support.proxy import FaultProxy
from tests.support.registry import (Registry, basic_registry, registry, start_registry,  # noqa: F401
                                    token_registry)
from tests.support.seed import (DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_LAYER_ZSTD,
                                image_config, make_layer, push_image)

KB = 1024
AUTH_NONE = {"X-Registry-Auth": "e30="}


# -- helpers ----------------------------------------------------------------------------------

def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push(engine: Engine, name: str, tag: str = "", headers: dict[str, str] | None = None,
         body: bytes | None = None) -> Response:
    return engine.request("POST", f"/v1.41/images/{name}/push?tag={tag}",
                          body=body, headers=AUTH_NONE if headers is None else headers)


def statuses(r: Response) -> list[tuple[str, str]]:
    """(id, status) of each line but the aux one; an error line reads `ERROR <text>`."""
    return [(m.get("id", ""), m.get("status") or "ERROR " + m.get("error", "")) for m in r.lines()
            if "aux" not in m]


def last_error(r: Response) -> str:
    msg = r.lines()[-1]
    assert msg == {"errorDetail": {"message": msg.get("error")}, "error": msg.get("error")}, msg
    return msg["error"]


def import_tar(engine: Engine, repo: str, tar: bytes) -> str:
    r = engine.request("POST", f"/v1.41/images/create?fromSrc=-&repo={repo}", body=tar)
    assert r.status == 200, r.body
    return r.lines()[-1]["status"]


def save_archive(layers: list[bytes], tags: list[str], config_extra: dict[str, Any] | None = None
                 ) -> tuple[bytes, str]:
    """A `docker save` archive of one image (uncompressed layers); (archive, image ID)."""
    config = image_config([sha(t) for t in layers], config_extra=config_extra)
    cid = sha(config)[7:]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        add(f"{cid}.json", config)
        paths = []
        for i, layer in enumerate(layers):
            add(f"l{i}/layer.tar", layer)
            paths.append(f"l{i}/layer.tar")
        add("manifest.json", json.dumps([{"Config": f"{cid}.json", "RepoTags": tags, "Layers": paths}]).encode())
    return buf.getvalue(), "sha256:" + cid


def load(engine: Engine, archive: bytes) -> None:
    r = engine.request("POST", "/v1.41/images/load", body=archive)
    assert r.status == 200 and b"errorDetail" not in r.body, r.body


def reg_get(reg: Registry, path: str, accept: str = "") -> tuple[int, dict[str, str], bytes]:
    conn = reg.connection()
    try:
        repo = path.split("/v2/", 1)[1].rsplit("/", 2)[0]
        conn.request("GET", path, headers={**reg.auth_header(repo, "pull"), **({"Accept": accept} if accept else {})})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def check_in_registry(reg: Registry, repo: str, tag: str, digest: str, image_id: str,
                      diff_ids: list[str]) -> dict[str, Any]:
    """The registry holds the manifest the stream announced, the config and layers of the image."""
    status, headers, data = reg_get(reg, f"/v2/{repo}/manifests/{tag}", DOCKER_MANIFEST)
    assert status == 200, data
    assert sha(data) == digest == headers["docker-content-digest"]
    manifest = json.loads(data)
    assert data == json.dumps(manifest, indent=3).encode()  # dockerd's layout (Go's MarshalIndent)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == DOCKER_CONFIG and manifest["config"]["digest"] == image_id
    _, _, config = reg_get(reg, f"/v2/{repo}/blobs/{image_id}")
    assert sha(config) == image_id
    layers = []
    for desc, diff_id in zip(manifest["layers"], diff_ids, strict=True):
        _, _, blob = reg_get(reg, f"/v2/{repo}/blobs/{desc['digest']}")
        assert sha(blob) == desc["digest"] and len(blob) == desc["size"]
        if desc["mediaType"] == DOCKER_LAYER_GZIP:
            tar = gzip.decompress(blob)
        else:
            import zstandard
            assert desc["mediaType"] == OCI_LAYER_ZSTD
            tar = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
        assert sha(tar) == diff_id
        layers.append(desc)
    return manifest


def inspect(engine: Engine, name: str) -> dict[str, Any]:
    r = engine.request("GET", f"/v1.41/images/{name}/json")
    assert r.status == 200, r.body
    return r.json()


def pull_back(engine: Engine, name: str) -> dict[str, Any]:
    """Forget the image locally, pull it from the registry again; its inspect."""
    assert engine.request("DELETE", f"/v1.41/images/{name}?force=1").status == 200
    r = engine.request("POST", f"/v1.41/images/create?fromImage={name}")
    assert b"Downloaded newer image" in r.body, r.body
    return inspect(engine, name)


def check_framing(r: Response) -> None:
    """JSON + CRLF lines in dockerd's field order; coherent bars; 12-hex ids on layer lines."""
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert r.body.endswith(b"\r\n")
    for raw in r.body.split(b"\r\n")[:-1]:
        assert b">" not in raw and b"<" not in raw
        msg = json.loads(raw)
        order = ["status", "progressDetail", "progress", "id", "errorDetail", "error", "aux"]
        assert list(msg) == [k for k in order if k in msg], msg
        if msg.get("status") in ("Preparing", "Waiting", "Pushing", "Pushed", "Layer already exists") or \
                msg.get("status", "").startswith(("Mounted from", "Retrying in")):
            assert len(msg["id"]) == 12 and "progressDetail" in msg
        if msg.get("status") == "Pushing":
            d = msg["progressDetail"]
            assert msg["progress"] == bar(d.get("current", 0), d.get("total", 0))


# -- push, pull back, byte for byte -----------------------------------------------------------------

def test_push_an_imported_image_and_pull_it_back(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    tar = make_layer(1, 300 * KB)
    name = f"{registry.host}/team/app"
    image_id = import_tar(daemon, f"{name}:1", tar)
    r = push(daemon, name, "1")
    check_framing(r)
    st = statuses(r)
    sid = sha(tar)[7:19]
    assert st[0] == ("", f"The push refers to repository [{name}]")
    assert st[1] == (sid, "Preparing")
    assert st[-2] == (sid, "Pushed")
    digest_line = st[-1][1]
    assert digest_line.startswith("1: digest: sha256:")
    aux = r.lines()[-1]
    assert aux["progressDetail"] == {} and set(aux["aux"]) == {"Tag", "Digest", "Size"}
    digest, size = aux["aux"]["Digest"], aux["aux"]["Size"]
    assert r.lines()[-2] == {"status": f"1: digest: {digest} size: {size}"}
    manifest = check_in_registry(registry, "team/app", "1", digest, image_id, [sha(tar)])
    assert manifest["layers"][0]["mediaType"] == DOCKER_LAYER_GZIP
    assert inspect(daemon, f"{name}:1")["RepoDigests"] == [f"{name}@{digest}"]
    # the second push only asks: nothing is compressed or uploaded again
    blobs_before = sorted(p.name for p in (daemon.data_root / "blobs" / "sha256").iterdir())
    n = len(registry.accesses())
    r2 = push(daemon, name, "1")
    assert statuses(r2)[1:] == [(sid, "Preparing"), (sid, "Layer already exists"),
                                ("", f"1: digest: {digest} size: {size}")]
    methods = {a.method for a in registry.accesses()[n:] if "dockerremote-sync" not in a.path}
    assert methods <= {"GET", "HEAD", "PUT"} and "PATCH" not in methods
    assert sorted(p.name for p in (daemon.data_root / "blobs" / "sha256").iterdir()) == blobs_before
    info = pull_back(daemon, f"{name}:1")
    assert info["Id"] == image_id and info["RootFS"]["Layers"] == [sha(tar)]
    assert info["RepoDigests"] == [f"{name}@{digest}"]


def test_a_pulled_image_goes_back_as_stored_and_is_mounted(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    tars = [make_layer(2, 120 * KB), make_layer(3, 40 * KB)]
    src = push_image(registry, "src/app", "1", tars, compression=["gzip", "zstd"])
    r = daemon.request("POST", f"/v1.41/images/create?fromImage={registry.host}/src/app&tag=1")
    assert b"Downloaded newer image" in r.body
    dst = f"{registry.host}/dst/app"
    assert daemon.request("POST", f"/v1.41/images/{registry.host}/src/app:1/tag?repo={dst}&tag=2").status == 201
    n = len(registry.accesses())
    r = push(daemon, dst, "2")
    check_framing(r)
    st = statuses(r)
    ids = [sha(t)[7:19] for t in reversed(tars)]
    assert st[1:3] == [(i, "Preparing") for i in ids]
    assert sorted(st[3:5]) == sorted((i, "Mounted from src/app") for i in ids)
    # the same blobs and config as the source: the manifest is the seed's, byte for byte
    digest = r.lines()[-1]["aux"]["Digest"]
    assert digest == src.manifest_digest
    manifest = check_in_registry(registry, "dst/app", "2", digest, src.config_digest, src.diff_ids)
    assert [layer["digest"] for layer in manifest["layers"]] == src.layer_digests
    assert [layer["mediaType"] for layer in manifest["layers"]] == [DOCKER_LAYER_GZIP, OCI_LAYER_ZSTD]
    uploads = [a for a in registry.accesses()[n:] if a.method in ("PATCH", "PUT") and "/blobs/" in a.path]
    assert uploads == []  # mounted, never uploaded (the config too is known there: HEAD only)
    mounts = [a for a in registry.accesses()[n:] if a.method == "POST"]
    queries = [urllib.parse.parse_qs(urllib.parse.urlsplit(a.path).query) for a in mounts]
    assert sorted(q["mount"][0] for q in queries) == sorted([*src.layer_digests, src.config_digest])
    assert all(q["from"] == ["src/app"] for q in queries)
    assert sorted(inspect(daemon, f"{dst}:2")["RepoDigests"]) == [f"{dst}@{digest}",
                                                                   f"{registry.host}/src/app@{digest}"]


def test_a_loaded_image_with_many_layers_waits_for_upload_slots(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    tars = [make_layer(10 + i, 20 * KB) for i in range(7)]
    name = f"{registry.host}/load/app"
    archive, image_id = save_archive(tars, [f"{name}:a"])
    load(daemon, archive)
    r = push(daemon, name, "a")
    check_framing(r)
    st = statuses(r)
    ids = [sha(t)[7:19] for t in reversed(tars)]  # top first, as dockerd lists them
    assert st[1:8] == [(i, "Preparing") for i in ids]
    # --max-concurrent-uploads=5: the two bottom layers wait for a slot, in dockerd's order
    assert st[8:10] == [(ids[5], "Waiting"), (ids[6], "Waiting")]
    for i in ids:
        states = [s for j, s in st if j == i]
        assert states[-1] == "Pushed" and states.count("Pushed") == 1
    digest = r.lines()[-1]["aux"]["Digest"]
    check_in_registry(registry, "load/app", "a", digest, image_id, [sha(t) for t in tars])
    info = pull_back(daemon, f"{name}:a")
    assert info["Id"] == image_id and info["RootFS"]["Layers"] == [sha(t) for t in tars]


def test_a_new_gzip_copy_is_streamed_while_it_is_made(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    """An incompressible 12 MiB layer: its gzip copy goes up in ONE chunked PATCH fed as the copy
    grows (as dockerd streams its compressor's output); the result is the image, byte for byte.
    The copy is kept: the next push to another repository only sends what it stored."""
    tar = make_layer(5, 12 << 20, binary_fraction=1.0)
    with FaultProxy(registry.port) as px:
        name = f"{px.host}/big/app"
        image_id = import_tar(daemon, f"{name}:1", tar)
        r = push(daemon, name, "1")
        assert statuses(r)[-1][1].startswith("1: digest: sha256:"), r.body
        digest = r.lines()[-1]["aux"]["Digest"]
        manifest = check_in_registry(registry, "big/app", "1", digest, image_id, [sha(tar)])
        layer = manifest["layers"][0]
        assert layer["size"] > 12 << 20
        patches = px.requests("/blobs/uploads/", "PATCH")
        streamed = [p for p in patches if p.headers.get("transfer-encoding") == "chunked"]
        assert len(streamed) == 1 and "content-length" not in streamed[0].headers
        assert [p.method for p in px.requests(layer["digest"])] == ["PUT"]  # no HEAD: nothing to ask
    stored = daemon.data_root / "blobs" / "sha256" / layer["digest"][7:]
    assert stored.stat().st_size == layer["size"]


def test_two_concurrent_pushes_send_each_blob_once(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    """Single flight per (repository, blob): pushes of the same image at once, and of two tags of
    it, never upload a blob twice; each push ends with its own digest line."""
    from concurrent.futures import ThreadPoolExecutor

    tars = [make_layer(70 + i, 200 * KB) for i in range(3)]
    name = f"{registry.host}/twice/app"
    archive, _ = save_archive(tars, [f"{name}:1", f"{name}:2"])
    load(daemon, archive)
    n = len(registry.accesses())
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda tag: push(daemon, name, tag), ["1", "2", "1"]))
    digests = set()
    for r in results:
        assert r.lines()[-2]["status"].split(": digest: ")[0] in ("1", "2"), r.body
        digests.add(r.lines()[-1]["aux"]["Digest"])
    assert len(digests) == 1  # one image: one manifest
    puts = [a.path.split("digest=")[1] for a in registry.accesses()[n:] if a.method == "PUT" and "digest=" in a.path]
    assert len(puts) == len(set(puts)) == 4  # three layers and the config, once each


# -- the CLI and docker-py ----------------------------------------------------------------------

def test_cli_push_and_push_all_tags(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    name = f"{registry.host}/cli/app"
    import_tar(daemon, f"{name}:b", make_layer(20, 30 * KB))
    import_tar(daemon, f"{name}:a", make_layer(21, 30 * KB))
    out = daemon.docker("push", f"{name}:a", check=True).stdout.decode()
    assert f"The push refers to repository [{name}]" in out
    assert "Pushed" in out and "a: digest: sha256:" in out
    out = daemon.docker("push", "-a", name, check=True).stdout.decode()
    # every tag, in order; a is there already
    assert out.index("a: digest: sha256:") < out.index("b: digest: sha256:")
    assert "Layer already exists" in out
    _, _, tags = reg_get(registry, "/v2/cli/app/tags/list")
    assert sorted(json.loads(tags)["tags"]) == ["a", "b"]
    # no such image: the CLI shows dockerd's text and fails
    bad = daemon.docker("push", f"{registry.host}/cli/nothing:1")
    assert bad.returncode != 0
    assert f"An image does not exist locally with the tag: {registry.host}/cli/nothing" in bad.stderr.decode()


def test_docker_py_push_stream(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    name = f"{registry.host}/py/app"
    tar = make_layer(22, 50 * KB)
    image_id = import_tar(daemon, f"{name}:1", tar)
    client = daemon.client()
    lines = list(client.images.push(name, tag="1", stream=True, decode=True))
    assert lines[0] == {"status": f"The push refers to repository [{name}]"}
    aux = [m["aux"] for m in lines if "aux" in m]
    assert len(aux) == 1 and aux[0]["Tag"] == "1"
    check_in_registry(registry, "py/app", "1", aux[0]["Digest"], image_id, [sha(tar)])
    # without stream: the whole text, no exception; with nothing to push, the error is in it
    text = client.images.push(name, tag="1")
    assert "Layer already exists" in text
    assert "tag does not exist" in client.images.push(name, tag="nope")


# -- errors -------------------------------------------------------------------------------------------

def test_errors_before_the_stream(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    name = f"{registry.host}/err/app"
    import_tar(daemon, f"{name}:1", make_layer(23, 4 * KB))
    r = push(daemon, f"{registry.host}/Err/app", "1")
    assert (r.status, r.json()) == (400, {"message": "invalid reference format: repository name must be lowercase"})
    r = push(daemon, name, "bad!tag")
    assert (r.status, r.json()) == (400, {"message": "invalid tag format"})
    # no X-Registry-Auth: 20.10 reads the auth from the body (docker-py sends `{}`)
    r = push(daemon, name, "1", headers={})
    assert (r.status, r.json()) == (400, {"message": "Bad parameters and missing X-Registry-Auth: EOF"})
    r = push(daemon, name, "1", headers={}, body=b"xx")
    assert r.status == 400
    assert r.json() == {"message": "Bad parameters and missing X-Registry-Auth: invalid character 'x' "
                                   "looking for beginning of value"}
    r = push(daemon, name, "1", headers={"Content-Type": "application/json"}, body=b"{}")
    assert r.status == 200 and "aux" in r.lines()[-1], r.body


def test_errors_in_the_stream(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    name = f"{registry.host}/err/app"
    import_tar(daemon, f"{name}:1", make_layer(24, 4 * KB))
    cases = {
        (f"{registry.host}/err/none", ""): f"An image does not exist locally with the tag: {registry.host}/err/none",
        (name, "2"): f"tag does not exist: {name}:2",
        (f"{name}@sha256:{'a' * 64}", ""): "cannot push a digest reference",
        ("127.0.0.1:1/err/app", ""): 'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
        ("docker.io/library/nosuch", ""): "An image does not exist locally with the tag: nosuch",
    }
    daemon.request("POST", f"/v1.41/images/{name}:1/tag?repo=127.0.0.1:1/err/app&tag=1")
    for (n, tag), text in cases.items():
        r = push(daemon, n, tag)
        assert r.status == 200
        assert r.lines()[0]["status"].startswith("The push refers to repository [")
        assert last_error(r) == text, (n, r.body)
        assert len(r.lines()) == 2


@pytest.fixture
def ref_clean(dockerd: Engine) -> Iterator[list[str]]:
    """Names tagged in the reference dockerd by a test, removed afterwards."""
    names: list[str] = []
    yield names
    for n in names:
        dockerd.request("DELETE", f"/v1.41/images/{n}?force=1")


def test_error_lines_match_dockerd(daemon: Engine, dockerd: Engine, registry: Registry,  # noqa: F811
                                   ref_clean: list[str]) -> None:
    """The same mistakes against the same registry: the same bytes as the reference dockerd."""
    archive, _ = save_archive([make_layer(25, 4 * KB)], [f"{registry.host}/cmp/app:1"])
    for engine in (daemon, dockerd):
        load(engine, archive)
        engine.request("POST", f"/v1.41/images/{registry.host}/cmp/app:1/tag?repo=127.0.0.1:1/cmp/app&tag=1")
    ref_clean += [f"{registry.host}/cmp/app:1", "127.0.0.1:1/cmp/app:1"]
    cases = [(f"{registry.host}/cmp/none", ""), (f"{registry.host}/cmp/app", "2"),
             (f"{registry.host}/cmp/app@sha256:{'b' * 64}", ""), ("127.0.0.1:1/cmp/app", "1"),
             ("docker.io/library/nosuchimage", "")]
    for name, tag in cases:
        ours, theirs = push(daemon, name, tag), push(dockerd, name, tag)
        assert (ours.status, ours.body) == (theirs.status, theirs.body), name
    for name, tag, headers, body in [(f"{registry.host}/cmp/app", "1", {}, None),
                                     (f"{registry.host}/cmp/app", "1", {}, b"xx")]:
        ours, theirs = push(daemon, name, tag, headers, body), push(dockerd, name, tag, headers, body)
        assert (ours.status, ours.json()) == (theirs.status, theirs.json())


def test_fixed_lines_match_dockerd(daemon: Engine, dockerd: Engine, ref_clean: list[str]) -> None:
    """A loaded image pushed by both to fresh repositories of one registry: the same lines but
    for progress (timing) and the manifest digest (dockerd's gzip is not ours)."""
    reg = start_registry()
    try:
        tars = [make_layer(26 + i, 30 * KB) for i in range(3)]
        out = {}
        for engine, repo in ((daemon, "ours/app"), (dockerd, "theirs/app")):
            archive, _ = save_archive(tars, [f"{reg.host}/{repo}:1", f"{reg.host}/{repo}:2"])
            load(engine, archive)
            out[repo] = push(engine, f"{reg.host}/{repo}", "")
        ref_clean += [f"{reg.host}/theirs/app:1", f"{reg.host}/theirs/app:2"]

        def fixed(r: Response, repo: str) -> list[Any]:
            lines = []
            for m in r.lines():
                if m.get("status") == "Pushing":
                    continue
                text = json.dumps(m).replace(repo, "REPO")
                if "aux" in m or "digest: sha256:" in m.get("status", ""):
                    text = json.dumps({k: (v if k != "aux" else sorted(v)) for k, v in m.items()
                                       if k != "status"}) + m.get("status", "")[:12]
                lines.append(text)
            return lines

        ours, theirs = fixed(out["ours/app"], "ours/app"), fixed(out["theirs/app"], "theirs/app")
        assert ours[0] == theirs[0]
        # per tag: Preparing top first, then a final state per layer; then digest and aux
        assert sorted(ours) == sorted(theirs)
        assert [x for x in ours if "Preparing" in x] == [x for x in theirs if "Preparing" in x]
        assert out["ours/app"].lines()[-2]["status"].startswith("2: digest: sha256:")
    finally:
        reg.stop()


# -- credentials ------------------------------------------------------------------------------------

def _auth(username: str, password: str) -> dict[str, str]:
    raw = json.dumps({"username": username, "password": password}).encode()
    return {"X-Registry-Auth": base64.urlsafe_b64encode(raw).decode()}


@pytest.mark.parametrize("kind", ["basic", "token"])
def test_push_with_credentials(daemon: Engine, kind: str) -> None:
    reg = start_registry(auth=kind)
    try:
        name = f"{reg.host}/private/app"
        tar = make_layer(30, 20 * KB)
        image_id = import_tar(daemon, f"{name}:1", tar)
        denied = {"basic": "no basic auth credentials", "token": "denied: requested access to the resource is denied"}
        assert last_error(push(daemon, name, "1")) == denied[kind]
        wrong = {"basic": "unauthorized: authentication required",
                 "token": "unauthorized: incorrect username or password"}
        assert last_error(push(daemon, name, "1", _auth(reg.username, "wrong"))) == wrong[kind]
        r = push(daemon, name, "1", _auth(reg.username, reg.password))
        digest = r.lines()[-1]["aux"]["Digest"]
        check_in_registry(reg, "private/app", "1", digest, image_id, [sha(tar)])
        # pulled back (with the credentials): the same image, by the digest the push announced
        assert daemon.request("DELETE", f"/v1.41/images/{name}:1?force=1").status == 200
        r = daemon.request("POST", f"/v1.41/images/create?fromImage={name}&tag=1",
                           headers=_auth(reg.username, reg.password))
        assert f"Digest: {digest}".encode() in r.body, r.body
        assert inspect(daemon, f"{name}:1")["Id"] == image_id
        if kind == "token":
            assert reg.issuer is not None
            granted = [q.scopes for q in reg.issuer.requests if q.account == reg.username]
            assert ["repository:private/app:push,pull"] in granted  # the push's scope, as dockerd's
            assert all(s in (["repository:private/app:push,pull"], ["repository:private/app:pull"]) for s in granted)
        # the CLI after `docker login`
        cfg = daemon.workdir / "docker-config"
        cfg.mkdir(exist_ok=True)
        creds = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
        (cfg / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": creds}}}))
        daemon.request("POST", f"/v1.41/images/{name}:1/tag?repo={name}&tag=2")
        out = daemon.docker("push", f"{name}:2", check=True).stdout.decode()
        assert "Layer already exists" in out and "2: digest: " + digest in out
        # docker-py with explicit credentials
        lines = list(daemon.client().images.push(name, tag="2", stream=True, decode=True,
                                                 auth_config={"username": reg.username, "password": reg.password}))
        assert lines[-1]["aux"]["Digest"] == digest
    finally:
        reg.stop()


def test_a_mount_asks_for_the_source_repository_pull_scope(daemon: Engine) -> None:
    reg = start_registry(auth="token")
    try:
        src = push_image(reg, "src/app", "1", [make_layer(31, 20 * KB)])
        auth = _auth(reg.username, reg.password)
        r = daemon.request("POST", f"/v1.41/images/create?fromImage={reg.host}/src/app&tag=1", headers=auth)
        assert b"Downloaded newer image" in r.body
        daemon.request("POST", f"/v1.41/images/{reg.host}/src/app:1/tag?repo={reg.host}/dst/app&tag=1")
        assert reg.issuer is not None
        reg.issuer.requests.clear()
        r = push(daemon, f"{reg.host}/dst/app", "1", auth)
        assert (src.diff_ids[0][7:19], "Mounted from src/app") in statuses(r)
        scopes = [q.scopes for q in reg.issuer.requests]
        assert ["repository:dst/app:push,pull", "repository:src/app:pull"] in scopes
        assert r.lines()[-1]["aux"]["Digest"] == src.manifest_digest
    finally:
        reg.stop()


# -- faults ---------------------------------------------------------------------------------------------

def test_a_dropped_upload_is_retried(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    tars = [make_layer(40, 600 * KB), make_layer(41, 300 * KB)]
    with FaultProxy(registry.port) as px:
        name = f"{px.host}/flaky/app"
        archive, image_id = save_archive(tars, [f"{name}:1"])
        load(daemon, archive)
        # the gzip copies are streamed as they are made: a fault there falls back to the copy
        px.cut_upload(100 * KB)               # an upload cut mid-body
        px.respond(503, match="/blobs/uploads/", method="PATCH")  # and one the registry refuses
        r = push(daemon, name, "1")
        assert statuses(r)[-1][1].startswith("1: digest: sha256:"), r.body
        assert not px.pending()
        assert len([s for s in px.requests("/blobs/uploads/", "PATCH") if s.fault == "cut"]) == 1
        check_in_registry(registry, "flaky/app", "1", r.lines()[-1]["aux"]["Digest"], image_id,
                          [sha(t) for t in tars])
    # the copies exist now: another registry gets them with the resumable upload
    other = start_registry()
    try:
        with FaultProxy(other.port) as px:
            name2 = f"{px.host}/flaky/app"
            daemon.request("POST", f"/v1.41/images/{name}:1/tag?repo={name2}&tag=1")
            px.cut_upload(100 * KB)
            px.respond(503, match="/blobs/uploads/", method="PATCH")
            r = push(daemon, name2, "1")
            st = statuses(r)
            assert st[-1][1].startswith("1: digest: sha256:"), r.body
            assert any(s.startswith("Retrying in ") for _, s in st)
            assert not px.pending()
            check_in_registry(other, "flaky/app", "1", r.lines()[-1]["aux"]["Digest"], image_id,
                              [sha(t) for t in tars])
    finally:
        other.stop()


# -- events --------------------------------------------------------------------------------------------

def test_push_event(daemon: Engine, registry: Registry) -> None:  # noqa: F811
    import time

    name = f"{registry.host}/ev/app"
    import_tar(daemon, f"{name}:1", make_layer(50, 4 * KB))
    since = time.time()
    push(daemon, name, "1")
    push(daemon, name, "")          # every tag: the event names the repository
    push(daemon, name, "9")         # a failed push logs nothing
    r = daemon.request("GET", f"/v1.41/events?since={since:.9f}&until={time.time():.9f}"
                              "&filters=" + urllib.parse.quote(json.dumps({"event": ["push"]})))
    events = [json.loads(line) for line in r.body.splitlines()]
    assert [(e["id"], e["Actor"]["Attributes"]) for e in events] == [
        (f"{name}:1", {"name": name}), (name, {"name": name})]
    assert all(e["status"] == e["Action"] == "push" and e["Type"] == "image" for e in events)


# -- the gzip copy is made once, survives a restart, goes with its layer -----------------------------------

def test_gzip_copy_is_kept_and_collected_with_its_layer(registry: Registry) -> None:  # noqa: F811
    from tests.support.proc import start_daemon, stop

    d = start_daemon()
    data_root = d.data_root
    try:
        name = f"{registry.host}/gc/app"
        tar = make_layer(60, 100 * KB)
        import_tar(d, f"{name}:1", tar)
        blobs = lambda: {p.name for p in (data_root / "blobs" / "sha256").iterdir()}  # noqa: E731
        before = blobs()
        push(d, name, "1")
        copies = blobs() - before
        assert len(copies) == 1  # the gzip copy (the config and layer were there)
        copy = copies.pop()
        assert gzip.decompress((data_root / "blobs" / "sha256" / copy).read_bytes()) == tar
    finally:
        stop(d)
    d = start_daemon(data_root=data_root)  # a restart's full collection keeps it
    try:
        assert copy in blobs()
        n = len(registry.accesses())
        r = push(d, name, "1")
        assert statuses(r)[2][1] == "Layer already exists", r.body
        assert [a.method for a in registry.accesses()[n:] if f"/blobs/sha256:{copy}" in a.path] == ["HEAD"]
        assert d.request("DELETE", f"/v1.41/images/{name}:1").status == 200
        assert blobs() == set()  # image, layer and its copy: all gone
    finally:
        stop(d)
