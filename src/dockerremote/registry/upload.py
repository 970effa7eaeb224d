"""Upload primitives of a Repository opened for push: existence checks, cross-repository mounts,
resumable blob uploads and manifest PUTs, with the texts dockerd 20.10 shows for a push.

    repo = registries.repository(ref, auth, push=True)     # scope repository:<path>:push,pull
    await repo.blob_exists(digest)                          # size, or None
    opened = await repo.mount_blob(digest, "other/repo")    # True, an Upload to use, or None
    await repo.upload_blob(digest, size, open_at, upload=opened or None, on_progress=...)
    await repo.put_manifest("1", data, media_type)          # the manifest's digest

A push talks to one endpoint: the first that answers `GET /v2/` (https, then http for insecure
registries; never a mirror). An upload is POST → PATCH (the whole blob, with Content-Length and
Content-Range) → PUT ?digest=. When a PATCH breaks, the registry is asked where the upload
stands (GET on its Location) and the upload goes on from there; an upload the registry dropped
(distribution cancels one whose data and state disagree after a cut) starts over with a new
POST. Faults are retried with the download backoff (registry/retry.py); a try that moved bytes
resets the count.

Errors carry dockerd's push texts: the registry's own (`denied: requested access to the
resource is denied`, `unauthorized: authentication required`, `no basic auth credentials`),
without the `Head "<url>": ` prefix a pull shows; only an endpoint that cannot be reached at
all keeps it (`Get "http://127.0.0.1:1/v2/": dial tcp ...`), as in dockerd.
"""

from __future__ import annotations

import hashlib
import logging
import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

import aiohttp
from yarl import URL

from dockerremote.registry import auth as _auth
from dockerremote.registry.errors import RegistryError, RegistryUnavailable, response_error
from dockerremote.registry.hosts import Endpoint
from dockerremote.registry.retry import Attempts, retryable

if TYPE_CHECKING:
    from dockerremote.registry.client import Repository

log = logging.getLogger(__name__)

OCTET = "application/octet-stream"
# an upload the registry lost, refused to resume or whose range it disputes: start a new one
_RESTART_CODES = frozenset({"BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID", "RANGE_INVALID"})
_PREFIX = re.compile(r'^[A-Z][a-z]+ "[^"]*": ')

OpenAt = Callable[[int], AsyncIterator[bytes]]   # the blob's bytes from an offset to its end
OnProgress = Callable[[int], None]               # bytes of the blob the registry has been sent


@dataclass(frozen=True)
class Upload:
    """An upload session the registry opened (its Location, absolute)."""

    location: str


class _Restart(Exception):
    """The upload session is gone or unusable: open a new one."""


