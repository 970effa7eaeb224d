"""Side by side with the reference dockerd 20.10: the same arrangement is built on both daemons
and the responses are compared after normalization (IDs → names, times and versions → marks).

Our side is asked at /v1.41 (dockerd 20.10's own version; our bare paths are 1.52) and its CLI
and docker-py are pinned to 1.41 too, so both daemons answer the same API version.

The dockerd fixture is shared by the whole session, so every test names its images with a
unique prefix and label, looks only at those, and deletes them afterwards. Where dockerd
answers 500 for a client's mistake we answer 400 with the same text (house rule); those
places pass `client_mistake=True`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import re
import tarfile
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from tests.conftest import make_tar
from tests.support.proc import Engine, Response, start_daemon, stop

ID_RE = re.compile(r"(sha256:)?([0-9a-f]{64})")


class Side:
    """One daemon in a comparison: knows its images by symbolic names and normalizes output."""

    def __init__(self, engine: Engine, is_ref: bool) -> None:
        self.e = engine
        self.is_ref = is_ref
        self.ids: dict[str, str] = {}  # symbol → image ID

    def path(self, path: str) -> str:
        """Our daemon's bare paths are API 1.52: ask it at dockerd 20.10's version instead."""
        if self.is_ref or re.match(r"/v[0-9]", path):
            return path
        return "/v1.41" + path

    def docker(self, *args: str) -> Any:
        return self.e.docker(*args, env_extra=None if self.is_ref else {"DOCKER_API_VERSION": "1.41"})

    def client(self) -> Any:
        return self.e.client(version="auto" if self.is_ref else "1.41")

    # -- building the arrangement
    def imp(self, symbol: str, body: bytes, repo: str = "", changes: tuple[str, ...] = (),
            **params: str) -> str:
        query = [("fromSrc", "-")] + ([("repo", repo)] if repo else []) + [("changes", c) for c in changes]
        query += list(params.items())
        r = self.e.request("POST", self.path("/images/create?" + urllib.parse.urlencode(query)), body,
                           {"Content-Type": "application/tar"})
        assert r.status == 200, (self.is_ref, r.body)
        image_id = r.lines()[-1]["status"]
        assert image_id.startswith("sha256:"), r.body
        self.ids[symbol] = image_id
        return image_id

    def tag(self, src: str, repo: str, tag: str = "") -> None:
        r = self.request("POST", f"/images/{src}/tag?" + urllib.parse.urlencode({"repo": repo, "tag": tag}))
        assert r.status == 201, r.body

    def expand(self, text: str) -> str:
        """{A} → the full hex ID of A, {A:12} → its first 12 characters."""
        def sub(m: re.Match[str]) -> str:
            hexid = self.ids[m.group(1)][7:]
            return hexid[:int(m.group(2))] if m.group(2) else hexid
        return re.sub(r"\{(\w+)(?::(\d+))?\}", sub, text)

    def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        return self.e.request(method, self.path(self.expand(path)), body)

    # -- normalizing what came back
    def symbols(self, text: str) -> str:
        for symbol, image_id in self.ids.items():
            text = text.replace(image_id[7:], f"<{symbol}>").replace(image_id[7:19], f"<{symbol}>")
        return text.replace("sha256:<", "<")

    def norm(self, value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k in ("Created", "created", "LastTagTime", "CreatedAt", "CreatedSince") and v not in (
                        "0001-01-01T00:00:00Z",):
                    v = "<time>"
                elif k in ("DockerVersion", "docker_version"):
                    v = "<version>"
                elif k == "GraphDriver":
                    v = "<driver>"
                out[self.symbols(k)] = self.norm(v)
            return out
        if isinstance(value, list):
            return [self.norm(v) for v in value]
        if isinstance(value, str):
            return self.symbols(value)
        return value

    def cleanup(self) -> None:
        for image_id in self.ids.values():
            self.e.request("DELETE", f"/images/{image_id}?force=1")

    def config(self, symbol: str) -> bytes:
        """The image's config bytes: from `docker save` on dockerd, from the blob store on ours."""
        hexid = self.ids[symbol][7:]
        if not self.is_ref:
            return (self.e.data_root / "blobs" / "sha256" / hexid).read_bytes()
        r = self.e.request("GET", f"/images/{hexid}/get")
        with tarfile.open(fileobj=io.BytesIO(r.body)) as t:
            f = t.extractfile(f"{hexid}.json")
            assert f is not None
            return f.read()


