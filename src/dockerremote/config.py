"""One typed settings object, from a daemon.json-style file and dockerd-named flags."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockerremote.errors import InvalidArgument


def default_data_root() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "dockerremote"


def default_host() -> str:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return f"unix://{runtime}/dockerremote.sock"
    return f"unix://{default_data_root()}/dockerremote.sock"


@dataclass
class Settings:
    data_root: Path = field(default_factory=default_data_root)
    hosts: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    insecure_registries: list[str] = field(default_factory=list)
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    log_level: str = "info"
    allow_nonloopback: bool = False
    tls: bool = False
    tlsverify: bool = False
    tlscacert: str | None = None   # None: dockerd's defaults (tls.cert_dir())
    tlscert: str | None = None
    tlskey: str | None = None

    @property
    def tls_enabled(self) -> bool:
        """--tlsverify implies --tls, as in dockerd."""
        return bool(self.tls or self.tlsverify)

    def effective_hosts(self) -> list[str]:
        return self.hosts or [default_host()]


# daemon.json key → the Go type dockerd decodes it into; the Settings attribute is the key
# with '_' for '-'
_FILE_KEYS = {
    "data-root": "string",
    "hosts": "[]string",
    "registry-mirrors": "[]string",
    "insecure-registries": "[]string",
    "max-concurrent-downloads": "int",
    "max-concurrent-uploads": "int",
    "log-level": "string",
    "tls": "bool",
    "tlsverify": "bool",
    "tlscacert": "string",
    "tlscert": "string",
    "tlskey": "string",
}


def load_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"unable to configure the daemon with file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"unable to configure the daemon with file {path}: not an object")
    unknown = [k for k in data if k not in _FILE_KEYS]
    if unknown:
        raise InvalidArgument(f"unable to configure the daemon with file {path}: the following directives "
                              f"don't match any configuration option: {', '.join(unknown)}")
    for key, value in data.items():
        want = _FILE_KEYS[key]
        ok = (isinstance(value, list) and all(isinstance(x, str) for x in value) if want == "[]string"
              else isinstance(value, int) and not isinstance(value, bool) if want == "int"
              else isinstance(value, bool) if want == "bool" else isinstance(value, str))
        if not ok:
            raise InvalidArgument(f"unable to configure the daemon with file {path}: json: cannot unmarshal "
                                  f"{_json_kind(value)} into Go struct field Config.{key} of type {want}")
    return {_attribute(k): v for k, v in data.items()}


def _attribute(key: str) -> str:
    return key.replace("-", "_")


def _json_kind(v: Any) -> str:
    return {bool: "bool", str: "string", list: "array", dict: "object", type(None): "null"}.get(
        type(v), "number")


def _go_value(v: Any) -> str:
    """A value as Go's %v prints it in dockerd's conflict message: lists as [a b]."""
    if isinstance(v, list):
        return "[" + " ".join(_go_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def build(file_values: dict[str, Any], flag_values: dict[str, Any]) -> Settings:
    """The file's values, then the flags that were given (None or [] = not given). A setting
    both in the file and on the command line is an error, as in dockerd."""
    given = {k: v for k, v in flag_values.items() if v not in (None, [])}
    keys = {_attribute(key): key for key in _FILE_KEYS}
    conflicts = [f"{keys[k]}: (from flag: {_go_value(v)}, from file: {_go_value(file_values[k])})"
                 for k, v in given.items() if k in file_values and k in keys]
    if conflicts:
        raise InvalidArgument("the following directives are specified both as a flag and in the "
                              f"configuration file: {', '.join(conflicts)}")
    s = Settings()
    for source in (file_values, given):
        for key, value in source.items():
            setattr(s, key, value)
    s.data_root = Path(s.data_root).expanduser().absolute()
    for name in ("max_concurrent_downloads", "max_concurrent_uploads"):
        if int(getattr(s, name)) < 1:
            raise InvalidArgument(f"{name.replace('_', '-')} must be at least 1")
        setattr(s, name, int(getattr(s, name)))
    return s
