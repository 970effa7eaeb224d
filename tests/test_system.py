"""System endpoints, API versions and routing errors on our daemon, as dockerd 20.10 answers them."""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from tests.conftest import make_tar
from tests.support.proc import Engine, start_daemon, stop

COMMON = {"api-version": "1.52", "ostype": "linux", "docker-experimental": "false"}


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    e = start_daemon()
    try:
        r = e.request("POST", "/images/create?fromSrc=-&repo=sys:1", make_tar({"a": b"12345"}))
        assert r.status == 200
        yield e
    finally:
        stop(e)


def test_ping(engine: Engine) -> None:
    for method in ("GET", "HEAD"):
        r = engine.request(method, "/_ping")
        assert r.status == 200
        assert r.headers["cache-control"] == "no-cache, no-store, must-revalidate"
        assert r.headers["pragma"] == "no-cache"
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.headers["server"].startswith("Docker/20.10.24") and r.headers["server"].endswith(" (linux)")
        assert {k: r.headers[k] for k in COMMON} == COMMON
        assert (r.headers["builder-version"], r.headers["swarm"]) == ("1", "inactive")  # API 1.42+ daemons
    assert engine.request("GET", "/_ping").body == b"OK"
    head = engine.request("HEAD", "/v1.41/_ping")
    assert (head.body, head.headers["content-length"]) == (b"", "0")


def test_version(engine: Engine) -> None:
    r = engine.request("GET", "/version")
    v = r.json()
    assert list(v) == ["Platform", "Components", "Version", "ApiVersion", "MinAPIVersion", "GitCommit",
                       "GoVersion", "Os", "Arch", "KernelVersion", "BuildTime"]
    assert v["Platform"] == {"Name": ""}
    assert (v["ApiVersion"], v["MinAPIVersion"], v["Os"], v["Arch"]) == ("1.52", "1.24", "linux", "amd64")
    engine_part = v["Components"][0]
    assert engine_part["Name"] == "Engine" and engine_part["Version"] == v["Version"]
    assert engine_part["Details"]["ApiVersion"] == "1.52" and engine_part["Details"]["MinAPIVersion"] == "1.24"
    out = engine.docker("version", "--format", "{{.Server.APIVersion}} {{.Server.MinAPIVersion}}", check=True)
    assert out.stdout.decode() == "1.52 1.24\n"
    assert engine.client().version()["ApiVersion"] == "1.52"


def test_info(engine: Engine) -> None:
    info = engine.request("GET", "/info").json()
    assert info["Images"] == 1 and info["Containers"] == 0 and info["OSType"] == "linux"
    assert info["IndexServerAddress"] == "https://index.docker.io/v1/"
    assert info["Swarm"]["LocalNodeState"] == "inactive" and info["Warnings"] == []
    assert info["DockerRootDir"] == str(engine.data_root)
    assert len(info["ID"].split(":")) == 12  # dockerd's ID shape, stable for a data root
    assert engine.request("GET", "/info").json()["ID"] == info["ID"]
    r = engine.docker("info")
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert " Images: 1\n" in text and " Server Version: 20.10.24" in text and "ERROR" not in text
    assert engine.client().info()["Images"] == 1


