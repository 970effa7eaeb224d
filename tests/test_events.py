"""GET /events: the image events of pull, push, tag, untag, delete, import, load, save (and prune),
in dockerd 20.10's shape and order, replayed for since/until, streamed live, filtered.

The same operations run against our daemon and the reference dockerd, and their event
streams must agree once times and image IDs are blanked out.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.parse
from typing import Any, Iterator

import pytest

from tests.support.proc import Engine
from tests.support.registry import Registry, start_registry
from tests.support.seed import make_layer, push_image
from tests.test_push import import_tar, save_archive

KB = 1024
AUTH_NONE = {"X-Registry-Auth": "e30="}
NOMATCH_PRUNE = "/v1.41/images/prune?filters=" + urllib.parse.quote('{"label":{"nomatch-zz":true}}')


@pytest.fixture(scope="module")
def reg() -> Iterator[Registry]:
    r = start_registry()
    try:
        yield r
    finally:
        r.stop()


def events(engine: Engine, since: float, until: float, filters: dict[str, Any] | None = None) -> list[dict]:
    q = f"since={since:.9f}&until={until:.9f}"
    if filters is not None:
        q += "&filters=" + urllib.parse.quote(json.dumps(filters))
    r = engine.request("GET", f"/v1.41/events?{q}")
    assert r.status == 200 and r.headers["content-type"] == "application/json", r.body
    return [json.loads(line) for line in r.body.decode().splitlines()]


def blank(evs: list[dict]) -> list[str]:
    out = []
    for e in evs:
        e = {k: v for k, v in e.items() if k not in ("time", "timeNano")}
        out.append(re.sub(r"sha256:[0-9a-f]{64}", "ID", json.dumps(e)))
    return out


def workload(engine: Engine, reg: Registry, tag: str) -> tuple[float, float]:
    """Import (with a tag), tag, pull, save, load, untag, delete, push, prune; the time window."""
    t0 = time.time()
    tar = make_layer(80, 5 * KB)
    archive, _ = save_archive([make_layer(81, 5 * KB)], [f"evload/{tag}:1"], {"config": {"Labels": {"z": "1"}}})
    engine.request("POST", f"/v1.41/images/create?fromSrc=-&repo=evimp/{tag}:1&changes=LABEL%20k%3Dv", body=tar)
    engine.request("POST", f"/v1.41/images/evimp/{tag}:1/tag?repo=evimp/{tag}&tag=2")
    engine.request("POST", f"/v1.41/images/create?fromImage={reg.host}/ev/app&tag=1")
    engine.request("GET", f"/v1.41/images/evimp/{tag}:1/get")
    engine.request("POST", "/v1.41/images/load", body=archive)
    engine.request("DELETE", f"/v1.41/images/evimp/{tag}:2")
    engine.request("DELETE", f"/v1.41/images/evimp/{tag}:1")
    engine.request("POST", f"/v1.41/images/{reg.host}/ev/app:1/tag?repo={reg.host}/ev/{tag}&tag=5")
    engine.request("POST", f"/v1.41/images/{reg.host}/ev/{tag}/push?tag=5", headers=AUTH_NONE)
    engine.request("DELETE", f"/v1.41/images/{reg.host}/ev/app:1")
    engine.request("DELETE", f"/v1.41/images/{reg.host}/ev/{tag}:5")
    engine.request("DELETE", f"/v1.41/images/evload/{tag}:1")
    engine.request("POST", NOMATCH_PRUNE)
    return t0, time.time()


@pytest.fixture(scope="module")
def seeded(reg: Registry) -> None:
    push_image(reg, "ev/app", "1", [make_layer(82, 10 * KB)],
               config_extra={"config": {"Labels": {"b": "2", "a": "<1>&"}}})


def test_events_match_dockerd(daemon: Engine, dockerd: Engine, reg: Registry, seeded: None) -> None:
    ours_window = workload(daemon, reg, "x")
    theirs_window = workload(dockerd, reg, "x")
    ours, theirs = events(daemon, *ours_window), events(dockerd, *theirs_window)
    assert [e["Action"] for e in ours] == [
        "tag", "import", "tag", "pull", "save", "load", "untag", "untag", "delete", "tag", "push",
        "untag", "untag", "delete", "untag", "delete", "prune"]
    assert blank(ours) == blank(theirs)
    # byte for byte, times aside: Go's encoder (sorted attributes, \u003c escapes, no empty id)
    r = daemon.request("GET", f"/v1.41/events?since={ours_window[0]:.9f}&until={ours_window[1]:.9f}")
    t = dockerd.request("GET", f"/v1.41/events?since={theirs_window[0]:.9f}&until={theirs_window[1]:.9f}")
    strip = re.compile(rb'"time":\d+,"timeNano":\d+|sha256:[0-9a-f]{64}')
    assert strip.sub(b"", r.body) == strip.sub(b"", t.body)
    assert b'"a":"\\u003c1\\u003e\\u0026","b":"2","name":' in r.body
    # the same filters give the same subsets
    for f in [{"type": ["image"]}, {"type": ["container"]}, {"event": ["untag", "push"]},
              {"image": ["evimp/x"]}, {"image": [f"{reg.host}/ev/app"]}, {"label": ["k=v"]}, {"label": ["z"]},
              {"container": ["sha256:"]}, {"scope": ["swarm"]}, {"nonsense": ["1"]},
              {"event": ["health_status"]}, {"daemon": ["x"]}]:
        assert blank(events(daemon, *ours_window, f)) == blank(events(dockerd, *theirs_window, f)), f


def test_since_until_errors_match_dockerd(daemon: Engine, dockerd: Engine) -> None:
    now = int(time.time())
    for q in [f"since={now + 10}&until={now}", "since=abc", "until=1h", "since=2020-01-01",
              "since=1.x", "until=99999999999999999999", "filters=xx&until=1"]:
        ours, theirs = daemon.request("GET", f"/v1.41/events?{q}"), dockerd.request("GET", f"/v1.41/events?{q}")
        if q.startswith("filters"):  # 20.10 answers bad JSON with 500, we say 400 `invalid filter`
            assert ours.status == 400 and theirs.status == 500
            continue
        assert (ours.status, ours.body) == (theirs.status, theirs.body), q


def test_until_alone_replays_and_ends(daemon: Engine) -> None:
    import_tar(daemon, "evonly/a:1", make_layer(83, 2 * KB))
    evs = [json.loads(line) for line in
           daemon.request("GET", f"/v1.41/events?until={time.time():.9f}").body.decode().splitlines()]
    assert [e["Action"] for e in evs] == ["tag", "import"]
    assert daemon.request("GET", "/v1.41/events?since=1&until=2").body == b""


def test_live_events_reach_a_watcher(daemon: Engine) -> None:
    """A client that is watching gets an event as it happens (no since: no replay)."""
    import_tar(daemon, "evlive/a:1", make_layer(84, 2 * KB))  # before the watcher: not shown
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(daemon.sock)
    try:
        q = urllib.parse.quote(json.dumps({"event": ["tag"]}))
        s.sendall(f"GET /v1.41/events?filters={q} HTTP/1.1\r\nHost: d\r\n\r\n".encode())
        f = s.makefile("rb")
        assert b" 200 " in f.readline()
        while f.readline() not in (b"\r\n", b""):
            pass
        # the stream is open (headers flushed): now the operation
        assert daemon.request("POST", "/v1.41/images/evlive/a:1/tag?repo=evlive/b&tag=2").status == 201
        size = int(f.readline().strip(), 16)
        ev = json.loads(f.read(size))
        assert ev["Action"] == "tag" and ev["Actor"]["Attributes"]["name"] == "evlive/b:2"
    finally:
        s.close()


def test_docker_cli_events(daemon: Engine) -> None:
    t0 = time.time()
    import_tar(daemon, "evcli/a:1", make_layer(85, 2 * KB))
    daemon.request("POST", "/v1.41/images/evcli/a:1/tag?repo=evcli/a&tag=2")
    daemon.request("DELETE", "/v1.41/images/evcli/a:2")
    t1 = time.time() + 0.5
    out = daemon.docker("events", "--since", f"{t0:.3f}", "--until", f"{t1:.3f}", "--filter", "type=image",
                        "--filter", "event=tag", "--format", "{{json .}}", check=True).stdout.decode()
    evs = [json.loads(line) for line in out.splitlines()]
    assert [e["Actor"]["Attributes"]["name"] for e in evs] == ["evcli/a:1", "evcli/a:2"]
    text = daemon.docker("events", "--since", f"{t0:.3f}", "--until", f"{t1:.3f}", "--filter", "image=evcli/a",
                         check=True).stdout.decode()
    # an image filter matches the ID or the name: import and untag name the ID, not the repository
    assert [line.split()[1:3] for line in text.splitlines()] == [["image", "tag"], ["image", "tag"]]
    # durations are turned into (whole second) times by the CLI: the API takes Unix times only;
    # an until in the future (-1s = a second from now) keeps the stream open until then
    assert " import " in daemon.docker("events", "--since", "1h", "--until=-1s", check=True).stdout.decode()


def test_docker_py_events(daemon: Engine, reg: Registry, seeded: None) -> None:
    t0 = time.time()
    client = daemon.client()
    client.images.pull(f"{reg.host}/ev/app", tag="1")
    client.images.get(f"{reg.host}/ev/app:1").tag(f"{reg.host}/ev/py", "1")
    list(client.images.push(f"{reg.host}/ev/py", tag="1", stream=True))
    evs = list(client.events(since=t0, until=time.time() + 0.5, decode=True, filters={"type": "image"}))
    assert [(e["Action"], e["id"] if e["Action"] in ("pull", "push") else e["Actor"]["Attributes"]["name"])
            for e in evs] == [("pull", f"{reg.host}/ev/app:1"), ("tag", f"{reg.host}/ev/py:1"),
                              ("push", f"{reg.host}/ev/py:1")]
    assert evs[-1]["Actor"]["Attributes"] == {"a": "<1>&", "b": "2", "name": f"{reg.host}/ev/py"}