@pytest.fixture(scope="module")
def ours_engine(dockerd: Engine) -> Iterator[Engine]:
    """Our daemon for this module (started only where dockerd runs); tests clean up after them."""
    e = start_daemon()
    try:
        yield e
    finally:
        stop(e)


@pytest.fixture
def pair(dockerd: Engine, ours_engine: Engine) -> Iterator[tuple[Side, Side]]:
    ref, ours = Side(dockerd, True), Side(ours_engine, False)
    try:
        yield ref, ours
    finally:
        ref.cleanup()
        ours.cleanup()


@pytest.fixture
def uid() -> str:
    return "c" + uuid.uuid4().hex[:8]


def outcome(side: Side, r: Response, sort: bool = False) -> tuple[int, Any]:
    try:
        body: Any = json.loads(r.body) if r.body.strip() else None
    except ValueError:
        body = r.body.decode()
    if sort and isinstance(body, list):
        body = sorted(body, key=lambda x: json.dumps(side.norm(x), sort_keys=True))
    return r.status, side.norm(body)


def same(pair: tuple[Side, Side], method: str, path: str, body: bytes | None = None, *, sort: bool = False,
         only_mine: bool = False, client_mistake: bool = False, canon=None) -> tuple[int, Any]:  # type: ignore[no-untyped-def]
    """Send the request to both daemons and assert the normalized outcomes are equal.

    `canon` maps each normalized body to a canonical form first (e.g. to drop an order
    dockerd does not define)."""
    ref, ours = pair
    a = outcome(ref, ref.request(method, path, body), sort)
    b = outcome(ours, ours.request(method, path, body), sort)
    if canon is not None:
        a, b = (a[0], canon(a[1])), (b[0], canon(b[1]))
    if only_mine:  # the shared dockerd may hold other tests' images: keep the ones we named
        a = (a[0], [x for x in a[1] if isinstance(x, dict) and str(x.get("Id", "")).startswith("<")])
        b = (b[0], [x for x in b[1] if isinstance(x, dict) and str(x.get("Id", "")).startswith("<")])
    if client_mistake and a[0] == 500:
        assert b[0] == 400, (path, a, b)
        a = (400, a[1])
    # compared as JSON text, so key order counts too
    assert json.dumps(a) == json.dumps(b), f"{method} {path}\n  dockerd: {a}\n  ours:    {b}"
    return b


def both(pair: tuple[Side, Side], fn) -> None:  # type: ignore[no-untyped-def]
    for side in pair:
        fn(side)


def q(value: Any) -> str:
    return urllib.parse.quote(json.dumps(value))


# -- system ----------------------------------------------------------------------------------

def test_system_endpoints(pair: tuple[Side, Side]) -> None:
    ref, ours = pair
    for method in ("GET", "HEAD"):
        a, b = ref.request(method, "/_ping"), ours.request(method, "/_ping")
        # our daemon's own version (1.52) and the headers of API 1.42+ daemons are ours alone
        drop = {"date", "server", "api-version", "builder-version", "swarm"}
        assert ({k: v for k, v in a.headers.items() if k not in drop}, a.body) == \
               ({k: v for k, v in b.headers.items() if k not in drop}, b.body)
        assert (a.headers["api-version"], b.headers["api-version"]) == ("1.41", "1.52")
        assert (b.headers["builder-version"], b.headers["swarm"]) == ("1", "inactive")
    # too new for both: the same error, each naming its own maximum
    a, b = ref.request("GET", "/v1.53/version"), ours.request("GET", "/v1.53/version")
    assert (a.status, a.json()["message"].replace("1.41", "1.52")) == (b.status, b.json()["message"]) == (
        400, "client version 1.53 is too new. Maximum supported API version is 1.52")
    same(pair, "GET", "/nope")
    same(pair, "GET", "/v1.41/images/nope/nope")
    same(pair, "HEAD", "/version")
    same(pair, "POST", "/_ping")
    same(pair, "OPTIONS", "/images/json")
    va, vb = ref.request("GET", "/version").json(), ours.request("GET", "/version").json()
    assert list(va) == list(vb) and va["Platform"] == vb["Platform"]
    assert (va["ApiVersion"], vb["ApiVersion"], vb["MinAPIVersion"]) == ("1.41", "1.52", "1.24")
    assert list(va["Components"][0]["Details"]) == list(vb["Components"][0]["Details"])
    ia, ib = ref.request("GET", "/info").json(), ours.request("GET", "/info").json()
    assert list(ia) == list(ib)
    assert [type(ia[k]) for k in ia if ia[k] is not None] == [type(ib[k]) for k in ia if ia[k] is not None]
    da, db = ref.request("GET", "/system/df").json(), ours.request("GET", "/system/df").json()
    assert list(da) == list(db) and da["BuildCache"] is db["BuildCache"] is None


