"""Platforms (`os/arch/variant`): parse, normalize and match as dockerd 20.10 does.

dockerd uses containerd's `platforms` package: a specifier is parsed component by
component, names are normalized (x86_64 is amd64, aarch64 is arm64, arm64/v8 is plain
arm64, arm alone is arm/v7) and a manifest list entry matches when the normalized
os, architecture and variant are all equal. Error texts are containerd's, with the
`: invalid argument` suffix its error wrapping adds.
"""

from __future__ import annotations

import platform as _host
import re
from dataclasses import dataclass
from typing import Any, Iterable

from dockerremote.errors import InvalidArgument

_COMPONENT = re.compile(r"^[A-Za-z0-9_-]+$")
_KNOWN_OS = {"aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
             "nacl", "netbsd", "openbsd", "plan9", "solaris", "windows", "zos"}
_KNOWN_ARCH = {"386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le",
               "loong64", "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc",
               "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm"}
# uname -m → Go's GOARCH, for the host default
_MACHINE = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
            "i686": "386", "armv6l": "arm", "armv7l": "arm", "armv8l": "arm", "s390x": "s390x",
            "ppc64le": "ppc64le", "riscv64": "riscv64", "mips64": "mips64"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""

    def __str__(self) -> str:
        """containerd's platforms.Format: os/arch[/variant]."""
        parts = [self.os or "unknown", self.architecture or "unknown"]
        if self.variant:
            parts.append(self.variant)
        return "/".join(parts)

    def normalized(self) -> "Platform":
        arch, variant = normalize_arch(self.architecture, self.variant)
        return Platform(normalize_os(self.os), arch, variant, self.os_version)

    def to_json(self) -> dict[str, Any]:
        """The OCI platform object (omitempty fields left out), as /distribution returns it."""
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.variant:
            out["variant"] = self.variant
        return out


def normalize_os(os_: str) -> str:
    os_ = os_.lower()
    return "darwin" if os_ == "macos" else os_


def normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", variant if arch == "amd64" else ""
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def _cpu_variant() -> str:
    """The ARM variant of this machine (containerd reads /proc/cpuinfo); empty elsewhere."""
    if host_arch() not in ("arm", "arm64"):
        return ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("cpu architecture"):
                    value = line.split(":", 1)[1].strip()
                    return {"7": "v7", "8": "v8", "6": "v6", "5": "v5"}.get(value, "v" + value)
    except OSError:
        pass
    return "v8" if host_arch() == "arm64" else "v7"


def host_arch() -> str:
    m = _host.machine()
    return _MACHINE.get(m, m.lower())


def host() -> Platform:
    """The daemon's default platform (containerd's DefaultSpec)."""
    return Platform("linux", host_arch(), _cpu_variant())


def _invalid(msg: str) -> InvalidArgument:
    return InvalidArgument(f"{msg}: invalid argument")


def parse(spec: str) -> Platform:
    """Parse `os[/arch[/variant]]` (containerd's platforms.Parse), with its error texts."""
    if "*" in spec:
        raise _invalid(f'"{spec}": wildcards not yet supported')
    parts = spec.split("/")
    for part in parts:
        if not _COMPONENT.match(part):
            raise _invalid(f'"{part}" is an invalid component of "{spec}": platform specifier component '
                           f'must match "{_COMPONENT.pattern}"')
    if len(parts) == 1:
        os_ = normalize_os(parts[0])
        if os_ in _KNOWN_OS:
            arch = host_arch()
            variant = _cpu_variant() if arch == "arm" and _cpu_variant() != "v7" else ""
            return Platform(os_, arch, variant)
        arch, variant = normalize_arch(parts[0], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        if arch in _KNOWN_ARCH:
            return Platform("linux", arch, variant)
        raise _invalid(f'"{spec}": unknown operating system or architecture')
    if len(parts) == 2:
        arch, variant = normalize_arch(parts[1], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        return Platform(normalize_os(parts[0]), arch, variant)
    if len(parts) == 3:
        arch, variant = normalize_arch(parts[1], parts[2])
        return Platform(normalize_os(parts[0]), arch, variant)
    raise _invalid(f'"{spec}": cannot parse platform specifier')


def with_default(p: Platform | None) -> Platform:
    """Fill what the request left out from the host's platform (dockerd's withDefault)."""
    d = host()
    if p is None:
        return d
    os_ = p.os or d.os
    if not p.architecture:
        return Platform(os_, d.architecture, d.variant)
    return Platform(os_, p.architecture, p.variant)


def matches(want: Platform, have: Platform) -> bool:
    """Normalized exact match on os, architecture and variant."""
    w, h = want.normalized(), have.normalized()
    return (w.os, w.architecture, w.variant) == (h.os, h.architecture, h.variant)


def select(want: Platform | None, candidates: Iterable[Platform | None]) -> int | None:
    """Index of the first candidate matching `want` (host default when None), or None.

    Like dockerd, an arm request that matches no variant falls back to the first entry
    with the same os and architecture (older lists had no variants).
    """
    cands = list(candidates)
    target = with_default(want).normalized()
    for i, c in enumerate(cands):
        if c is not None and matches(target, c):
            return i
    if target.architecture == "arm":
        for i, c in enumerate(cands):
            if c is not None and c.os == target.os and c.architecture == target.architecture:
                return i
    return None


def no_match_message(want: Platform | None) -> str:
    return f"no matching manifest for {with_default(want)} in the manifest list entries"
