"""List, inspect, history, tag, delete and prune on our daemon alone (no dockerd needed): the
shapes, statuses and texts dockerd 20.10 has (test_compat_dockerd.py compares them live).
Shapes are asked for at /v1.41, dockerd 20.10's version (test_versions.py covers the others)."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any, Iterator

import pytest

from tests.conftest import make_tar
from tests.support.proc import Engine, start_daemon, stop

LIST_KEYS = ["Containers", "Created", "Id", "Labels", "ParentId", "RepoDigests", "RepoTags", "SharedSize",
             "Size", "VirtualSize"]
INSPECT_KEYS = ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container", "ContainerConfig",
                "DockerVersion", "Author", "Config", "Architecture", "Os", "Size", "VirtualSize", "GraphDriver",
                "RootFS", "Metadata"]
CONFIG_KEYS = ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
               "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir", "Entrypoint", "OnBuild", "Labels"]
ZERO = "0001-01-01T00:00:00Z"


def q(**params: Any) -> str:
    return urllib.parse.urlencode({k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()})


def imp(e: Engine, content: bytes, repo: str = "", changes: tuple[str, ...] = ()) -> str:
    """Import a one-file image whose layer is unique to `content`; returns its ID."""
    params = [("fromSrc", "-")] + ([("repo", repo)] if repo else []) + [("changes", c) for c in changes]
    r = e.request("POST", "/images/create?" + urllib.parse.urlencode(params), make_tar({"f": content}))
    assert r.status == 200, r.body
    return r.lines()[-1]["status"]


def tag(e: Engine, src: str, repo: str, tag_: str = "") -> None:
    r = e.request("POST", f"/images/{src}/tag?" + q(repo=repo, **({"tag": tag_} if tag_ else {})))
    assert (r.status, r.body) == (201, b""), r.body


def ls(e: Engine, path: str = "/v1.41/images/json", **params: Any) -> list[dict]:
    r = e.request("GET", path + ("?" + q(**params) if params else ""))
    assert r.status == 200, r.body
    return r.json()


def err(e: Engine, method: str, path: str) -> tuple[int, str]:
    r = e.request(method, path)
    return r.status, r.json()["message"]


@pytest.fixture(scope="module")
def shared() -> Iterator[Engine]:
    """A daemon for tests that only look at images they named themselves."""
    e = start_daemon()
    try:
        yield e
    finally:
        stop(e)


# -- list ----------------------------------------------------------------------------------------

def test_list_shapes(daemon: Engine) -> None:
    r = daemon.request("GET", "/v1.41/images/json")
    assert (r.status, r.body, r.headers["content-type"]) == (200, b"[]\n", "application/json")
    a = imp(daemon, b"a", "la:1", ("LABEL z=1", "LABEL a=2"))
    tag(daemon, "la:1", "docker.io/library/la", "0")
    tag(daemon, "la:1", "me/la", "1")
    u = imp(daemon, b"uu")
    items = {i["Id"]: i for i in ls(daemon)}
    assert list(items[a]) == LIST_KEYS
    # sorted by the full name: docker.io/library/la:0 < docker.io/library/la:1 < docker.io/me/la:1
    assert items[a]["RepoTags"] == ["la:0", "la:1", "me/la:1"]
    assert items[a]["Labels"] == {"a": "2", "z": "1"} and list(items[a]["Labels"]) == ["a", "z"]
    assert (items[a]["RepoDigests"], items[a]["Containers"], items[a]["SharedSize"]) == (None, -1, -1)
    assert items[a]["Size"] == items[a]["VirtualSize"] == 1 and items[a]["ParentId"] == ""
    assert items[u]["RepoTags"] == ["<none>:<none>"] and items[u]["RepoDigests"] == ["<none>@<none>"]
    assert items[u]["Labels"] is None
    assert isinstance(items[a]["Created"], int) and abs(items[a]["Created"] - time.time()) < 60


def test_list_order_all_and_legacy_filter(daemon: Engine) -> None:
    ids = [imp(daemon, bytes([i]) * (i + 1), f"ord{i}:x") for i in range(4)]  # often the same second
    assert [i["Id"] for i in ls(daemon)] == ids[::-1]  # newest first
    for spelling in ("0", "1", "true", "True", "false", "False"):
        assert [i["Id"] for i in ls(daemon, all=spelling)] == ids[::-1]
    legacy = [i["RepoTags"] for i in ls(daemon, "/v1.40/images/json", filter="ord[12]*")]
    assert legacy == [["ord2:x"], ["ord1:x"]]
    assert len(ls(daemon, "/v1.24/images/json", filter="ord3*")) == 1
    assert len(ls(daemon, "/v1.41/images/json", filter="ord3*")) == 4  # gone in 1.41
    assert len(ls(daemon, filter="ord3*")) == 4


def test_list_filters(daemon: Engine) -> None:
    a = imp(daemon, b"a", "fa:1", ("LABEL k=v", "LABEL x=1"))
    b = imp(daemon, b"bb", "fb/sub:2", ("LABEL k=w",))
    c = imp(daemon, b"ccc", "", ("LABEL k=v",))
    d = imp(daemon, b"dddd", "localhost:5000/fd:3")

    def ids(**params: Any) -> list[str]:
        return sorted(i["Id"] for i in ls(daemon, **params))

    assert ids(filters={"dangling": ["true"]}) == [c]
    assert ids(filters={"dangling": {"true": True}}) == [c]  # the CLI's encoding
    assert ids(filters={"dangling": ["false"]}) == sorted([a, b, d])
    assert ids(filters={"dangling": ["true", "false"]}) == [c]
    assert ids(filters={"label": ["k"]}) == sorted([a, b, c])
    assert ids(filters={"label": ["k=v"]}) == sorted([a, c])
    assert ids(filters={"label": ["k=v", "x"]}) == [a]
    assert ids(filters={"label": ["nope"]}) == []
    assert ids(filters={"before": [b]}) == [a]  # same second, still ordered by nanoseconds
    assert ids(filters={"since": ["fb/sub:2"]}) == sorted([c, d])
    assert ids(filters={"since": [a[7:15]], "before": ["localhost:5000/fd:3"]}) == sorted([b, c])
    refs = {i["Id"]: i["RepoTags"] for i in ls(daemon, filters={"reference": ["f*"]})}
    assert refs == {a: ["fa:1"]}  # * does not cross /
    assert ids(filters={"reference": ["*/*"]}) == sorted([b, d])
    assert ids(filters={"reference": ["localhost:5000/*", "f?:[0-9]"]}) == sorted([a, d])
    assert ids(filters={"reference": ["docker.io/library/fa"]}) == []  # matched on familiar names
    assert ids(filters={"reference": ["fa"]}) == [a]


def test_reference_filter_narrows_repo_tags(daemon: Engine) -> None:
    imp(daemon, b"n", "one:1")
    tag(daemon, "one:1", "two", "2")
    assert [i["RepoTags"] for i in ls(daemon, filters={"reference": ["two"]})] == [["two:2"]]
    assert [i["RepoTags"] for i in ls(daemon, filters={"reference": ["t*", "o*"]})] == [["one:1", "two:2"]]


@pytest.mark.parametrize("filters, status, message", [
    ({"dangling": ["maybe"]}, 400, "Invalid filter 'dangling=[maybe]'"),
    ({"dangling": ["True"]}, 400, "Invalid filter 'dangling=[True]'"),
    ({"bogus": ["1"]}, 400, "Invalid filter 'bogus'"),
    ({"until": ["1h"]}, 400, "Invalid filter 'until'"),
    ({"before": ["nope"]}, 404, "No such image: nope:latest"),
    ({"since": ["nope:2"]}, 404, "No such image: nope:2"),
    ({"since": ["0" * 64]}, 404, "No such image: sha256:" + "0" * 64),
    ({"before": ["UPPER"]}, 400, "invalid reference format: repository name must be lowercase"),
    ({"reference": ["["]}, 500, "syntax error in pattern"),  # 20.10's status; only with refs to match
])
def test_list_filter_errors(shared: Engine, filters: dict, status: int, message: str) -> None:
    imp(shared, b"errs", "errs:1")
    assert err(shared, "GET", "/v1.41/images/json?" + q(filters=filters)) == (status, message)


def test_bad_pattern_with_nothing_to_match(daemon: Engine) -> None:
    imp(daemon, b"untagged")
    assert ls(daemon, filters={"reference": ["["]}) == []  # dockerd only fails while matching a ref


def test_bad_filters_json(shared: Engine) -> None:
    assert err(shared, "GET", "/images/json?filters=notjson") == (
        400, "invalid character 'o' in literal null (expecting 'u')")


@pytest.mark.parametrize("raw", ["notjson", "{", '["x"]', '{"label":"x"}', '{"label":{"x":1}}', "{} }"])
def test_bad_filters_texts_as_dockerd(shared: Engine, dockerd: Engine, raw: str) -> None:
    """dockerd 20.10 answers these with a 500; a client's mistake is a 400 here, same words."""
    path = "/v1.41/images/json?" + q(filters=raw)
    assert err(shared, "GET", path)[1] == err(dockerd, "GET", path)[1]
    prune = "/v1.41/images/prune?" + q(filters=raw)
    assert err(shared, "POST", prune)[1] == err(dockerd, "POST", prune)[1]