def test_system_df_items(pair: tuple[Side, Side], uid: str) -> None:
    body = make_tar({"f": uid.encode()})
    both(pair, lambda s: s.imp("A", body, f"{uid}:1"))
    both(pair, lambda s: s.imp("B", body, "", ("LABEL x=1",)))  # shares A's layer
    for side in pair:
        items = [i for i in side.request("GET", "/system/df").json()["Images"] if i["Id"] in side.ids.values()]
        assert sorted((i["Containers"], i["SharedSize"], i["Size"], i["VirtualSize"]) for i in items) == \
            [(0, len(uid), len(uid), len(uid))] * 2, side.is_ref


# -- import: the config dockerd writes -----------------------------------------------------------

CHANGES = [
    (), ('CMD ["sh"]',), ("CMD echo  hi",), ("CMD",), ("CMD []",), ('ENTRYPOINT ["a","b"]',), ("ENTRYPOINT",),
    ("ENTRYPOINT e", "CMD c"), ("CMD c", "ENTRYPOINT e"), ("ENV A=b",), ("ENV A b c",), ('ENV A=1 B="2 3"',),
    ("ENV A=1", "ENV B=2", "ENV A=3"), ("ENV A=1", "ENV B=$A C=${A}x D=${Z:-def} E=${A:+alt} F=\\$A"),
    ("EXPOSE 80/udp 90-91", "EXPOSE 8080:80"), ("HEALTHCHECK NONE",),
    ("HEALTHCHECK --interval=5s --timeout=3s --start-period=1m --retries=3 CMD curl x",),
    ('HEALTHCHECK CMD ["a","b"]',), ("LABEL z=1 a=2 m=<&>", "LABEL a b"), ("ONBUILD run  x  ",),
    ("USER me",), ('VOLUME ["/a","/b"]', "VOLUME /c"), ("WORKDIR a", "WORKDIR ../b/./c"),
    ("WORKDIR /a/../b/",), ("CMD a \\", "b"), ("# escape=`\nENV A=x`\nB",), ("ENV A=é\u2028",),
]


@pytest.mark.parametrize("changes", CHANGES, ids=lambda c: " | ".join(c) or "none")
def test_import_config_bytes(pair: tuple[Side, Side], changes: tuple[str, ...]) -> None:
    body = make_tar({"etc/motd": b"hello\n"})
    both(pair, lambda s: s.imp("A", body, changes=changes))
    ref, ours = pair
    a, b = ref.config("A"), ours.config("A")
    volatile = re.compile(rb'"(created|docker_version)":"[^"]*"')
    assert volatile.sub(b"X", a) == volatile.sub(b"X", b)  # key order, omitted fields, escapes


@pytest.mark.parametrize("params, client_mistake", [
    ({"changes": "RUN x"}, False), ({"changes": ""}, False), ({"changes": "ENV A=1 B"}, False),
    ({"changes": "HEALTHCHECK --interval=5x CMD x"}, False), ({"changes": "EXPOSE 80/xyz"}, False),
    ({"changes": "ONBUILD FROM x"}, False), ({"changes": "VOLUME"}, False), ({"changes": "ENV A=${"}, False),
    ({"repo": "x@sha256:" + "0" * 64}, False), ({"repo": "X"}, False), ({"repo": "x", "tag": "a:b"}, False),
    ({"repo": "x:a:b"}, False), ({"platform": "windows"}, False), ({"platform": "foo"}, False),
    ({"platform": "linux//x"}, False), ({"platform": "*"}, False),
])
def test_import_errors(pair: tuple[Side, Side], params: dict, client_mistake: bool) -> None:
    same(pair, "POST", "/images/create?fromSrc=-&" + urllib.parse.urlencode(params), make_tar({}),
         client_mistake=client_mistake)


