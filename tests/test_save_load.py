"""Save and load: dockerd 20.10's archive layout and load stream, through the CLI and docker-py,
checked against the reference dockerd; hostile archives leave the store untouched; save and load
stream with flat memory; a delete racing a save never breaks it."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import secrets
import shutil
import subprocess
import tarfile
from typing import Any, Iterator

import docker
import pytest

from tests.conftest import make_tar
from tests.support.proc import DOCKER, Engine, UnixHTTPConnection, start_daemon, stop

TAR = {"Content-Type": "application/x-tar"}


# -- building archives ------------------------------------------------------------------------

def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(seed: str, size: int = 1000) -> bytes:
    """A small deterministic layer tar whose DiffID depends on `seed`."""
    return make_tar({f"files/{seed}": (seed.encode() * (size // max(1, len(seed)) + 1))[:size]})


def config(diff_ids: list[str], created: str = "2023-01-02T03:04:05.123Z", **extra: Any) -> bytes:
    cfg: dict[str, Any] = {
        "architecture": "amd64", "created": created, "os": "linux",
        "config": {"Env": ["A=b"], "Cmd": ["sh"], "Labels": {"z": "1", "a": "<&>"}},
        "history": [{"created": created, "created_by": "step"} for _ in diff_ids],
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cfg.update(extra)
    return json.dumps(cfg).encode()


def tar_of(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                t.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                info.mtime = 1_700_000_000
                t.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def image_members(cfg: bytes, layers: list[bytes], tags: list[str] | None,
                  layer_paths: list[str] | None = None) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    paths = layer_paths or [hashlib.sha256(lb).hexdigest() + "/layer.tar" for lb in layers]
    members = [(hashlib.sha256(cfg).hexdigest() + ".json", cfg)] + list(zip(paths, layers))
    return members, {"Config": hashlib.sha256(cfg).hexdigest() + ".json", "RepoTags": tags, "Layers": paths}


def docker_archive(*images: tuple[bytes, list[bytes], list[str] | None]) -> bytes:
    """A docker-save style archive: configs, <dir>/layer.tar files, manifest.json last."""
    members: list[Any] = []
    manifest = []
    seen: set[str] = set()
    for cfg, layers, tags in images:
        ms, item = image_members(cfg, layers, tags)
        members += [m for m in ms if m[0] not in seen]
        seen.update(m[0] for m in ms)
        manifest.append(item)
    return tar_of(members + [("manifest.json", json.dumps(manifest).encode())])


def one_image(tag: str | None, seed: str) -> tuple[bytes, bytes, bytes]:
    """(archive, config, layer) of a one-layer image."""
    lay = layer(seed)
    cfg = config([sha(lay)])
    return docker_archive((cfg, [lay], [tag] if tag else None)), cfg, lay


# -- looking at engines -----------------------------------------------------------------------

def load(engine: Engine, data: bytes, query: str = "") -> list[dict]:
    r = engine.request("POST", "/v1.41/images/load" + query, data, TAR)
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    return r.lines()


def load_raw(engine: Engine, data: bytes, query: str = "") -> bytes:
    r = engine.request("POST", "/v1.41/images/load" + query, data, TAR)
    assert r.status == 200
    return r.body


def snapshot(engine: Engine) -> tuple[Any, list[str], list[str]]:
    """What must not change after a failed load: the listing, the blobs, the ingest folder."""
    images = engine.request("GET", "/images/json?all=1").json()
    blobs = sorted(os.listdir(engine.data_root / "blobs" / "sha256"))
    return images, blobs, sorted(os.listdir(engine.data_root / "ingest"))


def inspect(engine: Engine, name: str) -> dict:
    r = engine.request("GET", f"/images/{name}/json")
    assert r.status == 200, r.body
    return r.json()


def tar_members(data: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            f = t.extractfile(m) if m.isfile() else None
            out[m.name] = (m, f.read() if f else None)
    return out


def vm_hwm_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def other_daemon() -> Iterator[Engine]:
    engine = start_daemon()
    try:
        yield engine
    finally:
        stop(engine)


@pytest.fixture
def uniq() -> str:
    """A name part no other test (or earlier run against the session dockerd) uses."""
    return secrets.token_hex(4)


# -- save: layout ---------------------------------------------------------------------------

def test_save_is_dockerds_layout_byte_for_byte(daemon: Engine, dockerd: Engine, uniq: str) -> None:
    base, top = layer("base" + uniq, 3000), layer("top" + uniq, 2000)
    c1 = config([sha(base)])
    c2 = config([sha(base), sha(top)], created="2023-05-06T07:08:09+02:00", comment="hi",
                author="me <x@y>", container_config={"Cmd": ["a"], "ExposedPorts": {"80/tcp": {}, "443/tcp": {}}})
    archive = docker_archive((c1, [base], [f"sl{uniq}/a:1"]), (c2, [base, top], [f"sl{uniq}/a:2", f"sl{uniq}/b:latest"]))
    for engine in (daemon, dockerd):
        engine.docker("load", input=archive, check=True)
    names = [f"sl{uniq}/a", f"sl{uniq}/b"]
    ours = daemon.docker("save", *names, check=True).stdout
    theirs = dockerd.docker("save", *names, check=True).stdout
    a, b = tar_members(ours), tar_members(theirs)
    assert list(a) == list(b)  # same members in the same order
    assert len(ours) == len(theirs)  # same headers, padding and end-of-archive blocks

    def real(members: dict, folder: str) -> bool:
        return not members[folder + "/layer.tar"][0].issym()

    def resolved(members: dict, name: str) -> bytes | None:
        m, content = members[name]
        return members[m.linkname[3:]][1] if m.issym() else content  # "../<v1id>/layer.tar"

    for name, (m, content) in b.items():
        mine, my_content = a[name]
        if name == "manifest.json":  # dockerd orders images by Go's map iteration: compare as sets
            assert sorted(json.loads(my_content), key=str) == sorted(json.loads(content), key=str)
            continue
        if name.endswith("/layer.tar"):
            # a layer shared by two v1 dirs is a file in one and a symlink in the other; which one
            # gets the file depends on dockerd's map order (we pick the first in archive order)
            assert resolved(a, name) == resolved(b, name), name
            continue
        assert (mine.type, mine.mode, mine.size, mine.uname, mine.uid) == (m.type, m.mode, m.size, m.uname, m.uid), name
        assert my_content == content, name
        folder = name.split("/")[0]
        if folder + "/layer.tar" not in a or (real(a, folder) and real(b, folder)):
            assert mine.mtime == m.mtime, name  # only dirs holding a real layer.tar get the image's time
    assert sum(m.issym() for m, _ in a.values()) == sum(m.issym() for m, _ in b.values()) == 1
    for engine in (daemon, dockerd):
        engine.docker("rmi", f"sl{uniq}/a:1", f"sl{uniq}/a:2", f"sl{uniq}/b", check=True)


def test_save_names_select_images_and_tags(daemon: Engine, rootfs_tar: bytes) -> None:
    image_id = daemon.docker("import", "-", "sel/x:1", input=rootfs_tar, check=True).stdout.decode().strip()
    daemon.docker("tag", "sel/x:1", "sel/x:2", check=True)
    daemon.docker("tag", "sel/x:1", "other:9", check=True)

    def saved(query: str) -> tuple[list, dict | None]:
        r = daemon.request("GET", "/images/get?" + query)
        assert r.status == 200 and r.headers["content-type"] == "application/x-tar"
        m = tar_members(r.body)
        repos = json.loads(m["repositories"][1]) if "repositories" in m else None
        return json.loads(m["manifest.json"][1]), repos

    manifest, repos = saved("names=sel/x")  # a bare repository: all its tags
    assert [e["RepoTags"] for e in manifest] == [["sel/x:1", "sel/x:2"]]
    assert set(repos) == {"sel/x"} and set(repos["sel/x"]) == {"1", "2"}
    manifest, _ = saved("names=sel/x:2&names=other:9")  # two names, one image: one entry
    assert [e["RepoTags"] for e in manifest] == [["sel/x:2", "other:9"]]
    manifest, repos = saved("names=" + image_id[7:12])  # an ID prefix: no tags, no repositories file
    assert manifest[0]["RepoTags"] is None and repos is None
    assert manifest[0]["Config"] == image_id[7:] + ".json"
    manifest, _ = saved("names=" + image_id)
    assert manifest[0]["RepoTags"] is None
    r = daemon.request("GET", "/images/get")
    assert r.status == 200 and tar_members(r.body)["manifest.json"][1] == b"null\n"


def test_save_unknown_names_are_http_errors(daemon: Engine, rootfs_tar: bytes) -> None:
    daemon.docker("import", "-", "known:1", input=rootfs_tar, check=True)
    for path, status, message in [
            ("/images/nope/get", 404, "No such image: nope"),
            ("/images/get?names=known:1&names=nope", 404, "No such image: nope"),
            ("/images/get?names=known:2", 404, "reference does not exist"),
            ("/images/get?names=" + "0" * 64, 404, "No such image: " + "0" * 64),
            ("/images/get?names=Bad", 400, "invalid reference format: repository name must be lowercase")]:
        r = daemon.request("GET", path)
        assert (r.status, r.json()) == (status, {"message": message}), path
    r = daemon.docker("save", "-o", str(daemon.workdir / "x.tar"), "nope")
    assert r.returncode == 1 and b"No such image: nope" in r.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        b"".join(daemon.api_client().get_image("nope"))


# -- round trips ---------------------------------------------------------------------------------

def test_cli_round_trip_between_two_daemons(daemon: Engine, other_daemon: Engine, rootfs_tar: bytes) -> None:
    image_id = daemon.docker("import", "-", "trip/a:1", "--change", "CMD [\"sh\"]", input=rootfs_tar,
                             check=True).stdout.decode().strip()
    daemon.docker("tag", "trip/a:1", "trip/b:2", check=True)
    path = daemon.workdir / "trip.tar"
    daemon.docker("save", "-o", str(path), "trip/a:1", "trip/b:2", check=True)
    out = other_daemon.docker("load", "-i", str(path), check=True).stdout.decode()
    assert out == "Loaded image: trip/a:1\nLoaded image: trip/b:2\n"
    mine, theirs = inspect(daemon, "trip/a:1"), inspect(other_daemon, "trip/a:1")
    assert theirs["Id"] == mine["Id"] == image_id
    assert theirs["RepoTags"] == mine["RepoTags"] == ["trip/a:1", "trip/b:2"]
    assert theirs["RootFS"] == mine["RootFS"] and theirs["Size"] == mine["Size"]
    # and a pipe: docker save | docker load (the load side gets no Content-Length)
    other_daemon.docker("rmi", "trip/a:1", "trip/b:2", check=True)
    pipe = subprocess.run(f"{DOCKER} -H {daemon.host} save trip/a | {DOCKER} -H {other_daemon.host} load",
                          shell=True, capture_output=True, env={"PATH": os.environ["PATH"],
                                                                "DOCKER_CONFIG": str(daemon.workdir)})
    assert pipe.returncode == 0, pipe.stderr
    assert pipe.stdout.decode() == "Loaded image: trip/a:1\n"
    assert inspect(other_daemon, "trip/a:1")["Id"] == image_id


def test_docker_py_round_trip(daemon: Engine, other_daemon: Engine, rootfs_tar: bytes) -> None:
    client = daemon.client()
    image = client.images.get(daemon.docker("import", "-", "py/a:1", input=rootfs_tar,
                                            check=True).stdout.decode().strip())
    data = b"".join(image.save(named=True))
    loaded = other_daemon.client().images.load(data)
    assert [i.id for i in loaded] == [image.id] and loaded[0].tags == ["py/a:1"]
    assert other_daemon.client().images.get("py/a:1").attrs["RootFS"] == image.attrs["RootFS"]
    by_id = b"".join(daemon.api_client().get_image(image.id))  # by ID: no tags in the archive
    assert json.loads(tar_members(by_id)["manifest.json"][1])[0]["RepoTags"] is None
    other_daemon.docker("rmi", "py/a:1", check=True)
    lines = list(other_daemon.api_client().load_image(by_id, quiet=False))
    assert [ln.get("status") for ln in lines[:-1]] == ["Loading layer", "Loading layer"]
    assert lines[0]["id"] == image.attrs["RootFS"]["Layers"][0][7:19]
    assert lines[0]["progressDetail"]["current"] == lines[0]["progressDetail"]["total"] > 0
    assert lines[-1] == {"stream": f"Loaded image ID: {image.id}\n"}


def test_dockerd_archive_loads_into_ours_and_ours_into_dockerd(daemon: Engine, dockerd: Engine,
                                                                uniq: str) -> None:
    archive, cfg, _ = one_image(f"x{uniq}:1", "cross" + uniq)
    dockerd.docker("load", input=archive, check=True)
    from_dockerd = dockerd.docker("save", f"x{uniq}:1", check=True).stdout
    out_ours = daemon.docker("load", input=from_dockerd, check=True).stdout
    assert inspect(daemon, f"x{uniq}:1")["Id"] == sha(cfg)
    dockerd.docker("rmi", f"x{uniq}:1", check=True)
    from_ours = daemon.docker("save", f"x{uniq}:1", check=True).stdout
    out_theirs = dockerd.docker("load", input=from_ours, check=True).stdout
    assert out_ours == out_theirs == f"Loaded image: x{uniq}:1\n".encode()
    assert inspect(dockerd, f"x{uniq}:1")["Id"] == sha(cfg)
    assert inspect(dockerd, f"x{uniq}:1")["RootFS"] == inspect(daemon, f"x{uniq}:1")["RootFS"]
    dockerd.docker("rmi", f"x{uniq}:1", check=True)


# -- load: the stream, line for line against dockerd --------------------------------------------

def test_load_stream_matches_dockerd(daemon: Engine, dockerd: Engine, uniq: str) -> None:
    tagged, c1, _ = one_image(f"st{uniq}:1", "t" + uniq)
    moved, c2, _ = one_image(f"st{uniq}:1", "m" + uniq)
    lay3, lay4 = layer("u3" + uniq), layer("u4" + uniq)
    c3, c4 = config([sha(lay3)]), config([sha(lay4)])
    untagged_pair = docker_archive((c3, [lay3], None), (c4, [lay4], None))
    lay5 = layer("u5" + uniq)
    c5 = config([sha(lay5)])
    mixed = docker_archive((c5, [lay5], [f"st{uniq}:5"]), (c3, [lay3], None))  # last entry untagged
    empty = tar_of([("manifest.json", b"null\n")])
    cases = [(tagged, "?quiet=0"), (tagged, ""), (moved, ""), (untagged_pair, "?quiet=false"),
             (mixed, "?quiet=0"), (empty, "")]
    for data, query in cases:
        theirs = load_raw(dockerd, data, query)
        ours = load_raw(daemon, data, query)
        assert ours == theirs, (query, theirs)
    last = load(daemon, moved)
    assert last == [{"stream": f"Loaded image: st{uniq}:1\n"}]
    assert load(daemon, untagged_pair) == [{"stream": f"Loaded image ID: {sha(c3)}\nLoaded image ID: {sha(c4)}\n"}]
    assert inspect(daemon, f"st{uniq}:1")["Id"] == sha(c2)
    assert inspect(daemon, sha(c1))["RepoTags"] == []  # the moved tag left the old image untagged
    for image in (c1, c2, c3, c4, c5):
        dockerd.docker("rmi", "-f", sha(image))


def test_load_moved_tag_line_through_cli(daemon: Engine) -> None:
    first, c1, _ = one_image("mv:1", "first")
    second, c2, _ = one_image("mv:1", "second")
    daemon.docker("load", input=first, check=True)
    out = daemon.docker("load", input=second, check=True).stdout.decode()
    assert out == (f"The image mv:1 already exists, renaming the old one with ID {sha(c1)} to empty string\n"
                   "Loaded image: mv:1\n")


# -- load: formats ------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, "zstd"])
def test_load_compressed_archives(daemon: Engine, compress: Any) -> None:
    archive, cfg, _ = one_image("comp:1", "compressed")
    if compress == "zstd":
        import zstandard

        data = zstandard.ZstdCompressor().compress(archive)
    else:
        data = compress(archive)
    assert load(daemon, data) == [{"stream": "Loaded image: comp:1\n"}]
    assert inspect(daemon, "comp:1")["Id"] == sha(cfg)


def oci_archive(cfg: bytes, layers: list[bytes], annotations: dict[str, str] | None,
                with_docker_manifest: bool = False, gzip_layers: bool = True) -> bytes:
    """An OCI image layout (optionally with Moby 25's manifest.json beside it)."""
    blobs = [gzip.compress(lb, mtime=0) if gzip_layers else lb for lb in layers]
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cfg), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(b), "size": len(b)}
                   for b in blobs]}).encode()
    desc: dict[str, Any] = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest),
                            "size": len(manifest)}
    if annotations:
        desc["annotations"] = annotations
    members: list[Any] = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                          ("index.json", json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode())]
    members += [(f"blobs/sha256/{sha(b)[7:]}", b) for b in [cfg, manifest, *blobs]]
    if with_docker_manifest:
        members.append(("manifest.json", json.dumps([{
            "Config": f"blobs/sha256/{sha(cfg)[7:]}", "RepoTags": ["moby25:1"],
            "Layers": [f"blobs/sha256/{sha(b)[7:]}" for b in blobs]}]).encode()))
    return tar_of(members)


