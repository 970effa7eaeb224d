"""Which URLs serve a registry, in the order dockerd tries them.

    docker.io            each --registry-mirror (as given), then https://registry-1.docker.io
    insecure registries  https without certificate checks, then plain http
    anything else        https with the system's CAs

A registry is insecure when its `host[:port]` is listed in --insecure-registry, or when one of
its addresses falls in a listed CIDR or in 127.0.0.0/8 (always insecure, like dockerd). Names
are resolved for that check as dockerd does (registry/config.go isCIDRMatch).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from dockerremote.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
DOCKER_HUB = "https://registry-1.docker.io"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Endpoint:
    url: str                 # scheme://host[:port], no trailing slash
    verify_tls: bool = True  # False: https whose certificate is not checked (insecure registry)
    mirror: bool = False     # a --registry-mirror: any failure falls back to the next endpoint

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc


def validate_mirror(url: str) -> str:
    """A --registry-mirror as dockerd accepts it (registry.ValidateMirror): scheme://host only."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https"):
        raise InvalidArgument(f"invalid mirror: unsupported scheme {_q(u.scheme)} in {_q(url)}")
    if u.username or u.password:
        raise InvalidArgument(f"invalid mirror: does not support credentials in mirror URL {_q(url)}")
    if (u.path and u.path != "/") or u.query or u.fragment or not u.netloc:
        raise InvalidArgument(f"invalid mirror: path, query, or fragment at end of the URI {_q(url)}")
    return f"{u.scheme}://{u.netloc}"


def shown_mirror(url: str) -> str:
    """A mirror as dockerd lists it in /info: with one trailing slash."""
    return url.rstrip("/") + "/"


def _q(text: str) -> str:
    """Go's %q for plain text."""
    return json.dumps(text, ensure_ascii=False)


def parse_insecure(entries: list[str]) -> tuple[frozenset[str], tuple[Network, ...]]:
    """--insecure-registry values: CIDRs, or host[:port] names (a scheme is tolerated and dropped)."""
    names: set[str] = set()
    nets: list[Network] = [LOOPBACK]
    for raw in entries:
        entry = raw.strip()
        if "://" in entry:
            entry = urlsplit(entry).netloc
        entry = entry.rstrip("/")
        if not entry:
            continue
        if "/" in entry:
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError as exc:
                raise InvalidArgument(f"insecure registry {raw} is not valid: {exc}") from exc
        names.add(entry)
    return frozenset(names), tuple(nets)


class Hosts:
    """Endpoints per registry domain; the insecure check is cached per host."""

    def __init__(self, mirrors: list[str], insecure: list[str]) -> None:
        self.mirrors = [validate_mirror(m) for m in mirrors]
        self.insecure_names, self.insecure_nets = parse_insecure(insecure)
        self._cache: dict[str, bool] = {}

    async def endpoints(self, domain: str) -> list[Endpoint]:
        if domain == DEFAULT_DOMAIN:
            out = [Endpoint(m, verify_tls=not await self.is_insecure(urlsplit(m).netloc), mirror=True)
                   for m in self.mirrors]
            return out + [Endpoint(DOCKER_HUB)]
        if await self.is_insecure(domain):
            return [Endpoint(f"https://{domain}", verify_tls=False), Endpoint(f"http://{domain}", verify_tls=False)]
        return [Endpoint(f"https://{domain}")]

    async def is_insecure(self, host_port: str) -> bool:
        if host_port in self._cache:
            return self._cache[host_port]
        if host_port in self.insecure_names:
            result = True
        elif host_port == DEFAULT_DOMAIN:
            result = False
        else:
            result = any(ip in net for ip in await _addresses(_hostname(host_port))
                         for net in self.insecure_nets if ip.version == net.version)
        self._cache[host_port] = result
        return result


def _hostname(host_port: str) -> str:
    if host_port.startswith("["):
        return host_port[1:host_port.index("]")]
    host, sep, port = host_port.rpartition(":")
    return host if sep and port.isdigit() else host_port


async def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM),
                                       timeout=10)
    except (OSError, asyncio.TimeoutError):
        return []  # unresolvable: not insecure (dockerd does the same), the dial will say why
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(info[4][0].split("%")[0]))
        except ValueError:
            continue
    return out


# --------------------------------------------------------------------------- certs.d

DEFAULT_CERTS_DIR = "/etc/docker/certs.d"


def tls_context(certs_dir: str | None, host_port: str, verify: bool) -> "ssl.SSLContext | bool":
    """TLS for one registry host, as dockerd reads certs.d/<host[:port]>/ (blocking: run in a thread).

    `*.crt` are extra CAs (added to the system's), `*.cert` + `*.key` pairs are client
    certificates. Without such a folder: True (the system's CAs) or False (no check).
    """
    import os
    import ssl

    folder = os.path.join(certs_dir, host_port) if certs_dir else ""
    try:
        names = sorted(os.listdir(folder)) if folder else []
    except OSError:
        names = []
    cas = [n for n in names if n.endswith(".crt")]
    pairs = [(n, n[:-5] + ".key") for n in names if n.endswith(".cert")]
    if not cas and not pairs:
        return verify
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    for n in cas:
        ctx.load_verify_locations(cafile=os.path.join(folder, n))
    for cert, key in pairs:
        if key not in names:
            raise InvalidArgument(f"missing key {key} for client certificate {cert}. "
                                  "CA certificates must use the extension .crt")
        ctx.load_cert_chain(os.path.join(folder, cert), os.path.join(folder, key))
    return ctx
