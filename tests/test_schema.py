"""Real responses of every image endpoint, validated against the frozen spec of their API version.

For each version in VERSIONS the daemon is asked at /v<version>/... and what it answers is
validated with jsonschema against that version's schema (tests/support/swagger.py converts
the Swagger 2.0 definitions). The frozen specs we have are v1.41, v1.44 and v1.52, so each
version uses the nearest one at or above it: v1.41 for 1.24 and 1.41 (no older frozen file
is in the reference set; v1.41 is the nearest, and 1.24's fields are a subset of it), v1.44
for 1.43 and 1.44, v1.52 for 1.47 to 1.52. The versions in between those files are pinned
by the behaviour rows in test_versions.py.

Where the spec and every real daemon disagree, the daemon wins (house rule) and the test
says so in GO_NIL below; nothing else is loosened.
"""

from __future__ import annotations

import json
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Any, Iterator

import jsonschema
import pytest

from dockerremote.api.versions import ApiVersion, parse
from tests.conftest import make_tar
from tests.support import swagger
from tests.support.httpserver import serving
from tests.support.proc import Engine, Response, start_daemon, stop
from tests.support.registry import Registry, running_registry
from tests.support.seed import make_layer, push_image, push_index

VERSIONS = ["1.24", "1.41", "1.43", "1.44", "1.47", "1.48", "1.50", "1.52"]

# Go marshals a nil map or slice as null, and moby leaves these nil when empty, so dockerd 20.10
# (checked live in test_go_nil_fields_are_what_dockerd_sends), 28 and 29 all send null where
# the spec says a non-nullable object or array: an image's Labels without labels, the graph
# driver's Data for a driver without metadata (vfs there, us here), a history entry's Tags
# below the top one, prune's ImagesDeleted when nothing was deleted, df's BuildCache.
GO_NIL = {"ImageSummary": ("Labels",), "GraphDriverData": ("Data",), "DriverData": ("Data",),
          "ImageHistoryResponseItem": ("Tags",),
          # container.Config's slices and maps have no omitempty: null when empty (ContainerConfig
          # of inspect up to 1.44, which is where that definition is used)
          "ContainerConfig": ("Cmd", "Entrypoint", "Env", "Labels", "OnBuild", "Volumes")}
GO_NIL_RESPONSES = {("POST", "/images/prune"): ("ImagesDeleted",),
                    ("GET", "/system/df"): ("BuildCache",)}  # no builder: a nil slice

# A version older than its frozen spec may carry fields the spec has since made omitempty:
# the table says which (versions.SWITCHES) and so does the relaxation. Up to 1.51 moby shows
# Config's Cmd, Entrypoint, Env, Labels, OnBuild, User, Volumes, WorkingDir as null/"" when
# empty (legacyConfigFields), which the v1.52 ImageConfig no longer allows; and up to 1.49
# Config is a container.Config whose slices and maps are null when empty (dockerd 20.10 too).
EMPTY_CONFIG_FIELDS = ("Cmd", "Entrypoint", "Env", "Labels", "OnBuild", "User", "Volumes", "WorkingDir")


def _nullable(schema: dict[str, Any], fields: tuple[str, ...]) -> None:
    for field in fields:
        prop = schema.get("properties", {}).get(field)
        if prop is not None:
            schema["properties"][field] = {"anyOf": [prop, {"type": "null"}]}


def _schema_for(version: str, schema: dict[str, Any], key: tuple[str, str] | None = None) -> dict[str, Any]:
    defs = schema["definitions"]
    for defn, fields in GO_NIL.items():
        if defn in defs:
            _nullable(defs[defn], fields)
    if key in GO_NIL_RESPONSES:
        target = schema["items"] if schema.get("type") == "array" else schema
        _nullable(target, GO_NIL_RESPONSES[key])
    spec_version = ApiVersion(swagger.FROZEN[[swagger.spec_for(version) == "v%d.%d" % f
                                              for f in swagger.FROZEN].index(True)])
    v = ApiVersion(parse(version))
    if v.has("inspect_container_fields") or (v.has("inspect_empty_fields")
                                             and not spec_version.has("inspect_empty_fields")):
        _nullable(defs["ImageConfig"], EMPTY_CONFIG_FIELDS)
    if v.has("none_placeholders"):  # before 1.43 an empty RepoTags/RepoDigests is a Go nil: null
        _nullable(defs["ImageSummary"], ("RepoTags", "RepoDigests"))
    return schema


