"""A fault-injecting HTTP/1.1 proxy in front of a real registry (loopback only, its own thread).

    with FaultProxy(reg.port) as px:            # px.host = "127.0.0.1:PORT"
        px.drop_after(1000)                     # next blob response: cut after 1000 body bytes
        px.flip_byte(5)                         # next blob response: body byte 5 XOR 0xff
        px.respond(429, headers={"Retry-After": "1"}, times=2)   # answer instead of forwarding
        px.redirect("http://127.0.0.1:9/")      # 307 to another origin (same path appended)
        px.cut_upload(1000)                     # next PATCH upload: forward 1000 body bytes, then reset
        ...
        px.seen                                 # every request: method, path, headers, status, fault

Faults are armed per test and consumed in order by the first request they match (`match` is a
substring of the request path; `method` too when given). It speaks just enough HTTP to find
message boundaries (Content-Length, chunked bodies both ways, no-body responses), so keep-alive connections work
and body offsets are counted in body bytes (raw bytes for chunked bodies).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

MAX_HEAD = 64 << 10
COPY = 256 << 10


@dataclass
class Fault:
    kind: str                          # "drop", "flip", "respond", "redirect", "norange", "cut"
    times: int                         # how many requests it still applies to (-1 = forever)
    match: str = "/blobs/"
    method: str | None = "GET"
    offset: int = 0                    # drop: body bytes sent before the cut; flip: body offset
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    location: str = ""


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]            # request headers, names lower-cased
    status: int = 0                    # what the client was answered (0 = connection cut before)
    fault: str = ""                    # the fault applied, if any
    body_bytes: int = 0                # response body bytes sent to the client
    connection: int = 0                # which client connection it came on (1, 2, ... as accepted)


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.seen: list[Seen] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self.connections = 0  # client connections accepted so far
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._server is None:
            raise RuntimeError("proxy did not start")
        self.port: int = self._server.sockets[0].getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"

    # -- arming faults (from the test's thread)

    def _arm(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def drop_after(self, nbytes: int, times: int = 1, match: str = "/blobs/",
                   method: str | None = "GET") -> Fault:
        """Cut the connection after `nbytes` bytes of the response body."""
        return self._arm(Fault("drop", times, match, method, offset=nbytes))

    def flip_byte(self, offset: int, times: int = 1, match: str = "/blobs/",
                  method: str | None = "GET") -> Fault:
        """Deliver the response with body byte `offset` XOR 0xff (same length, same headers)."""
        return self._arm(Fault("flip", times, match, method, offset=offset))

    def respond(self, status: int, times: int = 1, match: str = "", method: str | None = None,
                headers: dict[str, str] | None = None, body: bytes | None = None) -> Fault:
        """Answer matching requests with `status` instead of forwarding them."""
        if body is None:
            body = {429: b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}\n',
                    503: b"service unavailable\n"}.get(status, b"")
        return self._arm(Fault("respond", times, match, method, status=status,
                               headers=dict(headers or {}), body=body))

    def redirect(self, location_base: str, times: int = 1, match: str = "/blobs/",
                 method: str | None = "GET", status: int = 307) -> Fault:
        """Answer with a redirect to location_base + the request path (another origin)."""
        return self._arm(Fault("redirect", times, match, method, status=status,
                               location=location_base.rstrip("/")))

    def cut_upload(self, nbytes: int, times: int = 1, match: str = "/blobs/uploads/",
                   method: str | None = "PATCH") -> Fault:
        """Forward only the first `nbytes` of the request body, then reset both connections
        (an upload dropped mid-way: the registry sees its client vanish, the client no answer)."""
        return self._arm(Fault("cut", times, match, method, offset=nbytes))

    def ignore_range(self, times: int = 1, match: str = "/blobs/", method: str | None = "GET") -> Fault:
        """Forward without the Range header: a registry (or CDN) that ignores Range answers 200."""
        return self._arm(Fault("norange", times, match, method))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.seen.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.times != 0]

    def requests(self, match: str = "", method: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if match in s.path and (method is None or s.method == method)]

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.times != 0 and f.match in path and (f.method is None or f.method == method):
                    if f.times > 0:
                        f.times -= 1
                    return f
        return None

    # -- lifecycle

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._client, "127.0.0.1", 0,
                                                      limit=MAX_HEAD)
        try:
            self._loop.run_until_complete(start())
        finally:
            self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

        fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        try:
            fut.result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the proxy itself (event loop thread)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._lock:
            self.connections += 1
            connection = self.connections
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                try:
                    first = await reader.readexactly(1)
                    if not first.isalpha():  # a TLS hello or garbage: answer as Go's server does
                        writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                        await writer.drain()
                        return
                    head = first + await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                method, path, headers = _parse_request(head)
                body = b""
                n = int(headers.get("content-length", "0") or 0)
                if n:
                    body = await reader.readexactly(n)
                elif "chunked" in headers.get("transfer-encoding", "").lower():
                    body = await _read_chunked(reader)  # kept as sent: forwarded verbatim
                seen = Seen(method, path, headers, connection=connection)
                with self._lock:
                    self.seen.append(seen)
                fault = self._take(method, path)
                if fault and fault.kind in ("respond", "redirect"):
                    seen.fault, seen.status = fault.kind, fault.status
                    await self._answer(writer, fault, path)
                    continue
                if fault and fault.kind == "cut":
                    seen.fault = fault.kind
                    if up is None:
                        up = await asyncio.open_connection(*self.upstream, limit=MAX_HEAD)
                    up[1].write(head + body[:fault.offset])
                    await up[1].drain()
                    up[1].transport.abort()
                    writer.transport.abort()
                    return
                if fault and fault.kind == "norange":
                    head = b"\r\n".join(line for line in head.split(b"\r\n")
                                         if not line.lower().startswith(b"range:"))
                if up is None:
                    up = await asyncio.open_connection(*self.upstream, limit=MAX_HEAD)
                up[1].write(head + body)
                await up[1].drain()
                keep = await self._relay(method, up[0], writer, seen, fault)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return  # stop(): end quietly (3.11's stream callback would log a cancelled task)
        finally:
            self._tasks.discard(task)
            for w in (writer, up[1] if up else None):
                if w is not None:
                    w.close()

    async def _answer(self, writer: asyncio.StreamWriter, fault: Fault, path: str) -> None:
        headers = dict(fault.headers)
        body = fault.body
        if fault.kind == "redirect":
            headers["Location"] = fault.location + path
        reason = {307: "Temporary Redirect", 302: "Found", 429: "Too Many Requests",
                  503: "Service Unavailable", 500: "Internal Server Error"}.get(fault.status, "Status")
        lines = [f"HTTP/1.1 {fault.status} {reason}", f"Content-Length: {len(body)}"]
        if body and not any(k.lower() == "content-type" for k in headers):
            lines.append("Content-Type: application/json" if body.startswith(b"{") else "Content-Type: text/plain")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()

    async def _relay(self, method: str, up: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     seen: Seen, fault: Fault | None) -> bool:
        """Copy one response; apply a body fault. False when the connection must end."""
        head = await up.readuntil(b"\r\n\r\n")
        status, headers = _parse_response(head)
        seen.status = status
        writer.write(head)
        if fault:
            seen.fault = fault.kind
        sent = 0
        if fault and fault.kind not in ("drop", "flip"):
            fault = None

        async def emit(data: bytes) -> bool:
            """Send body bytes; False once a drop fault cut the connection."""
            nonlocal sent
            if fault and fault.kind == "flip" and sent <= fault.offset < sent + len(data):
                i = fault.offset - sent
                data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
            if fault and fault.kind == "drop" and sent + len(data) >= fault.offset:
                writer.write(data[:fault.offset - sent])
                sent = fault.offset
                seen.body_bytes = sent
                await writer.drain()
                writer.transport.abort()  # a reset, as a dying server or middlebox gives
                return False
            writer.write(data)
            sent += len(data)
            seen.body_bytes = sent
            await writer.drain()
            return True

        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            await writer.drain()
            return True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                line = await up.readuntil(b"\r\n")
                size = int(line.split(b";")[0].strip(), 16)
                if not await emit(line):
                    return False
                if size == 0:
                    while True:  # trailers, up to the empty line
                        t = await up.readuntil(b"\r\n")
                        if not await emit(t):
                            return False
                        if t == b"\r\n":
                            return True
                left = size + 2
                while left:
                    chunk = await up.read(min(COPY, left))
                    if not chunk:
                        return False
                    left -= len(chunk)
                    if not await emit(chunk):
                        return False
        if "content-length" in headers:
            left = int(headers["content-length"])
            while left:
                chunk = await up.read(min(COPY, left))
                if not chunk:
                    return False
                left -= len(chunk)
                if not await emit(chunk):
                    return False
            if fault and fault.kind == "drop" and fault.offset >= sent:
                writer.transport.abort()  # a cut at or past the end: still a cut
                return False
            return True
        while True:  # delimited by the end of the connection
            chunk = await up.read(COPY)
            if not chunk:
                await writer.drain()
                return False
            if not await emit(chunk):
                return False


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked request body, raw (size lines, data, trailers), up to its end."""
    out = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        out += line
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:  # trailers, up to the empty line
                t = await reader.readuntil(b"\r\n")
                out += t
                if t == b"\r\n":
                    return bytes(out)
        out += await reader.readexactly(size + 2)


def _parse_request(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    return method, path, _headers(lines[1:])


def _parse_response(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    return int(lines[0].split(" ", 2)[1]), _headers(lines[1:])


def _headers(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip().lower()] = v.strip()
    return out
