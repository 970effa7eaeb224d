"""Manifests: strict parsing of the four kinds a pull accepts.

Docker schema2 manifest, OCI image manifest, Docker manifest list and OCI image index.
The kind comes from the media type the registry served (Content-Type, or the body's
`mediaType` when the server was vague); the body must agree with it, as distribution's
unmarshallers insist (a manifest whose type contradicts its body is refused, CVE-2021-41190).
Schema1 is refused with a clear message. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from dockerremote.errors import DockerRemoteError
from dockerremote.oci.platform import Platform

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"

ACCEPT = (DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX)
IMAGE_CONFIGS = (DOCKER_CONFIG, OCI_CONFIG, "application/octet-stream", "")
# dockerd's names for config types it refuses to pull as an image
_CONFIG_CLASSES = {PLUGIN_CONFIG: "plugin", "application/vnd.cncf.helm.config.v1+json": "Helm Chart",
                   "application/vnd.oci.image.layer.v1.tar": "layer"}

_ANY_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


class ManifestError(DockerRemoteError):
    """A manifest we cannot or will not use (500, as dockerd answers)."""


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ManifestIndex:
    media_type: str
    manifests: tuple[Descriptor, ...]

    def platforms(self) -> list[Platform | None]:
        return [d.platform for d in self.manifests]


Manifest = ImageManifest | ManifestIndex


def base_media_type(content_type: str) -> str:
    """`application/json; charset=utf-8` → `application/json` (as mime.ParseMediaType)."""
    return content_type.split(";", 1)[0].strip().lower()


def schema1_message(ref: str) -> str:
    """Moby's own text for the schema1 images it no longer pulls (20.10 still pulled them)."""
    return ("Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been "
            f"removed. Suggest the author of {ref} to upgrade the image to the OCI Format or Docker "
            "Image manifest v2, schema 2. More information at "
            "https://docs.docker.com/go/deprecated-image-specs/")


def parse(data: bytes, media_type: str, ref: str = "the image") -> Manifest:
    """Parse manifest bytes served with `media_type`. `ref` names the image in messages."""
    mt = base_media_type(media_type)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"invalid manifest: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("invalid manifest: not a JSON object")
    if mt in ("", "application/json", "text/plain", "application/octet-stream"):
        # A vague server: let the body say what it is (distribution's default is schema1).
        if doc.get("schemaVersion") == 1:
            mt = SCHEMA1[0]
        elif isinstance(doc.get("mediaType"), str):
            mt = doc["mediaType"]
    if mt in SCHEMA1 or doc.get("schemaVersion") == 1:
        raise ManifestError(schema1_message(ref))
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise ManifestError("invalid manifest: mediaType is not a string")
    if mt == DOCKER_MANIFEST:
        if body_type != DOCKER_MANIFEST:
            raise ManifestError(f"mediaType in manifest should be '{DOCKER_MANIFEST}' not '{body_type or ''}'")
        return _image_manifest(doc, mt)
    if mt == OCI_MANIFEST:
        if body_type and body_type != OCI_MANIFEST:
            raise ManifestError(f"if present, mediaType in manifest should be '{OCI_MANIFEST}' not '{body_type}'")
        if "manifests" in doc:
            raise ManifestError("ocimanifest: expected manifest but found index")
        return _image_manifest(doc, mt)
    if mt == DOCKER_LIST:
        if body_type != DOCKER_LIST:
            raise ManifestError(f"mediaType in manifest list should be '{DOCKER_LIST}' not '{body_type or ''}'")
        return _index(doc, mt)
    if mt == OCI_INDEX:
        if body_type and body_type != OCI_INDEX:
            raise ManifestError(f"if present, mediaType in image index should be '{OCI_INDEX}' not '{body_type}'")
        if "config" in doc or "layers" in doc:
            raise ManifestError("index: expected index but found manifest")
        return _index(doc, mt)
    raise ManifestError(f"unsupported manifest media type and no default available: {mt}")


