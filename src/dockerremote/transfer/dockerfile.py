"""The Dockerfile text layer dockerd 20.10 uses for `changes` (buildkit's parser and shell lexer).

parse_dockerfile() splits the text into instruction nodes the way buildkit's parser does
(continuations, comments, the escape directive, builder flags, JSON or shell forms, ENV/LABEL
words with their quotes kept); process_word(s) expand `$VAR`, `${VAR:-x}` and quotes like
its shell lexer. Also Go's %q and time.ParseDuration, for error texts that match.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from dockerremote.errors import InvalidArgument

_WS_SPLIT = re.compile(r"[\t\v\f\r ]+")
_ESCAPE_DIRECTIVE = re.compile(r"^#[ \t]*escape[ \t]*=[ \t]*(.).*$")
_GO_SPACE = set("\t\n\v\f\r \x85\xa0")


class _NotStringArray(ValueError):
    pass


_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


def _is_space(ch: str) -> bool:
    """Go's unicode.IsSpace (Python's isspace also counts \\x1c-\\x1f)."""
    return ch in _GO_SPACE or (ord(ch) > 0xff and ch.isspace())


def _lstrip(s: str) -> str:
    i = 0
    while i < len(s) and _is_space(s[i]):
        i += 1
    return s[i:]


def go_strip(s: str) -> str:
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
    parts = _WS_SPLIT.split(go_strip(line), maxsplit=1)
    cmd = parts[0].lower()
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1])
    rest = go_strip(rest)
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
