"""POST /images/create: import (fromSrc) here; pull (fromImage) lives in the pull module."""

from __future__ import annotations

from typing import AsyncIterator

import aiohttp
from aiohttp import web

from dockerremote import reference
from dockerremote.api.app import Ctx, Router
from dockerremote.api.jsonstream import JsonStream
from dockerremote.api.progress import progress_message
from dockerremote.api.routes.system import host_arch
from dockerremote.errors import DockerRemoteError, Forbidden, InvalidArgument
from dockerremote.transfer.changes import apply_changes
from dockerremote.transfer.importer import ImportRequest, import_image


def _import_ref(repo: str, tag: str | None) -> reference.Reference | None:
    if not repo:
        return None
    ref = reference.parse(repo)
    if ref.digest is not None:
        raise InvalidArgument("cannot import digest reference")
    if tag:
        ref = ref.with_tag(tag)
    return ref.tagged_or_latest()


def _platform_os(text: str) -> str:
    parts = text.strip().lower().split("/")
    if len(parts) > 3 or not parts[0]:
        raise InvalidArgument(f'"{text}": cannot parse platform specifier: invalid argument')
    if parts[0] != "linux":
        raise InvalidArgument("operating system is not supported")
    return parts[0]


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
    src = q.get("fromSrc", "")
    ref = _import_ref(q.get("repo", ""), q.get("tag"))
    if ref is not None and ref.familiar_name == "scratch":
        raise Forbidden("'scratch' is a reserved name")
    config = apply_changes(q.getall("changes", []))
    os_ = _platform_os(q["platform"]) if q.get("platform") and ctx.version.has("create_platform") else "linux"
    message = q.get("message", "")
    req = ImportRequest(config=config, message=message, architecture=host_arch(), os=os_, ref=ref)
    stream = JsonStream(ctx.request)
    if src == "-":
        image = await import_image(ctx.store, req, _body(ctx))
        await stream.send({"status": image.id})
        return await stream.finish()
    if not src:
        raise InvalidArgument("fromSrc or fromImage is required")
    url = src if "://" in src else "http://" + src
    try:
        return await _import_url(ctx, stream, req, url)
    except DockerRemoteError as exc:
        if not stream.started:
            raise
        await stream.fail(exc.message)
        return await stream.finish()


async def _import_url(ctx: Ctx, stream: JsonStream, req: ImportRequest, url: str) -> web.StreamResponse:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            resp = await session.get(url)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise DockerRemoteError(f"Get \"{url}\": {exc}") from exc
        async with resp:
            if resp.status >= 400:
                body = (await resp.content.read(4096)).decode("utf-8", "replace")
                err = DockerRemoteError(f"failed to GET {url} with status {resp.status} {resp.reason}: {body}")
                err.status = resp.status
                raise err
            await stream.send({"status": f"Downloading from {url}"})
            total = resp.content_length or 0
            last = [0]

            def progress(n: int) -> None:
                last[0] = n

            async def chunks() -> AsyncIterator[bytes]:
                sent = 0
                async for chunk in resp.content.iter_any():
                    yield chunk
                    sent += len(chunk)
                    await stream.send(progress_message("Importing", sent, total))

            image = await import_image(ctx.store, req, chunks(), progress)
    await stream.send({"status": image.id})
    return await stream.finish()


def register(router: Router) -> None:
    router.add("POST", "/images/create", create_image)
