"""`serve --config-file`: dockerd's daemon.json keys, its refusals and its flag/file conflict rule."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.proc import Engine, stop
from tests.support.registry import free_port


def serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dockerremote", "serve", *args], capture_output=True, timeout=30)


def test_settings_come_from_the_file(tmp_path: Path) -> None:
    port = free_port()
    sock = tmp_path / "dr.sock"
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"data-root": str(tmp_path / "root"),
                               "hosts": [f"unix://{sock}", f"tcp://127.0.0.1:{port}"],
                               "max-concurrent-downloads": 7, "registry-mirrors": ["http://127.0.0.1:1"],
                               "insecure-registries": ["example.test:5000"]}))
    proc = subprocess.Popen([sys.executable, "-m", "dockerremote", "serve", "--config-file", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    engine = Engine(sock=str(sock), data_root=tmp_path / "root", proc=proc)
    try:
        assert proc.stdout is not None
        listening = [proc.stdout.readline().decode() for _ in range(2)]
        assert [line.split()[4] for line in listening] == [f"unix://{sock}", f"tcp://127.0.0.1:{port}"], listening
        info = engine.request("GET", "/info").json()
        assert info["DockerRootDir"] == str(tmp_path / "root")
        assert info["RegistryConfig"]["Mirrors"] == ["http://127.0.0.1:1/"]
        assert info["RegistryConfig"]["IndexConfigs"]["example.test:5000"] == {
            "Name": "example.test:5000", "Mirrors": [], "Secure": False, "Official": False}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_ping", timeout=10) as r:
            assert r.read() == b"OK"
    finally:
        stop(engine)


def test_refusals(tmp_path: Path) -> None:
    def fails(doc: object, *flags: str) -> str:
        cfg = tmp_path / "daemon.json"
        cfg.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        r = serve("--config-file", str(cfg), "--data-root", str(tmp_path / "d"), *flags)
        assert r.returncode == 1, r
        return r.stderr.decode().strip()

    assert fails({"debugg": True}) == (
        f"dockerremote: unable to configure the daemon with file {tmp_path}/daemon.json: "
        "the following directives don't match any configuration option: debugg")
    assert fails({"hosts": "unix:///x.sock"}).endswith(
        "json: cannot unmarshal string into Go struct field Config.hosts of type []string")
    assert fails({"max-concurrent-downloads": "3"}).endswith(
        "json: cannot unmarshal string into Go struct field Config.max-concurrent-downloads of type int")
    assert "unable to configure the daemon with file" in fails("{not json")
    # a setting given both ways is an error, as in dockerd
    assert fails({"max-concurrent-downloads": 3, "hosts": ["unix:///tmp/a.sock"]},
                 "--max-concurrent-downloads", "5", "-H", "unix:///tmp/b.sock") == (
        "dockerremote: the following directives are specified both as a flag and in the configuration file: "
        "hosts: (from flag: [unix:///tmp/b.sock], from file: [unix:///tmp/a.sock]), "
        "max-concurrent-downloads: (from flag: 5, from file: 3)")


def test_bad_mirror_stops_the_start(tmp_path: Path) -> None:
    r = serve("--data-root", str(tmp_path / "d"), "-H", f"unix://{tmp_path}/s.sock",
              "--registry-mirror", "https://mirror.example/path")
    assert r.returncode == 1
    assert r.stderr.decode().strip() == ('dockerremote: invalid mirror: path, query, or fragment at end of the URI '
                                         '"https://mirror.example/path"')


def test_registry_config_in_info_as_dockerd() -> None:
    """What dockerd 20.10 showed for these flags (observed on the reference)."""
    from dockerremote.api.routes.system import registry_config

    got = registry_config(["http://127.0.0.1:1", "https://mirror.example/"],
                          ["10.0.0.0/8", "example.test:5000", "http://other.test", "docker.io"])
    mirrors = ["http://127.0.0.1:1/", "https://mirror.example/"]
    assert got == {
        "AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
        "InsecureRegistryCIDRs": ["10.0.0.0/8", "127.0.0.0/8"],
        "IndexConfigs": {
            "docker.io": {"Name": "docker.io", "Mirrors": mirrors, "Secure": True, "Official": True},
            "example.test:5000": {"Name": "example.test:5000", "Mirrors": [], "Secure": False, "Official": False},
            "other.test": {"Name": "other.test", "Mirrors": [], "Secure": False, "Official": False}},
        "Mirrors": mirrors}
    assert list(got["IndexConfigs"]) == ["docker.io", "example.test:5000", "other.test"]