def validate(version: str, method: str, path: str, body: Any, status: int = 200) -> None:
    name = swagger.spec_for(version)
    schema = _schema_for(version, swagger.response_schema(name, method, path, status), (method, path))
    try:
        swagger.validate(body, schema)
    except jsonschema.ValidationError as exc:
        raise AssertionError(f"{method} {path} at {version} ({name}): {exc.message} at "
                             f"{list(exc.absolute_path)}") from None


def validate_definition(version: str, defn: str, body: Any) -> None:
    name = swagger.spec_for(version)
    schema = _schema_for(version, {**swagger.definition(name, defn)})
    try:
        swagger.validate(body, schema)
    except jsonschema.ValidationError as exc:
        raise AssertionError(f"{defn} at {version} ({name}): {exc.message} at {list(exc.absolute_path)}: "
                             f"{body}") from None


def q(**params: Any) -> str:
    return urllib.parse.urlencode({k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()})


def imp(e: Engine, content: bytes, repo: str = "", changes: tuple[str, ...] = ()) -> str:
    params = [("fromSrc", "-")] + ([("repo", repo)] if repo else []) + [("changes", c) for c in changes]
    r = e.request("POST", "/images/create?" + urllib.parse.urlencode(params), make_tar({"f": content}))
    assert r.status == 200, r.body
    return r.lines()[-1]["status"]


def get(e: Engine, version: str, path: str, method: str = "GET", body: bytes | None = None) -> Response:
    r = e.request(method, f"/v{version}{path}", body)
    assert r.status in (200, 201), (method, path, version, r.status, r.body)
    return r


# -- the arrangement -------------------------------------------------------------------------------

class Files(BaseHTTPRequestHandler):
    """Serves /ok.tar (a real layer, in small writes so that progress lines appear) and
    /bad.tar (not an archive, to get an in-stream error after the first line)."""

    body = make_tar({"big": bytes(range(256)) * 4096})

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        data = self.body if self.path == "/ok.tar" else b"\x00garbage" * 100
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for i in range(0, len(data), 16384):
            self.wfile.write(data[i:i + 16384])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http() -> Iterator[str]:
    with serving(Files) as url:
        yield url


@pytest.fixture(scope="module")
def reg() -> Iterator[Registry]:
    yield from running_registry()


@pytest.fixture(scope="module")
def world(reg: Registry) -> Iterator[dict[str, Any]]:
    """One daemon: imported images (labels, shared layers, untagged) and a pulled multi-platform
    image (two of its platforms pulled)."""
    registry = reg
    e = start_daemon()
    try:
        ids = {
            "labeled": imp(e, b"one", "sch/labeled:1", ("LABEL a=1", "CMD [\"sh\"]", "EXPOSE 80",
                                                         "HEALTHCHECK CMD true", "VOLUME /v", "USER me")),
            "plain": imp(e, b"two", "sch/plain:1"),
            "untagged": imp(e, b"three"),
        }
        for tag_ in ("2", "3"):
            assert e.request("POST", f"/images/sch/plain:1/tag?repo=sch/plain&tag={tag_}").status == 201
        base = make_layer(71, 4096)
        kids = {p: push_image(registry, "sch/multi", None, [base, make_layer(72 + i, 2048)], platform=p)
                for i, p in enumerate(("linux/amd64", "linux/arm64/v8"))}
        index = push_index(registry, "sch/multi", "1", kids, fmt="oci")
        name = f"{registry.host}/sch/multi:1"
        for platform in ("linux/arm64", "linux/amd64"):
            r = e.request("POST", f"/images/create?fromImage={registry.host}/sch/multi&tag=1&platform={platform}")
            assert r.status == 200 and "errorDetail" not in r.body.decode(), r.body
        yield {"e": e, "ids": ids, "multi": name, "index": index, "kids": kids}
    finally:
        stop(e)


