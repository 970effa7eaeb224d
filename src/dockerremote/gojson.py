"""Go's encoding/json error texts, for the JSON a client sends (a query parameter, an archive's
manifest.json). A leaf like reference.py: stdlib and errors only, for any layer.

dockerd answers a malformed `filters` with the words of Go's decoder ("invalid character 'o'
in literal null (expecting 'u')", "json: cannot unmarshal array into Go value of type
map[string]bool"); a client that reads them sees the same here. `syntax_error` walks the text
as Go's scanner does; `kind` names a decoded value as Go's UnmarshalTypeError does.
"""

from __future__ import annotations

import json
from typing import Any

from dockerremote.errors import DockerRemoteError

_WS = b" \t\r\n"


def quote_char(c: int) -> str:
    """Go's scanner quoteChar: the byte in single quotes, escaped like strconv.Quote."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    ch = chr(c)
    if ch.isprintable():
        return f"'{ch}'"
    shown = json.dumps(ch)[1:-1]
    shown = {"\\u0007": "\\a", "\\u000b": "\\v"}.get(shown, shown)
    if shown.startswith("\\u00") and c >= 0x80:
        shown = f"\\u{c:04x}"
    elif shown.startswith("\\u00"):
        shown = f"\\x{c:02x}"
    return f"'{shown}'"


class _Syntax(Exception):
    pass


def syntax_error(text: str) -> str | None:
    """Go's message for the first syntax error in `text`, or None if it is valid JSON."""
    data = text.encode("utf-8", "surrogateescape")
    try:
        end = _value(data, _skip(data, 0))
        end = _skip(data, end)
        if end < len(data):
            raise _Syntax(f"invalid character {quote_char(data[end])} after top-level value")
    except _Syntax as exc:
        return str(exc)
    except IndexError:
        return "unexpected end of JSON input"
    return None


def _skip(d: bytes, i: int) -> int:
    while i < len(d) and d[i] in _WS:
        i += 1
    return i


def _bad(d: bytes, i: int, where: str) -> _Syntax:
    return _Syntax(f"invalid character {quote_char(d[i])} {where}")


def _value(d: bytes, i: int) -> int:
    c = d[i]
    if c == 0x7B:  # {
        i = _skip(d, i + 1)
        if d[i] == 0x7D:
            return i + 1
        while True:
            if d[i] != 0x22:
                raise _bad(d, i, "looking for beginning of object key string")
            i = _skip(d, _string(d, i))
            if d[i] != 0x3A:
                raise _bad(d, i, "after object key")
            i = _skip(d, _value(d, _skip(d, i + 1)))
            if d[i] == 0x7D:
                return i + 1
            if d[i] != 0x2C:
                raise _bad(d, i, "after object key:value pair")
            i = _skip(d, i + 1)
    if c == 0x5B:  # [
        i = _skip(d, i + 1)
        if d[i] == 0x5D:
            return i + 1
        while True:
            i = _skip(d, _value(d, i))
            if d[i] == 0x5D:
                return i + 1
            if d[i] != 0x2C:
                raise _bad(d, i, "after array element")
            i = _skip(d, i + 1)
    if c == 0x22:
        return _string(d, i)
    if c == 0x2D or 0x30 <= c <= 0x39:
        return _number(d, i)
    for word in (b"true", b"false", b"null"):
        if c == word[0]:
            for k in range(1, len(word)):
                if d[i + k] != word[k]:
                    raise _bad(d, i + k, f"in literal {word.decode()} (expecting '{chr(word[k])}')")
            return i + len(word)
    raise _bad(d, i, "looking for beginning of value")


def _string(d: bytes, i: int) -> int:
    i += 1
    while True:
        c = d[i]
        if c == 0x22:
            return i + 1
        if c == 0x5C:
            e = d[i + 1]
            if e == 0x75:  # \u
                for k in range(2, 6):
                    if chr(d[i + k]) not in "0123456789abcdefABCDEF":
                        raise _bad(d, i + k, "in \\u hexadecimal character escape")
                i += 6
                continue
            if e not in b'"\\/bfnrt':
                raise _bad(d, i + 1, "in string escape code")
            i += 2
            continue
        if c < 0x20:
            raise _bad(d, i, "in string literal")
        i += 1


def _number(d: bytes, i: int) -> int:
    n = len(d)
    if d[i] == 0x2D:
        _digit_at(d, i + 1, "in numeric literal")
        i += 1
    if d[i] == 0x30:
        i += 1
    else:
        i = _digits(d, i)
    if i < n and d[i] == 0x2E:
        i = _digits(d, _digit_at(d, i + 1, "after decimal point in numeric literal"))
    if i < n and d[i] in b"eE":
        i += 1
        if i < n and d[i] in b"+-":
            i += 1
        i = _digits(d, _digit_at(d, i, "in exponent of numeric literal"))
    return i


def _digit_at(d: bytes, i: int, where: str) -> int:
    """i, where a digit must be (IndexError past the end: the caller says "unexpected end")."""
    if i >= len(d):
        raise IndexError
    if not 0x30 <= d[i] <= 0x39:
        raise _bad(d, i, where)
    return i


def _digits(d: bytes, i: int) -> int:
    """The index after the run of digits at i."""
    while i < len(d) and 0x30 <= d[i] <= 0x39:
        i += 1
    return i


def kind(value: Any) -> str:
    """How Go's UnmarshalTypeError names a JSON value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"


def type_error(value: Any, go_type: str) -> str:
    return f"json: cannot unmarshal {kind(value)} into Go value of type {go_type}"


def unmarshal_error(value: Any, go_type: str) -> str | None:
    """Why Go's json.Unmarshal cannot put `value` into `go_type` (map[string]T, []T, bool,
    string), or None if it can. null fits anything; the first misfit in document order wins."""
    if value is None:
        return None
    if go_type.startswith("map[string]"):
        if not isinstance(value, dict):
            return type_error(value, go_type)
        return next(filter(None, (unmarshal_error(v, go_type[11:]) for v in value.values())), None)
    if go_type.startswith("[]"):
        if not isinstance(value, list):
            return type_error(value, go_type)
        return next(filter(None, (unmarshal_error(v, go_type[2:]) for v in value)), None)
    fits = isinstance(value, bool) if go_type == "bool" else isinstance(value, str)
    return None if fits else type_error(value, go_type)


def parse_int(text: str, func: str = "ParseInt") -> int:
    """Go's strconv.ParseInt(text, 10, 64) (or Atoi, func="Atoi") with its error texts;
    dockerd answers them with a 500."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise DockerRemoteError(f'strconv.{func}: parsing "{text}": invalid syntax')
    n = int(text)
    if not -(2**63) <= n < 2**63:
        raise DockerRemoteError(f'strconv.{func}: parsing "{text}": value out of range')
    return n
