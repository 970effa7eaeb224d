"""The JSON `platform` query parameters of API 1.46+ (push, history, save, load, inspect, delete).

Unlike /images/create's `os/arch[/variant]` string, these carry a JSON OCI platform such as
`{"os":"linux","architecture":"arm64","variant":"v8"}`. The checks and texts are moby's
httputils.DecodePlatform(s); each parameter exists only from the API version its row in
versions.SWITCHES names, and an older request's value is ignored, as moby does.
"""

from __future__ import annotations

import json
from typing import Any

from dockerremote.api.versions import ApiVersion
from dockerremote.errors import InvalidArgument
from dockerremote.oci.platform import Platform

_FIELDS = {"architecture": str, "os": str, "os.version": str, "variant": str, "os.features": list}


def _go_json_error(text: str, exc: json.JSONDecodeError) -> str:
    """encoding/json's wording for the usual mistakes (Python's differs)."""
    if not text.strip() or exc.msg.startswith("Expecting value") and exc.pos >= len(text.rstrip()):
        return "unexpected end of JSON input"
    if exc.pos < len(text) and exc.msg.startswith("Expecting value"):
        return f"invalid character '{text[exc.pos]}' looking for beginning of value"
    if exc.pos >= len(text):
        return "unexpected end of JSON input"
    return f"invalid character '{text[exc.pos]}' {exc.msg[0].lower() + exc.msg[1:]}"


def decode(text: str) -> Platform:
    """One JSON OCI platform; 400 (InvalidArgument) with moby's texts when it is not one."""
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"failed to parse platform: {_go_json_error(text, exc)}") from None
    if not isinstance(value, dict):
        kind = {list: "array", str: "string", bool: "bool", type(None): "null"}.get(type(value), "number")
        if value is not None:  # Go decodes a JSON null into a struct as "nothing set"
            raise InvalidArgument(f"failed to parse platform: json: cannot unmarshal {kind} into Go value "
                                  "of type v1.Platform")
        value = {}
    for key, typ in _FIELDS.items():
        if key in value and value[key] is not None and not isinstance(value[key], typ):
            raise InvalidArgument(f"failed to parse platform: json: cannot unmarshal "
                                  f"{type(value[key]).__name__} into Go struct field Platform.{key} of type "
                                  f"{'string' if typ is str else '[]string'}")
    os_, arch = value.get("os") or "", value.get("architecture") or ""
    variant, os_version = value.get("variant") or "", value.get("os.version") or ""
    if not os_ and not arch and (variant or os_version or value.get("os.features")):
        raise InvalidArgument("optional platform fields provided, but OS and Architecture are missing")
    if not os_ or not arch:
        raise InvalidArgument("both OS and Architecture must be provided")
    return Platform(os_, arch, variant, os_version)


def one(query: Any, name: str, version: ApiVersion, switch: str) -> Platform | None:
    """A single-valued platform parameter: None when absent, empty or older than `switch`."""
    if not version.has(switch):
        return None
    text = query.get(name, "")
    return decode(text) if text else None


def several(query: Any, name: str, version: ApiVersion, switch: str,
            multi_switch: str | None = None) -> list[Platform]:
    """A repeatable platform parameter (save, load, delete): every value decoded; before
    `multi_switch` more than one value is refused with moby's text."""
    if not version.has(switch):
        return []
    values = query.getall(name, [])
    if multi_switch is not None and not version.has(multi_switch) and len(values) > 1:
        raise InvalidArgument("multiple platform parameters are not supported in this API version; "
                              "use API version 1.52 or later")
    return [decode(v) for v in values]
