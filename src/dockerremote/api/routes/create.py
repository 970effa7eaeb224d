"""POST /images/create: import (fromSrc) here; pull (fromImage) lives in the pull module.

The checks run in dockerd's order (platform, repo, tag, OS, changes, then the source), so
a request with several mistakes gets the same first error.
"""

from __future__ import annotations

import errno
import socket
from typing import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from dockerremote import reference
from dockerremote.api.app import Ctx, Router
from dockerremote.api.jsonstream import JsonStream
from dockerremote.api.progress import Throttle, progress_message
from dockerremote.api.routes.system import host_arch
from dockerremote.errors import (DockerRemoteError, Forbidden, InvalidArgument, NotFound,
                                 Unauthorized)
from dockerremote.oci import platform
from dockerremote.store.index import ImageRecord
from dockerremote.transfer.changes import apply_changes
from dockerremote.transfer.importer import ImportRequest, import_image

_ERROR_BODY_LIMIT = 1 << 20  # dockerd reads the whole error body; we keep the first MiB


def _import_ref(repo: str, tag: str | None) -> reference.Reference | None:
    if not repo:
        return None
    ref = reference.parse(repo)
    if ref.digest is not None:
        raise InvalidArgument("cannot import digest reference")
    if tag:
        ref = ref.with_tag(tag)
    return ref.tagged_or_latest()


def _import_platform(ctx: Ctx) -> platform.Platform:
    """The platform an import records: 20.10 takes only the OS of `platform` (the arch is the
    host's); Moby 23+ takes it all, which we do for clients of API 1.42 and later."""
    text = ctx.query("platform") or ""
    if not text or not ctx.version.has("create_platform"):
        return platform.Platform("linux", host_arch(), "")
    asked = platform.parse(text)
    if not ctx.version.has("import_platform_arch"):
        return platform.Platform(asked.os, host_arch(), "")
    return asked


async def _body(ctx: Ctx) -> AsyncIterator[bytes]:
    while True:
        chunk = await ctx.request.content.readany()
        if not chunk:
            return
        yield chunk


async def create_image(ctx: Ctx) -> web.StreamResponse:
    if ctx.query("fromImage"):
        from dockerremote.api.routes import pull  # issue 3

        return await pull.pull_image(ctx)
    return await import_(ctx)


async def import_(ctx: Ctx) -> web.StreamResponse:
    q = ctx.request.query
    plat = _import_platform(ctx)
    ref = _import_ref(q.get("repo", ""), q.get("tag"))
    if plat.os != "linux":
        raise InvalidArgument("operating system is not supported")
    config = apply_changes(q.getall("changes", []))
    src = q.get("fromSrc", "")
    if src != "-" and "://" not in src:
        src = "http://" + src
    req = ImportRequest(config=config, message=q.get("message", "") or f"Imported from {src}",
                        architecture=plat.architecture, os=plat.os, ref=ref, variant=plat.variant)
    stream = JsonStream(ctx.request)
    try:
        if src == "-":
            image = await import_image(ctx.store, req, _body(ctx))
        else:
            image = await _import_url(ctx, stream, req, src)
    except DockerRemoteError as exc:
        if not stream.started:
            raise
        await stream.fail(exc.message)
        return await stream.finish()
    if ref is not None:  # dockerd tags before it logs the import
        ctx.events.image("tag", image.id, ref.familiar, image.labels)
    ctx.events.image("import", image.id, image.id, image.labels)
    await stream.send({"status": image.id})
    return await stream.finish()


def _status_error(url: str, status: int, reason: str, body: bytes) -> DockerRemoteError:
    """remotecontext.GetWithStatusError: 400/401/403/404 keep their class, the rest are 500."""
    text = f"failed to GET {url} with status {status} {reason}: " + body.strip().decode("utf-8", "replace")
    cls = {400: InvalidArgument, 401: Unauthorized, 403: Forbidden, 404: NotFound}.get(status,
                                                                                      DockerRemoteError)
    return cls(text)


def _check_url(url: str) -> None:
    """What Go's http.Get refuses before dialing, with its texts (client mistakes: 400)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument(f'Get "{url}": unsupported protocol scheme "{parts.scheme}"')
    if not parts.hostname:
        shown = url[:-2] if url.endswith("://") else url  # Go prints the URL "http://" as "http:"
        raise InvalidArgument(f'Get "{shown}": http: no Host in request URL')


def _transport_error(url: str, exc: BaseException) -> DockerRemoteError:
    """Go's `Get "<url>": dial tcp ...` texts for the failures a user meets most."""
    parts = urlsplit(url)
    os_error = getattr(exc, "os_error", None) or (exc if isinstance(exc, OSError) else None)
    if isinstance(os_error, socket.gaierror):  # dockerd answers a DNS failure with 404
        return NotFound(f'Get "{url}": dial tcp: lookup {parts.hostname}: no such host')
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if isinstance(os_error, OSError) and os_error.errno == errno.ECONNREFUSED:
        return DockerRemoteError(f'Get "{url}": dial tcp {parts.hostname}:{port}: connect: connection refused')
    return DockerRemoteError(f'Get "{url}": {exc}')


async def _import_url(ctx: Ctx, stream: JsonStream, req: ImportRequest, url: str) -> ImageRecord:
    """Fetch the archive at `url` and import it, writing dockerd's progress lines."""
    _check_url(url)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            resp = await session.get(url)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise _transport_error(url, exc) from exc
        async with resp:
            if resp.status >= 400:
                body = await resp.content.read(_ERROR_BODY_LIMIT)
                raise _status_error(url, resp.status, resp.reason or "", body)
            await stream.send({"status": f"Downloading from {url}"})
            total = resp.content_length if resp.content_length is not None else -1
            throttle = Throttle(total)

            async def chunks() -> AsyncIterator[bytes]:
                current = 0
                async for chunk in resp.content.iter_any():
                    yield chunk
                    current += len(chunk)
                    if throttle.update(current):
                        await stream.send(progress_message("Importing", current, total))
                if throttle.finish(current):
                    # dockerd reaches this state on a read that returns only EOF: its progress
                    # output marks that "last update" with an empty message after the line
                    await stream.send(progress_message("Importing", current, total))
                    await stream.send({})

            return await import_image(ctx.store, req, chunks())


def register(router: Router) -> None:
    router.add("POST", "/images/create", create_image)
