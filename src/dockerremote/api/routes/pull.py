"""Pull: POST /images/create?fromImage=... and GET /distribution/{name}/json.

The only place that turns the pull pipeline's neutral events into dockerd's progress
stream. The 200 status goes out with the first line; an error before it is an HTTP
error, after it one errorDetail line (moby's rule).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any, Awaitable, Callable

from aiohttp import web

from dockerremote import reference
from dockerremote.api.app import Ctx, Router
from dockerremote.api.jsonstream import JsonStream, json_response, run_transfer
from dockerremote.api.progress import bar
from dockerremote.errors import DockerRemoteError, Forbidden, InvalidArgument, InvalidReference
from dockerremote.oci import manifest as mf
from dockerremote.oci import platform as plat
from dockerremote.reference import Reference
from dockerremote.transfer.progress import Event, Kind
from dockerremote.transfer.pull import Puller, PullRequest

log = logging.getLogger(__name__)

_SERVICE = "puller"

_PLAIN = {
    Kind.EXISTS: "Already exists", Kind.QUEUED: "Pulling fs layer", Kind.WAITING: "Waiting",
    Kind.VERIFYING: "Verifying Checksum", Kind.DOWNLOADED: "Download complete", Kind.LAYER_DONE: "Pull complete",
}
_BYTES = {Kind.DOWNLOADING: "Downloading", Kind.EXTRACTING: "Extracting"}


def message(event: Event) -> dict[str, Any]:
    """One neutral event as dockerd's JSON message."""
    k = event.kind
    if k in _PLAIN:
        return {"status": _PLAIN[k], "progressDetail": {}, "id": event.id}
    if k in _BYTES:
        detail = {}  # Go's JSONProgress: omitempty on both numbers
        if event.current:
            detail["current"] = event.current
        if event.total:
            detail["total"] = event.total
        return {"status": _BYTES[k], "progressDetail": detail, "progress": bar(event.current, event.total),
                "id": event.id}
    if k is Kind.RETRYING:
        unit = "second" if event.current == 1 else "seconds"
        return {"status": f"Retrying in {event.current} {unit}", "progressDetail": {}, "id": event.id}
    if k is Kind.PULLING:
        return {"status": f"Pulling from {event.text}", "id": event.id}
    if k is Kind.DIGEST:
        return {"status": f"Digest: {event.text}"}
    if k is Kind.STATUS:
        what = "Downloaded newer image for" if event.current else "Image is up to date for"
        return {"status": f"Status: {what} {event.text}"}
    if k is Kind.WARNING:
        return {"status": f"WARNING: {event.text}"}
    raise ValueError(f"no message for {k}")


# -- per-daemon service ------------------------------------------------------------------------

def puller(ctx: Ctx) -> Puller:
    """The daemon's Puller (and its Registries), made on first use, closed with the app."""
    from dockerremote.api.app import SERVICES_KEY

    services = ctx.request.app[SERVICES_KEY]
    if _SERVICE not in services:
        from dockerremote.registry.client import Registries

        s = ctx.settings
        registries = Registries(list(s.registry_mirrors), list(s.insecure_registries),
                                s.max_concurrent_downloads)
        services["registries"] = registries
        services[_SERVICE] = Puller(ctx.store, registries, s.max_concurrent_downloads)
    return services[_SERVICE]


def _auth(ctx: Ctx) -> Any:
    from dockerremote.registry.auth import decode_registry_auth

    return decode_registry_auth(ctx.request.headers.get("X-Registry-Auth"))


# -- POST /images/create?fromImage= ------------------------------------------------------------

def pull_reference(from_image: str, tag: str, registry: str = "") -> Reference:
    """fromImage + tag (+ the legacy registry parameter) → the reference to pull, as dockerd."""
    if registry:
        # API < 1.24 clients sent the registry apart; prefix it unless fromImage names one.
        host = registry.split("://", 1)[-1].rstrip("/")
        first = from_image.split("/", 1)[0]
        if host and not ("/" in from_image and ("." in first or ":" in first or first == "localhost")):
            from_image = f"{host}/{from_image}"
    if from_image.endswith(":"):  # `docker pull -a` may send a trailing ':'
        from_image = from_image[:-1]
    ref = reference.parse(from_image)
    if tag:
        try:  # the tag may be a digest
            reference.validate_digest(tag)
            return Reference(ref.domain, ref.path, None, tag)
        except InvalidReference:
            pass
        if not reference.TAG_RE.match(tag):
            raise InvalidReference("invalid tag format")
        ref = Reference(ref.domain, ref.path, tag, ref.digest)
    return ref


