"""Real processes for the tests: our daemon and the reference dockerd, on temporary unix sockets."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DOCKER = shutil.which("docker") or "docker"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.body.split(b"\r\n") if line.strip()]


@dataclass
class Engine:
    """An Engine API endpoint on a unix socket: ours or the reference dockerd."""

    sock: str
    data_root: Path
    proc: subprocess.Popen | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="drt", dir="/tmp")))

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def request(self, method: str, path: str, body: bytes | Any = None,
                headers: dict[str, str] | None = None, timeout: float = 120) -> Response:
        conn = UnixHTTPConnection(self.sock, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def docker(self, *args: str, input: bytes | None = None, check: bool = False,
               timeout: float = 300, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.host
        env["DOCKER_CONFIG"] = str(self.workdir / "docker-config")
        env.update(env_extra or {})  # e.g. DOCKER_API_VERSION to pin the CLI's API version
        r = subprocess.run([DOCKER, *args], input=input, capture_output=True, env=env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({r.returncode}): {r.stderr.decode()}")
        return r

    def api_client(self, version: str = "auto"):  # type: ignore[no-untyped-def]
        import docker

        return docker.APIClient(base_url=self.host, version=version, timeout=300)

    def client(self, version: str = "auto"):  # type: ignore[no-untyped-def]
        import docker

        return docker.DockerClient(base_url=self.host, version=version, timeout=300)


def start_daemon(data_root: Path | None = None, extra: list[str] | None = None,
                 tcp: str | None = None) -> Engine:
    """Start `dockerremote serve` and return once it printed that it listens."""
    workdir = Path(tempfile.mkdtemp(prefix="drd", dir="/tmp"))
    sock = str(workdir / "dr.sock")
    data_root = data_root or workdir / "data"
    cmd = [sys.executable, "-m", "dockerremote", "serve", "--data-root", str(data_root), "-H", f"unix://{sock}"]
    if tcp:
        cmd += ["-H", tcp]
    cmd += extra or []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    wanted = 2 if tcp else 1
    seen: list[str] = []
    while len([s for s in seen if "listening on" in s]) < wanted:
        line = proc.stdout.readline().decode()
        if not line:
            raise RuntimeError("daemon exited before listening:\n" + "".join(seen))
        seen.append(line)
    # keep draining output so the daemon never blocks on a full pipe
    import threading

    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return Engine(sock=sock, data_root=data_root, proc=proc, workdir=workdir)


def stop(engine: Engine, sig: int = signal.SIGTERM) -> int:
    assert engine.proc is not None
    engine.proc.send_signal(sig)
    return engine.proc.wait(timeout=30)


def start_reference_dockerd() -> Engine | None:
    """The reference dockerd 20.10 (Debian docker.io) with vfs, or None where it cannot run."""
    if not shutil.which("dockerd") or os.geteuid() != 0:
        return None
    workdir = Path(tempfile.mkdtemp(prefix="ref", dir="/tmp"))
    sock = str(workdir / "docker.sock")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(workdir / "root"), "--exec-root", str(workdir / "exec"),
         "-H", f"unix://{sock}", "--pidfile", str(workdir / "docker.pid"), "--storage-driver", "vfs",
         "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-masq=false"],
        stdout=subprocess.DEVNULL, stderr=open(workdir / "log", "wb"))
    engine = Engine(sock=sock, data_root=workdir / "root", proc=proc, workdir=workdir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # dockerd prints nothing we can wait on; poll its socket
        if proc.poll() is not None:
            return None
        try:
            if engine.request("GET", "/_ping", timeout=2).status == 200:
                return engine
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    return None
