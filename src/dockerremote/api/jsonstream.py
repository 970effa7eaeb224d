"""JSON for the wire: plain responses (compact, HTML left alone) and progress streams.

A stream commits its 200 status with its first line; an error before that is a real
HTTP error, after it one final errorDetail line (moby's rule). The fields a line carries
depend on the request's API version (versions.SWITCHES: stream_progress_text,
stream_error_text), so every stream (import, pull, load) is shaped in one place.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable, Iterable

from aiohttp import web

from dockerremote.api import versions
from dockerremote.errors import DockerRemoteError

_STREAM_FIELDS = ("stream", "status", "progressDetail", "progress", "id", "from", "time",
                  "timeNano", "errorDetail", "error", "aux")


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=(dumps(obj) + "\n").encode(), status=status,
                        content_type="application/json")


def stream_fields(version: versions.ApiVersion | None) -> tuple[str, ...]:
    """The message fields a client of `version` gets (all of them when no version is known)."""
    if version is None:
        return _STREAM_FIELDS
    drop = set()
    if not version.has("stream_progress_text"):
        drop.add("progress")
    if not version.has("stream_error_text"):
        drop.add("error")
    return tuple(f for f in _STREAM_FIELDS if f not in drop) if drop else _STREAM_FIELDS


def stream_line(msg: dict[str, Any], fields: tuple[str, ...] = _STREAM_FIELDS) -> bytes:
    """One JSON message in dockerd's field order, Go's HTML escaping, \\r\\n framed."""
    ordered = {k: msg[k] for k in fields if k in msg}
    text = dumps(ordered).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (text + "\r\n").encode()


def error_message(text: str) -> dict[str, Any]:
    return {"errorDetail": {"message": text}, "error": text}


class JsonStream:
    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.response: web.StreamResponse | None = None
        self._fields = stream_fields(request.get(versions.REQUEST_KEY))

    @property
    def started(self) -> bool:
        return self.response is not None

    async def start(self) -> None:
        if self.response is None:
            self.response = web.StreamResponse(status=200)
            self.response.content_type = "application/json"
            self.response.enable_chunked_encoding()
            await self.response.prepare(self._request)

    async def send(self, msg: dict[str, Any]) -> None:
        await self.start()
        assert self.response is not None
        await self.response.write(stream_line(msg, self._fields))

    async def fail(self, text: str) -> None:
        await self.send(error_message(text))

    async def finish(self) -> web.StreamResponse:
        await self.start()
        assert self.response is not None
        await self.response.write_eof()
        return self.response


async def run_transfer(stream: JsonStream, work: Callable[[Callable[[Any], Awaitable[None]]], Awaitable[None]],
                       render: Callable[[Any], Iterable[dict[str, Any]]], what: str,
                       log: logging.Logger) -> web.StreamResponse:
    """Run a pull or push whose neutral events become stream lines; dockerd's error rule.

    `work(emit)` does the transfer and awaits emit(event) for each event; `render` turns an
    event into the messages to send. Before the first line an error is a real HTTP error,
    after it one errorDetail line; a client that hangs up only ends its own stream.
    """
    lock = asyncio.Lock()

    async def emit(event: Any) -> None:
        async with lock:  # layer watchers emit concurrently; lines stay whole and ordered
            for msg in render(event):
                await stream.send(msg)

    try:
        try:
            await work(emit)
        except DockerRemoteError as exc:
            if not stream.started:
                raise
            await stream.fail(exc.message)
        except ConnectionError:
            raise
        except Exception as exc:  # a bug of ours mid-stream: say so in the stream, keep the trace
            if not stream.started:
                raise
            log.exception("%s failed", what)
            await stream.fail(str(exc) or exc.__class__.__name__)
        return await stream.finish()
    except ConnectionError:  # the client went away: nobody to tell; shared transfers go on
        log.info("%s: the client hung up", what)
        return stream.response or web.Response(status=499)