def test_load_oci_layout_then_save_to_dockerd(daemon: Engine, dockerd: Engine, uniq: str) -> None:
    big = make_tar({"data/file": os.urandom(300_000), "data/text": b"hello\n" * 1000})
    small = layer("oci" + uniq)
    cfg = config([sha(big), sha(small)])
    archive = oci_archive(cfg, [big, small], {"io.containerd.image.name": f"docker.io/library/oci{uniq}:1",
                                              "org.opencontainers.image.ref.name": "1"})
    lines = load(daemon, archive, "?quiet=0")
    assert lines[-1] == {"stream": f"Loaded image: oci{uniq}:1\n"}
    assert [ln["progressDetail"]["total"] for ln in lines[:-1]] == [len(gzip.compress(big, mtime=0))] * 2 + \
        [len(gzip.compress(small, mtime=0))] * 2  # the file size, as dockerd reports it
    assert inspect(daemon, f"oci{uniq}:1")["Id"] == sha(cfg)
    # the layers are stored gzip-compressed: save must stream them back uncompressed
    saved = daemon.docker("save", f"oci{uniq}:1", check=True).stdout
    members = tar_members(saved)
    layer_files = [c for name, (m, c) in members.items() if name.endswith("/layer.tar")]
    assert sorted(layer_files) == sorted([big, small])
    out = dockerd.docker("load", input=saved, check=True).stdout.decode()
    assert out == f"Loaded image: oci{uniq}:1\n"
    assert inspect(dockerd, f"oci{uniq}:1")["Id"] == sha(cfg)
    dockerd.docker("rmi", f"oci{uniq}:1", check=True)