# -- system ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_system(world: dict[str, Any], version: str) -> None:
    e = world["e"]
    for method in ("GET", "HEAD"):
        r = e.request(method, f"/v{version}/_ping")
        assert r.status == 200 and r.body == (b"OK" if method == "GET" else b"")
        wanted = swagger.response_headers(swagger.spec_for(version), method, "/_ping")
        assert all(h.lower() in r.headers for h in wanted), (wanted, r.headers)
    validate(version, "GET", "/version", get(e, version, "/version").json())
    validate(version, "GET", "/info", get(e, version, "/info").json())
    validate(version, "GET", "/system/df", get(e, version, "/system/df").json())
    if version == "1.52":
        validate(version, "GET", "/system/df", get(e, version, "/system/df?verbose=1").json())


# -- list, inspect, history ------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_list(world: dict[str, Any], version: str) -> None:
    e = world["e"]
    for params in ("", "?all=1", "?shared-size=1", "?manifests=1", "?shared-size=1&manifests=1&all=1",
                   "?" + q(filters={"dangling": ["true"]})):
        body = get(e, version, "/images/json" + params).json()
        assert len(body) >= (1 if "dangling" in params else 5)
        validate(version, "GET", "/images/json", body)


@pytest.mark.parametrize("version", VERSIONS)
def test_inspect_and_history(world: dict[str, Any], version: str) -> None:
    e = world["e"]
    names = [world["ids"]["labeled"], "sch/plain:2", world["ids"]["untagged"], world["multi"],
             world["kids"]["linux/amd64"].config_digest]
    for name in names:
        for params in ("", "?manifests=1"):
            validate(version, "GET", "/images/{name}/json", get(e, version, f"/images/{name}/json{params}").json())
        validate(version, "GET", "/images/{name}/history", get(e, version, f"/images/{name}/history").json())
    amd64 = json.dumps({"os": "linux", "architecture": "amd64"})
    body = get(e, version, f"/images/{world['multi']}/json?platform={urllib.parse.quote(amd64)}").json()
    validate(version, "GET", "/images/{name}/json", body)


# -- tag, delete, prune ----------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_tag_delete_prune(world: dict[str, Any], version: str) -> None:
    e = world["e"]
    mine = imp(e, f"mine-{version}".encode(), f"sch/mine:{version}", (f"LABEL v={version}",))
    r = get(e, version, f"/images/{mine}/tag?repo=sch/mine&tag=x{version}", "POST")
    assert (r.status, r.body) == (201, b"")  # the spec's 201 has no body
    validate(version, "DELETE", "/images/{name}", get(e, version, f"/images/sch/mine:x{version}", "DELETE").json())
    validate(version, "DELETE", "/images/{name}", get(e, version, f"/images/sch/mine:{version}", "DELETE").json())
    dangling = imp(e, f"dangling-{version}".encode(), "", (f"LABEL p={version}",))
    body = get(e, version, "/images/prune?" + q(filters={"label": [f"p={version}"]}), "POST").json()
    assert body["ImagesDeleted"][0] == {"Deleted": dangling}
    validate(version, "POST", "/images/prune", body)
    body = get(e, version, "/images/prune?" + q(filters={"label": ["nothing=here"]}), "POST").json()
    assert body == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    validate(version, "POST", "/images/prune", body)


# -- progress streams: create (import, pull) and load ----------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_create_stream_lines(world: dict[str, Any], http: str, version: str) -> None:
    e = world["e"]
    seen: set[str] = set()
    for src in ("ok.tar", "bad.tar"):
        r = get(e, version, f"/images/create?fromSrc={http}/{src}&repo=sch/url", "POST")
        for line in r.lines():
            validate_definition(version, "CreateImageInfo", line)
            seen.update(line)
    r = get(e, version, f"/images/create?fromImage={world['multi']}", "POST")
    for line in r.lines():
        validate_definition(version, "CreateImageInfo", line)
        seen.update(line)
    assert {"status", "progressDetail", "errorDetail", "id"} <= seen  # every kind of line was seen


