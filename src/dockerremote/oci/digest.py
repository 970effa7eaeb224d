"""sha256 digests: the names of everything in the store."""

from __future__ import annotations

import hashlib
import re

_SHA256_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_sha256_digest(s: str) -> bool:
    return bool(_SHA256_RE.match(s))


def hex_of(digest: str) -> str:
    """The hex part of `sha256:<hex>`."""
    return digest.split(":", 1)[1]


def short_id(digest: str) -> str:
    return hex_of(digest)[:12]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainIDs: c1 = d1, cn = sha256("c(n-1) dn")."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else sha256_digest(f"{out[-1]} {d}".encode()))
    return out
