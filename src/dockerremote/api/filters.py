"""The `filters` query parameter, Go's path.Match globs and prune's `until` times, with dockerd's errors."""

from __future__ import annotations

import calendar
import functools
import json
import re
import time

from dockerremote import gojson
from dockerremote.errors import DockerRemoteError, InvalidArgument
from dockerremote.transfer.dockerfile import go_duration_ns


class Filters:
    """Go's filters.Args: `values` are the keys of each filter's map (what Get and the pattern
    matches see); `off` the (key, value) pairs the map sets to false, which exact_match, as
    Go's ExactMatch, does not count."""

    def __init__(self, values: dict[str, list[str]], off: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.values = values
        self.off = off

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
        return not vals or (value in vals and (key, value) not in self.off)

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
    """dockerd's filters.FromJSON: {"k":{"v":true}} (the CLI), else the legacy {"k":["v"]}
    (docker-py); what neither reads is refused with the first decoder's words, as dockerd."""
    if not raw:
        return Filters({})
    bad = gojson.syntax_error(raw)
    if bad is not None:
        raise InvalidArgument(bad)
    data = json.loads(raw)
    if data is None:
        return Filters({})
    error = gojson.unmarshal_error(data, "map[string]map[string]bool")
    if error is None:
        return Filters({k: list(v or {}) for k, v in data.items()},
                       frozenset((k, x) for k, v in data.items() for x, on in (v or {}).items() if not on))
    if gojson.unmarshal_error(data, "map[string][]string") is not None:
        raise InvalidArgument(error)
    return Filters({k: [x for x in v or [] if x is not None] for k, v in data.items()})


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


def compile_glob_or_none(pattern: str) -> re.Pattern[str] | None:
    """The compiled glob, or None for a malformed one (the caller decides when that fails)."""
    try:
        return _compile_glob(pattern)
    except BadPattern:
        return None


# -- `until` (dockerd's timetypes.GetTimestamp, with Go's time.Parse errors) -------------

_STD = ("2006", "01", "02", "15", "04", "05", ".999999999", "Z07:00")


def _layout(text: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(text):
        for std in _STD:
            if text.startswith(std, i):
                out.append(std)
                i += len(std)
                break
        else:
            out.append(text[i])
            i += 1
    return out


def _gq(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _getnum(s: str, fixed: bool) -> tuple[int, str] | None:
    if not s[:1].isdigit() or not s[:1].isascii():
        return None
    if not (s[1:2].isdigit() and s[1:2].isascii()):
        return None if fixed else (int(s[0]), s[1:])
    return int(s[:2]), s[2:]


def _days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def go_parse_time(value: str, layout: str, local_offset: int) -> int:
    """time.Parse / ParseInLocation for the layouts GetTimestamp uses → unix nanoseconds.
    Raises ValueError with Go's text."""
    tokens = _layout(layout)
    fields = {"2006": 1, "01": 1, "02": 1, "15": 0, "04": 0, "05": 0}
    nanos, offset, v = 0, None, value

    def fail(elem: str, rest: str, message: str = "") -> ValueError:
        if message:
            return ValueError(f"parsing time {_gq(value)}{message}")
        return ValueError(f"parsing time {_gq(value)} as {_gq(layout)}: cannot parse {_gq(rest)} as {_gq(elem)}")

    for i, tok in enumerate(tokens):
        hold = v
        if tok == "2006":
            if len(v) < 4 or not v[:4].isdigit() or not v[:4].isascii():
                raise fail(tok, hold)
            fields[tok], v = int(v[:4]), v[4:]
        elif tok in ("01", "02", "15", "04", "05"):
            got = _getnum(v, fixed=tok != "15")
            if got is None:
                raise fail(tok, hold)
            fields[tok], v = got
            limit = {"01": (1, 12, "month"), "02": (0, 31, "day"), "15": (0, 23, "hour"),
                     "04": (0, 59, "minute"), "05": (0, 59, "second")}[tok]
            if not limit[0] <= fields[tok] <= limit[1]:
                raise fail(tok, v, f": {limit[2]} out of range")
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            if tok == "05" and nxt != ".999999999" and len(v) >= 2 and v[0] in ".," and v[1].isdigit():
                n = 2
                while n < len(v) and v[n].isdigit():
                    n += 1
                nanos, v = int(v[1:n][:9].ljust(9, "0")), v[n:]
        elif tok == ".999999999":
            if len(v) >= 2 and v[0] in ".," and "0" <= v[1] <= "9":
                n = 1
                while n < 10 and n < len(v) and "0" <= v[n] <= "9":
                    n += 1
                nanos, v = int(v[1:n].ljust(9, "0")), v[n:]
        elif tok == "Z07:00":
            if v.startswith("Z"):
                offset, v = 0, v[1:]
            else:
                hh = _getnum(v[1:3], True) if len(v) >= 6 and v[3] == ":" else None
                mm = _getnum(v[4:6], True) if hh is not None else None
                if hh is None or mm is None or v[0] not in "+-":
                    raise fail(tok, hold)
                offset = (hh[0] * 60 + mm[0]) * 60 * (1 if v[0] == "+" else -1)
                v = v[6:]
        else:
            if not v.startswith(tok):
                raise fail(tok, v)
            v = v[len(tok):]
    if v:
        raise fail("", v, f": extra text: {_gq(v)}")
    year, month, day = fields["2006"], fields["01"], fields["02"]
    if day < 1 or day > _days_in(month, year):
        raise fail("", v, ": day out of range")
    secs = calendar.timegm((year, month, day, fields["15"], fields["04"], fields["05"], 0, 0, 0))
    secs -= local_offset if offset is None else offset
    return secs * 10**9 + nanos


def parse_until(value: str, now_ns: int | None = None, local_offset: int | None = None) -> int:
    """A prune `until` value (a duration ago, RFC3339-ish in the daemon's zone, or unix
    seconds[.nanos]) → unix nanoseconds, as dockerd's GetTimestamp + ParseTimestamps."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    local_offset = time.localtime().tm_gmtoff if local_offset is None else local_offset
    if value != "0":
        try:
            return ((now_ns - go_duration_ns(value)) // 10**9) * 10**9
        except ValueError:
            pass
    in_location = not (any(c in value for c in "zZ+") or value.count("-") == 3)
    if "." in value:
        layout = "2006-01-02T15:04:05.999999999" + ("" if in_location else "Z07:00")
    elif "T" in value:
        colons = value.count(":")
        if not in_location and not any(c in value for c in "zZ") and colons > 0:
            colons -= 1
        layout = {0: "2006-01-02T15", 1: "2006-01-02T15:04"}.get(colons, "2006-01-02T15:04:05")
        if not in_location:
            layout += "Z07:00"
    else:
        layout = "2006-01-02" if in_location else "2006-01-02Z07:00"
    try:
        return go_parse_time(value, layout, local_offset)
    except ValueError as exc:
        if "-" in value:
            raise InvalidArgument(str(exc)) from None
    secs, dot, frac = value.partition(".")
    if not re.fullmatch(r"[+-]?[0-9]+", secs) or (dot and not re.fullmatch(r"[+-]?[0-9]+", frac)):
        raise InvalidArgument(f"failed to parse value as time or duration: {_gq(value)}")
    nanos = int(int(frac) * 10 ** (9 - len(frac))) if dot else 0
    return int(secs) * 10**9 + nanos
