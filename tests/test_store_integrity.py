"""The store stays consistent: across SIGKILL in the middle of writes, and under racing clients."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from tests.conftest import make_tar
from tests.support.proc import Engine, start_daemon, stop


def _check_consistent(engine: Engine) -> list[dict]:
    """Every listed image reads back whole; every blob on disk hashes to its name; no leftovers."""
    images = engine.request("GET", "/images/json?all=1").json()
    for item in images:
        r = engine.request("GET", f"/images/{item['Id']}/json")
        assert r.status == 200, r.body
        assert engine.request("GET", f"/images/{item['Id']}/history").status == 200
    blob_dir = engine.data_root / "blobs" / "sha256"
    for blob in blob_dir.iterdir():
        h = hashlib.sha256()
        with open(blob, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        assert h.hexdigest() == blob.name, f"blob {blob.name} is not what its name says"
    assert list((engine.data_root / "ingest").iterdir()) == []
    return images


def _blob_names(engine: Engine) -> set[str]:
    return {p.name for p in (engine.data_root / "blobs" / "sha256").iterdir()}


def test_sigkill_during_import_leaves_no_trace(daemon: Engine) -> None:
    daemon.docker("import", "-", "keep:1", input=make_tar({"a": b"a" * 1000}), check=True)
    before = daemon.request("GET", "/images/json").json()
    blobs_before = _blob_names(daemon)
    # A streamed upload that never finishes: kill the daemon once it has taken bytes.
    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon.sock)
    s.sendall(b"POST /images/create?fromSrc=-&repo=half:1 HTTP/1.1\r\nHost: x\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    payload = make_tar({"big": os.urandom(4 << 20)})
    s.sendall(b"%x\r\n" % len(payload[: 3 << 20]) + payload[: 3 << 20] + b"\r\n")
    ingest = daemon.data_root / "ingest"
    # wait until the daemon has written part of the upload to its ingest area (bounded)
    for _ in range(2000):
        files = list(ingest.iterdir())
        if files and files[0].stat().st_size > 0:
            break
        threading.Event().wait(0.005)
    assert list(ingest.iterdir()), "the upload never reached the ingest area"
    assert stop(daemon, signal.SIGKILL) == -signal.SIGKILL
    s.close()
    again = start_daemon(data_root=daemon.data_root)
    try:
        after = _check_consistent(again)
        assert after == before
        assert _blob_names(again) == blobs_before
    finally:
        stop(again)


def test_sigkill_amid_mixed_writes_restarts_consistent(daemon: Engine) -> None:
    """Kill the daemon while clients import, tag and delete; the restart reads back whole."""
    stop_flag = threading.Event()
    done = [0]

    def worker(n: int) -> None:
        i = 0
        while not stop_flag.is_set() and i < 200:
            tar = make_tar({f"f{n}-{i}": os.urandom(64 << 10)})
            try:
                r = daemon.request("POST", f"/images/create?fromSrc=-&repo=w{n}:{i}", body=tar)
                if r.status == 200:
                    daemon.request("POST", f"/images/w{n}:{i}/tag?repo=t{n}&tag={i}")
                    if i % 2:
                        daemon.request("DELETE", f"/images/w{n}:{i}")
                    done[0] += 1
            except OSError:
                return  # the daemon died under us: that is the point
            i += 1

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(worker, n) for n in range(3)]
        while done[0] < 15 and not all(f.done() for f in futures):
            threading.Event().wait(0.01)
        assert stop(daemon, signal.SIGKILL) == -signal.SIGKILL
        stop_flag.set()
    again = start_daemon(data_root=daemon.data_root)
    try:
        images = _check_consistent(again)
        assert len(images) >= 10
        for item in images:  # every tag left points at an image that reads back
            for tag in item["RepoTags"] or []:
                assert again.request("GET", f"/images/{tag}/json").status == 200
    finally:
        stop(again)


def test_racing_clients_never_get_500(daemon: Engine) -> None:
    """Deletes race inspect, history, tag and import of the same names: 2xx, 404 or 409 only."""
    tar = make_tar({"x": b"same content"})
    statuses: list[int] = []
    lock = threading.Lock()

    def record(status: int) -> None:
        with lock:
            statuses.append(status)

    def importer() -> None:
        for i in range(25):
            record(daemon.request("POST", "/images/create?fromSrc=-&repo=race:1", body=tar).status)

    def tagger() -> None:
        for i in range(25):
            record(daemon.request("POST", "/images/race:1/tag?repo=race&tag=two").status)

    def deleter() -> None:
        for i in range(25):
            record(daemon.request("DELETE", "/images/race:1?force=1").status)
            record(daemon.request("DELETE", "/images/race:two").status)

    def reader() -> None:
        for i in range(25):
            record(daemon.request("GET", "/images/race:1/json").status)
            record(daemon.request("GET", "/images/race:two/history").status)
            record(daemon.request("GET", "/images/json?filters=" + quote(json.dumps({"reference": ["race*"]}))).status)

    threads = [threading.Thread(target=f) for f in (importer, tagger, deleter, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(statuses) == 25 * 7
    assert set(statuses) <= {200, 201, 404, 409}, sorted(set(statuses))
    _check_consistent(daemon)


def test_one_daemon_per_data_root(daemon: Engine) -> None:
    """A second daemon on a data root in use stops at once, touching nothing (it would sweep the
    first one's ingests and collect blobs it still needs); after the first stops, it may start."""
    import subprocess
    import sys

    daemon.request("POST", "/images/create?fromSrc=-&repo=lock/a&tag=1", make_tar({"a": b"1"}))
    other = daemon.workdir / "other.sock"
    r = subprocess.run([sys.executable, "-m", "dockerremote", "serve", "--data-root", str(daemon.data_root),
                        "-H", f"unix://{other}"], capture_output=True, timeout=30)
    assert r.returncode == 1 and not other.exists()
    assert r.stderr.decode().strip() == (f"dockerremote: data root {daemon.data_root} is in use by another "
                                         f"dockerremote (pid {daemon.proc.pid})")
    assert daemon.request("GET", "/images/lock/a:1/json").status == 200  # the first one unharmed
    stop(daemon, signal.SIGKILL)  # even a killed daemon lets go of it
    again = start_daemon(data_root=daemon.data_root)
    try:
        assert again.request("GET", "/images/lock/a:1/json").status == 200
    finally:
        stop(again)
