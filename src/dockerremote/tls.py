"""The daemon's TLS for TCP hosts, as dockerd's flags describe it.

    --tls                  serve TCP hosts over TLS (no client certificate asked for)
    --tlsverify            ... and require a client certificate signed by --tlscacert
    --tlscacert/--tlscert/--tlskey   default to ca.pem, cert.pem, key.pem in $DOCKER_CERT_PATH
                                     or ~/.docker, as dockerd's defaults

TLS 1.2 at least (dockerd's tlsconfig.Server). Unix sockets are never wrapped.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from dockerremote.errors import InvalidArgument


def cert_dir() -> Path:
    return Path(os.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker")


def server_context(cacert: str | None, cert: str | None, key: str | None, verify: bool) -> ssl.SSLContext:
    """An SSLContext for the API's TCP listeners; InvalidArgument naming the file at fault."""
    base = cert_dir()
    cert_path = Path(cert or base / "cert.pem").expanduser()
    key_path = Path(key or base / "key.pem").expanduser()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f'could not load X509 key pair (cert: "{cert_path}", key: "{key_path}"): '
                              f"{_reason(exc)}") from None
    if verify:
        ca_path = Path(cacert or base / "ca.pem").expanduser()
        try:
            ctx.load_verify_locations(cafile=str(ca_path))
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgument(f'could not read CA certificate "{ca_path}": {_reason(exc)}') from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)