def test_system_df(engine: Engine) -> None:
    df = engine.request("GET", "/v1.41/system/df").json()  # dockerd 20.10's shape (1.52's: test_versions)
    assert list(df) == ["LayersSize", "Images", "Containers", "Volumes", "BuildCache", "BuilderSize"]
    assert (df["LayersSize"], df["Containers"], df["Volumes"], df["BuildCache"]) == (5, [], [], None)
    img = df["Images"][0]
    assert img["RepoTags"] == ["sys:1"] and (img["Containers"], img["SharedSize"], img["Size"]) == (0, 0, 5)
    out = engine.docker("system", "df", check=True).stdout.decode().splitlines()
    assert out[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert out[1].split() == ["Images", "1", "0", "5B", "5B", "(100%)"]
    verbose = engine.docker("system", "df", "-v", check=True).stdout.decode()
    assert "sys          1         " in verbose and "Build cache usage: 0B" in verbose
    assert engine.client().df()["LayersSize"] == 5


def test_system_df_type(engine: Engine) -> None:
    """1.42+: ?type= names the object kinds to compute (moby: the others are nil, JSON null)."""
    df = engine.request("GET", "/v1.44/system/df?type=image").json()
    assert (df["LayersSize"], df["Containers"], df["Volumes"]) == (5, None, None)
    assert df["Images"][0]["RepoTags"] == ["sys:1"]
    df = engine.request("GET", "/v1.44/system/df?type=container&type=volume").json()
    assert (df["LayersSize"], df["Images"], df["Containers"], df["Volumes"]) == (0, None, [], [])
    df = engine.request("GET", "/v1.52/system/df?type=image&verbose=1").json()
    assert set(df) == {"ImageUsage"} and df["ImageUsage"]["TotalCount"] == 1
    r = engine.request("GET", "/v1.44/system/df?type=network")
    assert (r.status, r.json()) == (400, {"message": "unknown object type: network"})
    assert engine.request("GET", "/v1.41/system/df?type=network").status == 200  # before 1.42: ignored
    out = engine.docker("system", "df", check=True).stdout.decode()  # the CLI sends no type
    assert "Images          1" in out


@pytest.mark.parametrize("prefix", ["/v1.24", "/v1.41", "/v1.41.0", "/v1.30", "/v1.44", "/v1.52", "/v1.52.0", ""])
def test_versions_in_range(engine: Engine, prefix: str) -> None:
    r = engine.request("GET", f"{prefix}/images/json")
    assert r.status == 200 and r.headers["api-version"] == "1.52"


@pytest.mark.parametrize("prefix, message", [
    ("/v1.23", "client version 1.23 is too old. Minimum supported API version is 1.24, "
               "please upgrade your client to a newer version"),
    ("/v1", "client version 1 is too old. Minimum supported API version is 1.24, "
            "please upgrade your client to a newer version"),
    ("/v1.53", "client version 1.53 is too new. Maximum supported API version is 1.52"),
    ("/v2.0", "client version 2.0 is too new. Maximum supported API version is 1.52"),
])
def test_versions_out_of_range(engine: Engine, prefix: str, message: str) -> None:
    r = engine.request("GET", f"{prefix}/version")
    assert (r.status, r.json()) == (400, {"message": message})
    assert r.headers["api-version"] == "1.52" and r.body.endswith(b"}\n")


@pytest.mark.parametrize("method, path", [
    ("GET", "/nope"), ("GET", "/v1.41/nope"), ("GET", "/v1.50/nope"), ("GET", "/vx/version"),
    ("POST", "/_ping"), ("HEAD", "/version"), ("GET", "/images/create"), ("PUT", "/images/x/json"),
])
def test_page_not_found(engine: Engine, method: str, path: str) -> None:
    r = engine.request(method, path)
    assert r.status == 404 and r.headers["content-type"] == "application/json"
    if method != "HEAD":
        assert r.body == b'{"message":"page not found"}\n'


def test_options_is_an_empty_200(engine: Engine) -> None:
    r = engine.request("OPTIONS", "/images/json")
    assert (r.status, r.body) == (200, b"")


def test_json_is_compact_and_unescaped(engine: Engine) -> None:
    r = engine.request("POST", "/images/create?" + "fromSrc=-&changes=LABEL%20a%3D%3Cb%3E", make_tar({}))
    image_id = r.lines()[-1]["status"]
    body = engine.request("GET", f"/images/{image_id}/json").body
    assert b'"Labels":{"a":"<b>"}' in body and body.endswith(b"}\n") and b", " not in body
    assert json.loads(body)["Config"]["Labels"] == {"a": "<b>"}


def test_long_headers_and_encoded_bodies_as_go_takes_them(daemon: Engine, rootfs_tar: bytes) -> None:
    """Go's server reads up to 1 MiB of headers (a long X-Registry-Auth is fine) and never decodes
    a body for dockerd: a gzip body is a gzip archive, whatever Content-Encoding says."""
    import gzip

    r = daemon.request("GET", "/images/json", headers={"X-Registry-Auth": "a" * 200_000})
    assert r.status == 200 and r.json() is not None
    plain = daemon.request("POST", "/images/create?fromSrc=-&repo=enc/plain", rootfs_tar).lines()[-1]["status"]
    gz = daemon.request("POST", "/images/create?fromSrc=-&repo=enc/gz", gzip.compress(rootfs_tar),
                        {"Content-Encoding": "gzip"}).lines()[-1]["status"]
    assert plain.startswith("sha256:") and gz.startswith("sha256:")
    layers = [daemon.request("GET", f"/images/{i}/json").json()["RootFS"]["Layers"] for i in (plain, gz)]
    assert layers[0] == layers[1]  # the same content, decompressed by us, once
    bogus = daemon.request("POST", "/images/create?fromSrc=-&repo=enc/bogus", rootfs_tar,
                           {"Content-Encoding": "gzip"})  # says gzip, is not: taken as it is
    assert bogus.status == 200 and bogus.lines()[-1]["status"].startswith("sha256:")
