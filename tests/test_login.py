"""POST /auth (`docker login`, docker-py login()) against real registries, compared with dockerd."""

from __future__ import annotations

import json
from typing import Any

import docker.errors
import pytest

from tests.support.proc import Engine
from tests.support.registry import Registry, basic_registry, registry, token_registry  # noqa: F401
from tests.support.seed import push_image
from tests.conftest import make_tar


def login(engine: Engine, body: Any, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    r = engine.request("POST", "/auth", data, {"Content-Type": "application/json"})
    return r.status, r.json()


def cases(basic: Registry, token: Registry, anon: Registry) -> list[dict[str, str]]:
    return [
        {"username": basic.username, "password": basic.password, "serveraddress": basic.host},
        {"username": basic.username, "password": basic.password, "serveraddress": "http://" + basic.host},
        {"username": basic.username, "password": "wrong", "serveraddress": basic.host},
        {"username": "", "password": "", "serveraddress": basic.host},
        {"username": token.username, "password": token.password, "serveraddress": token.host},
        {"username": token.username, "password": "wrong", "serveraddress": token.host},
        {"username": "", "password": "", "serveraddress": token.host},
        {"username": "any", "password": "thing", "serveraddress": anon.host},  # asks for nothing: accepted
        {"username": "x", "password": "y", "serveraddress": "127.0.0.1:1"},    # nobody there
    ]


def test_answers_as_dockerd(daemon: Engine, dockerd: Engine, basic_registry: Registry,  # noqa: F811
                            token_registry: Registry, registry: Registry) -> None:  # noqa: F811
    for body in cases(basic_registry, token_registry, registry):
        ours, theirs = login(daemon, body), login(dockerd, body)
        assert ours == theirs, (body["serveraddress"], body["password"])


def test_statuses_and_texts(daemon: Engine, basic_registry: Registry,  # noqa: F811
                            token_registry: Registry, registry: Registry) -> None:  # noqa: F811
    ok = (200, {"IdentityToken": "", "Status": "Login Succeeded"})
    b, t = basic_registry.host, token_registry.host
    got = [login(daemon, body) for body in cases(basic_registry, token_registry, registry)]
    assert got == [
        ok, ok,
        (500, {"message": f"login attempt to http://{b}/v2/ failed with status: 401 Unauthorized"}),
        (500, {"message": f'Get "http://{b}/v2/": no basic auth credentials'}),
        ok,
        (401, {"message": f'Get "http://{t}/v2/": unauthorized: incorrect username or password'}),
        ok, ok,
        (500, {"message": 'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused'}),
    ]
    # a body that is not an AuthConfig: dockerd's decoder text, as a client error
    assert login(daemon, None, b"{not json") == (400, {"message": "invalid character 'n' looking for beginning "
                                                                   "of object key string"})
    assert login(daemon, None, b"") == (400, {"message": "EOF"})
    assert login(daemon, None, b'{"username": 5}')[0] == 400


def test_docker_login_then_pull(daemon: Engine, basic_registry: Registry) -> None:  # noqa: F811
    reg = basic_registry
    pushed = push_image(reg, "private/app", "1", [make_tar({"a": b"1"})])
    wrong = daemon.docker("login", "-u", reg.username, "--password-stdin", reg.host, input=b"nope")
    assert wrong.returncode == 1
    assert wrong.stderr.decode().strip() == (f"Error response from daemon: login attempt to http://{reg.host}/v2/ "
                                             "failed with status: 401 Unauthorized")
    assert daemon.docker("pull", f"{reg.host}/private/app:1").returncode != 0
    ok = daemon.docker("login", "-u", reg.username, "--password-stdin", reg.host, input=reg.password.encode())
    assert ok.returncode == 0 and "Login Succeeded" in ok.stdout.decode(), ok.stderr
    daemon.docker("pull", f"{reg.host}/private/app:1", check=True)
    img = json.loads(daemon.docker("image", "inspect", f"{reg.host}/private/app:1", check=True).stdout)[0]
    assert img["Id"] == pushed.config_digest


def test_docker_py_login(daemon: Engine, token_registry: Registry) -> None:  # noqa: F811
    reg = token_registry
    client = daemon.client()
    answer = client.login(reg.username, reg.password, registry=reg.host, reauth=True)
    assert answer == {"IdentityToken": "", "Status": "Login Succeeded"}
    with pytest.raises(docker.errors.APIError) as e:
        client.login(reg.username, "wrong", registry=reg.host, reauth=True)
    assert e.value.status_code == 401 and "incorrect username or password" in str(e.value)
