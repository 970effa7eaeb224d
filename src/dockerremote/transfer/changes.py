"""`changes` on import: Dockerfile lines applied to an empty container config.

dockerd 20.10 joins the values with newlines, parses the result as a Dockerfile (buildkit's
parser: continuations, comments, the escape directive, builder flags), refuses any
instruction outside ALLOWED, then dispatches each one with shell-word expansion against the
environment built so far. This module follows those steps in order, so the resulting config
and every error text are the ones dockerd produces.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from dockerremote.errors import InvalidArgument

ALLOWED = ("cmd", "entrypoint", "healthcheck", "env", "expose", "label", "onbuild", "user",
           "volume", "workdir")

_WS_SPLIT = re.compile(r"[\t\v\f\r ]+")
_ESCAPE_DIRECTIVE = re.compile(r"^#[ \t]*escape[ \t]*=[ \t]*(.).*$")
_ONBUILD_PREFIX = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)
_GO_SPACE = set("\t\n\v\f\r \x85\xa0")
_MIN_DURATION_NS = 1_000_000  # container.MinimumDuration


class _NotStringArray(ValueError):
    pass


_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


def empty_container_config() -> dict[str, Any]:
    return {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
            "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
            "OnBuild": None, "Labels": None}


def _is_space(ch: str) -> bool:
    """Go's unicode.IsSpace (Python's isspace also counts \\x1c-\\x1f)."""
    return ch in _GO_SPACE or (ord(ch) > 0xff and ch.isspace())


def _lstrip(s: str) -> str:
    i = 0
    while i < len(s) and _is_space(s[i]):
        i += 1
    return s[i:]


def _strip(s: str) -> str:
    s = _lstrip(s)
    j = len(s)
    while j > 0 and _is_space(s[j - 1]):
        j -= 1
    return s[:j]


def go_quote(s: str) -> str:
    """Go's %q for a string (strconv.Quote)."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xffff:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out) + '"'


# -- the line parser (buildkit frontend/dockerfile/parser) -------------------------------

@dataclass
class Node:
    cmd: str                      # lowercased instruction
    original: str                 # the joined line, as the parser kept it
    flags: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    json: bool = False            # JSON (exec) form
    sub: "Node | None" = None     # ONBUILD's trigger


class _Directives:
    def __init__(self) -> None:
        self.escape = "\\"
        self.escape_seen = False
        self.done = False
        self.continuation = re.compile(r"\\[ \t]*$")

    def possible_directive(self, line: str) -> None:
        if self.done:
            return
        m = _ESCAPE_DIRECTIVE.match(line.lower())
        if m:
            if self.escape_seen:
                raise InvalidArgument("only one escape parser directive can be used")
            self.escape_seen = True
            token = m.group(1)
            if token not in ("`", "\\"):
                raise InvalidArgument(f"invalid ESCAPE '{token}'. Must be ` or \\")
            self.escape = token
            self.continuation = re.compile(re.escape(token) + r"[ \t]*$")
            return
        self.done = True


def _is_comment(line: str) -> bool:
    return _lstrip(line).startswith("#")


def _process_line(d: _Directives, line: str, strip_left: bool) -> str:
    if strip_left:
        line = _lstrip(line)
    d.possible_directive(line)
    return "" if line.startswith("#") else line


def _trim_continuation(line: str, d: _Directives) -> tuple[str, bool]:
    if d.continuation.search(line):
        return d.continuation.sub("", line), False
    return line, True


def parse_dockerfile(text: str) -> tuple[list[Node], str]:
    """The instructions of a Dockerfile text and its escape token."""
    d = _Directives()
    lines = text.split("\n")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    if text.endswith("\n"):
        lines.pop()  # bufio.Scanner yields no empty last line
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    nodes: list[Node] = []
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        line, end = _trim_continuation(_process_line(d, raw, True), d)
        if end and line == "":
            continue
        while not end and i < len(lines):
            raw = lines[i]
            i += 1
            cont = _process_line(d, raw, False)
            if _is_comment(raw) or not _lstrip(cont):
                continue
            cont, end = _trim_continuation(cont, d)
            line += cont
        nodes.append(_node_from_line(line, d))
    if not nodes:
        raise InvalidArgument("file with no instructions")
    return nodes, d.escape


