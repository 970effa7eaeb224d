"""TCP hosts over TLS, with client certificates, as dockerd's --tls/--tlsverify flags; driven by
the docker CLI and docker-py with their own TLS options."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import make_tar
from tests.support import pki
from tests.support.proc import DOCKER, Engine, start_daemon, stop
from tests.support.registry import free_port, non_loopback_ip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca()
    ca.write(d / "ca.pem")
    pki.issue(ca, "dockerremote", ips=("127.0.0.1",), names=("localhost",)).write(d / "server-cert.pem",
                                                                                  d / "server-key.pem")
    pki.issue(ca, "client", client=True).write(d / "cert.pem", d / "key.pem")
    stranger = pki.make_ca("some other CA")
    pki.issue(stranger, "client", client=True).write(d / "stranger-cert.pem", d / "stranger-key.pem")
    return d


def tls_flags(d: Path, verify: bool = True) -> list[str]:
    return ["--tlsverify" if verify else "--tls", "--tlscacert", str(d / "ca.pem"),
            "--tlscert", str(d / "server-cert.pem"), "--tlskey", str(d / "server-key.pem")]


@pytest.fixture
def tls_daemon(certs: Path) -> Iterator[tuple[Engine, str]]:
    addr = f"127.0.0.1:{free_port()}"
    engine = start_daemon(extra=tls_flags(certs), tcp=f"tcp://{addr}")
    try:
        yield engine, addr
    finally:
        stop(engine)


def cli(addr: str, certs: Path, *args: str, cert: str = "cert", verify: bool = True,
        tls: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = str(certs / "docker-config")
    flags = ["-H", f"tcp://{addr}"]
    if tls:
        flags += ["--tlsverify" if verify else "--tls", "--tlscacert", str(certs / "ca.pem")]
        if cert:
            key = cert.replace("cert", "key")
            flags += ["--tlscert", str(certs / f"{cert}.pem"), "--tlskey", str(certs / f"{key}.pem")]
    return subprocess.run([DOCKER, *flags, *args], capture_output=True, env=env, timeout=60)


def test_cli_with_a_client_certificate(tls_daemon: tuple[Engine, str], certs: Path) -> None:
    engine, addr = tls_daemon
    engine.request("POST", "/images/create?fromSrc=-&repo=tls/app&tag=1", make_tar({"a": b"1"}))
    r = cli(addr, certs, "images", "--format", "{{.Repository}}:{{.Tag}}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["tls/app:1"]
    assert cli(addr, certs, "version", "--format", "{{.Server.APIVersion}}").stdout.decode().strip() == "1.52"


def test_without_a_trusted_client_certificate_nothing_is_served(tls_daemon: tuple[Engine, str], certs: Path) -> None:
    _, addr = tls_daemon
    assert cli(addr, certs, "images", cert="").returncode != 0                  # no certificate
    assert cli(addr, certs, "images", cert="stranger-cert").returncode != 0     # signed by another CA
    assert cli(addr, certs, "images", tls=False).returncode != 0                # plain HTTP to a TLS port
    # the same with a raw TLS handshake: refused before any HTTP
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    host, port = addr.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            with ctx.wrap_socket(raw, server_hostname=host) as s:
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
                if not s.recv(100):  # TLS 1.3: the refusal can arrive with the first read
                    raise ConnectionResetError("closed")


def test_docker_py_with_tls(tls_daemon: tuple[Engine, str], certs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import docker
    from docker.tls import TLSConfig

    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests lets these override the client's CA
        monkeypatch.delenv(var, raising=False)

    _, addr = tls_daemon
    tls = TLSConfig(client_cert=(str(certs / "cert.pem"), str(certs / "key.pem")),
                    ca_cert=str(certs / "ca.pem"), verify=True)
    client = docker.DockerClient(base_url=f"https://{addr}", tls=tls, version="auto")
    assert client.ping() is True and client.version()["ApiVersion"] == "1.52"
    assert client.images.list() == []


def test_tls_without_verify_asks_for_no_certificate(certs: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    engine = start_daemon(extra=tls_flags(certs, verify=False), tcp=f"tcp://{addr}")
    try:
        r = cli(addr, certs, "version", "--format", "{{.Server.APIVersion}}", cert="", verify=False)
        assert r.returncode == 0 and r.stdout.decode().strip() == "1.52", r.stderr
        assert cli(addr, certs, "images", tls=False).returncode != 0
    finally:
        stop(engine)


def serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dockerremote", "serve", *args], capture_output=True, timeout=30)


def test_start_refusals(tmp_path: Path, certs: Path) -> None:
    ip = non_loopback_ip()
    if ip is not None:  # a host others can reach needs client certificates (or the explicit flag)
        r = serve("--data-root", str(tmp_path / "d"), "-H", f"tcp://{ip}:{free_port(ip)}", "--tls",
                  "--tlscert", str(certs / "server-cert.pem"), "--tlskey", str(certs / "server-key.pem"))
        assert r.returncode == 1 and b"without client certificates (--tlsverify)" in r.stderr
    r = serve("--data-root", str(tmp_path / "d"), "-H", f"tcp://127.0.0.1:{free_port()}", "--tlsverify",
              "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(tmp_path / "missing.pem"),
              "--tlskey", str(certs / "server-key.pem"))
    assert r.returncode == 1
    assert f'could not load X509 key pair (cert: "{tmp_path / "missing.pem"}"'.encode() in r.stderr
    r = serve("--data-root", str(tmp_path / "d"), "-H", f"tcp://127.0.0.1:{free_port()}", "--tlsverify",
              "--tlscacert", str(tmp_path / "nope.pem"), "--tlscert", str(certs / "server-cert.pem"),
              "--tlskey", str(certs / "server-key.pem"))
    assert r.returncode == 1 and f'could not read CA certificate "{tmp_path / "nope.pem"}"'.encode() in r.stderr


def test_non_loopback_with_tlsverify(certs: Path) -> None:
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("no address outside 127.0.0.0/8 here")
    ca = pki.make_ca()  # a server certificate for that address, same client CA
    d = certs / "nl"
    d.mkdir(exist_ok=True)
    pki.issue(ca, ip, ips=(ip,)).write(d / "server-cert.pem", d / "server-key.pem")
    addr = f"{ip}:{free_port(ip)}"
    engine = start_daemon(extra=["--tlsverify", "--tlscacert", str(certs / "ca.pem"), "--tlscert",
                                 str(d / "server-cert.pem"), "--tlskey", str(d / "server-key.pem")],
                          tcp=f"tcp://{addr}")
    try:
        ctx = ssl.create_default_context(cafile=None)
        ctx.load_verify_locations(cadata=ca.cert_pem.decode())
        ctx.load_cert_chain(certs / "cert.pem", certs / "key.pem")
        with socket.create_connection((ip, int(addr.split(":")[1])), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=ip) as s:
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"OK")
    finally:
        stop(engine)


def test_default_certificate_files(certs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without paths, the daemon takes ca.pem, cert.pem and key.pem from $DOCKER_CERT_PATH, as dockerd."""
    import shutil

    d = tmp_path / "certdir"
    d.mkdir()
    shutil.copy(certs / "ca.pem", d / "ca.pem")
    shutil.copy(certs / "server-cert.pem", d / "cert.pem")
    shutil.copy(certs / "server-key.pem", d / "key.pem")
    addr = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("DOCKER_CERT_PATH", str(d))  # seen by the daemon we start, not by cli()
    engine = start_daemon(extra=["--tlsverify"], tcp=f"tcp://{addr}")
    try:
        assert cli(addr, certs, "version", "--format", "{{.Server.APIVersion}}").stdout.decode().strip() == "1.52"
        assert cli(addr, certs, "images", cert="").returncode != 0
    finally:
        stop(engine)