def check_image_config(manifest: ImageManifest) -> None:
    """Refuse manifests whose config is not an image config (plugins, Helm charts...)."""
    ct = base_media_type(manifest.config.media_type)
    if ct not in IMAGE_CONFIGS:
        cls = _CONFIG_CLASSES.get(ct, "unknown")
        raise ManifestError(f'Encountered remote "{manifest.config.media_type}"({cls}) when fetching')


def _schema_version(doc: dict[str, Any]) -> None:
    if doc.get("schemaVersion") != 2:
        raise ManifestError(f"unsupported manifest schemaVersion: {doc.get('schemaVersion')!r}")


def _image_manifest(doc: dict[str, Any], mt: str) -> ImageManifest:
    _schema_version(doc)
    config = doc.get("config")
    if not isinstance(config, dict):
        raise ManifestError("invalid manifest: no config descriptor")
    layers = doc.get("layers")
    if layers is None:
        layers = []
    if not isinstance(layers, list):
        raise ManifestError("invalid manifest: layers is not a list")
    return ImageManifest(mt, _descriptor(config, "config"), tuple(_descriptor(d, "layer") for d in layers))


def _index(doc: dict[str, Any], mt: str) -> ManifestIndex:
    _schema_version(doc)
    entries = doc.get("manifests")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise ManifestError("invalid manifest list: manifests is not a list")
    return ManifestIndex(mt, tuple(_descriptor(d, "manifest", with_platform=True) for d in entries))


def _descriptor(d: Any, what: str, with_platform: bool = False) -> Descriptor:
    if not isinstance(d, dict):
        raise ManifestError(f"invalid manifest: {what} descriptor is not an object")
    digest = d.get("digest")
    problem = _digest_problem(digest)
    if problem:
        raise ManifestError(f'could not validate {what} digest "{digest}": {problem}')
    size = d.get("size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"invalid manifest: {what} {digest} has an invalid size")
    media_type = d.get("mediaType", "")
    if not isinstance(media_type, str):
        raise ManifestError(f"invalid manifest: {what} {digest} has an invalid mediaType")
    urls = d.get("urls") or []
    annotations = d.get("annotations") or {}
    if not isinstance(urls, list) or not isinstance(annotations, dict):
        raise ManifestError(f"invalid manifest: {what} {digest} has invalid urls or annotations")
    platform = None
    if with_platform and d.get("platform") is not None:
        platform = _platform(d["platform"], digest)
    return Descriptor(media_type, digest, size, platform, tuple(str(u) for u in urls),
                      {str(k): str(v) for k, v in annotations.items()})


def _digest_problem(digest: Any) -> str:
    """go-digest's Validate, in its order (format, algorithm, length, alphabet); sha256 only,
    since the store names blobs by sha256."""
    if not isinstance(digest, str):
        return "invalid checksum digest format"
    algo, sep, hexpart = digest.partition(":")
    if not sep or not algo or not hexpart:
        return "invalid checksum digest format"
    if algo != "sha256":
        return "invalid checksum digest format" if not _ANY_DIGEST.match(digest) else "unsupported digest algorithm"
    if len(hexpart) != 64:
        return "invalid checksum digest length"
    if not re.fullmatch(r"[a-f0-9]+", hexpart):
        return "invalid checksum digest format"
    return ""


def _platform(p: Any, digest: str) -> Platform:
    if not isinstance(p, dict):
        raise ManifestError(f"invalid manifest list: platform of {digest} is not an object")
    fields = {k: p.get(k, "") for k in ("os", "architecture", "variant", "os.version")}
    if not all(isinstance(v, str) for v in fields.values()):
        raise ManifestError(f"invalid manifest list: platform of {digest} has a non-string field")
    return Platform(fields["os"], fields["architecture"], fields["variant"], fields["os.version"])