class Uploads:
    """Mixed into registry.client.Repository (uses its endpoints, auth and request helpers)."""

    _push_ep: Endpoint | None = None

    # -- public operations

    async def connect(self: "Repository") -> None:
        """Find the endpoint this push talks to (dockerd pings before anything else); raises the
        last endpoint's error, with its `Get "<url>/v2/": ` prefix, when none answers."""
        await self._push_endpoint()

    async def blob_exists(self: "Repository", digest: str) -> int | None:
        """HEAD the blob: its size when the repository has it, None when it does not."""
        ep = await self._push_endpoint()
        async with _push_texts():
            resp = await self._send(ep, "HEAD", self._url(ep, f"blobs/{digest}"))
            try:
                if resp.status == 200:
                    return resp.content_length or 0
                if resp.status == 404:
                    return None
                raise await response_error(resp)
            finally:
                resp.release()

    async def mount_blob(self: "Repository", digest: str, source_path: str) -> "bool | Upload | None":
        """Ask the registry to link `digest` from another repository of its own.

        True: mounted. An Upload: the registry opened an upload instead (use it). None: the
        mount was refused (no access to the source, ...); upload as usual. As dockerd's token
        handler does, the token asked for also carries `repository:<source>:pull`.
        """
        ep = await self._push_endpoint()
        other = self._with_scopes([_auth.scope(source_path)])
        query = urllib.parse.urlencode({"mount": digest, "from": source_path})
        url = self._url(ep, f"blobs/uploads/?{query}")
        try:
            async with _push_texts():
                resp = await other._send(ep, "POST", url, {"Content-Length": "0"})
        except RegistryError as exc:
            log.info("mount of %s from %s failed: %s", digest, source_path, exc.message)
            return None
        try:
            if resp.status == 201:
                served = resp.headers.get("Docker-Content-Digest", digest)
                return served == digest
            if resp.status == 202 and resp.headers.get("Location"):
                return Upload(_absolute(resp, resp.headers["Location"]))
            log.info("mount of %s from %s: HTTP %d", digest, source_path, resp.status)
            return None
        finally:
            resp.release()

    async def upload_blob(self: "Repository", digest: str, size: int, open_at: OpenAt, *,
                          upload: Upload | None = None, on_progress: OnProgress | None = None,
                          on_retry: Callable[[int, float, RegistryError], Any] | None = None) -> None:
        """Upload a blob of `size` bytes whose content open_at(offset) streams from offset on.

        Resumed after a broken PATCH where the registry says it stands, restarted when the
        registry lost the session; 429/5xx and broken connections retried with backoff.
        `on_retry(failures, delay, error)` is called before each wait, as for downloads.
        """
        ep = await self._push_endpoint()
        policy = self.registries.retry
        location = upload.location if upload else None
        offset = 0
        attempts = Attempts(policy)
        async with _push_texts():
            while True:
                moved = 0
                err: RegistryError
                try:
                    if location is None:
                        location, offset = await self._start_upload(ep), 0
                    if offset < size:
                        location, done = await self._patch(ep, location, offset, size, open_at, on_progress)
                        moved, offset = done - offset, done
                    await self._finish_upload(ep, location, digest, size)
                    return
                except _Restart as exc:
                    err = RegistryError(str(exc))
                    location = None
                except RegistryError as exc:
                    if not _worth_retrying(exc):
                        raise
                    err = exc
                delay = attempts.delay_after(err, moved, err.retry_after)
                log.info("upload of %s: %s; retry %d in %.2fs", digest, err.message, attempts.failures, delay)
                await attempts.wait(delay, err, on_retry)
                if location is not None:
                    location, offset = await self._upload_status(ep, location)

    # -- an upload in pieces, for a blob still being made (no retries: the caller falls back)

    async def open_upload(self: "Repository") -> Upload:
        ep = await self._push_endpoint()
        async with _push_texts():
            return Upload(await self._start_upload(ep))

    async def append_stream(self: "Repository", upload: Upload, chunks: AsyncIterator[bytes]) -> tuple[Upload, int]:
        """PATCH a stream of bytes not all known yet (chunked, as dockerd sends a layer it
        compresses on the fly): the next Upload and the bytes the registry holds."""
        ep = await self._push_endpoint()
        used = False

        def body() -> AsyncIterator[bytes]:
            nonlocal used
            if used:  # an auth retry cannot replay a stream: the caller falls back
                raise RegistryUnavailable("the stream was already sent")
            used = True
            return chunks

        async with _push_texts():
            resp = await self._send(ep, "PATCH", upload.location, {"Content-Type": OCTET},
                                    retry_status=False, retry_transport=False, body=body)
            try:
                if resp.status != 202:
                    err = await _upload_error(resp)
                    raise err if isinstance(err, RegistryError) else RegistryError(str(err))
                nxt = _absolute(resp, resp.headers.get("Location") or upload.location)
                last = _range_last(resp.headers.get("Range", ""))
            finally:
                resp.release()
        return Upload(nxt), (last + 1 if last else 0) if last is not None else -1

    async def close_upload(self: "Repository", upload: Upload, digest: str, size: int) -> None:
        """PUT ?digest=: the registry checks the bytes it got and keeps the blob."""
        ep = await self._push_endpoint()
        async with _push_texts():
            try:
                await self._finish_upload(ep, upload.location, digest, size)
            except _Restart as exc:
                raise RegistryError(str(exc)) from None

    async def put_manifest(self: "Repository", tag: str, data: bytes, media_type: str) -> str:
        """PUT the manifest under `tag`; its digest (checked against the registry's)."""
        ep = await self._push_endpoint()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        async with _push_texts():
            resp = await self._send(ep, "PUT", self._url(ep, f"manifests/{tag}"),
                                    {"Content-Type": media_type}, body=lambda: data)
            try:
                if resp.status not in (200, 201, 202):
                    raise await response_error(resp)
                served = resp.headers.get("Docker-Content-Digest", "")
            finally:
                resp.release()
        if served and served != digest:
            raise RegistryError(f"manifest digest mismatch: the registry says {served}, we sent {digest}")
        return digest

    # -- the steps of an upload

    async def _push_endpoint(self: "Repository") -> Endpoint:
        """The first endpoint that answers `GET /v2/` (its error kept if none does)."""
        if self._push_ep is not None:
            return self._push_ep
        last: RegistryError | None = None
        for ep in await self._live_endpoints():
            try:
                await self.registries.ping(ep)
            except RegistryUnavailable as exc:
                last = exc
                continue
            self._push_ep = ep
            return ep
        assert last is not None
        raise last

    def _with_scopes(self: "Repository", extra: list[str]) -> "Repository":
        """This repository asking for more scopes in its tokens (a mount's source)."""
        other = type(self)(self.registries, self.name, self.auth, self.push, self.meta_headers)
        other.scopes = [*self.scopes, *extra]
        other._endpoints = self._endpoints
        other._push_ep = self._push_ep
        return other

    async def _start_upload(self: "Repository", ep: Endpoint) -> str:
        resp = await self._send(ep, "POST", self._url(ep, "blobs/uploads/"), {"Content-Length": "0"})
        try:
            if resp.status != 202 or not resp.headers.get("Location"):
                raise await response_error(resp)
            return _absolute(resp, resp.headers["Location"])
        finally:
            resp.release()

    async def _patch(self: "Repository", ep: Endpoint, location: str, offset: int, size: int,
                     open_at: OpenAt, on_progress: OnProgress | None) -> tuple[str, int]:
        """Send bytes offset..size-1; (the next Location, bytes the registry now holds)."""
        def body() -> AsyncIterator[bytes]:
            return _counted(open_at(offset), offset, on_progress)

        headers = {"Content-Type": OCTET, "Content-Length": str(size - offset),
                   "Content-Range": f"{offset}-{size - 1}"}
        resp = await self._send(ep, "PATCH", location, headers, retry_status=False, retry_transport=False,
                                body=body)
        try:
            if resp.status != 202:
                raise await _upload_error(resp)
            nxt = _absolute(resp, resp.headers.get("Location") or location)
            last = _range_last(resp.headers.get("Range", ""))
        finally:
            resp.release()
        if last is not None and last != max(0, size - 1):
            raise _Restart(f"the registry holds {last + 1} bytes of an upload of {size}")
        return nxt, size

    async def _upload_status(self: "Repository", ep: Endpoint, location: str) -> tuple[str | None, int]:
        """Where an upload stands after a fault: (Location, bytes held), or (None, 0) if lost."""
        try:
            resp = await self._send(ep, "GET", location)
        except RegistryError as exc:
            log.info("upload status: %s; starting over", exc.message)
            return None, 0
        try:
            last = _range_last(resp.headers.get("Range", "")) if resp.status == 204 else None
            if last is None:
                return None, 0
            # `0-0` is both "empty" and "one byte": say empty; a wrong guess is refused (416)
            # and the upload starts over
            return _absolute(resp, resp.headers.get("Location") or location), last + 1 if last else 0
        finally:
            resp.release()

    async def _finish_upload(self: "Repository", ep: Endpoint, location: str, digest: str, size: int) -> None:
        sep = "&" if "?" in location else "?"
        url = f"{location}{sep}digest={urllib.parse.quote(digest, safe='')}"
        try:
            resp = await self._send(ep, "PUT", url, {"Content-Type": OCTET, "Content-Length": "0"},
                                    body=lambda: b"")
        except RegistryError:
            if await self._committed(digest, size):  # the PUT went through, its answer did not
                return
            raise
        try:
            if resp.status == 201:
                served = resp.headers.get("Docker-Content-Digest", digest)
                if served != digest:
                    raise RegistryError(f"blob upload: the registry stored {served}, we sent {digest}")
                return
            err = await _upload_error(resp)
        finally:
            resp.release()
        if isinstance(err, _Restart) and await self._committed(digest, size):
            return
        raise err

    async def _committed(self: "Repository", digest: str, size: int) -> bool:
        try:
            return await self.blob_exists(digest) == size
        except RegistryError:
            return False