NOISE = random.Random(7).randbytes(100_000)  # incompressible, so a cut lands inside the tar


@pytest.mark.parametrize("body", [
    gzip.compress(make_tar({"a": NOISE}))[:20_000], b"not a tar" * 9, b"\x01" * 2048,
], ids=["truncated-gzip", "garbage", "bad-header"])
def test_import_bad_archives(pair: tuple[Side, Side], body: bytes) -> None:
    same(pair, "POST", "/images/create?fromSrc=-", body, client_mistake=True)


def test_import_inspect_and_history(pair: tuple[Side, Side], uid: str) -> None:
    both(pair, lambda s: s.imp("A", make_tar({"a": b"1", "b/c": b"22"}), f"{uid}:1",
                               ("CMD [\"sh\"]", "LABEL z=1", "LABEL a=2", "EXPOSE 80", "ENV A=1"), message="m"))
    both(pair, lambda s: s.imp("U", b""))
    both(pair, lambda s: s.imp("P", make_tar({"p": b"p"}), platform="linux/arm64"))
    both(pair, lambda s: s.tag("{A}", f"{uid}/x", "2"))
    for name in (f"{uid}:1", "{A}", "sha256:{A}", "{A:12}", "sha256:{A:12}", "{U}", "{P}", f"docker.io/library/{uid}:1"):
        same(pair, "GET", f"/images/{name}/json")
        same(pair, "GET", f"/images/{name}/history")
    for name in (uid, f"{uid}:9", "0" * 64, "sha256:" + "0" * 64, "UPPER", "sha256:", "%20", "a@sha256:" + "0" * 64):
        same(pair, "GET", f"/images/{name}/json")
        same(pair, "GET", f"/images/{name}/history")


# -- import from a URL ---------------------------------------------------------------------------

class Files(BaseHTTPRequestHandler):
    files: dict[str, tuple[int, bytes, bool]] = {}
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802
        status, body, length = self.files.get(self.path, (404, b"\n  not here\n", True))
        self.send_response(status, {404: "File not found"}.get(status))
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_import_from_url(pair: tuple[Side, Side], http: str) -> None:
    tar = make_tar({"big": bytes(range(256)) * 4000})
    Files.files["/a.tar"] = (200, tar, True)
    Files.files["/b.tar.gz"] = (200, gzip.compress(tar), False)  # no Content-Length: total -1
    for n, path in enumerate(("/a.tar", "/b.tar.gz")):
        got = []
        for side in pair:
            r = side.request("POST", f"/images/create?fromSrc={http.removeprefix('http://')}{path}")
            lines = r.lines()
            image_id = lines[-1]["status"]
            side.ids[f"U{n}"] = image_id
            info = side.request("GET", f"/images/{image_id}/json").json()
            got.append((r.status, lines[0], lines[1]["status"], list(lines[1]),
                        lines[1]["progressDetail"].get("total"),
                        lines[-3:-1] if lines[-2] == {} else lines[-2:-1], list(lines[-1]),
                        info["Comment"], info["RootFS"]))
        assert json.dumps(got[0]) == json.dumps(got[1])
    same(pair, "POST", f"/images/create?fromSrc={http}/missing.tar")
    same(pair, "POST", "/images/create?fromSrc=ftp://127.0.0.1/x", client_mistake=True)
    same(pair, "POST", "/images/create?fromSrc=http://127.0.0.1:1/x")
    same(pair, "POST", "/images/create", client_mistake=True)


# -- list ----------------------------------------------------------------------------------------

def arrange_list(pair: tuple[Side, Side], uid: str) -> None:
    both(pair, lambda s: s.imp("A", make_tar({"a": b"1"}), f"{uid}a:1", ("LABEL x=1", f"LABEL t={uid}")))
    both(pair, lambda s: s.tag("{A}", f"{uid}a", "2"))
    both(pair, lambda s: s.tag("{A}", f"{uid}b/cc", "3"))
    both(pair, lambda s: s.imp("B", make_tar({"b": b"22"}), f"{uid}d", (f"LABEL t={uid}",)))
    both(pair, lambda s: s.imp("C", make_tar({"c": b"333"}), "", ("LABEL y=2", "LABEL x=3", f"LABEL t={uid}")))
    both(pair, lambda s: s.imp("D", make_tar({"a": b"1"}), f"localhost:5000/{uid}e:1", ("LABEL x=2", f"LABEL t={uid}")))
    both(pair, lambda s: s.imp("E", make_tar({"e": b"4444"}), "", (f"LABEL t={uid}",)))


