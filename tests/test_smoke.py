"""The daemon starts, answers /_ping with dockerd's headers, and the docker CLI talks to it."""

from tests.support.proc import Engine


def test_ping_headers(daemon: Engine) -> None:
    r = daemon.request("GET", "/_ping")
    assert r.status == 200 and r.body == b"OK"
    assert r.headers["api-version"] == "1.52"
    assert r.headers["cache-control"] == "no-cache, no-store, must-revalidate"
    head = daemon.request("HEAD", "/_ping")
    assert head.status == 200 and head.body == b""


def test_cli_import_and_list(daemon: Engine, rootfs_tar: bytes) -> None:
    r = daemon.docker("import", "-", "smoke:1", input=rootfs_tar, check=True)
    image_id = r.stdout.decode().strip()
    assert image_id.startswith("sha256:")
    out = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", check=True).stdout.decode()
    assert out.strip() == f"smoke:1 {image_id[7:19]}"
