"""The `filters` query parameter and Go's path.Match globs, with dockerd's errors."""

from __future__ import annotations

import functools
import json
import re

from dockerremote.errors import DockerRemoteError, InvalidArgument


class Filters:
    def __init__(self, values: dict[str, list[str]]) -> None:
        self.values = values

    def contains(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str) -> list[str]:
        return self.values.get(key, [])

    def validate(self, accepted: set[str]) -> None:
        for key in self.values:
            if key not in accepted:
                raise InvalidArgument(f"Invalid filter '{key}'")

    def exact_match(self, key: str, value: str) -> bool:
        vals = self.values.get(key)
        return not vals or value in vals

    def match_kv_list(self, key: str, labels: dict[str, str] | None) -> bool:
        wanted = self.values.get(key)
        if not wanted:
            return True
        if labels is None:
            return False
        for item in wanted:
            k, sep, v = item.partition("=")
            if k not in labels or (sep and labels[k] != v):
                return False
        return True


def invalid_filter(key: str, values: list[str]) -> InvalidArgument:
    return InvalidArgument(f"Invalid filter '{key}=[{' '.join(values)}]'")


def parse(raw: str | None) -> Filters:
    """Accept both {"k":{"v":true}} (CLI) and {"k":["v"]} (docker-py)."""
    if not raw:
        return Filters({})
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidArgument("invalid filter") from None
    if not isinstance(data, dict):
        raise InvalidArgument("invalid filter")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[key] = [str(v) for v in value]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
        else:
            raise InvalidArgument("invalid filter")
    return Filters(out)


class BadPattern(DockerRemoteError):
    status = 500  # dockerd 20.10 answers a bad reference glob with a 500

    def __init__(self) -> None:
        super().__init__("syntax error in pattern")


@functools.lru_cache(maxsize=256)
def _compile_glob(pattern: str) -> re.Pattern[str]:
    """Translate Go's path.Match syntax: * and ? stay within a path element; [^...] negates."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= n:
                raise BadPattern()
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i += 1
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            parts, first = [], True
            while True:
                if i >= n:
                    raise BadPattern()
                if pattern[i] == "]" and not first:
                    break
                lo, i = _class_char(pattern, i)
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1)
                    if hi < lo:
                        raise BadPattern()
                    parts.append(f"{re.escape(lo)}-{re.escape(hi)}")
                else:
                    parts.append(re.escape(lo))
                first = False
            out.append("[" + ("^" if negate else "") + "".join(parts) + "]")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S)


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    if i >= len(pattern) or pattern[i] in "-]":
        raise BadPattern()
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise BadPattern()
    return pattern[i], i + 1


def glob_match(pattern: str, name: str) -> bool:
    return _compile_glob(pattern).match(name) is not None
