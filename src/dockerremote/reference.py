"""Image references: parse, normalize, and print in the familiar form.

Follows the grammar of the distribution reference package that dockerd uses, with
its exact error texts, so clients see the messages they know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockerremote.errors import InvalidReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]*)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
# distribution v2.7 (vendored by 20.10) has no bracketed IPv6 hosts: `[::1]:5000/x` is invalid there.
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
TAG_RE = re.compile(rf"^{_TAG}$")
ID_RE = re.compile(r"^[a-f0-9]{64}$")
_GO_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")  # go-digest's DigestRegexp
_DIGEST_ALGOS = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class Reference:
    """A normalized reference: domain, path, and at most one tag and one digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Fully qualified repository name: docker.io/library/alpine."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_PREFIX) and path.count("/") == 1:
            path = path[len(OFFICIAL_PREFIX):]
        return path

    def __str__(self) -> str:
        return self._render(self.name)

    @property
    def familiar(self) -> str:
        return self._render(self.familiar_name)

    def _render(self, name: str) -> str:
        out = name
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def with_tag(self, tag: str) -> "Reference":
        if not TAG_RE.match(tag):
            raise InvalidReference("invalid tag format")
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> "Reference":
        validate_digest(digest)
        return Reference(self.domain, self.path, None, digest)

    def repository(self) -> "Reference":
        return Reference(self.domain, self.path)

    def tagged_or_latest(self) -> "Reference":
        """The reference with `:latest` added when it has neither tag nor digest."""
        if self.tag is None and self.digest is None:
            return Reference(self.domain, self.path, DEFAULT_TAG)
        return self

    def stored_form(self) -> "Reference":
        """The reference a store keeps for this one: `:latest` added to a bare name, and a tag
        beside a digest dropped (`name:tag@digest` finds `name@digest`, as dockerd's reference
        store favours the digest, whatever the tag says)."""
        if self.digest is not None and self.tag is not None:
            return Reference(self.domain, self.path, None, self.digest)
        return self.tagged_or_latest()


def validate_digest(digest: str) -> None:
    algo, sep, hexpart = digest.partition(":")
    if not sep or not algo or not hexpart:
        raise InvalidReference("invalid checksum digest format")
    if algo not in _DIGEST_ALGOS:
        if not _GO_DIGEST_RE.match(digest):
            raise InvalidReference("invalid checksum digest format")
        raise InvalidReference("unsupported digest algorithm")
    # go-digest checks the length first, then the (lowercase) alphabet
    if len(hexpart) != _DIGEST_ALGOS[algo]:
        raise InvalidReference("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise InvalidReference("invalid checksum digest format")


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    # 20.10's rule: an uppercase first component is not a domain (`LOCALHOST/x`, `Ab/c` are
    # then rejected as not lowercase); later releases treat it as a hostname.
    if i == -1 or (not any(c in first for c in ".:") and first != "localhost"):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse(s: str) -> Reference:
    """Parse a user-supplied reference the way dockerd does (ParseNormalizedNamed)."""
    if ID_RE.match(s):
        raise InvalidReference(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(s)
    remote = remainder.split(":", 1)[0] if ":" in remainder else remainder
    if remote.lower() != remote:
        raise InvalidReference("invalid reference format: repository name must be lowercase")
    full = f"{domain}/{remainder}"
    m = REFERENCE_RE.match(full)
    if m is None:
        if full == "":
            raise InvalidReference("repository name must have at least one component")
        if REFERENCE_RE.match(full.lower()):
            raise InvalidReference("invalid reference format: repository name must be lowercase")
        raise InvalidReference("invalid reference format")
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference("repository name must not be more than 255 characters")
    if digest is not None:
        validate_digest(digest)
    return Reference(domain, name[len(domain) + 1:], tag, digest)


def is_image_id(s: str) -> bool:
    return bool(ID_RE.match(s))
