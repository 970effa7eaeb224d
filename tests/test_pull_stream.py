"""The pull stream, compared with the reference dockerd 20.10 pulling the same images from the same registry.

Lines whose presence depends on timing (dockerd's watchers see only the latest state of a
transfer, so `Downloading`, `Verifying Checksum`, `Extracting` and `Waiting` lines may be
dropped) are compared by shape; every other line is compared byte for byte, and each layer's
states must come in dockerd's order.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

import pytest

from dockerremote.api.progress import bar
from tests.support.proc import Engine, Response
from tests.support.registry import Registry, start_registry
from tests.support.seed import Pushed, make_layer, push_image, push_index

KB = 1024
# States a viewer may miss: dockerd's transfer hands each watcher only the latest state, so a
# fast layer's "Download complete" can be overtaken by the next one (seen once on the reference)
OPTIONAL = {"Downloading", "Verifying Checksum", "Download complete", "Extracting", "Waiting"}
ORDER = ["Already exists", "Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum",
         "Download complete", "Extracting", "Pull complete"]


@pytest.fixture(scope="module")
def reg() -> Iterator[Registry]:
    r = start_registry()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def clean(dockerd: Engine, reg: Registry) -> Iterator[None]:
    """Images of this test's registry are removed from the reference dockerd afterwards."""
    yield
    for img in dockerd.request("GET", "/v1.41/images/json").json():
        if any(r.startswith(reg.host) for r in (img["RepoTags"] or []) + (img["RepoDigests"] or [])):
            dockerd.request("DELETE", f"/v1.41/images/{img['Id']}?force=1")


def pull(engine: Engine, query: str) -> Response:
    return engine.request("POST", f"/v1.41/images/create?{query}")


def both(daemon: Engine, dockerd: Engine, query: str) -> tuple[Response, Response]:
    return pull(daemon, query), pull(dockerd, query)


def raw_lines(r: Response) -> list[bytes]:
    assert r.body.endswith(b"\r\n"), r.body[-50:]
    return [line + b"\r\n" for line in r.body.split(b"\r\n")[:-1]]


def check_framing(r: Response) -> None:
    """Each line: JSON + CRLF, dockerd's field order and escaping, 12-hex ids, coherent bars."""
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    for line in raw_lines(r):
        text = line[:-2].decode()
        assert "\n" not in text and "\r" not in text
        assert ">" not in text and "<" not in text  # Go's encoder writes \u003e and \u003c
        msg = json.loads(text)
        keys = list(msg)
        order = ["status", "progressDetail", "progress", "id", "errorDetail", "error"]
        assert keys == [k for k in order if k in msg], keys
        status = msg.get("status", "")
        if status in ORDER:
            assert re.fullmatch(r"[0-9a-f]{12}", msg["id"]), msg
            assert "progressDetail" in msg
        if status in ("Downloading", "Extracting"):
            d = msg["progressDetail"]
            assert msg["progress"] == bar(d.get("current", 0), d.get("total", 0))
        if status.startswith(("Digest:", "Status:", "Pulling from")):
            assert "progressDetail" not in msg


def skeleton(r: Response) -> tuple[list[bytes], dict[str, list[str]]]:
    """(the non-layer lines, verbatim; each layer id's mandatory states in order)."""
    fixed: list[bytes] = []
    layers: dict[str, list[str]] = {}
    for line in raw_lines(r):
        msg = json.loads(line)
        status = msg.get("status", "")
        if status in ORDER:
            states = layers.setdefault(msg["id"], [])
            if status not in OPTIONAL:
                states.append(status)
        else:
            fixed.append(line)
    return fixed, layers


def ordered(r: Response) -> None:
    """Each layer's states never go backwards in dockerd's sequence."""
    last: dict[str, int] = {}
    for msg in r.lines():
        status = msg.get("status", "")
        if status.startswith("Pulling from"):  # a new tag's block (all-tags pulls)
            last = {}
        if status in ORDER:
            i = ORDER.index(status)
            assert i >= last.get(msg["id"], -1), (msg, last)
            last[msg["id"]] = i


def same_stream(ours: Response, ref: Response) -> None:
    check_framing(ours)
    check_framing(ref)
    ordered(ours)
    assert skeleton(ours) == skeleton(ref)


def test_fresh_pull_shared_layers_and_re_pull(daemon: Engine, dockerd: Engine, reg: Registry, clean: None) -> None:
    base = make_layer(101, 3 << 20, binary_fraction=0.6)   # several Downloading lines
    tars = [base] + [make_layer(102 + i, (4 + i) * KB) for i in range(4)]   # 5 layers: 2 wait
    one = push_image(reg, "stream/one", "1", tars)
    push_image(reg, "stream/two", "1", [base, tars[1], make_layer(120, 2 * KB)])
    q = f"fromImage={reg.host}/stream/one&tag=1"
    ours, ref = both(daemon, dockerd, q)
    same_stream(ours, ref)
    fixed, layers = skeleton(ours)
    assert list(layers) == [d[7:19] for d in one.layer_digests]
    assert all(s == ["Pulling fs layer", "Pull complete"] for s in layers.values())
    done = {m["id"] for m in ours.lines() if m.get("status") == "Download complete"}
    assert done == set(layers)  # ours always says it (a dockerd viewer may miss it)
    assert fixed[-2:] == [f'{{"status":"Digest: {one.manifest_digest}"}}\r\n'.encode(),
                          f'{{"status":"Status: Downloaded newer image for {reg.host}/stream/one:1"}}\r\n'.encode()]
    # a second image sharing the first two layers: "Already exists" for them, as dockerd says
    same_stream(*both(daemon, dockerd, f"fromImage={reg.host}/stream/two&tag=1"))
    # pulling again: three lines, byte for byte
    ours, ref = both(daemon, dockerd, q)
    assert ours.body == ref.body and len(raw_lines(ours)) == 3


