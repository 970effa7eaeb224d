"""Every row of versions.SWITCHES, observed on a real daemon at the versions around its boundary;
and real clients at their own versions: the docker CLI 28.2.2 at its native 1.50 (no
downgrade), docker-py pinned to 1.44 and 1.24, DOCKER_API_VERSION=1.52 for the CLI.

Each row has a probe: a request whose answer shows whether the behaviour is there. A row is
checked at 1.24, at 1.52 and on both sides of its boundary, and the probe must agree with
`ApiVersion(v).has(row)`. A new row without a probe fails test_every_row_has_a_probe.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import urllib.parse
from typing import Any, Callable, Iterator

import pytest

from dockerremote.api import platform_param
from dockerremote.api.versions import MAX_VERSION, MIN_VERSION, SWITCHES, ApiVersion, render
from dockerremote.errors import InvalidArgument
from tests.conftest import make_tar
from tests.support.proc import Engine, start_daemon, stop
from tests.support.registry import Registry, running_registry
from tests.support.seed import make_layer, push_image, put_manifest, sha256

ZERO = "0001-01-01T00:00:00Z"
ATTESTATION = {"vnd.docker.reference.type": "attestation-manifest"}


def enc(value: Any) -> str:
    return urllib.parse.quote(json.dumps(value) if not isinstance(value, str) else value)


def imp(e: Engine, content: bytes, repo: str = "", changes: tuple[str, ...] = ()) -> str:
    params = [("fromSrc", "-")] + ([("repo", repo)] if repo else []) + [("changes", c) for c in changes]
    r = e.request("POST", "/images/create?" + urllib.parse.urlencode(params), make_tar({"f": content}))
    assert r.status == 200, r.body
    return r.lines()[-1]["status"]


def save_archive(tag: str, config: dict[str, Any], layer: bytes) -> bytes:
    """A one-image `docker save` archive (legacy layout) for a hand-written config."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    raw = json.dumps({**config, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in ((f"{diff_id[7:]}/layer.tar", layer), (hashlib.sha256(raw).hexdigest() + ".json", raw),
                           ("manifest.json", json.dumps([{"Config": hashlib.sha256(raw).hexdigest() + ".json",
                                                          "RepoTags": [tag], "Layers": [f"{diff_id[7:]}/layer.tar"]}]
                                                        ).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# -- the arrangement ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reg() -> Iterator[Registry]:
    yield from running_registry()


@pytest.fixture(scope="module")
def world(reg: Registry) -> Iterator[dict[str, Any]]:
    """Imported images (one untagged), an image without `created`, and a pulled OCI index with
    amd64 and arm64 pulled, s390x not, and a BuildKit attestation manifest."""
    e = start_daemon()
    try:
        w: dict[str, Any] = {"e": e}
        w["tagged"] = imp(e, b"tagged", "ver/a:1", ("LABEL k=v",))
        imp(e, b"other", "ver/b:1")
        w["untagged"] = imp(e, b"untagged")
        r = e.request("POST", "/images/load", save_archive("ver/nocreated:1", {"architecture": "amd64", "os": "linux"},
                                                            make_tar({"n": b"no created"})))
        assert r.status == 200 and b"Loaded image" in r.body, r.body
        w["nocreated"] = e.request("GET", "/images/ver/nocreated:1/json").json()["Id"]
        base = make_layer(91, 4096)
        kids = {p: push_image(reg, "ver/multi", None, [base, make_layer(92 + i, 2048)], platform=p)
                for i, p in enumerate(("linux/amd64", "linux/arm64/v8", "linux/s390x"))}
        att = push_image(reg, "ver/multi", None, [make_layer(99, 512)], platform="unknown/unknown")
        entries = [{"mediaType": p.media_type, "digest": p.manifest_digest, "size": p.size,
                    "platform": {"architecture": p.platform.split("/")[1], "os": "linux",
                                 **({"variant": "v8"} if "arm64" in p.platform else {})}}
                   for p in kids.values()]
        entries.append({"mediaType": att.media_type, "digest": att.manifest_digest, "size": att.size,
                        "platform": {"architecture": "unknown", "os": "unknown"},
                        "annotations": {**ATTESTATION,
                                        "vnd.docker.reference.digest": kids["linux/amd64"].manifest_digest}})
        index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": entries}).encode()
        w["index"] = put_manifest(reg, "ver/multi", "1", index, "application/vnd.oci.image.index.v1+json")
        assert w["index"] == sha256(index)
        w["multi"] = f"{reg.host}/ver/multi:1"
        w["kids"] = kids
        w["attestation"] = att.manifest_digest
        for platform in ("linux/arm64", "linux/amd64"):  # amd64 last: the tag ends on it
            r = e.request("POST", f"/images/create?fromImage={reg.host}/ver/multi&tag=1&platform={platform}")
            assert r.status == 200 and b"errorDetail" not in r.body, r.body
        w["n"] = 0
        yield w
    finally:
        stop(e)


def at(w: dict[str, Any], v: str, method: str, path: str, body: bytes | None = None):  # type: ignore[no-untyped-def]
    return w["e"].request(method, f"/v{v}{path}", body)


def item(w: dict[str, Any], v: str, image_id: str, params: str = "") -> dict[str, Any]:
    r = at(w, v, "GET", "/images/json" + params)
    assert r.status == 200, r.body
    return next(i for i in r.json() if i["Id"] == image_id)


def inspect(w: dict[str, Any], v: str, name: str, params: str = "") -> dict[str, Any]:
    r = at(w, v, "GET", f"/images/{name}/json{params}")
    assert r.status == 200, r.body
    return r.json()


def fresh_archive(w: dict[str, Any]) -> bytes:
    """The archive of an image whose layer is not in the store (so load reports it)."""
    w["n"] += 1
    name = f"ver/fresh:{w['n']}"
    imp(w["e"], f"fresh {w['n']}".encode(), name)
    data = w["e"].request("GET", f"/images/{name}/get").body
    assert w["e"].request("DELETE", f"/images/{name}").status == 200
    return data


# -- one probe per row: is the behaviour there at version v? ----------------------------------------

def _virtual_size(w: dict[str, Any], v: str) -> bool:
    seen = {"VirtualSize" in item(w, v, w["tagged"]), "VirtualSize" in inspect(w, v, w["tagged"]),
            "VirtualSize" in at(w, v, "GET", "/system/df").json()["Images"][0]}
    assert len(seen) == 1, "list, inspect and df disagree"
    return seen.pop()


def _descriptor(w: dict[str, Any], v: str) -> bool:
    amd64 = w["kids"]["linux/amd64"].config_digest
    seen = {"Descriptor" in item(w, v, amd64), "Descriptor" in inspect(w, v, w["multi"])}
    assert len(seen) == 1, "list and inspect disagree"
    if seen == {True}:
        assert inspect(w, v, w["multi"])["Descriptor"] == {
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": w["index"],
            "size": inspect(w, v, w["multi"])["Descriptor"]["size"]}
        assert "Descriptor" not in item(w, v, w["tagged"])  # imported: no manifest to describe
    return seen.pop()


def _platform_rejected(w: dict[str, Any], v: str, method: str, path: str, body: bytes | None = None) -> bool:
    """A platform without an architecture is refused (400) when the parameter exists."""
    r = at(w, v, method, path, body)
    if r.status == 400:
        assert r.json()["message"] == "both OS and Architecture must be provided", r.body
        return True
    return False


def _stream_progress(w: dict[str, Any], v: str) -> bool:
    lines = at(w, v, "POST", "/images/load?quiet=0", fresh_archive(w)).lines()
    bars = [m for m in lines if m.get("status") == "Loading layer"]
    assert bars and all(m["progressDetail"] for m in bars)
    return all("progress" in m for m in bars)


def _stream_error(w: dict[str, Any], v: str) -> bool:
    last = at(w, v, "POST", "/images/load", b"not an archive" * 64).lines()[-1]
    assert "errorDetail" in last
    return "error" in last


def _import_arch(w: dict[str, Any], v: str) -> bool:
    """An import asking for arm/v7 (never the host here) records it, or the host's arch."""
    r = at(w, v, "POST", f"/images/create?fromSrc=-&repo=ver/imparch:{v}&platform=linux/arm/v7",
           make_tar({"a": b"1"}))
    assert r.status == 200, r.body
    got = inspect(w, v, f"ver/imparch:{v}")
    return (got["Architecture"], got.get("Variant")) == ("arm", "v7")


NO_ARCH = enc({"os": "linux"})

PROBES: dict[str, Callable[[dict[str, Any], str], bool]] = {
    "legacy_filter_param": lambda w, v: [i["Id"] for i in at(w, v, "GET", "/images/json?filter=ver/a*").json()]
    == [w["tagged"]],
    "list_shared_size": lambda w, v: item(w, v, w["tagged"], "?shared-size=1")["SharedSize"] != -1,
    "none_placeholders": lambda w, v: item(w, v, w["untagged"])["RepoTags"] == ["<none>:<none>"],
    "virtual_size": _virtual_size,
    "list_until_filter": lambda w, v: at(w, v, "GET", "/images/json?filters=" + enc({"until": ["1h"]})).status
    == 200,
    "list_manifests": lambda w, v: "Manifests" in item(w, v, w["kids"]["linux/amd64"].config_digest, "?manifests=1"),
    "descriptor": _descriptor,
    "list_containers_count": lambda w, v: item(w, v, w["tagged"])["Containers"] == 0,
    "inspect_zero_created": lambda w, v: inspect(w, v, "ver/nocreated:1").get("Created") == ZERO,
    "container_config": lambda w, v: "ContainerConfig" in inspect(w, v, w["tagged"]),
    "inspect_manifests": lambda w, v: "Manifests" in inspect(w, v, w["multi"], "?manifests=1"),
    "inspect_platform": lambda w, v: inspect(w, v, w["multi"], "?platform=" + enc(
        {"os": "linux", "architecture": "arm64"}))["Id"] == w["kids"]["linux/arm64/v8"].config_digest,
    "inspect_container_fields": lambda w, v: "Hostname" in inspect(w, v, w["tagged"])["Config"],
    "inspect_empty_fields": lambda w, v: "Author" in inspect(w, v, w["tagged"])
    and "Env" in inspect(w, v, w["tagged"])["Config"],
    "create_platform": lambda w, v: at(w, v, "POST", "/images/create?fromSrc=-&platform=windows",
                                       make_tar({"w": b"1"})).status == 400,
    "import_platform_arch": _import_arch,
    # push does not exist yet: its parameter is the shared helper's, read as push would read it
    "push_platform": lambda w, v: _raises(lambda: platform_param.one({"platform": '{"os":"linux"}'}, "platform",
                                                                     ApiVersion(_ver(v)), "push_platform")),
    "history_platform": lambda w, v: _platform_rejected(w, v, "GET", f"/images/{w['tagged']}/history?platform="
                                                        + NO_ARCH),
    "archive_platform": lambda w, v: _platform_rejected(w, v, "GET", f"/images/{w['tagged']}/get?platform="
                                                        + NO_ARCH)
    and _platform_rejected(w, v, "POST", "/images/load?platform=" + NO_ARCH, b""),
    # two values, neither the image's: honoured → 404 (no match); one value only → 400; no
    # platform parameter at all (before 1.48) → ignored, 200
    "archive_platforms": lambda w, v: at(w, v, "GET", "/images/get?names=ver/a:1&platform=" + enc(
        {"os": "linux", "architecture": "s390x"}) + "&platform=" + enc({"os": "linux", "architecture": "arm64"})
    ).status == 404,
    "delete_platforms": lambda w, v: _platform_rejected(w, v, "DELETE", "/images/ver/nope:1?platforms=" + NO_ARCH),
    "stream_progress_text": _stream_progress,
    "stream_error_text": _stream_error,
    "info_nondistributable": lambda w, v: "AllowNondistributableArtifactsCIDRs" in at(
        w, v, "GET", "/info").json()["RegistryConfig"],
    "info_expected_commits": lambda w, v: "Expected" in at(w, v, "GET", "/info").json()["ContainerdCommit"],
    "info_bridge_nf": lambda w, v: "BridgeNfIptables" in at(w, v, "GET", "/info").json(),
    "df_type": lambda w, v: at(w, v, "GET", "/system/df?type=image").json()["Containers"] is None,
    "df_usage_objects": lambda w, v: "ImageUsage" in at(w, v, "GET", "/system/df").json(),
}


def _ver(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def _raises(fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except InvalidArgument as exc:
        assert exc.message == "both OS and Architecture must be provided"
        return True
    return False


def versions_to_check(row: str) -> list[str]:
    """1.24, 1.52 and both sides of the row's boundaries (within the range we serve)."""
    s = SWITCHES[row]
    vs = {MIN_VERSION, MAX_VERSION}
    for b in (s.since, s.until):
        if b is not None:
            vs |= {b, b[:-1] + (b[-1] - 1,)}
    return [render(v) for v in sorted(vs) if MIN_VERSION <= v <= MAX_VERSION]


def test_every_row_has_a_probe() -> None:
    assert set(PROBES) == set(SWITCHES)
    assert render(MAX_VERSION) == "1.52" and render(MIN_VERSION) == "1.24"


@pytest.mark.parametrize("row", sorted(SWITCHES))
def test_row(world: dict[str, Any], row: str) -> None:
    observed = {v: PROBES[row](world, v) for v in versions_to_check(row)}
    expected = {v: ApiVersion(_ver(v)).has(row) for v in observed}
    assert observed == expected, SWITCHES[row].doc
    assert len(set(expected.values())) == (1 if SWITCHES[row].since is None and SWITCHES[row].until is None else 2)


# -- the other shapes of the newer versions, beyond the rows' probes -------------------------------------

def test_manifests_describe_what_is_stored(world: dict[str, Any]) -> None:
    w = world
    info = inspect(w, "1.52", w["multi"], "?manifests=1")
    by_id = {m["ID"]: m for m in info["Manifests"]}
    kids = w["kids"]
    assert list(by_id) == [p.manifest_digest for p in kids.values()] + [w["attestation"]]  # the index's order
    amd64, arm64, s390x = (by_id[kids[p].manifest_digest] for p in ("linux/amd64", "linux/arm64/v8", "linux/s390x"))
    assert (amd64["Available"], arm64["Available"], s390x["Available"]) == (True, True, False)
    assert amd64["Kind"] == "image" and amd64["ImageData"]["Platform"] == {"architecture": "amd64", "os": "linux"}
    assert arm64["ImageData"]["Platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    size = inspect(w, "1.52", kids["linux/amd64"].config_digest)["Size"]
    assert amd64["ImageData"]["Size"]["Unpacked"] == size and amd64["ImageData"]["Containers"] == []
    content = kids["linux/amd64"].size + len(kids["linux/amd64"].config_bytes) + sum(kids["linux/amd64"].layer_sizes)
    assert amd64["Size"] == {"Content": content, "Total": content + size}
    assert s390x["Size"] == {"Content": 0, "Total": 0} and s390x["ImageData"]["Size"]["Unpacked"] == 0
    att = by_id[w["attestation"]]
    assert (att["Kind"], att["AttestationData"], att["Available"]) == (
        "attestation", {"For": kids["linux/amd64"].manifest_digest}, False)
    assert "ImageData" not in att
    # the list shows the same manifests for the image; an imported image has none
    assert item(w, "1.52", kids["linux/amd64"].config_digest, "?manifests=1")["Manifests"] == info["Manifests"]
    assert "Manifests" not in item(w, "1.52", w["tagged"], "?manifests=1")
    # the blobs are really there, and they go with the last image that refers to them
    blobs = w["e"].data_root / "blobs" / "sha256"
    assert (blobs / w["index"][7:]).exists() and (blobs / kids["linux/arm64/v8"].manifest_digest[7:]).exists()


def test_manifest_blobs_live_while_an_image_refers_to_them(reg: Registry) -> None:
    e = start_daemon()
    try:
        kids = {p: push_image(reg, "ver/gc", None, [make_layer(120 + i, 1024)], platform=p)
                for i, p in enumerate(("linux/amd64", "linux/arm64/v8"))}
        from tests.support.seed import push_index
        index = push_index(reg, "ver/gc", "1", kids)
        blobs = e.data_root / "blobs" / "sha256"
        for p in ("linux/amd64", "linux/arm64"):
            r = e.request("POST", f"/images/create?fromImage={reg.host}/ver/gc&tag=1&platform={p}")
            assert r.status == 200 and b"errorDetail" not in r.body
        amd64, arm64 = kids["linux/amd64"], kids["linux/arm64/v8"]
        assert all((blobs / d[7:]).exists() for d in (index, amd64.manifest_digest, arm64.manifest_digest))
        # a later pull of another platform added to the same index: both are available
        info = inspect({"e": e}, "1.52", f"{reg.host}/ver/gc:1", "?manifests=1")
        assert [m["Available"] for m in info["Manifests"]] == [True, True]
        assert e.request("DELETE", f"/images/{amd64.config_digest}?force=1").status == 200
        assert not (blobs / amd64.manifest_digest[7:]).exists()  # only amd64 referred to it
        assert (blobs / index[7:]).exists()  # arm64 still does
        info = inspect({"e": e}, "1.52", arm64.config_digest, "?manifests=1")
        assert [m["Available"] for m in info["Manifests"]] == [False, True]
        stop(e)
        e2 = start_daemon(data_root=e.data_root)  # the rows and the blobs survive a restart (and its GC)
        try:
            assert (blobs / index[7:]).exists() and (blobs / arm64.manifest_digest[7:]).exists()
            assert inspect({"e": e2}, "1.52", arm64.config_digest)["Descriptor"]["digest"] == index
            assert e2.request("DELETE", f"/images/{arm64.config_digest}?force=1").status == 200
            assert not (blobs / index[7:]).exists() and not (blobs / arm64.manifest_digest[7:]).exists()
        finally:
            stop(e2)
    finally:
        if e.proc and e.proc.poll() is None:
            stop(e)


def test_platform_params(world: dict[str, Any]) -> None:
    w = world
    arm64 = enc({"os": "linux", "architecture": "arm64"})
    s390x = enc({"os": "linux", "architecture": "s390x"})
    kids = w["kids"]
    cases = [
        (f"/images/{w['multi']}/json?platform={enc('linux/arm64')}", 400,
         "failed to parse platform: invalid character 'l' looking for beginning of value"),
        (f"/images/{w['multi']}/json?platform={enc('{')}", 400, "failed to parse platform: unexpected end of JSON input"),
        (f"/images/{w['multi']}/json?platform=" + enc({"variant": "v8"}), 400,
         "optional platform fields provided, but OS and Architecture are missing"),
        (f"/images/{w['multi']}/json?platform=" + enc({"os": "linux", "architecture": ""}), 400,
         "both OS and Architecture must be provided"),
        (f"/images/{w['multi']}/json?platform={arm64}&manifests=1", 400,
         "conflicting options: manifests and platform options cannot both be set"),
        (f"/images/{w['multi']}/json?platform={s390x}", 404,
         f"image with reference {w['multi']} was found but does not match the specified platform: "
         "wanted linux/s390x, actual: linux/amd64"),
        (f"/images/{w['tagged']}/history?platform={arm64}", 404,
         f"image with reference {w['tagged']} was found but does not match the specified platform: "
         "wanted linux/arm64, actual: linux/amd64"),
        ("/images/get?names=ver/a:1&platform=" + arm64 + "&platform=" + s390x, 404,
         "image with reference ver/a:1 was found but does not match the specified platform: "
         "wanted linux/arm64, actual: linux/amd64"),
    ]
    for path, status, message in cases:
        r = at(w, "1.52", "GET", path)
        assert (r.status, r.json()["message"]) == (status, message), path
    r = at(w, "1.51", "GET", "/images/get?names=ver/a:1&platform=" + arm64 + "&platform=" + s390x)
    assert (r.status, r.json()["message"]) == (400, "multiple platform parameters are not supported in this API "
                                                     "version; use API version 1.52 or later")
    # history and inspect of another platform of the same index go to that platform's image
    h = at(w, "1.52", "GET", f"/images/{w['multi']}/history?platform={arm64}").json()
    assert h[0]["Id"] == kids["linux/arm64/v8"].config_digest
    # before 1.48/1.49 the parameter does not exist and is ignored, as dockerd does
    assert inspect(w, "1.48", w["multi"], f"?platform={enc('nonsense')}")["Id"] == kids["linux/amd64"].config_digest


def test_delete_platforms(reg: Registry) -> None:
    e = start_daemon()
    try:
        kids = {p: push_image(reg, "ver/del", None, [make_layer(130 + i, 1024)], platform=p)
                for i, p in enumerate(("linux/amd64", "linux/arm64/v8"))}
        from tests.support.seed import push_index
        push_index(reg, "ver/del", "1", kids)
        for p in ("linux/arm64", "linux/amd64"):
            assert e.request("POST", f"/images/create?fromImage={reg.host}/ver/del&tag=1&platform={p}").status == 200
        name = f"{reg.host}/ver/del:1"
        arm64 = enc({"os": "linux", "architecture": "arm64"})
        r = e.request("DELETE", f"/v1.50/images/{name}?platforms={enc({'os': 'linux', 'architecture': 's390x'})}")
        assert r.status == 404
        r = e.request("DELETE", f"/v1.50/images/{name}?platforms={arm64}")
        assert (r.status, r.json()) == (200, [{"Untagged": f"{name.rsplit(':', 1)[0]}@{inspect_digest(e, name)}"},
                                              {"Deleted": kids["linux/arm64/v8"].config_digest},
                                              {"Deleted": kids["linux/arm64/v8"].diff_ids[0]}])
        assert e.request("GET", f"/images/{name}/json").json()["Id"] == kids["linux/amd64"].config_digest
        assert e.request("GET", f"/images/{kids['linux/arm64/v8'].config_digest}/json").status == 404
    finally:
        stop(e)


def content_size(tar: bytes) -> int:
    """A layer's size as dockerd reports it: its regular files' bytes and symlink targets."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        return sum(m.size if m.isreg() else len(m.linkname) if m.issym() else 0 for m in t.getmembers())


def inspect_digest(e: Engine, name: str) -> str:
    return e.request("GET", f"/images/{name}/json").json()["Descriptor"]["digest"]


def test_list_until_and_shared_size(world: dict[str, Any]) -> None:
    w = world
    ids = lambda f: {i["Id"] for i in at(w, "1.52", "GET", "/images/json?filters=" + enc(f)).json()}  # noqa: E731
    everything = ids({})
    assert ids({"until": ["2000-01-01"]}) == {w["nocreated"]}  # no `created`: Go's zero time
    assert ids({"until": ["2024-01-03"]}) - {w["nocreated"]} == {
        p.config_digest for p in w["kids"].values() if p.platform != "linux/s390x"}  # the seeds' 2024-01-02
    assert ids({"until": ["2100-01-01"]}) == everything and ids({"until": ["2100-01-01", "2000-01-01"]}) == {w["nocreated"]}
    r = at(w, "1.52", "GET", "/images/json?filters=" + enc({"until": ["nonsense"]}))
    assert r.status == 400
    shared = {i["Id"]: i["SharedSize"] for i in at(w, "1.52", "GET", "/images/json?shared-size=1").json()}
    amd64, arm64 = (w["kids"][p] for p in ("linux/amd64", "linux/arm64/v8"))
    base = content_size(make_layer(91, 4096))  # the layer both platforms share
    assert shared[amd64.config_digest] == shared[arm64.config_digest] == base > 0
    assert shared[w["tagged"]] == 0


def test_inspect_1_52_leaves_empty_fields_out(world: dict[str, Any]) -> None:
    w = world
    info = inspect(w, "1.52", "ver/nocreated:1")
    assert [k for k in ("Parent", "Comment", "Created", "DockerVersion", "Author", "Container") if k in info] == []
    assert info["Config"] == {}
    assert list(inspect(w, "1.52", w["multi"]))[:4] == ["Id", "Descriptor", "RepoTags", "RepoDigests"]
    cfg = inspect(w, "1.52", w["tagged"])["Config"]
    assert cfg == {"Labels": {"k": "v"}}
    cfg50 = inspect(w, "1.50", w["tagged"])["Config"]
    assert cfg50 == {"Cmd": None, "Entrypoint": None, "Env": None, "Labels": {"k": "v"}, "OnBuild": None,
                     "User": "", "Volumes": None, "WorkingDir": ""}
    df = at(w, "1.52", "GET", "/system/df?verbose=1").json()
    assert list(df) == ["ImageUsage", "ContainerUsage", "VolumeUsage"]
    assert df["ImageUsage"]["TotalCount"] == len(df["ImageUsage"]["Items"]) >= 5


# -- real clients at their own versions -------------------------------------------------------------

def test_cli_at_its_native_version(world: dict[str, Any], tmp_path: Any) -> None:
    """The docker CLI 28.2.2 speaks 1.50 and our maximum is 1.52: it uses 1.50, no downgrade."""
    e = world["e"]
    out = e.docker("version", check=True).stdout.decode()
    assert "downgraded" not in out
    assert " API version:       1.50\n" in out and " API version:      1.52 (minimum version 1.24)\n" in out
    fmt = e.docker("version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}} {{.Server.MinAPIVersion}}",
                   check=True).stdout.decode()
    assert fmt == "1.50 1.52 1.24\n"
    # the foundation user stories at 1.50
    image_id = e.docker("import", "-", "cli/native:1", input=make_tar({"c": b"cli"}), check=True).stdout.decode().strip()
    assert e.docker("tag", "cli/native:1", "cli/native:2").returncode == 0
    rows = [json.loads(line) for line in e.docker("images", "--format", "{{json .}}", "cli/native",
                                                  check=True).stdout.decode().splitlines()]
    assert [(r["Repository"], r["Tag"], r["ID"]) for r in rows] == [("cli/native", "1", image_id[7:19]),
                                                                    ("cli/native", "2", image_id[7:19])]
    info = json.loads(e.docker("image", "inspect", "cli/native:1", check=True).stdout)[0]
    assert info["Id"] == image_id and "ContainerConfig" not in info and "Hostname" not in info["Config"]
    assert e.docker("history", "cli/native:1", check=True).stdout.decode().count("\n") == 2
    tree = e.docker("images", "--tree", check=True).stdout.decode()
    assert "linux/amd64" in tree and "linux/s390x" in tree  # the index's platforms, from Manifests
    archive = tmp_path / "a.tar"
    assert e.docker("save", "-o", str(archive), "cli/native:1").returncode == 0
    assert e.docker("rmi", "cli/native:1", "cli/native:2", check=True).stdout.decode().splitlines()[:2] == [
        "Untagged: cli/native:1", "Untagged: cli/native:2"]
    assert "Loaded image: cli/native:1" in e.docker("load", "-i", str(archive), check=True).stdout.decode()
    assert e.docker("image", "inspect", "--platform", "linux/arm64", world["multi"], check=True).returncode == 0
    assert "Images" in e.docker("system", "df", check=True).stdout.decode()
    assert e.docker("info", check=True).returncode == 0
    r = e.docker("pull", world["multi"], check=True)
    assert "Image is up to date" in r.stdout.decode()
    pruned = e.docker("image", "prune", "-f", "--filter", "label=cli=nothing", check=True).stdout.decode()
    assert "Total reclaimed space: 0B" in pruned  # (a filter that spares the other tests' images)
    assert e.docker("rmi", "cli/native:1", check=True).returncode == 0


def test_cli_with_api_version_1_52(world: dict[str, Any]) -> None:
    e = world["e"]
    r = e.docker("images", "--format", "{{.Repository}}:{{.Tag}}", env_extra={"DOCKER_API_VERSION": "1.52"})
    assert r.returncode == 0, r.stderr
    assert "ver/a:1" in r.stdout.decode().split()
    r = e.docker("version", "--format", "{{.Client.APIVersion}}", env_extra={"DOCKER_API_VERSION": "1.52"})
    assert r.stdout.decode() == "1.52\n"
    r = e.docker("images", env_extra={"DOCKER_API_VERSION": "1.53"})  # beyond our maximum: dockerd's error
    assert r.returncode != 0 and "Maximum supported API version is 1.52" in r.stderr.decode()


@pytest.mark.parametrize("version", ["1.44", "1.24", "auto"])
def test_docker_py(world: dict[str, Any], version: str, tmp_path: Any) -> None:
    e = world["e"]
    client = e.client(version=version)
    assert client.api.api_version == ("1.52" if version == "auto" else version)
    assert client.version()["ApiVersion"] == "1.52"
    tag = f"py/{version.replace('.', '-')}"
    image_id = imp(e, f"py {version}".encode(), f"{tag}:1", ("LABEL py=1",))
    img = client.images.get(f"{tag}:1")
    assert img.id == image_id and img.tags == [f"{tag}:1"] and img.labels == {"py": "1"}
    assert [i.id for i in client.images.list(filters={"reference": f"{tag}*"})] == [image_id]
    assert img.history()[0]["Id"] == image_id
    assert img.tag(tag, "2") is True and client.images.get(f"{tag}:2").id == image_id
    data = b"".join(img.save(named=True))
    client.images.remove(f"{tag}:2")
    client.images.remove(f"{tag}:1")
    loaded = client.images.load(data)
    assert [i.id for i in loaded] == [image_id]
    pulled = client.images.pull(world["multi"].rsplit(":", 1)[0], tag="1")
    assert pulled.id == world["kids"]["linux/amd64"].config_digest
    if version != "1.24":  # docker-py: df needs 1.25
        assert client.df()["Images"]
    assert client.info()["Images"] >= 5
    if version != "1.24":  # docker-py itself refuses prune below 1.25
        untagged = imp(e, f"py prune {version}".encode(), "", (f"LABEL prune={version}",))
        deleted = client.images.prune(filters={"label": [f"prune={version}"]})["ImagesDeleted"]
        assert deleted[0] == {"Deleted": untagged}  # then its layer
    client.images.remove(f"{tag}:1")
    client.close()
