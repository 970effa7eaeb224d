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


# daemon.json key → Settings attribute
_FILE_KEYS = {
    "data-root": "data_root",
    "hosts": "hosts",
    "registry-mirrors": "registry_mirrors",
    "insecure-registries": "insecure_registries",
    "max-concurrent-downloads": "max_concurrent_downloads",
    "max-concurrent-uploads": "max_concurrent_uploads",
    "log-level": "log_level",
    "tls": "tls",
    "tlsverify": "tlsverify",
    "tlscacert": "tlscacert",
    "tlscert": "tlscert",
    "tlskey": "tlskey",
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
        raise InvalidArgument(f"the following directives don't match any configuration option: {', '.join(unknown)}")
    return {_FILE_KEYS[k]: v for k, v in data.items()}


def build(file_values: dict[str, Any], flag_values: dict[str, Any]) -> Settings:
    """Flags win over the file, as long as they were given (None = not given)."""
    s = Settings()
    for source in (file_values, {k: v for k, v in flag_values.items() if v not in (None, [])}):
        for key, value in source.items():
            setattr(s, key, value)
    s.data_root = Path(s.data_root).expanduser().absolute()
    for name in ("max_concurrent_downloads", "max_concurrent_uploads"):
        if int(getattr(s, name)) < 1:
            raise InvalidArgument(f"{name.replace('_', '-')} must be at least 1")
        setattr(s, name, int(getattr(s, name)))
    return s
