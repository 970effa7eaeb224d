"""Deterministic images pushed straight through a registry's HTTP API (no docker CLI).

    layer = make_layer(seed=1, size=64 << 10)              # a tar with realistic content
    img = push_image(reg, "team/app", "1.2", [layer])      # -> Pushed(manifest_digest, ...)
    arm = push_image(reg, "team/app", None, [layer2], platform="linux/arm64/v8")
    idx = push_index(reg, "team/app", "multi", {"linux/amd64": img, "linux/arm64/v8": arm})

Same seed and size, same bytes, same digests: tests can compute what a pull must produce.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.registry import Registry

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

CREATED = "2024-01-02T03:04:05Z"
MTIME = 1_700_000_000


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- layers

_POOL_CACHE: dict[int, bytes] = {}


def _text_pool(seed: int, size: int = 4 << 20) -> bytes:
    """Text like source code and docs: a per-seed vocabulary, lines that recur nearby."""
    if seed in _POOL_CACHE:
        return _POOL_CACHE[seed]
    rnd = random.Random(f"pool-{seed}")
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [26 - i for i in range(26)]
    words = ["".join(rnd.choices(letters, weights, k=rnd.randint(2, 10))) for _ in range(1200)]
    words += ["{", "}", "(", ");", "return", "if", "else", "for", "self", "=", "==", "0", "1", "the", "a"]
    recent: list[bytes] = []
    out = bytearray()
    while len(out) < size:
        if recent and rnd.random() < 0.35:  # code and config repeat themselves within a page
            line = rnd.choice(recent)
        else:
            line = (" " * (4 * rnd.randint(0, 3)) + " ".join(rnd.choices(words, k=rnd.randint(3, 12)))).encode()
            recent = (recent + [line])[-64:]
        out += line + b"\n"
    _POOL_CACHE[seed] = bytes(out[:size])
    return _POOL_CACHE[seed]


def make_layer(seed: int, size: int, binary_fraction: float = 0.15) -> bytes:
    """A deterministic layer tar of about `size` bytes of file content.

    Files of mixed sizes under a few directories; most hold text-like content (slices of a
    word-salad pool, so gzip finds matches within its window as in real files) and a
    `binary_fraction` of the bytes is random (like compiled code and compressed assets). It
    gzips to about 40% of its size (256 MiB → ~100 MiB), close to real distribution images.
    """
    rnd = random.Random(f"layer-{seed}-{size}")
    pool = _text_pool(seed % 4)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = [f"usr/share/s{seed}", f"usr/lib/s{seed}", f"etc/s{seed}", f"opt/s{seed}/bin"]
        for d in ["usr", "usr/share", "usr/lib", "etc", "opt", f"opt/s{seed}", *dirs]:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
            tar.addfile(info)
        total, binary, n = 0, 0, 0
        while total < size:
            want = min(size - total, _file_size(rnd))
            if binary < binary_fraction * (total + want):  # a fraction of the bytes, not of the files
                data = rnd.randbytes(want)
                binary += want
                mode = 0o755
            else:
                start = rnd.randrange(0, max(1, len(pool) - want))
                data = pool[start:start + want]
                if len(data) < want:  # files bigger than the pool: repeat with a different start
                    data = (data * (want // max(1, len(data)) + 1))[:want]
                mode = 0o644
            info = tarfile.TarInfo(f"{rnd.choice(dirs)}/f{n:05d}")
            info.size, info.mode, info.mtime = len(data), mode, MTIME
            tar.addfile(info, io.BytesIO(data))
            total += len(data)
            n += 1
        if size == 0:  # still a real layer with one (empty) file
            info = tarfile.TarInfo(f"{dirs[0]}/empty")
            info.mtime = MTIME
            tar.addfile(info, io.BytesIO(b""))
    return buf.getvalue()


def _file_size(rnd: random.Random) -> int:
    r = rnd.random()
    if r < 0.5:
        return rnd.randint(64, 4096)
    if r < 0.9:
        return rnd.randint(4096, 128 << 10)
    return rnd.randint(128 << 10, 2 << 20)


def compress(data: bytes, compression: str, level: int | None = None) -> bytes:
    """Deterministic compression: gzip with mtime 0, zstd with the content size in the frame."""
    if compression == "gzip":
        try:
            from isal import igzip  # much faster for big layers; same bytes every run

            return igzip.compress(data, compresslevel=2 if level is None else min(level, 3), mtime=0)
        except ImportError:
            return gzip.compress(data, compresslevel=6 if level is None else level, mtime=0)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3 if level is None else level).compress(data)
    if compression == "none":
        return data
    raise ValueError(f"unknown compression {compression!r}")


# --------------------------------------------------------------------------- HTTP

class PushError(AssertionError):
    pass


def _request(reg: Registry, method: str, path: str, repo: str, body: bytes | Any = None,
             headers: dict[str, str] | None = None, actions: str = "pull,push",
             ) -> tuple[int, dict[str, str], bytes]:
    """One request to the registry (absolute Location URLs allowed), authenticated as its admin."""
    u = urllib.parse.urlsplit(path)
    target = (u.path + ("?" + u.query if u.query else "")) if u.scheme else path
    conn = reg.connection()
    try:
        h = {**reg.auth_header(repo, actions), **(headers or {})}
        conn.request(method, target, body=body, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def push_blob(reg: Registry, repo: str, data: bytes | Path, digest: str | None = None) -> str:
    """Upload a blob (monolithic PUT after POST) unless the registry has it; returns its digest."""
    if isinstance(data, Path):
        h = hashlib.sha256()
        with data.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = digest or "sha256:" + h.hexdigest()
        size = data.stat().st_size
    else:
        digest = digest or sha256(data)
        size = len(data)
    status, _, _ = _request(reg, "HEAD", f"/v2/{repo}/blobs/{digest}", repo)
    if status == 200:
        return digest
    status, headers, body = _request(reg, "POST", f"/v2/{repo}/blobs/uploads/", repo, body=b"",
                                     headers={"Content-Length": "0"})
    if status != 202:
        raise PushError(f"start upload: {status} {body[:300]!r}")
    loc = headers["location"]
    loc += ("&" if "?" in loc else "?") + "digest=" + urllib.parse.quote(digest)
    payload: Any = data.open("rb") if isinstance(data, Path) else data
    try:
        status, _, body = _request(reg, "PUT", loc, repo, body=payload,
                                   headers={"Content-Type": "application/octet-stream",
                                            "Content-Length": str(size)})
    finally:
        if isinstance(data, Path):
            payload.close()
    if status != 201:
        raise PushError(f"upload {digest}: {status} {body[:300]!r}")
    return digest


def put_manifest(reg: Registry, repo: str, ref: str, data: bytes, media_type: str) -> str:
    status, headers, body = _request(reg, "PUT", f"/v2/{repo}/manifests/{ref}", repo, body=data,
                                     headers={"Content-Type": media_type})
    if status != 201:
        raise PushError(f"put manifest {repo}:{ref}: {status} {body[:500]!r}")
    digest = sha256(data)
    served = headers.get("docker-content-digest")
    if media_type == SCHEMA1_SIGNED and served:
        return served  # schema1's digest is of the payload without its signatures
    if served and served != digest:
        raise PushError(f"registry says {served}, we computed {digest}")
    return digest


def delete_manifest(reg: Registry, repo: str, digest: str) -> int:
    status, _, _ = _request(reg, "DELETE", f"/v2/{repo}/manifests/{digest}", repo, actions="*")
    return status


def delete_blob(reg: Registry, repo: str, digest: str) -> int:
    status, _, _ = _request(reg, "DELETE", f"/v2/{repo}/blobs/{digest}", repo, actions="*")
    return status


# --------------------------------------------------------------------------- images

@dataclass
class Pushed:
    repo: str
    tag: str | None
    manifest_digest: str
    config_digest: str
    layer_digests: list[str]
    diff_ids: list[str]
    manifest_bytes: bytes
    media_type: str = DOCKER_MANIFEST
    config_bytes: bytes = b""
    layer_sizes: list[int] = field(default_factory=list)      # compressed, as served
    layer_media_types: list[str] = field(default_factory=list)
    platform: str = "linux/amd64"

    @property
    def size(self) -> int:
        return len(self.manifest_bytes)


def _parse_platform(platform: str) -> dict[str, str]:
    parts = platform.split("/")
    out = {"architecture": parts[1], "os": parts[0]}
    if len(parts) > 2 and parts[2]:
        out["variant"] = parts[2]
    return out


def layer_media_type(fmt: str, compression: str) -> str:
    if fmt == "docker":
        return {"gzip": DOCKER_LAYER_GZIP, "none": DOCKER_LAYER_TAR, "zstd": OCI_LAYER_ZSTD}[compression]
    return {"gzip": OCI_LAYER_GZIP, "none": OCI_LAYER_TAR, "zstd": OCI_LAYER_ZSTD}[compression]


def image_config(diff_ids: list[str], platform: str = "linux/amd64",
                 config_extra: dict[str, Any] | None = None) -> bytes:
    """An image config like a build would write: fixed dates, one history entry per layer."""
    p = _parse_platform(platform)
    cfg: dict[str, Any] = {
        "architecture": p["architecture"],
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"]},
        "created": CREATED,
        "history": [{"created": CREATED, "created_by": f"/bin/sh -c #(nop) ADD layer {i}"}
                    for i in range(len(diff_ids))],
        "os": p["os"],
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if "variant" in p:
        cfg["variant"] = p["variant"]
    for k, v in (config_extra or {}).items():
        if k == "config" and isinstance(v, dict):
            cfg["config"].update(v)
        else:
            cfg[k] = v
    return json.dumps(cfg, separators=(",", ":")).encode()


def push_image(reg: Registry, repo: str, tag: str | None, layers: list[bytes],
               fmt: str = "docker", compression: str | list[str] = "gzip",
               config_extra: dict[str, Any] | None = None, platform: str = "linux/amd64",
               annotations: dict[str, str] | None = None) -> Pushed:
    """Push an image: compress each layer tar, upload blobs and config, PUT the manifest.

    tag None pushes the manifest by digest only (what an index's children need).
    `compression` may be a list, one per layer (mixed images).
    """
    if fmt not in ("docker", "oci"):
        raise ValueError("fmt must be 'docker' or 'oci'")
    comps = compression if isinstance(compression, list) else [compression] * len(layers)
    diff_ids, digests, sizes, types = [], [], [], []
    for tar, comp in zip(layers, comps):
        diff_ids.append(sha256(tar))
        blob = compress(tar, comp)
        digests.append(push_blob(reg, repo, blob))
        sizes.append(len(blob))
        types.append(layer_media_type(fmt, comp))
    config = image_config(diff_ids, platform, config_extra)
    config_digest = push_blob(reg, repo, config)
    media_type = DOCKER_MANIFEST if fmt == "docker" else OCI_MANIFEST
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": DOCKER_CONFIG if fmt == "docker" else OCI_CONFIG,
                   "size": len(config), "digest": config_digest},
        "layers": [{"mediaType": t, "size": s, "digest": d} for t, s, d in zip(types, sizes, digests)],
    }
    if annotations:
        manifest["annotations"] = annotations
    data = json.dumps(manifest, indent=3).encode()  # registries keep the bytes as pushed
    digest = put_manifest(reg, repo, tag or sha256(data), data, media_type)
    return Pushed(repo=repo, tag=tag, manifest_digest=digest, config_digest=config_digest,
                  layer_digests=digests, diff_ids=diff_ids, manifest_bytes=data, media_type=media_type,
                  config_bytes=config, layer_sizes=sizes, layer_media_types=types, platform=platform)


def index_bytes(children: dict[str, Pushed], fmt: str = "docker") -> tuple[bytes, str]:
    media_type = DOCKER_LIST if fmt == "docker" else OCI_INDEX
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [{"mediaType": p.media_type, "digest": p.manifest_digest, "size": p.size,
                       "platform": _parse_platform(plat)} for plat, p in children.items()],
    }
    return json.dumps(doc, indent=3).encode(), media_type


def push_index(reg: Registry, repo: str, tag: str | None, children: dict[str, Pushed],
               fmt: str = "docker") -> str:
    """A manifest list (docker) or image index (oci) over already pushed manifests; its digest."""
    for p in children.values():
        if p.repo != repo:
            raise ValueError(f"child {p.manifest_digest} was pushed to {p.repo}, not {repo}")
    data, media_type = index_bytes(children, fmt)
    return put_manifest(reg, repo, tag or sha256(data), data, media_type)


# --------------------------------------------------------------------------- schema1 (refused by pulls)

def push_schema1(reg: Registry, repo: str, tag: str, layers: list[bytes]) -> tuple[str, bytes]:
    """A signed schema1 manifest (libtrust's pretty JWS, ES256), for the 'schema1 is refused' case.

    The registry must run with start_registry(schema1=True). Returns (digest, signed bytes as
    pushed; the registry may serve them re-indented):
    the digest (what the registry serves it under) is of the payload without the signatures.
    """
    import base64
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    from tests.support.registry import libtrust_key_id

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    blobs = [push_blob(reg, repo, compress(tar, "gzip")) for tar in layers]
    ids = [hashlib.sha256(f"{repo}-{tag}-{i}".encode()).hexdigest() for i in range(len(layers))]
    history = []
    for i in range(len(layers)):  # schema1 lists layers top first
        v1: dict[str, Any] = {"id": ids[i], "created": CREATED}
        if i:
            v1["parent"] = ids[i - 1]
        if i == len(layers) - 1:
            v1.update({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]}})
        history.append({"v1Compatibility": json.dumps(v1, separators=(",", ":"))})
    doc = {"schemaVersion": 1, "name": repo, "tag": tag, "architecture": "amd64",
           "fsLayers": [{"blobSum": d} for d in reversed(blobs)], "history": list(reversed(history))}
    payload = json.dumps(doc, indent=3).encode()
    close = len(payload.rstrip()) - 1                      # the final '}'
    format_length = len(payload[:close].rstrip())          # just after the last value
    tail = payload[format_length:]
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key()
    nums = pub.public_numbers()
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk = {"crv": "P-256", "kid": libtrust_key_id(der), "kty": "EC",
           "x": b64(nums.x.to_bytes(32, "big")), "y": b64(nums.y.to_bytes(32, "big"))}
    protected = b64(json.dumps({"formatLength": format_length, "formatTail": b64(tail),
                                "time": dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc).strftime(
                                    "%Y-%m-%dT%H:%M:%SZ")}, separators=(",", ":")).encode())
    r, s = decode_dss_signature(key.sign(f"{protected}.{b64(payload)}".encode(), ec.ECDSA(hashes.SHA256())))
    sig = {"header": {"jwk": jwk, "alg": "ES256"}, "signature": b64(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
           "protected": protected}
    signatures = json.dumps([sig], indent=3)
    # libtrust's PrettySignature: payload up to formatLength, then `,   "signatures": [...]` + tail
    signatures = "\n".join(("   " + line) if n else line for n, line in enumerate(signatures.split("\n")))
    signed = payload[:format_length] + b',\n   "signatures": ' + signatures.encode() + tail
    digest = put_manifest(reg, repo, tag, signed, SCHEMA1_SIGNED)
    return digest, signed