def test_list(pair: tuple[Side, Side], uid: str) -> None:
    arrange_list(pair, uid)
    filters: list[dict] = [
        {}, {"dangling": ["true"]}, {"dangling": ["false"]}, {"dangling": ["true", "false"]},
        {"dangling": {"true": True}}, {"dangling": []}, {"label": ["x"]}, {"label": ["x=1"]},
        {"label": ["x", "y"]}, {"label": ["x=1", "x=2"]}, {"label": ["x="]}, {"label": []},
        {"before": [f"{uid}d"]}, {"since": [f"{uid}a:1"]}, {"reference": [f"{uid}a"]},
        {"reference": [f"{uid}a:*"]}, {"reference": [f"{uid}*"]}, {"reference": [f"{uid}b/*"]},
        {"reference": ["*/*"]}, {"reference": [f"localhost:5000/{uid}*"]}, {"reference": [f"?{uid[1:]}d"]},
        {"reference": [f"{uid}[a-b]*:[12]"]}, {"reference": [f"{uid}a", f"{uid}d"]},
        {"reference": [f"docker.io/library/{uid}a"]}, {"reference": [f"library/{uid}a"]},
        {"reference": [f"[^x]{uid[1:]}*"]},
    ]
    for f in filters:
        same(pair, "GET", f"/images/json?filters={q(f)}", sort=True, only_mine=True)
    for spelling in ("0", "1", "true", "True", "false", "False", "yes"):
        same(pair, "GET", f"/images/json?all={spelling}", sort=True, only_mine=True)
    for version in ("/v1.24", "/v1.40", "/v1.41", ""):
        same(pair, "GET", f"{version}/images/json?filter={uid}a", sort=True, only_mine=True)
        same(pair, "GET", f"{version}/images/json?filter={uid}a&filters={q({'reference': [uid + 'd']})}",
             sort=True, only_mine=True)


@pytest.mark.parametrize("filters", [
    {"dangling": ["x"]}, {"bogus": ["x"]}, {"before": ["nope"]}, {"since": ["nope:2"]}, {"before": ["UPPER"]},
    {"since": ["0" * 64]}, {"reference": ["["]}, {"reference": ["a\\"]}, {"reference": ["[a-]"]},
])
def test_list_errors(pair: tuple[Side, Side], uid: str, filters: dict) -> None:
    both(pair, lambda s: s.imp("A", make_tar({"z": b"z"}), f"{uid}:1"))  # a ref, so patterns are tried
    same(pair, "GET", f"/images/json?filters={q(filters)}")


# -- tag -----------------------------------------------------------------------------------------

def test_tag(pair: tuple[Side, Side], uid: str) -> None:
    both(pair, lambda s: s.imp("A", make_tar({"a": uid.encode()}), f"{uid}:src"))
    both(pair, lambda s: s.imp("B", make_tar({"b": uid.encode()}), f"{uid}:other"))
    for params, mistake in [
        ({"repo": f"{uid}t", "tag": "x"}, False), ({"repo": f"{uid}t:y"}, False), ({"repo": f"{uid}t:y", "tag": "z"}, False),
        ({"repo": f"{uid}t"}, False), ({"repo": f"{uid}:other"}, False),  # overwrite: B loses the tag
        ({"repo": "sha256", "tag": "x"}, False), ({"repo": "sha256:abc"}, False), ({"repo": "docker.io/sha256"}, False),
        ({"repo": f"{uid}@sha256:" + "0" * 64}, False), ({"repo": f"{uid}d@sha256:" + "0" * 64, "tag": "t"}, False),
        ({"repo": f"localhost/{uid}/sha256"}, False), ({"repo": "T1"}, True), ({"repo": "t1", "tag": "a:b"}, True),
        ({}, True), ({"repo": "a" * 64}, True), ({"repo": "LOCALHOST/x"}, True), ({"repo": "[::1]:5000/x"}, True),
        ({"repo": "x@sha256:" + "A" * 64}, True), ({"repo": "x@md5:" + "a" * 32}, True),
    ]:
        same(pair, "POST", f"/images/{uid}:src/tag?" + urllib.parse.urlencode(params), client_mistake=mistake)
    same(pair, "POST", f"/images/{uid}:nope/tag?repo=x")
    same(pair, "POST", "/images/NOPE/tag?repo=x", client_mistake=True)
    same(pair, "GET", f"/images/json?filters={q({'reference': [uid + '*', 'localhost/' + uid + '/*']})}", sort=True)
    same(pair, "GET", "/images/{B}/json")