async def pull_image(ctx: Ctx) -> web.StreamResponse:
    q = ctx.request.query
    platform = None
    if q.get("platform") and ctx.version.has("create_platform"):
        platform = plat.parse(q["platform"])
    raw = q.get("fromImage", "")
    ref = pull_reference(raw, q.get("tag", ""), q.get("registry", ""))
    if ref.familiar_name == "scratch":
        raise Forbidden("'scratch' is a reserved name")
    meta = {k: v for k, v in ctx.request.headers.items() if k.lower().startswith("x-meta-")}
    req = PullRequest(ref=ref, platform=platform, auth=_auth(ctx), raw_name=raw.removesuffix(":"),
                      meta_headers=meta)

    async def work(emit: Callable[[Event], Awaitable[None]]) -> None:
        await puller(ctx).pull(req, emit)
        await asyncio.to_thread(transfer_event, ctx, "pull", ref)

    return await run_transfer(JsonStream(ctx.request), work, lambda e: [message(e)], f"pull of {ref}", log)


def transfer_event(ctx: Ctx, action: str, ref: Reference) -> None:
    """dockerd's `pull`/`push` event: the reference as asked, the repository, the image's labels."""
    try:
        labels = ctx.store.resolve(ref.familiar).labels
    except DockerRemoteError:
        labels = None
    ctx.events.image(action, ref.familiar, ref.familiar_name, labels)


# -- GET /distribution/{name}/json ---------------------------------------------------------------

async def distribution_inspect(ctx: Ctx) -> web.StreamResponse:
    name = ctx.params["name"]
    if reference.is_image_id(name) or (name.startswith("sha256:") and reference.is_image_id(name[7:])):
        raise DockerRemoteError("no manifest found for full image ID")
    ref = reference.parse(name)
    if ref.familiar_name == "scratch":
        raise InvalidArgument("'scratch' is a reserved name")
    repo = puller(ctx).registries.repository(ref.repository(), _auth(ctx))
    try:
        fetched = await repo.manifest(ref.digest or ref.tagged_or_latest().tag or "latest")
    except DockerRemoteError as exc:
        exc.message = _bare(exc.message)  # this endpoint shows the registry's error as is
        exc.args = (exc.message,)
        raise
    if ref.digest is not None and fetched.digest != ref.digest:
        raise DockerRemoteError(f"manifest verification failed for digest {ref.digest}")
    m = mf.parse(fetched.data, fetched.media_type, str(ref))
    platforms: list[dict[str, Any]] | None = None
    if isinstance(m, mf.ManifestIndex):
        platforms = [(p or plat.Platform("", "")).to_json() for p in m.platforms()]
    elif m.media_type == mf.DOCKER_MANIFEST:  # dockerd reads the config of schema2 only
        platforms = await _config_platform(repo, m)
    descriptor = {"mediaType": m.media_type, "digest": fetched.digest, "size": len(fetched.data)}
    return json_response({"Descriptor": descriptor, "Platforms": platforms})


_PULL_PREFIX = re.compile(r"^(?:manifest for \S+ not found|repository \S+ not found|pull access denied for "
                          r"\S+, repository does not exist or may require 'docker login'): ")


def _bare(text: str) -> str:
    """The registry's own error, without the words dockerd adds to it for a pull."""
    return _PULL_PREFIX.sub("", text, count=1)


async def _config_platform(repo: Any, m: mf.ImageManifest) -> list[dict[str, Any]] | None:
    try:
        cfg = json.loads(await repo.blob_bytes(m.config.digest, 8 << 20))
    except (DockerRemoteError, ValueError):
        return None
    if not isinstance(cfg, dict):
        return None
    p = plat.Platform(str(cfg.get("os") or ""), str(cfg.get("architecture") or ""),
                      str(cfg.get("variant") or ""), str(cfg.get("os.version") or ""))
    return [p.to_json()] if p.os or p.architecture else None


def register(router: Router) -> None:
    router.add("GET", "/distribution/{name}/json", distribution_inspect)
