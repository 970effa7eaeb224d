"""`changes` on import: Dockerfile lines applied to an empty container config.

dockerd 20.10 joins the values with newlines, parses the result as a Dockerfile (buildkit's
parser: continuations, comments, the escape directive, builder flags), refuses any
instruction outside ALLOWED, then dispatches each one with shell-word expansion against the
environment built so far. This module follows those steps in order, so the resulting config
and every error text are the ones dockerd produces.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass
from typing import Any

from dockerremote.errors import InvalidArgument
from dockerremote.transfer.dockerfile import (Node, go_duration_ns, go_quote, go_strip, parse_dockerfile,
                                              process_word, process_words)

ALLOWED = ("cmd", "entrypoint", "healthcheck", "env", "expose", "label", "onbuild", "user",
           "volume", "workdir")

_ONBUILD_PREFIX = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)
_MIN_DURATION_NS = 1_000_000  # container.MinimumDuration


def empty_container_config() -> dict[str, Any]:
    return {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
            "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
            "OnBuild": None, "Labels": None}


# -- instruction parsing (buildkit instructions) and dispatch (moby builder) -------------

def _parse_flags(flags: list[str], defined: dict[str, str] | None = None) -> dict[str, str]:
    """BFlags.Parse with string flags only (HEALTHCHECK's); others accept none."""
    defined = {} if defined is None else defined
    used: dict[str, str] = {}
    for arg in flags:
        if not arg.startswith("--"):
            raise InvalidArgument(f"Arg should start with -- : {arg}")
        if arg == "--":
            break
        name, eq, value = arg[2:].partition("=")
        if name not in defined:
            raise InvalidArgument(f"Unknown flag: {name}")
        if name in used:
            raise InvalidArgument(f"Duplicate flag specified: {name}")
        if not eq:
            raise InvalidArgument(f"Missing a value on flag: {name}")
        used[name] = value
    return used


def _opt_interval(flags: dict[str, str], name: str) -> int:
    value = flags.get(name, "")
    if not value:
        return 0
    try:
        d = go_duration_ns(value)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    if d < _MIN_DURATION_NS:
        raise InvalidArgument(f"Interval {go_quote(name)} cannot be less than 1ms")
    return d


def _healthcheck(node: Node) -> dict[str, Any]:
    if not node.args:
        raise InvalidArgument("HEALTHCHECK requires at least one argument")
    typ, args = node.args[0].upper(), node.args[1:]
    if typ == "NONE":
        if args:
            raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    flags = _parse_flags(node.flags, {"interval": "", "timeout": "", "start-period": "", "retries": ""})
    if typ != "CMD":
        raise InvalidArgument(f"Unknown type {go_quote(typ)} in HEALTHCHECK (try CMD)")
    cmd = _json_args(args, node.json)
    if not cmd:
        raise InvalidArgument("Missing command after HEALTHCHECK CMD")
    hc: dict[str, Any] = {"Test": [typ if node.json else "CMD-SHELL", *cmd]}
    for key, flag in (("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "start-period")):
        value = _opt_interval(flags, flag)
        if value:
            hc[key] = value
    if flags.get("retries"):
        raw = flags["retries"]
        if not re.fullmatch(r"[+-]?[0-9]+", raw):
            raise InvalidArgument(f"strconv.ParseInt: parsing {go_quote(raw)}: invalid syntax")
        retries = int(raw)
        if not -2**31 <= retries < 2**31:
            raise InvalidArgument(f"strconv.ParseInt: parsing {go_quote(raw)}: value out of range")
        if retries < 1:
            raise InvalidArgument(f"--retries must be at least 1 (not {retries})")
        hc["Retries"] = retries
    return hc


def _json_args(args: list[str], is_json: bool) -> list[str]:
    if not args:
        return []
    return list(args) if is_json else [" ".join(args)]


def _kvps(args: list[str], name: str) -> list[tuple[str, str]]:
    if not args:
        raise InvalidArgument(f"{name} requires at least one argument")
    if len(args) % 2:
        raise InvalidArgument(f"Bad input to {name}, too many arguments")
    out = []
    for k, v in zip(args[::2], args[1::2]):
        if not k:
            raise InvalidArgument(f"{name} names can not be blank")
        out.append((k, v))
    return out


def _volumes(node: Node) -> None:
    if not node.args:
        raise InvalidArgument("VOLUME requires at least one argument")
    _parse_flags(node.flags)
    if any(not go_strip(v) for v in node.args):
        raise InvalidArgument("VOLUME specified can not be an empty string")


def _one_arg(node: Node, name: str) -> str:
    if len(node.args) != 1:
        raise InvalidArgument(f"{name} requires exactly one argument")
    _parse_flags(node.flags)
    return node.args[0]


def _split_proto_port(raw: str) -> tuple[str, str]:
    """nat.SplitProtoPort: (proto, port); ("", "") when there is no port."""
    parts = raw.split("/")
    if not raw or not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _port_specs(ports: list[str]) -> list[str]:
    """nat.ParsePortSpecs, keeping only the container side (what EXPOSE records)."""
    out: list[str] = []
    for raw in ports:
        parts = raw.split(":")
        host = parts[-2] if len(parts) >= 2 else ""
        ip = ":".join(parts[:-2]) if len(parts) >= 3 else ""
        proto, port = _split_proto_port(parts[-1])
        ip = ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip
        if ip:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise InvalidArgument(f"Invalid ip address: {ip}") from None
        if not port:
            raise InvalidArgument(f"No port specified: {raw}<empty>")
        rng = _port_range(port)
        if rng is None:
            raise InvalidArgument(f"Invalid containerPort: {port}")
        if host:
            hrng = _port_range(host)
            if hrng is None:
                raise InvalidArgument(f"Invalid hostPort: {host}")
            if rng[1] - rng[0] != hrng[1] - hrng[0] and rng[1] != rng[0]:
                raise InvalidArgument(
                    f"Invalid ranges specified for container and host Ports: {port} and {host}")
        if proto.lower() not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"Invalid proto: {proto}")
        out += [f"{n}/{proto.lower()}" for n in range(rng[0], rng[1] + 1)]
    return out


def _port_range(text: str) -> tuple[int, int] | None:
    lo, dash, hi = text.partition("-")
    if "-" in hi:
        hi = hi.split("-")[0]
    if not re.fullmatch(r"[0-9]+", lo) or (dash and not re.fullmatch(r"[0-9]+", hi)):
        return None
    start, end = int(lo), int(hi) if dash else int(lo)
    if start > 65535 or end > 65535 or end < start:
        return None
    return start, end


def _workdir(current: str, requested: str) -> str:
    if not requested:
        raise InvalidArgument("cannot normalize nothing")
    if requested.startswith("/"):
        return requested  # dockerd keeps an absolute path as written
    return posixpath.normpath(posixpath.join("/", current, requested))


@dataclass
class _State:
    config: dict[str, Any]
    cmd_set: bool = False


def _shell_form(args: list[str], is_json: bool, config: dict[str, Any], empty_as_nil: bool) -> list[str] | None:
    """resolveCmdLine of 20.10: the shell is prepended to any non-nil shell-form line, so a
    bare CMD is ["/bin/sh", "-c"]; ENTRYPOINT turns an empty line into nil."""
    line = _json_args(args, is_json)
    if empty_as_nil and not line:
        return None
    return line if is_json else [*(config.get("Shell") or ["/bin/sh", "-c"]), *line]


def _dispatch(node: Node, st: _State, escape: str) -> None:
    cfg = st.config
    env = list(cfg["Env"] or [])

    def word(w: str) -> str:
        return process_word(w, env, escape)

    cmd = node.cmd
    if cmd == "env":
        _parse_flags(node.flags)
        pairs = [(word(k), word(v)) for k, v in _kvps(node.args, "ENV")]
        cur = list(cfg["Env"] or [])
        for k, v in pairs:
            for i, e in enumerate(cur):
                if e.split("=", 1)[0] == k:
                    cur[i] = f"{k}={v}"
                    break
            else:
                cur.append(f"{k}={v}")
        cfg["Env"] = cur
    elif cmd == "label":
        _parse_flags(node.flags)
        pairs = [(word(k), word(v)) for k, v in _kvps(node.args, "LABEL")]
        labels = dict(cfg["Labels"] or {})
        labels.update(pairs)
        cfg["Labels"] = labels
    elif cmd == "cmd":
        _parse_flags(node.flags)
        cfg["Cmd"] = _shell_form(node.args, node.json, cfg, empty_as_nil=False)
        if node.args:
            st.cmd_set = True
    elif cmd == "entrypoint":
        _parse_flags(node.flags)
        cfg["Entrypoint"] = _shell_form(node.args, node.json, cfg, empty_as_nil=True)
        if not st.cmd_set:
            cfg["Cmd"] = None
    elif cmd == "expose":
        if not node.args:
            raise InvalidArgument("EXPOSE requires at least one argument")
        _parse_flags(node.flags)
        ports = [p for raw in sorted(node.args) for p in process_words(raw, env, escape)]
        exposed = dict(cfg.get("ExposedPorts") or {})
        exposed.update({p: {} for p in _port_specs(ports)})
        cfg["ExposedPorts"] = exposed
    elif cmd == "user":
        cfg["User"] = word(_one_arg(node, "USER"))
    elif cmd == "workdir":
        cfg["WorkingDir"] = _workdir(cfg["WorkingDir"], word(_one_arg(node, "WORKDIR")))
    elif cmd == "volume":
        _volumes(node)
        vols = []
        for v in node.args:
            v = go_strip(v)
            if not v:
                raise InvalidArgument("VOLUME specified can not be an empty string")
            vols.append(v)
        merged = dict(cfg["Volumes"] or {})
        for v in vols:
            v = word(v)
            if not v:
                raise InvalidArgument("VOLUME specified can not be an empty string")
            merged[v] = {}
        cfg["Volumes"] = merged
    elif cmd == "onbuild":
        if not node.args or node.sub is None:
            raise InvalidArgument("ONBUILD requires at least one argument")
        _parse_flags(node.flags)
        trigger = go_strip(node.args[0]).upper()
        if trigger == "ONBUILD":
            raise InvalidArgument("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise InvalidArgument(f"{trigger} isn't allowed as an ONBUILD trigger")
        cfg["OnBuild"] = [*(cfg["OnBuild"] or []), _ONBUILD_PREFIX.sub("", node.original, count=1)]
    elif cmd == "healthcheck":
        cfg["Healthcheck"] = _healthcheck(node)


def _validate(node: Node) -> None:
    """instructions.Parse errors that come before any dispatch (in source order)."""
    cmd = node.cmd
    if cmd in ("env", "label"):
        _parse_flags(node.flags)
        _kvps(node.args, cmd.upper())
    elif cmd in ("cmd", "entrypoint"):
        _parse_flags(node.flags)
    elif cmd == "volume":
        _volumes(node)
    elif cmd == "expose":
        if not node.args:
            raise InvalidArgument("EXPOSE requires at least one argument")
        _parse_flags(node.flags)
    elif cmd in ("user", "workdir"):
        _one_arg(node, cmd.upper())
    elif cmd == "onbuild":
        if not node.args:
            raise InvalidArgument("ONBUILD requires at least one argument")
        _parse_flags(node.flags)
        trigger = go_strip(node.args[0]).upper()
        if trigger == "ONBUILD":
            raise InvalidArgument("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise InvalidArgument(f"{trigger} isn't allowed as an ONBUILD trigger")
    elif cmd == "healthcheck":
        _healthcheck(node)


def apply_changes(changes: list[str]) -> dict[str, Any]:
    """A container config with the change lines applied, as dockerd's BuildFromConfig does."""
    cfg = empty_container_config()
    if not changes:
        return cfg
    nodes, escape = parse_dockerfile("\n".join(changes))
    for node in nodes:
        if node.cmd not in ALLOWED:
            raise InvalidArgument(f"{node.cmd} is not a valid change command")
    for node in nodes:
        _validate(node)
    st = _State(cfg)
    for node in nodes:
        _dispatch(node, st, escape)
    return cfg