# -- delete --------------------------------------------------------------------------------------

def test_delete(pair: tuple[Side, Side], uid: str) -> None:
    both(pair, lambda s: s.imp("A", make_tar({"a": uid.encode()}), f"{uid}a:1"))
    both(pair, lambda s: s.tag("{A}", f"{uid}a", "2"))
    both(pair, lambda s: s.imp("B", make_tar({"b": uid.encode()}), f"{uid}b:1"))
    both(pair, lambda s: s.tag("{B}", f"{uid}c", "1"))
    both(pair, lambda s: s.imp("C", make_tar({"c": uid.encode()}), f"{uid}d:1"))
    both(pair, lambda s: s.imp("D", make_tar({"d": uid.encode()})))
    both(pair, lambda s: s.imp("E", make_tar({"a": uid.encode()}), f"{uid}e:1", ("LABEL e=1",)))  # A's layer
    both(pair, lambda s: s.imp("F", make_tar({"f": uid.encode()}), f"{uid}f:1"))
    both(pair, lambda s: s.tag("{F}", f"{uid}f", "2"))
    both(pair, lambda s: s.tag("{F}", f"{uid}g", "1"))
    for path in [f"/images/{uid}a:1", "/images/{A}", "/images/{A}", "/images/{B}", "/images/{B:12}?force=1",
                 f"/images/{uid}d:1?noprune=1", f"/images/{uid}nope", "/images/%20", "/images/", "/images/{D:12}",
                 f"/images/{uid}e", f"/images/{uid}e:1", f"/images/{uid}f:1?force=1", "/images/{F}",
                 "/images/sha256:{F}?force=true", "/images/UPPER"]:
        same(pair, "DELETE", path)


def test_rmi_cli(pair: tuple[Side, Side], uid: str) -> None:
    both(pair, lambda s: s.imp("A", make_tar({"r": uid.encode()}), f"{uid}:1"))
    both(pair, lambda s: s.tag("{A}", f"{uid}", "2"))
    outs = []
    for side in pair:
        r1 = side.docker("rmi", f"{uid}:1", "{uid}:nope".replace("{uid}", uid))
        r2 = side.docker("rmi", side.ids["A"][7:19])
        r3 = side.docker("rmi", "-f", side.ids["A"][7:19])
        outs.append([(r.returncode, side.symbols(r.stdout.decode()), side.symbols(r.stderr.decode()))
                     for r in (r1, r2, r3)])
    assert outs[0] == outs[1]


# -- prune (scoped by a label: the shared dockerd may hold other images) ---------------------------

