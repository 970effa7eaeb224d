"""API versions: the range we serve and the one table of what changes with the version.

Every version-dependent behaviour is a row in SWITCHES; handlers ask `version.has(name)`.
Adding an API version is moving MAX_VERSION and adding the rows that change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockerremote.errors import InvalidArgument

Version = tuple[int, ...]

MIN_VERSION: Version = (1, 24)
MAX_VERSION: Version = (1, 41)


@dataclass(frozen=True)
class Switch:
    since: Version | None = None  # first version with the behaviour
    until: Version | None = None  # first version without it
    doc: str = ""


SWITCHES: dict[str, Switch] = {
    "legacy_filter_param": Switch(until=(1, 41), doc="/images/json?filter=<glob> is a reference filter"),
    "create_platform": Switch(since=(1, 32), doc="POST /images/create honours platform"),
    "none_placeholders": Switch(until=(1, 43), doc="<none>:<none> for images without refs"),
    "virtual_size": Switch(until=(1, 44), doc="VirtualSize in list, inspect, df"),
    "container_config": Switch(until=(1, 45), doc="inspect has Container and ContainerConfig"),
}


def parse(text: str) -> Version:
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", text):
        raise InvalidArgument(f"invalid API version: {text}")
    return tuple(int(p) for p in text.split("."))


def render(v: Version) -> str:
    return ".".join(str(p) for p in v)


def _cmp_key(v: Version) -> Version:
    return v + (0,) * (3 - len(v)) if len(v) < 3 else v


def check(text: str) -> Version:
    """Validate a URL version against our range, with dockerd's messages."""
    v = parse(text)
    if _cmp_key(v) < _cmp_key(MIN_VERSION):
        raise InvalidArgument(
            f"client version {text} is too old. Minimum supported API version is "
            f"{render(MIN_VERSION)}, please upgrade your client to a newer version")
    if _cmp_key(v) > _cmp_key(MAX_VERSION):
        raise InvalidArgument(
            f"client version {text} is too new. Maximum supported API version is {render(MAX_VERSION)}")
    return v


@dataclass(frozen=True)
class ApiVersion:
    value: Version

    def has(self, switch: str) -> bool:
        s = SWITCHES[switch]
        v = _cmp_key(self.value)
        if s.since is not None and v < _cmp_key(s.since):
            return False
        if s.until is not None and v >= _cmp_key(s.until):
            return False
        return True

    def __str__(self) -> str:
        return render(self.value)
