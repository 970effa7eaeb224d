"""Reading image config JSON (the bytes whose sha256 is the image ID) and Go-style times."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class ConfigSummary:
    """What the index needs from a config: the rest is read from the blob when asked."""

    created: str  # as written in the config, "" when absent
    created_unix: int
    labels: dict[str, str] | None
    os: str
    architecture: str
    diff_ids: list[str]
    history: list[dict]


# Container config keys in Go's struct order; those marked True are omitted when empty.
_CONTAINER_CONFIG = [
    ("Hostname", "", False), ("Domainname", "", False), ("User", "", False),
    ("AttachStdin", False, False), ("AttachStdout", False, False), ("AttachStderr", False, False),
    ("ExposedPorts", None, True), ("Tty", False, False), ("OpenStdin", False, False),
    ("StdinOnce", False, False), ("Env", None, False), ("Cmd", None, False),
    ("Healthcheck", None, True), ("ArgsEscaped", False, True), ("Image", "", False),
    ("Volumes", None, False), ("WorkingDir", "", False), ("Entrypoint", None, False),
    ("NetworkDisabled", False, True), ("MacAddress", "", True), ("OnBuild", None, False),
    ("Labels", None, False), ("StopSignal", "", True), ("StopTimeout", None, True),
    ("Shell", None, True),
]


def container_config(raw: Any) -> dict[str, Any]:
    """A container config as Go re-marshals it: fixed key order, unknown keys dropped."""
    raw = raw if isinstance(raw, dict) else {}
    out: dict[str, Any] = {}
    for key, zero, omitempty in _CONTAINER_CONFIG:
        value = raw.get(key, zero)
        if value is None:
            value = zero
        if omitempty and (value == zero or value in ({}, [])):
            continue
        out[key] = value
    return out


class ConfigError(ValueError):
    pass


def parse_time(s: str) -> tuple[int, int]:
    """RFC3339(Nano) → (unix seconds, nanoseconds). Raises ValueError."""
    m = _RFC3339.match(s)
    if not m:
        raise ValueError(f"bad time {s!r}")
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    if tz in ("Z", "z"):
        tzinfo = timezone.utc
    else:
        from datetime import timedelta

        sign = 1 if tz[0] == "+" else -1
        tzinfo = timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec), tzinfo=tzinfo)
    nanos = int((frac or "0")[:9].ljust(9, "0"))
    return int(dt.timestamp()), nanos


def format_time(seconds: int, nanos: int = 0) -> str:
    """Go's RFC3339Nano in UTC: trailing fraction zeros dropped."""
    base = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{nanos:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else base + "Z"


def normalize_time(s: str) -> str:
    """A config time re-rendered as Go's RFC3339Nano does (keeps a non-UTC offset)."""
    m = _RFC3339.match(s)
    if not m:
        return s
    frac = (m.group(7) or "")[:9].rstrip("0")
    tz = m.group(8)
    tz = "Z" if tz in ("Z", "z", "+00:00") else tz  # Go prints a zero offset as Z in a UTC daemon
    head = s[:19].replace("t", "T").replace(" ", "T")
    return head + ("." + frac if frac else "") + tz


def summarize(config_bytes: bytes) -> ConfigSummary:
    try:
        cfg = json.loads(config_bytes)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid image config: {exc}") from exc
    if not isinstance(cfg, dict):
        raise ConfigError("invalid image config: not an object")
    created = cfg.get("created") or ""
    created_unix = 0
    if created:
        try:
            created_unix = parse_time(created)[0]
        except ValueError as exc:
            raise ConfigError(f"invalid image config: {exc}") from exc
    inner = cfg.get("config") or {}
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    rootfs = cfg.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") or [] if isinstance(rootfs, dict) else []
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise ConfigError("invalid image config: bad rootfs.diff_ids")
    history = cfg.get("history") or []
    return ConfigSummary(
        created=created,
        created_unix=created_unix,
        labels=labels if isinstance(labels, dict) else None,
        os=str(cfg.get("os") or ""),
        architecture=str(cfg.get("architecture") or ""),
        diff_ids=list(diff_ids),
        history=history if isinstance(history, list) else [],
    )