# --------------------------------------------------------------------------- helpers

class _push_texts:
    """Registry errors as a push shows them: without the `Method "url": ` prefix."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, RegistryError):
            bare = _PREFIX.sub("", exc.message, count=1)
            if bare != exc.message:
                exc.message = bare
                exc.args = (bare,)
        return False


async def _upload_error(resp: aiohttp.ClientResponse) -> Exception:
    """_Restart for a session the registry will not continue, else the registry's error."""
    err = await response_error(resp)
    if resp.status == 416 or err.code in _RESTART_CODES:
        return _Restart(err.message)
    return err


def _worth_retrying(err: RegistryError) -> bool:
    if isinstance(err, RegistryUnavailable):
        return not err.connect_failed
    return err.http_status is not None and retryable(err.http_status)


def _absolute(resp: aiohttp.ClientResponse, location: str) -> str:
    """A Location made absolute against the URL that answered (distribution sends absolute ones)."""
    if location.startswith(("http://", "https://")):
        return location
    return str(resp.url.join(URL(location, encoded=True)))


def _range_last(value: str) -> int | None:
    """The last byte index in `Range: 0-<last>` (distribution writes `0-0` for an empty upload)."""
    m = re.fullmatch(r"\s*(?:bytes=)?0-(\d+)\s*", value)
    return int(m.group(1)) if m else None


async def _counted(source: AsyncIterator[bytes], offset: int, on_progress: OnProgress | None
                   ) -> AsyncIterator[bytes]:
    sent = offset
    try:
        async for chunk in source:
            yield chunk
            sent += len(chunk)
            if on_progress is not None:
                on_progress(sent)
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