def _node_from_line(line: str, d: _Directives) -> Node:
    parts = _WS_SPLIT.split(_strip(line), maxsplit=1)
    cmd = parts[0].lower()
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1])
    rest = _strip(rest)
    node = Node(cmd, line, flags)
    if cmd in ("cmd", "entrypoint", "run", "shell"):
        node.args, node.json = _maybe_json(rest)
    elif cmd in ("add", "copy", "volume"):
        node.args, node.json = _maybe_json_list(rest)
    elif cmd in ("env", "label"):
        node.args = _name_val(rest, cmd.upper(), d)
    elif cmd in ("expose", "from"):
        node.args = [w for w in _WS_SPLIT.split(rest)] if rest else []
    elif cmd == "healthcheck":
        node.args, node.json = _health_args(rest)
    elif cmd == "onbuild":
        if rest:
            node.sub = _node_from_line(rest, d)
            node.args = [node.sub.cmd, rest]
    elif cmd == "arg":
        node.args = [rest] if rest else []
    elif cmd in ("maintainer", "stopsignal", "user", "workdir"):
        node.args = [rest] if rest else []
    return node


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """Leading `--name[=value]` words (extractBuilderFlags); returns (rest, flags)."""
    words: list[str] = []
    word, phase, quote, blank_ok = "", "spaces", "", False
    pos, n = 0, len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                break
            if _is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = "word"
        if pos == n:
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == "word":
            if _is_space(ch):
                phase = "spaces"
                if word == "--":
                    return line[pos:], words
                if blank_ok or word:
                    words.append(word)
                word, blank_ok = "", False
            elif ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
            elif ch == "\\":
                if pos + 1 < n:
                    pos += 1
                    word += line[pos]
            else:
                word += ch
        else:  # in a quote
            if ch == quote:
                phase = "word"
            elif ch == "\\":
                if pos + 1 == n:
                    phase = "word"
                else:
                    pos += 1
                    word += line[pos]
            else:
                word += ch
        pos += 1
    return "", words


def _json_array(rest: str) -> list[str]:
    """parseJSON: a string array at the start of `rest` (Go's decoder ignores what follows)."""
    rest = _lstrip(rest)
    if not rest.startswith("["):
        raise ValueError("not JSON")

    def no_constants(name: str) -> Any:
        raise ValueError(name)  # Go's JSON has no NaN/Infinity

    value, _ = json.JSONDecoder(parse_constant=no_constants).raw_decode(rest)
    if not isinstance(value, list):
        raise ValueError("not an array")
    if not all(isinstance(v, str) for v in value):
        raise _NotStringArray()
    return value


def _maybe_json(rest: str) -> tuple[list[str], bool]:
    if not rest:
        return [], False
    try:
        return _json_array(rest), True
    except _NotStringArray:
        raise InvalidArgument(_NOT_STRING_ARRAY) from None
    except ValueError:
        return [rest], False


def _maybe_json_list(rest: str) -> tuple[list[str], bool]:
    try:
        return _json_array(rest), True
    except _NotStringArray:
        raise InvalidArgument(_NOT_STRING_ARRAY) from None
    except ValueError:
        return ([w for w in _WS_SPLIT.split(rest)] if rest else []), False


def _health_args(rest: str) -> tuple[list[str], bool]:
    sep = 0
    while sep < len(rest) and not _is_space(rest[sep]):
        sep += 1
    if sep == 0:
        return [], False
    nxt = sep
    while nxt < len(rest) and _is_space(rest[nxt]):
        nxt += 1
    args, is_json = _maybe_json(rest[nxt:])
    return [rest[:sep], *args], is_json


def _parse_words(rest: str, escape: str) -> list[str]:
    """parseWords: split on blanks outside quotes; quotes and escapes are kept for later."""
    words: list[str] = []
    word, phase, quote, blank_ok = "", "spaces", "", False
    pos, n = 0, len(rest)
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                break
            if _is_space(ch):
                pos += 1
                continue
            phase = "word"
        if pos == n:
            if blank_ok or word:
                words.append(word)
            break
        if phase == "word":
            if _is_space(ch):
                phase = "spaces"
                if blank_ok or word:
                    words.append(word)
                word, blank_ok = "", False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                word += ch
                pos += 1
                ch = rest[pos]
            word += ch
        else:
            if ch == quote:
                phase = "word"
            if ch == escape and quote != "'":
                if pos + 1 == n:
                    phase = "word"
                    pos += 1
                    continue
                word += ch
                pos += 1
                ch = rest[pos]
            word += ch
        pos += 1
    return words


