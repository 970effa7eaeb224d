"""GET /images/search against a small index server (no local registry has the v1 search API).

The server answers /v1/_ping and /v1/search like Docker Hub's index; a term naming
127.0.0.1:PORT reaches it over http (an insecure loopback registry, after the https attempt
fails). Our answers are compared with the reference dockerd's for the same requests.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from tests.support.proc import Engine

REPOS = [
    {"name": "library/alpine", "description": "A minimal Docker image", "star_count": 9000,
     "is_official": True, "is_automated": False, "extra": "dropped"},
    {"name": "someone/alpine-tools", "description": "tools", "star_count": 12, "is_official": False,
     "is_automated": True},
    {"name": "other/alpine-base", "star_count": 3, "is_official": False, "is_automated": False},
    {"name": "x/alpine-<&>", "description": "html <b>&</b>", "star_count": 0, "is_official": False,
     "is_automated": False},
    *({"name": f"bulk/alpine{i}", "description": "", "star_count": i, "is_official": False,
       "is_automated": i % 2 == 0} for i in range(10)),
]


class IndexServer:
    """The index's v1 API: _ping and search (q matched as a substring, n results at most)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.status = 200
        self.body: bytes | None = None  # a raw body instead of results
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/v1/_ping":
                    return self._reply(200, b"true")
                if url.path != "/v1/search":
                    return self._reply(404, b"not found")
                q = urllib.parse.parse_qs(url.query)
                term, n = q.get("q", [""])[0], int(q.get("n", ["25"])[0])
                found = [r for r in REPOS if term in r["name"]][:n]
                body = server.body if server.body is not None else json.dumps(
                    {"num_pages": 1, "num_results": len(found), "results": found, "page_size": n,
                     "query": term, "page": 1}).encode()
                self._reply(server.status, body)

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def searches(self) -> list[tuple[str, dict[str, str]]]:
        return [(p, h) for p, h in self.requests if p.startswith("/v1/search")]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def index() -> Iterator[IndexServer]:
    s = IndexServer()
    try:
        yield s
    finally:
        s.stop()


def search(engine: Engine, query: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    r = engine.request("GET", f"/v1.41/images/search?{query}", headers=headers)
    assert r.headers["content-type"] == "application/json" and r.body.endswith(b"\n")
    return r.status, r.json()


def test_cli_search(daemon: Engine, index: IndexServer) -> None:
    out = daemon.docker("search", "--limit", "5", f"{index.host}/alpine", check=True).stdout.decode()
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"] or \
        lines[0].split()[:3] == ["NAME", "DESCRIPTION", "STARS"]
    assert len(lines) == 6 and lines[1].startswith("library/alpine")
    path, headers = index.searches()[-1]
    assert path == "/v1/search?q=alpine&n=5"
    assert headers["x-docker-token"] == "true"
    # the CLI's own filters become the API's
    out = daemon.docker("search", "--filter", "is-official=true", f"{index.host}/alpine", check=True)
    assert [line.split()[0] for line in out.stdout.decode().splitlines()[1:]] == ["library/alpine"]


def test_docker_py_search(daemon: Engine, index: IndexServer) -> None:
    found = daemon.client().images.search(f"{index.host}/alpine", limit=3)
    assert found == [{k: r.get(k, "" if k in ("name", "description") else 0 if k == "star_count" else False)
                      for k in ("star_count", "is_official", "name", "is_automated", "description")}
                     for r in REPOS[:3]]
    assert list(found[0]) == ["star_count", "is_official", "name", "is_automated", "description"]
    assert index.searches()[-1][0] == "/v1/search?q=alpine&n=3"


def test_answers_match_dockerd(daemon: Engine, dockerd: Engine, index: IndexServer) -> None:
    host = index.host
    q = urllib.parse.quote
    queries = [
        f"term={host}/alpine", f"term={host}/alpine&limit=2", f"term={host}/bulk",
        f"term={host}/alpine&filters=" + q('{"is-official":{"true":true}}'),
        f"term={host}/alpine&filters=" + q('{"is-automated":["false"]}'),
        f"term={host}/alpine&filters=" + q('{"stars":{"5":true,"8":true}}'),
        f"term={host}/alpine&filters=" + q('{"is-official":{"yes":true}}'),
        f"term={host}/alpine&filters=" + q('{"stars":{"many":true}}'),
        f"term={host}/alpine&filters=" + q('{"foo":{"x":true}}'),
        f"term={host}/alpine&limit=0", f"term={host}/alpine&limit=101", f"term={host}/alpine&limit=abc",
        f"term={host}/a%20b/c", "term=http://x/y", "term=127.0.0.1:1/x", "term=127.0.0.1:1/x&limit=0",
        f"term={host}/nothing-matches",
    ]
    for query in queries:
        ours, theirs = search(daemon, query), search(dockerd, query)
        assert ours == theirs, query
    # what both sent to the index, for the same request
    index.requests.clear()
    search(daemon, f"term={host}/a%20b/c")
    search(dockerd, f"term={host}/a%20b/c")
    assert [p for p, _ in index.searches()] == ["/v1/search?q=a+b%2Fc&n=25"] * 2
    # the index failing, or answering garbage
    index.status = 503
    assert search(daemon, f"term={host}/alpine") == search(dockerd, f"term={host}/alpine") == \
        (500, {"message": "Unexpected status code 503"})
    index.status, index.body = 200, b"xx"
    assert search(daemon, f"term={host}/alpine")[0] == search(dockerd, f"term={host}/alpine")[0] == 500


def test_credentials_and_meta_headers_reach_the_index(daemon: Engine, index: IndexServer) -> None:
    import base64

    auth = base64.urlsafe_b64encode(json.dumps({"username": "u", "password": "p"}).encode()).decode()
    status, _ = search(daemon, f"term={index.host}/alpine", {"X-Registry-Auth": auth, "X-Meta-Trace": "t1"})
    assert status == 200
    _, headers = index.searches()[-1]
    assert headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert headers["x-meta-trace"] == "t1"
    # anonymous: no Authorization at all
    search(daemon, f"term={index.host}/alpine", {"X-Registry-Auth": "e30="})
    assert "authorization" not in index.searches()[-1][1]


def test_docker_hub_is_the_default_index(daemon: Engine) -> None:
    """Offline here: the error names the request dockerd makes (library/ dropped, query escaped)."""
    status, body = search(daemon, "term=library/alpine&limit=7")
    assert status == 500
    assert body["message"].startswith('Get "https://index.docker.io/v1/search?q=alpine&n=7": ')
    assert search(daemon, "term=alpine&limit=0") == (400, {"message": "Limit 0 is outside the range of [1, 100]"})