def test_prune(pair: tuple[Side, Side], uid: str) -> None:
    lbl = f"LABEL t={uid}"
    both(pair, lambda s: s.imp("A", make_tar({"a": uid.encode()}), f"{uid}a:1", (lbl, "LABEL k=v")))
    both(pair, lambda s: s.imp("B", make_tar({"b": uid.encode()}), "", (lbl, "LABEL k=w")))
    both(pair, lambda s: s.imp("C", make_tar({"c": uid.encode()}), "", (lbl,)))
    both(pair, lambda s: s.imp("D", make_tar({"a": uid.encode()}), "", (lbl, "LABEL other=1")))
    both(pair, lambda s: s.imp("E", make_tar({"e": uid.encode()}), f"{uid}e:1", (lbl,)))
    both(pair, lambda s: s.tag("{E}", f"{uid}f", "1"))

    def unordered(body: Any) -> Any:  # dockerd walks the images in Go's random map order
        if isinstance(body, dict) and body.get("ImagesDeleted"):
            body["ImagesDeleted"].sort(key=json.dumps)
        return body

    def prune(filters: dict) -> Any:
        filters = {"label": [f"t={uid}", *filters.pop("label", [])], **filters}
        return same(pair, "POST", f"/images/prune?filters={q(filters)}", canon=unordered)

    for bad in ({"bogus": ["1"]}, {"dangling": ["maybe"]}, {"dangling": ["True"]}, {"until": ["xx"]},
                {"until": ["1h", "2h"]}, {"until": ["2023-13-01"]}, {"until": ["-5"]},
                {"until": ["2023-11-14T22:13:20.5+0100"]}):
        same(pair, "POST", f"/images/prune?filters={q(bad)}", client_mistake=True)
    assert prune({"until": ["10m"]})[1] == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    assert prune({"until": ["2020-01-01T00:00:00Z"]})[1]["ImagesDeleted"] is None
    prune({"label": ["k=w"]})
    prune({"label!": ["other"]})
    prune({"label!": ["t", "nope"]})
    prune({})
    prune({"dangling": ["false"], "label": ["nope"]})
    prune({"dangling": ["true", "false"]})
    same(pair, "GET", f"/images/json?filters={q({'label': ['t=' + uid]})}")


def test_prune_cli(pair: tuple[Side, Side], uid: str) -> None:
    both(pair, lambda s: s.imp("U", make_tar({"u": uid.encode()}), "", (f"LABEL t={uid}",)))
    both(pair, lambda s: s.imp("T", make_tar({"t": uid.encode()}), f"{uid}:1", (f"LABEL t={uid}",)))
    outs = []
    for side in pair:
        runs = [side.docker("image", "prune", "-f", "--filter", f"label=t={uid}"),
                side.docker("image", "prune", "-a", "-f", "--filter", f"label=t={uid}"),
                side.docker("image", "prune", "-f", "--filter", f"label=t={uid}")]
        outs.append([(r.returncode, side.symbols(r.stdout.decode()), r.stderr.decode()) for r in runs])
    assert outs[0] == outs[1]


# -- the CLI's views -----------------------------------------------------------------------------

def test_cli_views(pair: tuple[Side, Side], uid: str) -> None:
    both(pair, lambda s: s.imp("A", make_tar({"v": uid.encode()}), f"{uid}:1", ("CMD [\"sh\"]", "ENV A=b"),
                               message="first"))
    both(pair, lambda s: s.tag("{A}", f"me/{uid}", "2"))
    views = [
        ("images", "--filter", f"reference={uid}*", "--digests", "--no-trunc", "--format", "{{json .}}"),
        ("images", "--filter", f"reference=*/{uid}", "--format", "{{.Repository}} {{.Tag}} {{.ID}} {{.Size}}"),
        ("image", "inspect", f"{uid}:1"), ("image", "inspect", f"{uid}:nope"),
        ("history", "--no-trunc", "--format", "{{json .}}", f"{uid}:1"), ("history", f"{uid}:nope"),
        ("tag", f"{uid}:nope", "x"), ("images", "--filter", "dangling=maybe"),
    ]
    for args in views:
        got = []
        for side in pair:
            r = side.docker(*args)
            if args[:2] == ("image", "inspect"):  # one indented JSON document
                out: Any = side.norm(json.loads(r.stdout))
            else:
                out = [side.norm(json.loads(line)) if line.startswith("{") else side.symbols(line)
                       for line in r.stdout.decode().splitlines()]
            got.append((r.returncode, out, side.symbols(r.stderr.decode())))
        assert json.dumps(got[0]) == json.dumps(got[1]), args


def test_docker_py_views(pair: tuple[Side, Side], uid: str) -> None:
    both(pair, lambda s: s.imp("A", make_tar({"p": uid.encode()}), f"{uid}:1", ("LABEL k=v",)))
    got = []
    for side in pair:
        client = side.client()
        img = client.images.get(f"{uid}:1")
        listed = client.images.list(all=True, filters={"reference": f"{uid}*"})
        got.append((side.norm(img.attrs), side.norm(img.history()), [side.norm(i.attrs) for i in listed],
                    img.tag(uid, "2"), side.norm(client.images.get(f"{uid}:2").tags)))
    assert json.dumps(got[0]) == json.dumps(got[1])