def _name_val(rest: str, key: str, d: _Directives) -> list[str]:
    """ENV/LABEL: `k v...` (old form) or `k=v k2=v2` → flat [k, v, k2, v2]."""
    words = _parse_words(rest, d.escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WS_SPLIT.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise InvalidArgument(f"{key} must have two arguments")
        return [parts[0], parts[1]]
    out: list[str] = []
    for w in words:
        if "=" not in w:
            raise InvalidArgument(f"Syntax error - can't find = in {go_quote(w)}. Must be of the form: name=value")
        k, _, v = w.partition("=")
        out += [k, v]
    return out


# -- shell-word expansion (buildkit frontend/dockerfile/shell) ---------------------------

class _Scanner:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch


class _Words:
    def __init__(self) -> None:
        self.word, self.words, self.in_word = "", [], False

    def add_char(self, ch: str) -> None:
        if _is_space(ch):
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word, self.in_word = "", False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.word += s
        self.in_word = True

    def get(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word, self.in_word = "", False
        return self.words


class _Shell:
    def __init__(self, text: str, env: dict[str, str], escape: str) -> None:
        self.s, self.env, self.escape = _Scanner(text), env, escape

    def process(self, stop: str = "") -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self.s.peek():
            ch = self.s.peek()
            if stop and ch == stop:
                self.s.next()
                return "".join(result), words.get()
            if ch in "'\"$":
                tmp = {"'": self._single, '"': self._double, "$": self._dollar}[ch]()
                result.append(tmp)
                if ch == "$":
                    words.add_string(tmp)
                else:
                    words.add_raw_string(tmp)
                continue
            ch = self.s.next()
            if ch == self.escape:
                ch = self.s.next()
                if not ch:
                    break
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop:
            raise ValueError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get()

    def _single(self) -> str:
        self.s.next()
        out = []
        while True:
            ch = self.s.next()
            if not ch:
                raise ValueError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def _double(self) -> str:
        self.s.next()
        out = []
        while True:
            ch = self.s.peek()
            if not ch:
                raise ValueError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.s.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            ch = self.s.next()
            if ch == self.escape:
                nxt = self.s.peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self.s.next()
            out.append(ch)

    def _name(self) -> str:
        name = []
        while self.s.peek():
            ch = self.s.peek()
            if not name and ch.isdigit():
                while self.s.peek() and self.s.peek().isdigit():
                    name.append(self.s.next())
                return "".join(name)
            if not name and ch in "@*#?-$!0":
                return self.s.next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            name.append(self.s.next())
        return "".join(name)

    def _dollar(self) -> str:
        self.s.next()
        if self.s.peek() != "{":
            name = self._name()
            return "$" if not name else self.env.get(name, "")
        self.s.next()
        if not self.s.peek():
            raise ValueError("syntax error: missing '}'")
        if self.s.peek() in "{}:":
            raise ValueError("syntax error: bad substitution")
        name = self._name()
        ch = self.s.next()
        if ch == "}":
            return self.env.get(name, "")
        if ch == ":":
            modifier = self.s.next()
            try:
                word, _ = self.process("}")
            except ValueError:
                if not self.s.peek():
                    raise ValueError("syntax error: missing '}'") from None
                raise
            found = name in self.env
            value = self.env.get(name, "")
            if modifier == "+":
                return word if value else value
            if modifier == "-":
                return word if not value else value
            if modifier == "?":
                if not found:
                    raise ValueError(f"{name}: {word or 'is not allowed to be unset'}")
                if not value:
                    raise ValueError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            raise ValueError(f"unsupported modifier ({modifier}) in substitution")
        raise ValueError("missing ':' in substitution")


def _env_map(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in env or []:
        k, _, v = e.partition("=")
        out[k] = v
    return out


def process_word(word: str, env: list[str] | None, escape: str = "\\") -> str:
    try:
        return _Shell(word, _env_map(env), escape).process()[0]
    except ValueError as exc:
        raise InvalidArgument(f"failed to process {go_quote(word)}: {exc}") from None


def process_words(word: str, env: list[str] | None, escape: str = "\\") -> list[str]:
    try:
        return _Shell(word, _env_map(env), escape).process()[1]
    except ValueError as exc:
        raise InvalidArgument(f"failed to process {go_quote(word)}: {exc}") from None


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


_NANOS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
          "h": 3600 * 10**9}


def go_duration_ns(text: str) -> int:
    """time.ParseDuration → nanoseconds, with Go's error texts (ValueError)."""
    orig, s, neg = text, text, False
    if s and s[0] in "+-":
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"time: invalid duration {go_quote(orig)}")
    total = 0
    while s:
        m = re.match(r"([0-9]*)(\.[0-9]*)?", s)
        assert m is not None
        whole, frac = m.group(1), m.group(2) or ""
        if not whole and len(frac) <= 1:
            raise ValueError(f"time: invalid duration {go_quote(orig)}")
        s = s[m.end():]
        u = re.match(r"[^0-9.]*", s)
        assert u is not None
        unit = u.group(0)
        if not unit:
            raise ValueError(f"time: missing unit in duration {go_quote(orig)}")
        if unit not in _NANOS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(orig)}")
        s = s[u.end():]
        scale = _NANOS[unit]
        value = int(whole or "0") * scale
        if len(frac) > 1:
            digits = frac[1:]
            value += int(digits) * scale // 10 ** len(digits)
        total += value
        if total > 2**63 - 1:
            raise ValueError(f"time: invalid duration {go_quote(orig)}")
    return -total if neg else total


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
    if any(not _strip(v) for v in node.args):
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
            v = _strip(v)
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
        trigger = _strip(node.args[0]).upper()
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
        trigger = _strip(node.args[0]).upper()
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
