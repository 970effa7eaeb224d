"""Issue 2's user story, line by line, through the docker CLI and through docker-py.

Each step asserts what a user would see; the detailed shapes are pinned elsewhere
(test_images_api, test_save_load, test_compat_dockerd). Here the point is the whole story
working end to end on one daemon, as a user runs it.
"""

from __future__ import annotations

import gzip
import json
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import make_tar
from tests.support.proc import Engine, start_daemon, stop


@pytest.fixture
def tcp_daemon() -> Engine:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    engine = start_daemon(tcp=f"tcp://127.0.0.1:{port}")
    engine.tcp_port = port  # type: ignore[attr-defined]
    yield engine
    stop(engine)


def _get(port: int, path: str) -> object:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return json.loads(r.read())


def test_user_story_through_the_cli(tcp_daemon: Engine, tmp_path: Path) -> None:
    d = tcp_daemon
    rootfs = make_tar({"bin/sh": b"#!fake\n", "etc/motd": b"hello\n"})
    (tmp_path / "rootfs.tar.gz").write_bytes(gzip.compress(rootfs))
    (tmp_path / "rootfs.tar").write_bytes(rootfs)

    version = d.docker("version", check=True).stdout.decode()
    assert "Server:" in version and "API version" in version

    d.docker("import", str(tmp_path / "rootfs.tar.gz"), "myimg:1", "--change", 'CMD ["sh"]',
             "--change", "ENV A=b", "--message", "first", check=True)
    d.docker("import", "-", "other:2", input=rootfs, check=True)

    table = d.docker("images", check=True).stdout.decode().splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert {tuple(line.split()[:2]) for line in table[1:]} == {("myimg", "1"), ("other", "2")}
    ids = d.docker("images", "-a", "-q", check=True).stdout.decode().split()
    assert len(ids) == 2 and all(len(i) == 12 for i in ids)
    full = d.docker("images", "--digests", "--no-trunc", check=True).stdout.decode()
    assert "sha256:" in full and "<none>" in full  # no digests for imported images

    out = d.docker("images", "--filter", "dangling=true", "--filter", "reference=my*",
                   "--filter", "before=other:2", "--format", "{{json .}}", check=True).stdout.decode()
    assert out.strip() == ""  # both are tagged: nothing dangling
    out = d.docker("images", "--filter", "reference=my*", "--format", "{{json .}}", check=True).stdout.decode()
    assert [json.loads(line)["Repository"] for line in out.splitlines()] == ["myimg"]

    inspect = json.loads(d.docker("image", "inspect", "myimg:1", check=True).stdout)
    assert inspect[0]["Config"]["Cmd"] == ["sh"] and inspect[0]["Config"]["Env"] == ["A=b"]
    assert inspect[0]["Comment"] == "first"
    history = d.docker("history", "myimg:1", check=True).stdout.decode()
    assert "first" in history
    d.docker("tag", "myimg:1", "me/x:2", check=True)

    archive = tmp_path / "both.tar"
    d.docker("save", "-o", str(archive), "myimg:1", "me/x:2", check=True)
    assert archive.stat().st_size > 0
    rmi = d.docker("rmi", "myimg:1", "me/x:2", check=True).stdout.decode()
    assert "Untagged: myimg:1" in rmi and "Untagged: me/x:2" in rmi and "Deleted: sha256:" in rmi
    loaded = d.docker("load", "-i", str(archive), check=True).stdout.decode()
    assert "Loaded image: myimg:1" in loaded and "Loaded image: me/x:2" in loaded

    d.docker("image", "prune", "-f", check=True)
    # nothing dangling: one row per tag (myimg:1 and me/x:2 share an ID), as dockerd lists them
    assert len(d.docker("images", "-q", check=True).stdout.split()) == 3
    pruned = d.docker("image", "prune", "-a", "-f", check=True).stdout.decode()
    assert "Total reclaimed space" in pruned
    assert d.docker("images", "-q", check=True).stdout.strip() == b""

    df = d.docker("system", "df", check=True).stdout.decode()
    assert df.splitlines()[1].startswith("Images")
    info = d.docker("info", check=True)
    assert b"Images: 0" in info.stdout and b"ERROR" not in info.stderr

    # the curl lines: plain TCP, the bare path and the legacy filter below 1.41
    d.docker("import", "-", "myimg:1", input=rootfs, check=True)
    d.docker("tag", "myimg:1", "zzz:1", check=True)
    listed = _get(d.tcp_port, "/images/json?all=0")  # type: ignore[attr-defined]
    assert [item["RepoTags"] for item in listed] == [["myimg:1", "zzz:1"]]
    legacy = _get(d.tcp_port, "/v1.24/images/json?all=True&filter=my*")  # type: ignore[attr-defined]
    assert legacy[0]["RepoTags"] == ["myimg:1"] and "VirtualSize" in legacy[0]


def test_user_story_through_docker_py(daemon: Engine, tmp_path: Path) -> None:
    client = daemon.client()
    api = daemon.api_client()
    rootfs = make_tar({"bin/sh": b"#!fake\n", "etc/motd": b"hello\n"})

    assert client.version()["ApiVersion"]
    out = api.import_image_from_data(gzip.compress(rootfs), repository="myimg", tag="1",
                                     changes=['CMD ["sh"]', "ENV A=b"])
    assert "sha256:" in str(out)
    api.import_image_from_data(rootfs, repository="other", tag="2")

    tags = sorted(t for img in client.images.list() for t in img.tags)
    assert tags == ["myimg:1", "other:2"]
    assert len(api.images(all=True, quiet=True)) == 2
    assert client.images.list(filters={"dangling": True, "reference": "my*", "before": "other:2"}) == []
    assert [i.tags for i in client.images.list(filters={"reference": "my*"})] == [["myimg:1"]]

    img = client.images.get("myimg:1")
    assert img.attrs["Config"]["Cmd"] == ["sh"] and img.attrs["Config"]["Env"] == ["A=b"]
    assert img.history()[0]["Id"] == img.id
    assert img.tag("me/x", "2") is True

    data = b"".join(api.get_image("myimg:1"))
    named = b"".join(client.images.get("me/x:2").save(named=True))  # named = the first tag
    assert data[:512] and named[:512]
    api.remove_image("myimg:1")
    api.remove_image("me/x:2")
    loaded = client.images.load(named)
    assert [t for i in loaded for t in i.tags] == ["myimg:1"]

    assert client.images.prune()["ImagesDeleted"] is None
    result = client.images.prune(filters={"dangling": False})
    assert result["SpaceReclaimed"] > 0 and client.images.list() == []
    assert client.df()["Images"] == []
    assert client.info()["Images"] == 0

    api.import_image_from_data(rootfs, repository="myimg", tag="1")
    legacy = daemon.api_client(version="1.24")
    assert [i["RepoTags"] for i in legacy.images(name="my*")] == [["myimg:1"]]
    assert "VirtualSize" in legacy.images()[0]