def test_diff_ids_match(pair: tuple[Side, Side]) -> None:
    body = make_tar({"x": b"same bytes"})
    both(pair, lambda s: s.imp("A", gzip.compress(body)))
    layers = [side.request("GET", "/images/{A}/json").json()["RootFS"]["Layers"] for side in pair]
    assert layers[0] == layers[1] == ["sha256:" + hashlib.sha256(body).hexdigest()]


# -- loaded multi-layer images (history with empty layers, offsets, links, whiteouts) ----------

def _tar(members: list[tuple[str, bytes, bytes, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size, info.mtime = kind, link, len(data), 1_700_000_000
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


def save_archive(images: list[tuple[str, dict, list[bytes]]]) -> bytes:
    """A `docker save` archive: (tag, config without rootfs, layer tars) per image."""
    buf = io.BytesIO()
    manifest = []
    with tarfile.open(fileobj=buf, mode="w") as t:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for tag, config, layers in images:
            diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
            raw = json.dumps({**config, "rootfs": {"type": "layers", "diff_ids": diff_ids}},
                             separators=(",", ":")).encode()
            names = []
            for d, layer in zip(diff_ids, layers):
                names.append(f"{d[7:]}/layer.tar")
                if names[-1] not in t.getnames():
                    add(names[-1], layer)
            config_name = hashlib.sha256(raw).hexdigest() + ".json"
            add(config_name, raw)
            manifest.append({"Config": config_name, "RepoTags": [tag], "Layers": names})
        add("manifest.json", json.dumps(manifest).encode())
    return buf.getvalue()


def test_loaded_images(pair: tuple[Side, Side], uid: str) -> None:
    # no symlinks or whiteouts with data: the reference's vfs driver sizes a layer as the sum of
    # its tar headers' sizes, overlay2 (and we, per the spec) by the files it leaves on disk
    base = _tar([("d/", tarfile.DIRTYPE, b"", ""), ("d/a", tarfile.REGTYPE, b"12345", ""),
                 ("d/h", tarfile.LNKTYPE, b"", "d/a")])
    top = _tar([("d/.wh.a", tarfile.REGTYPE, b"", ""), ("b", tarfile.REGTYPE, b"xyz", "")])
    other = _tar([("o", tarfile.REGTYPE, b"other", "")])
    cfg = {"architecture": "amd64", "author": "me <m@e>", "os": "linux",
           "created": "2023-01-02T03:04:05.123456789+02:00",
           "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Labels": {"z": "1", "a": "2"},
                      "Healthcheck": {"Retries": 2, "Test": ["CMD", "x"]}, "Unknown": 1},
           "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) CMD [\"sh\"]"]},
           "container": "abc", "docker_version": "19.03",
           "history": [{"created": "2023-01-01T00:00:00Z", "created_by": "ADD base", "comment": "c1"},
                       {"created": "2023-01-01T00:00:01Z", "created_by": "ENV x", "empty_layer": True},
                       {"created_by": "RUN top"}]}
    archive = save_archive([(f"{uid}:1", cfg, [base, top]),
                            (f"{uid}:2", {"architecture": "amd64", "os": "linux"}, [base, other])])
    for side in pair:
        r = side.request("POST", "/images/load?quiet=1", archive)
        assert r.status == 200, r.body
        for n in ("1", "2"):
            side.ids[f"L{n}"] = side.e.request("GET", f"/images/{uid}:{n}/json").json()["Id"]
    for n in ("1", "2"):
        same(pair, "GET", f"/images/{uid}:{n}/json")
        same(pair, "GET", f"/images/{uid}:{n}/history")
    same(pair, "GET", f"/images/json?filters={q({'reference': [uid]})}", sort=True)
    for side in pair:
        df = [i for i in side.request("GET", "/system/df").json()["Images"] if i["Id"] in side.ids.values()]
        side.ids["_df"] = json.dumps(sorted((i["Size"], i["SharedSize"]) for i in df))
    assert pair[0].ids.pop("_df") == pair[1].ids.pop("_df")
    same(pair, "DELETE", f"/images/{uid}:2")  # frees only its own top layer
    same(pair, "DELETE", f"/images/{uid}:1")