@pytest.mark.parametrize("version", VERSIONS)
def test_load_stream_lines(world: dict[str, Any], version: str) -> None:
    """Load writes JSONMessage lines; the spec gives its 200 no schema, so they are checked
    against BuildInfo, the spec's definition of that same message (stream, status, progress)."""
    e = world["e"]
    name = f"sch/load:{version}"
    imp(e, f"load-{version}".encode(), name)
    archive = e.request("GET", f"/images/{name}/get").body
    assert e.request("DELETE", f"/images/{name}").status == 200  # so its layer loads anew
    seen: set[str] = set()
    for quiet in ("0", "1"):
        r = get(e, version, f"/images/load?quiet={quiet}", "POST", archive)
        for line in r.lines():
            validate_definition(version, "BuildInfo", line)
            seen.update(line)
    r = get(e, version, "/images/load", "POST", b"not a tar" * 100)
    for line in r.lines():
        validate_definition(version, "BuildInfo", line)
        seen.update(line)
    assert {"stream", "status", "progressDetail", "errorDetail"} <= seen


# -- the spec deviations are dockerd's own ---------------------------------------------------------

def test_go_nil_fields_are_what_dockerd_sends(dockerd: Engine) -> None:
    """GO_NIL is not a licence: the reference dockerd sends those nulls itself."""
    r = dockerd.request("POST", "/images/create?fromSrc=-&repo=schema-nil-check", make_tar({"n": b"1"}))
    image_id = r.lines()[-1]["status"]
    try:
        item = [i for i in dockerd.request("GET", "/v1.41/images/json").json() if i["Id"] == image_id][0]
        assert (item["Labels"], item["RepoDigests"]) == (None, None)
        info = dockerd.request("GET", f"/v1.41/images/{image_id}/json").json()
        assert info["GraphDriver"]["Data"] is None
        assert all(info["ContainerConfig"][k] is None for k in GO_NIL["ContainerConfig"])
        assert all(info["Config"][k] in (None, "") for k in EMPTY_CONFIG_FIELDS)
        prune = dockerd.request("POST", "/v1.41/images/prune?" + q(filters={"label": ["nothing=here"]}))
        assert prune.json()["ImagesDeleted"] is None
        assert dockerd.request("GET", "/v1.41/system/df").json()["BuildCache"] is None
        untagged = dockerd.request("POST", "/images/create?fromSrc=-", make_tar({"u": b"2"})).lines()[-1]["status"]
        history = dockerd.request("GET", f"/v1.41/images/{untagged}/history").json()
        dockerd.request("DELETE", f"/images/{untagged}?force=1")
        assert history[0]["Tags"] is None  # an untagged image's top entry
    finally:
        dockerd.request("DELETE", f"/images/{image_id}?force=1")


def test_converter_keeps_the_spec_strict() -> None:
    """The conversion allows null only where x-nullable says so: a null RepoTags in a 1.52
    summary, a string Size or a missing required field are still refused."""
    good = {"Containers": 0, "Created": 1, "Id": "sha256:x", "Labels": {}, "ParentId": "", "RepoDigests": [],
            "RepoTags": [], "SharedSize": -1, "Size": 1}
    validate("1.52", "GET", "/images/json", [good])
    for bad in ({**good, "RepoTags": None}, {**good, "Size": "1"},
                {k: v for k, v in good.items() if k != "Containers"}):
        with pytest.raises(AssertionError):
            validate("1.52", "GET", "/images/json", [bad])
    assert swagger.spec_for("1.24") == "v1.41" and swagger.spec_for("1.43") == "v1.44"
    assert swagger.spec_for("1.47") == "v1.52"