def test_cli_images(daemon: Engine) -> None:
    a = imp(daemon, b"cli", "cli-a:1")
    u = imp(daemon, b"cli2")
    out = daemon.docker("images", "-a", "-q", check=True).stdout.decode().split()
    assert out == [u[7:19], a[7:19]]
    lines = daemon.docker("images", "--digests", "--no-trunc", "--format", "{{json .}}",
                          check=True).stdout.decode().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [(r["Repository"], r["Tag"], r["Digest"], r["ID"]) for r in rows] == [
        ("<none>", "<none>", "<none>", u), ("cli-a", "1", "<none>", a)]
    assert rows[1]["Size"] == "3B" and rows[1]["Containers"] == "N/A"
    plain = daemon.docker("images", check=True).stdout.decode().splitlines()
    assert plain[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert plain[2].split()[:3] == ["cli-a", "1", a[7:19]]
    r = daemon.docker("images", "--filter", "dangling=maybe")
    assert (r.returncode, r.stderr.decode()) == (1, "Error response from daemon: Invalid filter 'dangling=[maybe]'\n")


# -- inspect and history ---------------------------------------------------------------------

def test_inspect_shape(shared: Engine) -> None:
    image_id = imp(shared, b"insp", "insp:1", ("CMD [\"sh\"]", "LABEL b=1", "LABEL a=2", "EXPOSE 80"))
    info = shared.request("GET", "/v1.41/images/insp:1/json").json()
    assert list(info) == INSPECT_KEYS
    assert (info["Id"], info["RepoTags"], info["RepoDigests"], info["Parent"]) == (image_id, ["insp:1"], [], "")
    assert info["Comment"] == "Imported from -" and info["Container"] == ""
    assert list(info["ContainerConfig"]) == CONFIG_KEYS and info["ContainerConfig"]["Cmd"] is None
    assert list(info["Config"]) == CONFIG_KEYS[:6] + ["ExposedPorts"] + CONFIG_KEYS[6:]
    assert info["Config"]["Cmd"] == ["sh"] and list(info["Config"]["Labels"]) == ["a", "b"]
    assert (info["Architecture"], info["Os"], info["Size"], info["VirtualSize"]) == ("amd64", "linux", 4, 4)
    assert info["GraphDriver"] == {"Data": None, "Name": "dockerremote"}
    assert info["RootFS"]["Type"] == "layers" and len(info["RootFS"]["Layers"]) == 1
    assert info["Metadata"]["LastTagTime"] != ZERO and info["Created"].endswith("Z")
    untagged = imp(shared, b"insp2")
    info = shared.request("GET", f"/images/{untagged}/json").json()
    assert (info["RepoTags"], info["RepoDigests"], info["Metadata"]) == ([], [], {"LastTagTime": ZERO})


def test_inspect_lookups(daemon: Engine) -> None:
    image_id = imp(daemon, b"look", "look:1")
    hexid = image_id[7:]
    for name in (hexid, image_id, hexid[:12], "sha256:" + hexid[:12], hexid[:1], "docker.io/library/look:1"):
        assert daemon.request("GET", f"/images/{name}/json").json()["Id"] == image_id, name
    firsts: dict[str, str] = {}
    for i in range(17):  # 17 IDs over 16 hex digits: two share their first character
        other = imp(daemon, bytes([i]) * 2)
        if other[7] in firsts:
            break
        firsts[other[7]] = other
    ambiguous = other[7]
    assert err(daemon, "GET", f"/images/{ambiguous}/json") == (
        404, f"no such image: {ambiguous}: No such image: {ambiguous}:latest")
    assert err(daemon, "GET", f"/images/{ambiguous}/history") == (404, f"No such image: {ambiguous}:latest")


@pytest.mark.parametrize("name, status, message", [
    ("nope", 404, "no such image: nope: No such image: nope:latest"),
    ("nope:1", 404, "no such image: nope:1: No such image: nope:1"),
    ("0" * 64, 404, f"no such image: {'0' * 64}: No such image: sha256:{'0' * 64}"),
    ("sha256:" + "0" * 64, 404, f"no such image: sha256:{'0' * 64}: No such image: sha256:{'0' * 64}"),
    ("UPPER", 400, "no such image: UPPER: invalid reference format: repository name must be lowercase"),
    ("sha256:", 400, "no such image: sha256:: invalid reference format"),
    ("%20", 400, "no such image:  : invalid reference format"),
])
def test_inspect_errors(shared: Engine, name: str, status: int, message: str) -> None:
    assert err(shared, "GET", f"/images/{name}/json") == (status, message)


def test_history(shared: Engine) -> None:
    image_id = imp(shared, b"hist!", "hist:1")
    tag(shared, "hist:1", "hist", "0")
    h = shared.request("GET", "/images/hist:1/history").json()
    assert len(h) == 1 and list(h[0]) == ["Comment", "Created", "CreatedBy", "Id", "Size", "Tags"]
    assert h[0]["Id"] == image_id and h[0]["Tags"] == ["hist:0", "hist:1"] and h[0]["Size"] == 5
    assert h[0]["Comment"] == "Imported from -" and h[0]["CreatedBy"] == ""
    untagged = imp(shared, b"hist2")
    assert shared.request("GET", f"/images/{untagged}/history").json()[0]["Tags"] is None
    assert err(shared, "GET", "/images/nope/history") == (404, "No such image: nope:latest")
    out = shared.docker("history", "hist:1", check=True).stdout.decode().splitlines()
    assert out[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert out[1].startswith(image_id[7:19]) and out[1].rstrip().endswith("5B        Imported from -")


# -- tag -------------------------------------------------------------------------------------

def test_tag(daemon: Engine) -> None:
    a = imp(daemon, b"ta", "ta:1")
    b = imp(daemon, b"tb", "tb:1")
    before = daemon.request("GET", "/images/ta:1/json").json()["Metadata"]["LastTagTime"]
    tag(daemon, "ta:1", "tb", "1")  # overwrite: tb:1 moves to a, b is left dangling
    items = {i["Id"]: i["RepoTags"] for i in ls(daemon)}
    assert items == {a: ["ta:1", "tb:1"], b: ["<none>:<none>"]}
    assert daemon.request("GET", "/images/ta:1/json").json()["Metadata"]["LastTagTime"] > before
    tag(daemon, a[7:15], "tc")  # no tag: latest
    tag(daemon, "ta:1", "td@sha256:" + "0" * 64, "t")  # tag= replaces the digest
    tag(daemon, "ta:1", "localhost/sha256")  # only the familiar name `sha256` is refused
    assert daemon.request("GET", "/images/tc:latest/json").status == 200
    assert daemon.request("GET", "/images/td:t/json").status == 200
    assert daemon.docker("tag", "ta:1", "me/x:2").returncode == 0


@pytest.mark.parametrize("src, params, status, message", [
    ("nope", {"repo": "x"}, 404, "No such image: nope:latest"),
    ("NOPE", {"repo": "x"}, 400, "invalid reference format: repository name must be lowercase"),
    ("tagsrc:1", {"repo": "sha256", "tag": "x"}, 400,
     "refusing to create an ambiguous tag using digest algorithm as name"),
    ("tagsrc:1", {"repo": "docker.io/library/sha256"}, 400,
     "refusing to create an ambiguous tag using digest algorithm as name"),
    ("tagsrc:1", {"repo": "x@sha256:" + "0" * 64}, 400, "refusing to create a tag with a digest reference"),
    ("tagsrc:1", {"repo": "X"}, 400, "invalid reference format: repository name must be lowercase"),
    ("tagsrc:1", {"repo": "x", "tag": "a:b"}, 400, "invalid tag format"),
    ("tagsrc:1", {}, 400, "invalid reference format"),
    ("tagsrc:1", {"repo": "a" * 64}, 400,
     f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal strings"),
])
def test_tag_errors(shared: Engine, src: str, params: dict, status: int, message: str) -> None:
    imp(shared, b"tagsrc", "tagsrc:1")
    assert err(shared, "POST", f"/images/{src}/tag?" + q(**params)) == (status, message)


# -- delete ----------------------------------------------------------------------------------

def delete(e: Engine, name: str, **params: str) -> tuple[int, Any]:
    r = e.request("DELETE", f"/images/{name}" + ("?" + q(**params) if params else ""))
    return r.status, r.json()


def chain(e: Engine, image_id: str) -> str:
    return e.request("GET", f"/images/{image_id}/json").json()["RootFS"]["Layers"][0]


def test_delete_records(daemon: Engine) -> None:
    a = imp(daemon, b"da", "da:1")
    tag(daemon, "da:1", "da", "2")
    layer = chain(daemon, a)
    assert delete(daemon, "da:1") == (200, [{"Untagged": "da:1"}])
    assert delete(daemon, a) == (200, [{"Untagged": "da:2"}, {"Deleted": a}, {"Deleted": layer}])
    assert delete(daemon, a) == (404, {"message": f"No such image: sha256:{a[7:]}"})
    b = imp(daemon, b"db", "db:1")
    tag(daemon, "db:1", "dc", "1")
    msg = f"conflict: unable to delete {b[7:19]} (must be forced) - image is referenced in multiple repositories"
    assert delete(daemon, b[7:19]) == (409, {"message": msg})
    tag(daemon, "db:1", "db", "2")
    assert delete(daemon, "sha256:" + b[7:], force="1") == (200, [
        {"Untagged": "db:1"}, {"Untagged": "db:2"}, {"Untagged": "dc:1"}, {"Deleted": b},
        {"Deleted": chain_of(b"db")}])
    c = imp(daemon, b"dd", "dd:1")
    tag(daemon, "dd:1", "dd", "2")  # two tags of one repository is "multiple" too
    assert delete(daemon, c)[0] == 409
    assert delete(daemon, "dd:1", noprune="1") == (200, [{"Untagged": "dd:1"}])
    assert ls(daemon) and daemon.docker("rmi", "dd:2", check=True).stdout.decode().splitlines() == [
        "Untagged: dd:2", f"Deleted: {c}", f"Deleted: {chain_of(b'dd')}"]


def chain_of(content: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(make_tar({"f": content})).hexdigest()


def test_delete_keeps_shared_layers(daemon: Engine) -> None:
    a = imp(daemon, b"same", "sa:1")
    b = imp(daemon, b"same", "sb:1", ("LABEL other=1",))  # same layer, another config
    assert a != b and chain(daemon, a) == chain(daemon, b)
    assert delete(daemon, "sa:1") == (200, [{"Untagged": "sa:1"}, {"Deleted": a}])
    assert delete(daemon, "sb:1") == (200, [{"Untagged": "sb:1"}, {"Deleted": b}, {"Deleted": chain_of(b"same")}])
    assert list((daemon.data_root / "blobs" / "sha256").iterdir()) == []


@pytest.mark.parametrize("path, status, message", [
    ("/images/nope", 404, "No such image: nope:latest"),
    ("/images/nope:1", 404, "No such image: nope:1"),
    ("/images/%20", 400, "image name cannot be blank"),
    ("/images/", 400, "image name cannot be blank"),
    ("/images/UPPER", 400, "invalid reference format: repository name must be lowercase"),
])
def test_delete_errors(shared: Engine, path: str, status: int, message: str) -> None:
    assert err(shared, "DELETE", path) == (status, message)


# -- prune -------------------------------------------------------------------------------------

def prune(e: Engine, **filters: list[str]) -> dict:
    r = e.request("POST", "/images/prune" + ("?" + q(filters=filters) if filters else ""))
    assert r.status == 200, r.body
    return r.json()


def test_prune_dangling_then_all(daemon: Engine) -> None:
    assert daemon.request("POST", "/images/prune").body == b'{"ImagesDeleted":null,"SpaceReclaimed":0}\n'
    t = imp(daemon, b"tagged", "pt:1")
    u = imp(daemon, b"untagged")
    v = imp(daemon, b"tagged", "", ("LABEL x=1",))  # shares t's layer
    got = prune(daemon)
    assert sorted(map(json.dumps, got["ImagesDeleted"])) == sorted(map(json.dumps, [
        {"Deleted": u}, {"Deleted": chain_of(b"untagged")}, {"Deleted": v}]))
    assert got["SpaceReclaimed"] == 8  # content bytes of the freed layer only
    assert prune(daemon) == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    got = prune(daemon, dangling=["false"])
    assert got == {"ImagesDeleted": [{"Untagged": "pt:1"}, {"Deleted": t}, {"Deleted": chain_of(b"tagged")}],
                   "SpaceReclaimed": 6}
    assert ls(daemon) == []
    # {"dangling":{"true":false}} says neither true nor false: refused, as dockerd, nothing pruned
    imp(daemon, b"kept")
    r = daemon.request("POST", "/images/prune?" + q(filters='{"dangling":{"true":false}}'))
    assert (r.status, r.json()) == (400, {"message": "Invalid filter 'dangling=[true]'"})
    assert len(ls(daemon)) == 1


def test_prune_filters(daemon: Engine) -> None:
    a = imp(daemon, b"a", "", ("LABEL k=v",))
    b = imp(daemon, b"b", "", ("LABEL k=w", "LABEL o=1"))
    c = imp(daemon, b"c")

    def pruned(**filters: list[str]) -> list[str]:
        return [r["Deleted"] for r in prune(daemon, **filters)["ImagesDeleted"] or [] if r["Deleted"] in (a, b, c)]

    assert pruned(until=["1h"]) == []  # all are newer
    assert pruned(until=["2000-01-01"]) == [] and pruned(until=["946684800"]) == []
    assert pruned(label=["k=w"]) == [b]
    assert pruned(**{"label!": ["k"]}) == [c]
    assert pruned(until=[str(time.time() + 5)], dangling=["1"]) == [a]


@pytest.mark.parametrize("filters, message", [
    ({"bogus": ["1"]}, "Invalid filter 'bogus'"),
    ({"dangling": ["maybe"]}, "Invalid filter 'dangling=[maybe]'"),
    ({"until": ["xx"]}, 'failed to parse value as time or duration: "xx"'),
    ({"until": ["1h", "2h"]}, "more than one until filter specified"),
    ({"until": ["2023-13-01"]}, 'parsing time "2023-13-01": month out of range'),
])
def test_prune_errors(shared: Engine, filters: dict, message: str) -> None:
    assert err(shared, "POST", "/images/prune?" + q(filters=filters)) == (400, message)


def test_cli_prune(daemon: Engine) -> None:
    u = imp(daemon, b"u")
    t = imp(daemon, b"t", "cp:1")
    out = daemon.docker("image", "prune", "-f", check=True).stdout.decode()
    assert out == f"Deleted Images:\ndeleted: {u}\ndeleted: {chain_of(b'u')}\n\nTotal reclaimed space: 1B\n"
    out = daemon.docker("image", "prune", "-a", "-f", check=True).stdout.decode()
    assert out == (f"Deleted Images:\nuntagged: cp:1\ndeleted: {t}\ndeleted: {chain_of(b't')}\n\n"
                   "Total reclaimed space: 1B\n")
    assert daemon.docker("image", "prune", "-f", check=True).stdout.decode() == "Total reclaimed space: 0B\n"


# -- docker-py -----------------------------------------------------------------------------------

def test_docker_py_images(daemon: Engine) -> None:
    client = daemon.client()
    api = daemon.api_client()
    a = json.loads(api.import_image(src=make_tar({"f": b"py"}), repository="py", tag="1",
                                    changes=["LABEL k=v"]))["status"]
    u = json.loads(api.import_image(src=make_tar({"f": b"py2"})))["status"]
    assert sorted(i.id for i in client.images.list(all=True)) == sorted([a, u])
    assert [i.id for i in client.images.list(filters={"label": "k=v"})] == [a]
    assert [i.id for i in client.images.list(filters={"dangling": True})] == [u]
    img = client.images.get("py:1")
    assert img.id == a and img.tags == ["py:1"] and img.labels == {"k": "v"}
    assert [h["Id"] for h in img.history()] == [a]
    assert img.tag("py", "2") is True
    assert client.images.get("py:2").id == a
    client.images.remove("py:2")
    assert client.images.get(a).tags == ["py:1"]
    got = client.images.prune(filters={"dangling": False})
    assert {d.get("Deleted") for d in got["ImagesDeleted"]} >= {a, u} and got["SpaceReclaimed"] == 5
    assert client.images.list() == []
