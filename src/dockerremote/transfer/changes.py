"""`changes` on import: Dockerfile lines applied to an empty container config (dockerd's set)."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from typing import Any

from dockerremote.errors import InvalidArgument

ALLOWED = {"cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild", "user",
           "volume", "workdir"}


def empty_container_config() -> dict[str, Any]:
    return {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
            "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
            "OnBuild": None, "Labels": None}


def _json_or_shell(rest: str) -> list[str]:
    rest = rest.strip()
    if rest.startswith("["):
        try:
            value = json.loads(rest)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        except ValueError:
            pass
    return ["/bin/sh", "-c", rest]


def _json_or_words(rest: str) -> list[str]:
    rest = rest.strip()
    if rest.startswith("["):
        try:
            value = json.loads(rest)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        except ValueError:
            pass
    return rest.split()


def _pairs(instr: str, rest: str) -> list[tuple[str, str]]:
    """ENV/LABEL: `k=v k2="v 2"` or the legacy `k value with spaces`."""
    rest = rest.strip()
    if not rest:
        raise InvalidArgument(f"{instr} requires at least one argument")
    words = shlex.split(rest, posix=True) if "=" in rest.split(None, 1)[0] else None
    if words is None:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise InvalidArgument(f"{instr} must have two arguments")
        return [(parts[0], parts[1])]
    out = []
    for w in words:
        k, sep, v = w.partition("=")
        if not sep or not k:
            raise InvalidArgument(f"Syntax error - can't find = in \"{w}\". Must be of the form: name=value")
        out.append((k, v))
    return out


def _expose(ports: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for p in ports:
        port, _, proto = p.partition("/")
        proto = (proto or "tcp").lower()
        if not re.fullmatch(r"\d+(-\d+)?", port) or proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"Invalid containerPort: {p}")
        lo, _, hi = port.partition("-")
        for n in range(int(lo), int(hi or lo) + 1):
            out[f"{n}/{proto}"] = {}
    return out


_DURATION = re.compile(r"^(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)$")
_NANOS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def _duration_ns(text: str) -> int:
    total, pos = 0, 0
    for m in re.finditer(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", text):
        if m.start() != pos:
            break
        total += int(float(m.group(1)) * _NANOS[m.group(2)])
        pos = m.end()
    if pos != len(text) or not text:
        raise InvalidArgument(f"time: invalid duration \"{text}\"")
    return total


def _healthcheck(rest: str) -> dict[str, Any]:
    words = rest.strip().split(None)
    if words and words[0].upper() == "NONE":
        if len(words) > 1:
            raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    hc: dict[str, Any] = {}
    keys = {"--interval": "Interval", "--timeout": "Timeout", "--start-period": "StartPeriod",
            "--retries": "Retries"}
    body = rest.strip()
    while body.startswith("--"):
        flag, _, body = body.partition(" ")
        name, _, value = flag.partition("=")
        if name not in keys:
            raise InvalidArgument(f"Unknown flag: {name[2:]}")
        hc[keys[name]] = int(value) if name == "--retries" else _duration_ns(value)
        body = body.lstrip()
    cmd, _, args = body.partition(" ")
    if cmd.upper() != "CMD":
        raise InvalidArgument(f"Unknown type \"{cmd.upper()}\" in HEALTHCHECK (try CMD)")
    argv = _json_or_shell(args)
    test = ["CMD", *argv] if args.strip().startswith("[") else ["CMD-SHELL", args.strip()]
    return {"Test": test, **hc}


def apply_changes(changes: list[str]) -> dict[str, Any]:
    """A container config with each change line applied in order."""
    cfg = empty_container_config()
    cmd_set = False
    for line in changes:
        line = line.strip()
        if not line:
            continue
        instr, _, rest = line.partition(" ")
        if "\t" in instr:
            instr, _, more = instr.partition("\t")
            rest = more + " " + rest
        key = instr.lower()
        if key not in ALLOWED:
            raise InvalidArgument(f"{key} is not a valid change command")
        rest = rest.strip()
        if key == "cmd":
            cfg["Cmd"] = _json_or_shell(rest)
            cmd_set = True
        elif key == "entrypoint":
            cfg["Entrypoint"] = _json_or_shell(rest) if rest else None
            if not cmd_set:
                cfg["Cmd"] = None
        elif key == "env":
            env = list(cfg["Env"] or [])
            for k, v in _pairs("ENV", rest):
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            cfg["Env"] = env
        elif key == "label":
            labels = dict(cfg["Labels"] or {})
            labels.update(_pairs("LABEL", rest))
            cfg["Labels"] = labels
        elif key == "expose":
            cfg["ExposedPorts"] = {**(cfg.get("ExposedPorts") or {}), **_expose(rest.split())}
        elif key == "user":
            cfg["User"] = rest
        elif key == "workdir":
            cfg["WorkingDir"] = posixpath.join("/", cfg["WorkingDir"] or "/", rest)
        elif key == "volume":
            vols = dict(cfg["Volumes"] or {})
            for v in _json_or_words(rest):
                vols[v] = {}
            cfg["Volumes"] = vols
        elif key == "onbuild":
            trigger = rest.split(None, 1)[0].upper() if rest else ""
            if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
                raise InvalidArgument(f"{trigger} isn't allowed as an ONBUILD trigger")
            cfg["OnBuild"] = [*(cfg["OnBuild"] or []), rest]
        elif key == "healthcheck":
            cfg["Healthcheck"] = _healthcheck(rest)
    return cfg