def test_loaded_oci_layout_keeps_its_manifests(daemon: Engine) -> None:
    """An image loaded from an OCI layout has the Descriptor of what it was loaded as (1.48+),
    as a pulled one does: the manifest, or the index that led to it; a docker-save archive
    (manifest.json) has none, as in dockerd's classic store."""
    lay = layer("desc-leaf")
    cfg = config([sha(lay)])
    archive = oci_archive(cfg, [lay], {"org.opencontainers.image.ref.name": "example.com/d/leaf:1"})
    load(daemon, archive)
    index = json.loads(tar_members(archive)["index.json"][1])
    leaf = index["manifests"][0]
    got = daemon.request("GET", "/v1.48/images/example.com/d/leaf:1/json").json()["Descriptor"]
    assert got == {"mediaType": leaf["mediaType"], "digest": leaf["digest"], "size": leaf["size"]}
    listed = [i for i in daemon.request("GET", "/v1.48/images/json").json() if i["Id"] == sha(cfg)]
    assert listed[0]["Descriptor"] == got
    # the same image through an index: the index is the target
    members = tar_members(archive)
    manifest = members["blobs/sha256/" + leaf["digest"][7:]][1]
    inner = {"mediaType": leaf["mediaType"], "digest": leaf["digest"], "size": leaf["size"],
             "platform": {"architecture": "amd64", "os": "linux"}}
    nested = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                         "manifests": [inner]}).encode()
    top = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(nested), "size": len(nested),
           "annotations": {"org.opencontainers.image.ref.name": "example.com/d/idx:1"}}
    blobs = [(name, content) for name, (_, content) in members.items() if name.startswith("blobs/")]
    load(daemon, tar_of([("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                         ("index.json", json.dumps({"schemaVersion": 2, "manifests": [top]}).encode()),
                         *blobs, ("blobs/sha256/" + sha(nested)[7:], nested)]))
    got = daemon.request("GET", "/v1.48/images/example.com/d/idx:1/json").json()["Descriptor"]
    assert got == {"mediaType": top["mediaType"], "digest": top["digest"], "size": top["size"]}
    assert manifest and daemon.request("GET", "/v1.47/images/example.com/d/idx:1/json").json().get("Descriptor") is None
    # Moby 25's layout (manifest.json beside index.json): loaded by manifest.json, described by index.json
    lay3 = layer("desc-moby25")
    cfg3 = config([sha(lay3)])
    both = oci_archive(cfg3, [lay3], None, with_docker_manifest=True)
    load(daemon, both)
    leaf3 = json.loads(tar_members(both)["index.json"][1])["manifests"][0]
    got = daemon.request("GET", "/v1.48/images/moby25:1/json").json()["Descriptor"]
    assert got == {"mediaType": leaf3["mediaType"], "digest": leaf3["digest"], "size": leaf3["size"]}
    # a docker-save archive: no manifest to describe
    plain, plain_cfg, _ = one_image("desc/plain:1", "desc-plain")
    load(daemon, plain)
    assert "Descriptor" not in daemon.request("GET", "/v1.48/images/desc/plain:1/json").json()


def test_load_oci_ref_name_and_moby25_layout(daemon: Engine) -> None:
    lay = layer("refname")
    cfg = config([sha(lay)])
    assert load(daemon, oci_archive(cfg, [lay], {"org.opencontainers.image.ref.name": "example.com/r/x:7"})) == \
        [{"stream": "Loaded image: example.com/r/x:7\n"}]
    lay2 = layer("bare-ref")
    cfg2 = config([sha(lay2)])  # ref.name only a tag: no name to give, loaded by ID
    assert load(daemon, oci_archive(cfg2, [lay2], {"org.opencontainers.image.ref.name": "latest"})) == \
        [{"stream": f"Loaded image ID: {sha(cfg2)}\n"}]
    lay3 = layer("moby25")
    cfg3 = config([sha(lay3)])
    assert load(daemon, oci_archive(cfg3, [lay3], None, with_docker_manifest=True, gzip_layers=False)) == \
        [{"stream": "Loaded image: moby25:1\n"}]


@pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo not installed")
def test_load_skopeo_oci_archive(daemon: Engine) -> None:
    archive, cfg, _ = one_image("sk/src:1", "skopeo")
    src, dst = daemon.workdir / "src.tar", daemon.workdir / "oci.tar"
    src.write_bytes(archive)
    subprocess.run(["skopeo", "copy", "-q", "--dest-compress", f"docker-archive:{src}", f"oci-archive:{dst}:sk/dst:2"],
                   check=True, capture_output=True)
    out = daemon.docker("load", "-i", str(dst), check=True).stdout.decode()
    assert out == "Loaded image: sk/dst:2\n"
    members = tar_members(dst.read_bytes())  # skopeo rewrites the config as OCI's: the ID is its digest
    index = json.loads(members["index.json"][1])
    manifest = json.loads(members["blobs/sha256/" + index["manifests"][0]["digest"][7:]][1])
    assert manifest["layers"][0]["mediaType"].endswith("+gzip")
    assert inspect(daemon, "sk/dst:2")["Id"] == manifest["config"]["digest"]
    assert inspect(daemon, "sk/dst:2")["RootFS"]["Layers"] == json.loads(cfg)["rootfs"]["diff_ids"]


def test_dockerd_symlinked_layers_load(daemon: Engine) -> None:
    """dockerd writes a layer shared by two v1 dirs once, and links the other to it."""
    base, top = layer("shared-base"), layer("shared-top")
    c1, c2 = config([sha(base)]), config([sha(base), sha(top)])
    m1, e1 = image_members(c1, [base], ["ln:1"], ["b" * 64 + "/layer.tar"])
    m2, e2 = image_members(c2, [base, top], ["ln:2"], ["a" * 64 + "/layer.tar", "c" * 64 + "/layer.tar"])
    members = [link("a" * 64 + "/layer.tar", "../" + "b" * 64 + "/layer.tar"),  # before its target
               m1[0], m1[1], m2[0], m2[2], ("manifest.json", json.dumps([e1, e2]).encode())]
    assert load(daemon, tar_of(members)) == [{"stream": "Loaded image: ln:1\n"}, {"stream": "Loaded image: ln:2\n"}]
    assert inspect(daemon, "ln:2")["RootFS"]["Layers"] == [sha(base), sha(top)]


# -- load: hostile or broken archives ------------------------------------------------------------

def _bad_cases() -> list[tuple[str, bytes, str]]:
    good, cfg, lay = one_image("evil:1", "victim")
    h = sha(cfg)[7:]
    other = layer("other-bytes")

    def with_manifest(members: list[Any], layers: list[str], config_path: str = h + ".json",
                      tags: list[str] | None = None) -> bytes:
        item = {"Config": config_path, "RepoTags": tags or ["evil:1"], "Layers": layers}
        return tar_of(members + [("manifest.json", json.dumps([item]).encode())])

    dev = tarfile.TarInfo("l/layer.tar")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
    dev_node = tarfile.TarInfo("l/dev")
    dev_node.type = tarfile.FIFOTYPE
    second_lay = layer("second")
    two = docker_archive((cfg, [lay], ["evil:1"]), (config([sha(second_lay)]), [other], ["evil:2"]))
    return [
        ("truncated", good[: len(good) // 2], "Error processing tar file(exit status 1): unexpected EOF"),
        ("truncated-gzip", gzip.compress(good)[:-40], "Error processing tar file(exit status 1): unexpected EOF"),
        ("dotdot-member", with_manifest([("../evil", b"x"), (h + ".json", cfg), ("l/layer.tar", lay)], ["l/layer.tar"]),
         'Error processing tar file(exit status 1): "../evil" is outside of the archive'),
        ("absolute-member", with_manifest([(h + ".json", cfg), ("/l/layer.tar", lay)], ["l/layer.tar"]),
         'Error processing tar file(exit status 1): "/l/layer.tar" is an absolute path'),
        ("symlink-absolute", with_manifest([(h + ".json", cfg), link("l/layer.tar", "/etc/passwd")], ["l/layer.tar"]),
         'Error processing tar file(exit status 1): invalid symlink "l/layer.tar" -> "/etc/passwd"'),
        ("symlink-escape", with_manifest([(h + ".json", cfg), link("l/layer.tar", "../../etc/passwd")], ["l/layer.tar"]),
         'Error processing tar file(exit status 1): invalid symlink "l/layer.tar" -> "../../etc/passwd"'),
        ("hardlink-escape", with_manifest([(h + ".json", cfg), link("l/layer.tar", "../x", tarfile.LNKTYPE)],
                                          ["l/layer.tar"]),
         'Error processing tar file(exit status 1): invalid hardlink "l/layer.tar" -> "../x"'),
        ("dangling-symlink", with_manifest([(h + ".json", cfg), link("l/layer.tar", "gone.tar")], ["l/layer.tar"]),
         "open l/layer.tar: no such file or directory"),
        ("device-layer", with_manifest([(h + ".json", cfg), dev], ["l/layer.tar"]),
         "open l/layer.tar: not a regular file"),
        ("symlink-config-device", with_manifest([link("c.json", "l/dev"), ("l/layer.tar", lay), dev_node],
                                                ["l/layer.tar"], config_path="c.json"),
         "open c.json: not a regular file"),
        ("manifest-outside", with_manifest([(h + ".json", cfg), ("l/layer.tar", lay)], ["../../../etc/passwd"]),
         'invalid path "../../../etc/passwd" in manifest.json: outside of the archive'),
        ("manifest-absolute", with_manifest([(h + ".json", cfg), ("l/layer.tar", lay)], ["/l/layer.tar"]),
         'invalid path "/l/layer.tar" in manifest.json: outside of the archive'),
        ("manifest-missing", with_manifest([(h + ".json", cfg)], ["l/layer.tar"]),
         "open l/layer.tar: no such file or directory"),
        ("diffid-mismatch", with_manifest([(h + ".json", cfg), ("l/layer.tar", other)], ["l/layer.tar"]),
         f'invalid diffID for layer 0: expected "{sha(lay)}", got "{sha(other)}"'),
        ("layer-count", with_manifest([(h + ".json", cfg), ("l/layer.tar", lay)], ["l/layer.tar", "l/layer.tar"]),
         "invalid manifest, layers length mismatch: expected 2, got 1"),
        ("config-not-json", with_manifest([("c.json", b"not json at all"), ("l/layer.tar", lay)], ["l/layer.tar"],
                                          config_path="c.json"),
         "invalid character 'o' in literal null (expecting 'u')"),
        ("config-no-rootfs", with_manifest([("c.json", b'{"os":"linux"}')], [], config_path="c.json"),
         "invalid image JSON, no RootFS key"),
        ("config-null", with_manifest([("c.json", b"null")], [], config_path="c.json"), "invalid image JSON, no RootFS key"),
        ("config-array", with_manifest([("c.json", b"[1]")], [], config_path="c.json"),
         "json: cannot unmarshal array into Go value of type image.Image"),
        ("bad-tag", with_manifest([(h + ".json", cfg), ("l/layer.tar", lay)], ["l/layer.tar"], tags=["evil"]),
         'invalid tag "evil"'),
        ("second-image-bad", two, f'invalid diffID for layer 0: expected "{sha(second_lay)}", got "{sha(other)}"'),
        ("not-a-tar", b"hello, this is not a tar archive" * 40, "Error processing tar file(exit status 1): archive/tar: invalid tar header"),
        ("no-manifest", tar_of([("foo", b"bar")]),
         "invalid archive: it has neither manifest.json nor index.json (legacy v1 archives are not supported)"),
        # a manifest.json that is not JSON: Go's json.Decoder's words, as dockerd says them
        ("manifest-not-json", tar_of([("manifest.json", b"{bad]")]),
         "invalid character 'b' looking for beginning of object key string"),
        ("manifest-cut", tar_of([("manifest.json", b'[{"Config"')]), "unexpected EOF"),
        ("manifest-empty", tar_of([("manifest.json", b"")]), "EOF"),
    ]


BAD = _bad_cases()


def test_bad_archives_fail_cleanly_and_store_nothing(daemon: Engine, rootfs_tar: bytes) -> None:
    daemon.docker("import", "-", "keep:1", input=rootfs_tar, check=True)  # a store with something in it
    before = snapshot(daemon)
    assert before[1] and before[2] == []
    for name, data, message in BAD:
        lines = load(daemon, data)
        assert lines == [{"errorDetail": {"message": message}, "error": message}], name
        assert snapshot(daemon) == before, name


def test_broken_archives_answer_as_dockerd(daemon: Engine, dockerd: Engine) -> None:
    """Where dockerd itself refuses an archive, the same lines (it loads some we refuse, and
    hangs on a FIFO posing as a config: those cases are ours alone)."""
    by_name = {name: data for name, data, _ in BAD}
    for name in ("truncated", "truncated-gzip", "manifest-not-json", "manifest-cut", "manifest-empty",
                 "config-not-json", "config-no-rootfs", "config-null", "config-array", "layer-count", "bad-tag"):
        assert load_raw(daemon, by_name[name]) == load_raw(dockerd, by_name[name]), name


def test_bad_archives_through_clients(daemon: Engine) -> None:
    before = snapshot(daemon)
    by_name = {name: (data, message) for name, data, message in BAD}
    data, message = by_name["diffid-mismatch"]
    r = daemon.docker("load", input=data)
    assert r.returncode == 1 and r.stderr.decode().strip().endswith(message)
    data, message = by_name["symlink-escape"]
    with pytest.raises(docker.errors.ImageLoadError, match="invalid symlink"):
        daemon.client().images.load(data)
    assert snapshot(daemon) == before


# -- streaming: memory stays flat --------------------------------------------------------------

def test_save_and_load_stream_64mib_layers_in_flat_memory(daemon: Engine, other_daemon: Engine) -> None:
    size = 64 << 20
    random_layer = make_tar({"big/random": os.urandom(size)})
    zeros_gz = gzip.compress(make_tar({"big/zeros": bytes(size)}), compresslevel=1)  # ~64 KiB on disk
    daemon.docker("import", "-", "big:random", input=random_layer, check=True)
    daemon.docker("import", "-", "big:zeros", input=zeros_gz, check=True)
    assert daemon.proc is not None and other_daemon.proc is not None
    pid = daemon.proc.pid
    with open(f"/proc/{pid}/clear_refs", "w") as f:  # reset the peak: measure the save alone
        f.write("5")
    base = vm_hwm_mib(pid)
    archive = bytearray()
    conn = UnixHTTPConnection(daemon.sock)
    conn.request("GET", "/images/get?names=big:random&names=big:zeros")
    resp = conn.getresponse()
    assert resp.status == 200
    digest, total = hashlib.sha256(), 0
    while chunk := resp.read(1 << 20):
        digest.update(chunk)
        total += len(chunk)
        archive += chunk
    conn.close()
    grown = vm_hwm_mib(pid) - base
    assert total > 2 * size and grown < 24, f"daemon peak RSS grew {grown:.1f} MiB during a {total >> 20} MiB save"
    members = tar_members(bytes(archive))
    sizes = sorted(m.size for name, (m, _) in members.items() if name.endswith("/layer.tar"))
    assert sizes == sorted([len(random_layer), len(make_tar({"big/zeros": bytes(size)}))])
    # and the load side: a 128 MiB archive into a fresh daemon
    pid2 = other_daemon.proc.pid
    base2 = vm_hwm_mib(pid2)
    lines = load(other_daemon, bytes(archive))
    grown2 = vm_hwm_mib(pid2) - base2
    assert lines == [{"stream": "Loaded image: big:random\n"}, {"stream": "Loaded image: big:zeros\n"}]
    assert grown2 < 24, f"daemon peak RSS grew {grown2:.1f} MiB during a {total >> 20} MiB load"
    assert inspect(other_daemon, "big:random")["Id"] == inspect(daemon, "big:random")["Id"]


# -- a delete racing a save ---------------------------------------------------------------------

def test_delete_during_save_gets_whole_archive_then_404(daemon: Engine) -> None:
    big = make_tar({"race/data": os.urandom(8 << 20)})
    image_id = daemon.docker("import", "-", "race:1", input=big, check=True).stdout.decode().strip()
    conn = UnixHTTPConnection(daemon.sock)
    conn.request("GET", "/images/race:1/get")
    resp = conn.getresponse()
    assert resp.status == 200
    head = resp.read(4096)  # the save is under way (and blocked on us: we stop reading)
    r = daemon.request("DELETE", "/images/race:1")
    assert r.status == 200 and {"Deleted": image_id} in r.json()
    rest = resp.read()
    conn.close()
    members = tar_members(head + rest)
    layer_tar = next(c for name, (m, c) in members.items() if name.endswith("/layer.tar"))
    assert sha(layer_tar) == sha(big)
    assert members[image_id[7:] + ".json"][1] is not None
    # the leases are gone once the archive is complete: nothing is left behind
    assert os.listdir(daemon.data_root / "blobs" / "sha256") == []
    r = daemon.request("GET", "/images/race:1/get")
    assert (r.status, r.json()) == (404, {"message": "reference does not exist"})  # dockerd's text for a tag


def test_save_of_a_corrupt_blob_is_cut_not_completed(daemon: Engine) -> None:
    """A stored layer that no longer hashes to its DiffID: the client must see a broken transfer."""
    data = make_tar({"c/data": os.urandom(3 << 20)})
    daemon.docker("import", "-", "corrupt:1", input=data, check=True)
    blob = daemon.data_root / "blobs" / "sha256" / sha(data)[7:]  # stored as sent: plain tar
    raw = bytearray(blob.read_bytes())
    raw[2_000_000] ^= 1
    blob.write_bytes(bytes(raw))
    r = daemon.docker("save", "-o", str(daemon.workdir / "out.tar"), "corrupt:1")
    assert r.returncode == 1 and b"unexpected EOF" in r.stderr


def test_tar_header_past_8gib_uses_a_pax_size_record() -> None:
    from dockerremote.oci.tarscan import TarReader
    from dockerremote.transfer.archive import tar_header

    seen = []
    reader = TarReader(on_member=seen.append)
    reader.feed(tar_header("a" * 64 + "/layer.tar", 9 << 30, 1_700_000_000))
    assert [(m.name, m.size) for m in seen] == [("a" * 64 + "/layer.tar", 9 << 30)]
    small = tar_header("x/VERSION", 3, 0)
    assert len(small) == 512 and small[124:136] == b"00000000003\0" and small[257:265] == b"ustar\x0000"