def test_all_tags_and_digest_pulls(daemon: Engine, dockerd: Engine, reg: Registry, clean: None) -> None:
    a = push_image(reg, "stream/tags", "a", [make_layer(130, 8 * KB)])
    push_image(reg, "stream/tags", "b", [make_layer(130, 8 * KB), make_layer(131, 2 * KB)])
    same_stream(*both(daemon, dockerd, f"fromImage={reg.host}/stream/tags&tag="))
    ours, ref = both(daemon, dockerd, f"fromImage={reg.host}/stream/tags:&tag=")  # trailing ':' as `pull -a`
    assert ours.body == ref.body
    ours, ref = both(daemon, dockerd, f"fromImage={reg.host}/stream/tags&tag={a.manifest_digest}")
    assert ours.body == ref.body
    ours, ref = both(daemon, dockerd, f"fromImage={reg.host}/stream/tags@{a.manifest_digest}")
    assert ours.body == ref.body


def test_platforms(daemon: Engine, dockerd: Engine, reg: Registry, clean: None) -> None:
    kids = {p: push_image(reg, "stream/multi", None, [make_layer(140 + i, 4 * KB)], platform=p)
            for i, p in enumerate(["linux/amd64", "linux/arm64/v8", "linux/arm/v7"])}
    push_index(reg, "stream/multi", "1", kids)
    push_index(reg, "stream/multi", "oci", kids, fmt="oci")
    base = f"fromImage={reg.host}/stream/multi&tag="
    for query in (base + "1&platform=linux/arm64", base + "oci&platform=linux/arm", base + "1"):
        same_stream(*both(daemon, dockerd, query))
    for query in (base + "1&platform=linux/s390x", base + "1&platform=linux/arm64/v9",
                  base + "1&platform=linux/arm/v5"):  # the last one: a WARNING after Status
        ours, ref = both(daemon, dockerd, query)
        same_stream(ours, ref)
    single = push_image(reg, "stream/single", "latest", [make_layer(150, 2 * KB)], platform="linux/arm64")
    ours, ref = both(daemon, dockerd, f"fromImage={reg.host}/stream/single&tag=latest&platform=linux/arm64")
    same_stream(ours, ref)
    assert daemon.request("GET", f"/images/{single.config_digest}/json").status == 200


@pytest.mark.parametrize("query", [
    "fromImage={host}/stream/err&tag=nope",
    "fromImage={host}/stream/nothere&tag=1",
    "fromImage={host}/Stream/err&tag=1",
    "fromImage={host}/stream/err&tag=a:b",
    "fromImage={host}/stream/err&tag=sha256:abc",
    "fromImage=scratch",
    "fromImage={host}/stream/err&tag=1&platform=a/b/c/d",
    "fromImage={host}/stream/err&tag=1&platform=foo",
    "fromImage={host}/stream/err&tag=1&platform=*",
])
def test_errors_before_the_stream_match(daemon: Engine, dockerd: Engine, reg: Registry, query: str) -> None:
    push_image(reg, "stream/err", "1", [make_layer(160, 1 * KB)])
    q = query.format(host=reg.host)
    ours, ref = both(daemon, dockerd, q)
    assert (ours.status, ours.body) == (ref.status, ref.body), q


@pytest.mark.parametrize("kind", ["docker", "list", "oci", "index"])
def test_distribution_inspect_matches(daemon: Engine, dockerd: Engine, reg: Registry, kind: str) -> None:
    kids = {p: push_image(reg, f"stream/dist-{kind}", None, [make_layer(170 + i, 1 * KB)], platform=p,
                          fmt="oci" if kind in ("oci", "index") else "docker")
            for i, p in enumerate(["linux/amd64", "linux/arm64/v8"])}
    first: Pushed = kids["linux/amd64"]
    name = f"{reg.host}/stream/dist-{kind}"
    if kind in ("list", "index"):
        push_index(reg, f"stream/dist-{kind}", "1", kids, fmt="docker" if kind == "list" else "oci")
        paths = [f"{name}:1"]
    else:
        paths = [f"{name}@{first.manifest_digest}"]
    paths += [f"{name}:nope", f"{first.config_digest}"]
    for p in paths:
        ours = daemon.request("GET", f"/v1.41/distribution/{p}/json")
        ref = dockerd.request("GET", f"/v1.41/distribution/{p}/json")
        assert (ours.status, _json(ours)) == (ref.status, _json(ref)), p


def _json(r: Response) -> Any:
    return json.loads(r.body)
