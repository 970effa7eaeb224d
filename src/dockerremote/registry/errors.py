"""What can go wrong talking to a registry, with the texts dockerd 20.10 prints.

    DockerRemoteError
    └── RegistryError              500  any registry failure; .code = the registry's error code
        ├── ManifestUnknown        404  manifest for <ref> not found: manifest unknown: <msg>
        ├── NameUnknown            404  repository <name> not found: name unknown: <msg>
        ├── Denied                 404  pull access denied for <name>, repository does not exist ...
        ├── Unauthorized           500  unauthorized: <msg>   (500 as dockerd: a 401 would make
        │   │                            the docker CLI prompt for a login)
        │   └── LoginUnauthorized  401  POST /auth: the token service refused the credentials
        ├── TooManyRequests        500  toomanyrequests: <msg>
        ├── RegistryUnavailable    500  Get "https://host/v2/": dial tcp ...: connection refused
        ├── ManifestInvalid        500  a manifest that contradicts itself or its digest
        └── BlobInvalid            500  a blob whose size or digest is not what was asked
                                        (also a dockerremote.errors.DigestMismatch)

`registry_error()` turns one HTTP error response into the right class, the way distribution's
client (HandleErrorResponse) and moby's translatePullError read it.
"""

from __future__ import annotations

import asyncio
import json
import os
from http import HTTPStatus
from typing import Any

import aiohttp

from dockerremote.errors import DigestMismatch, DockerRemoteError
from dockerremote.registry.retry import parse_retry_after


class RegistryError(DockerRemoteError):
    status = 500

    def __init__(self, message: str, code: str | None = None, http_status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code                  # "MANIFEST_UNKNOWN", ... (None: not a registry error body)
        self.http_status = http_status    # what the registry answered (None: no answer)
        self.retry_after = retry_after    # seconds, from a 429/503's Retry-After


class ManifestUnknown(RegistryError):
    status = 404


class NameUnknown(RegistryError):
    status = 404


class Denied(RegistryError):
    status = 404


class Unauthorized(RegistryError):
    status = 500


class LoginUnauthorized(Unauthorized):
    status = 401


class TooManyRequests(RegistryError):
    status = 500


class RegistryUnavailable(RegistryError):
    """No answer at all: refused, reset, DNS, TLS, timeout."""

    status = 500

    def __init__(self, message: str, connect_failed: bool = False) -> None:
        super().__init__(message)
        self.connect_failed = connect_failed  # never connected (refused, DNS, TLS): not a hiccup


class ConnectFailed(OSError):
    """No connection could be made to host:port (refused, DNS, TLS handshake): the blocking
    client's counterpart of aiohttp's ClientConnectorError; `os_error` says why."""

    def __init__(self, host: str, port: int, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.host, self.port, self.os_error = host, port, os_error


class ManifestInvalid(RegistryError):
    status = 500


class BlobInvalid(RegistryError, DigestMismatch):
    status = 500


# distribution's registered error codes and their default messages (errcode/register.go, v2)
DEFAULT_MESSAGES = {
    "UNKNOWN": "unknown error",
    "UNSUPPORTED": "The operation is unsupported.",
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "UNAVAILABLE": "service unavailable",
    "TOOMANYREQUESTS": "too many requests",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
    "SIZE_INVALID": "provided length did not match content length",
    "NAME_INVALID": "invalid repository name",
    "TAG_INVALID": "manifest tag did not match URI",
    "NAME_UNKNOWN": "repository name not known to registry",
    "MANIFEST_UNKNOWN": "manifest unknown",
    "MANIFEST_INVALID": "manifest invalid",
    "MANIFEST_UNVERIFIED": "manifest failed signature verification",
    "MANIFEST_BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "BLOB_UPLOAD_INVALID": "blob upload invalid",
    "PAGINATION_NUMBER_INVALID": "invalid number of results requested",
    "RANGE_INVALID": "invalid content range",
}


def code_text(code: str, message: str) -> str:
    """errcode.Error.Error(): `manifest unknown: <message>`; unregistered codes read as unknown."""
    if code not in DEFAULT_MESSAGES:
        code = "UNKNOWN"
    return f"{code.lower().replace('_', ' ')}: {message or DEFAULT_MESSAGES[code]}"


def go_quote(data: bytes) -> str:
    """Go's %q of a byte string, near enough: JSON escaping with \\x for invalid UTF-8."""
    text = data.decode("utf-8", errors="backslashreplace")
    return json.dumps(text, ensure_ascii=False).replace("\\\\x", "\\x")


def _go_json_error(body: bytes) -> str | None:
    """Why Go's json.Unmarshal into distribution's Errors struct fails, or None if it would not."""
    stripped = body.strip()
    if not stripped:
        return "unexpected end of JSON input"
    try:
        doc = json.loads(stripped)
    except ValueError:
        first = chr(stripped[0]) if stripped[:1].isascii() else "\\x%02x" % stripped[0]
        if stripped[:1] in b'{["-0123456789tfn':
            return "unexpected end of JSON input"
        return f"invalid character '{first}' looking for beginning of value"
    if not isinstance(doc, dict):
        kind = {list: "array", str: "string", bool: "bool"}.get(type(doc), "number")
        return f"json: cannot unmarshal {kind} into Go value of type struct {{ Errors []errcode.Error }}"
    return None


def parse_error_body(status: int, body: bytes) -> tuple[str, str] | str:
    """(code, message) from a 4xx body as distribution reads it, or an UnexpectedHTTPResponse text."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("details"), str) and doc["details"]:
        code = {401: "UNAUTHORIZED", 429: "TOOMANYREQUESTS"}.get(status, "UNKNOWN")
        return code, doc["details"]
    problem = _go_json_error(body)
    errs = doc.get("errors") if isinstance(doc, dict) else None
    if problem is None and isinstance(errs, list) and errs and isinstance(errs[0], dict):
        code = str(errs[0].get("code") or "UNKNOWN").upper()
        message = errs[0].get("message")
        return code, message if isinstance(message, str) and message else DEFAULT_MESSAGES.get(code, "")
    if status == 401:
        return "UNAUTHORIZED", DEFAULT_MESSAGES["UNAUTHORIZED"]
    problem = problem or "no error details found in HTTP response body"
    return f"error parsing HTTP {status} response body: {problem}: {go_quote(body)}"


def bearer_error(www_authenticate: list[str]) -> tuple[str, str] | None:
    """RFC 6750 errors in a Bearer challenge: invalid_token → UNAUTHORIZED, insufficient_scope → DENIED."""
    from dockerremote.registry.auth import parse_challenges

    for ch in parse_challenges(www_authenticate):
        if ch.scheme != "bearer":
            continue
        code = {"invalid_token": "UNAUTHORIZED", "insufficient_scope": "DENIED"}.get(ch.params.get("error", ""))
        if code:
            return code, ch.params.get("error_description") or DEFAULT_MESSAGES[code]
    return None


def status_text(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} status code {status}"


MAX_ERROR_BODY = 64 << 10


async def response_error(resp: Any, ref: str | None = None, name: str | None = None) -> RegistryError:
    """registry_error() for a response: its body (bounded; none for a HEAD, or if it breaks off),
    challenges and Retry-After."""
    body: bytes | None = getattr(resp, "error_body", None)  # blobget's responses come with it read
    if body is None:
        body = b""
        if resp.method != "HEAD":
            try:
                body = await resp.content.read(MAX_ERROR_BODY)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
    return registry_error(resp.status, body, resp.headers.getall("WWW-Authenticate", []), ref=ref, name=name,
                          retry_after=parse_retry_after(resp.headers.get("Retry-After")))


def registry_error(status: int, body: bytes, www_authenticate: list[str] | None = None,
                   ref: str | None = None, name: str | None = None,
                   retry_after: float | None = None) -> RegistryError:
    """One error response → the typed error with dockerd's text.

    ref: the familiar reference asked for (`alpine:latest`), name: the familiar repository
    name (`alpine`); without them the generic `<code>: <message>` text is used.
    """
    parsed: tuple[str, str] | str
    if 400 <= status < 500:
        parsed = bearer_error(www_authenticate or []) or parse_error_body(status, body)
    else:
        parsed = f"received unexpected HTTP status: {status_text(status)}"
    if isinstance(parsed, str):
        cls = TooManyRequests if status == 429 else RegistryError
        return cls(parsed, None, status, retry_after)
    code, message = parsed
    text = code_text(code, message)
    if code == "MANIFEST_UNKNOWN" and ref:
        return ManifestUnknown(f"manifest for {ref} not found: {text}", code, status)
    if code == "NAME_UNKNOWN" and name:
        return NameUnknown(f"repository {name} not found: {text}", code, status)
    if code == "DENIED" and name:
        return Denied(f"pull access denied for {name}, repository does not exist or may require "
                      f"'docker login': {text}", code, status)
    cls = {"UNAUTHORIZED": Unauthorized, "TOOMANYREQUESTS": TooManyRequests, "MANIFEST_UNKNOWN": ManifestUnknown,
           "NAME_UNKNOWN": NameUnknown, "DENIED": Denied}.get(code, RegistryError)
    return cls(text, code, status, retry_after)


# --------------------------------------------------------------------------- no answer at all

def _nameserver() -> str:
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return f"{parts[1]}:53"
    except OSError:
        pass
    return "127.0.0.53:53"


def _host_as_written(url: str) -> str:
    """The host part of a URL with its case kept (yarl lowers it; Go prints it as written)."""
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    return host[:host.find("]") + 1] if host.startswith("[") else host.split(":", 1)[0]


def transport_text(exc: BaseException, url: str = "") -> str:
    """A failed connection or read in the words of Go's net/http, as dockerd prints it
    (`url`: the one asked for, whose host a failed lookup names as it was written)."""
    import asyncio
    import errno
    import http.client
    import socket
    import ssl

    import aiohttp

    host = getattr(exc, "host", None)
    port = getattr(exc, "port", None)
    where = f"{host}:{port}" if host else ""
    if isinstance(exc, ConnectFailed) and isinstance(exc.os_error, ssl.SSLError):
        exc = exc.os_error  # a handshake that failed: told like aiohttp's TLS errors below
    cert_error = exc.certificate_error if isinstance(exc, aiohttp.ClientConnectorCertificateError) else \
        exc if isinstance(exc, ssl.SSLCertVerificationError) else None
    if cert_error is not None:
        detail = str(getattr(cert_error, "verify_message", "") or cert_error)
        if "hostname" in detail or "IP address mismatch" in detail:
            return f"x509: certificate is not valid for {host}"
        if "expired" in detail:
            return "x509: certificate has expired or is not yet valid"
        return "x509: certificate signed by unknown authority"
    if isinstance(exc, (aiohttp.ClientConnectorSSLError, aiohttp.ClientSSLError, ssl.SSLError)):
        detail = str(exc)
        if any(s in detail for s in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "record layer failure",
                                     "packet length too long", "http request")):
            return "http: server gave HTTP response to HTTPS client"
        return f"remote error: tls: {detail}"
    if isinstance(exc, (aiohttp.ClientConnectorError, ConnectFailed)):
        os_error = exc.os_error
        if isinstance(os_error, socket.gaierror) or isinstance(exc, getattr(aiohttp, "ClientConnectorDNSError", ())):
            written = _host_as_written(url)
            if host is None or written.lower() == str(host).lower():
                host = written or host
            return f"dial tcp: lookup {host} on {_nameserver()}: no such host"
        if isinstance(os_error, ConnectionRefusedError):
            return f"dial tcp {where}: connect: connection refused"
        if isinstance(os_error, (TimeoutError, asyncio.TimeoutError)):
            return f"dial tcp {where}: i/o timeout"
        if isinstance(os_error, OSError) and os_error.errno is not None:
            reason = os.strerror(os_error.errno).lower() if os_error.errno else str(os_error)
            if os_error.errno == errno.ENETUNREACH:
                reason = "network is unreachable"
            return f"dial tcp {where}: connect: {reason}"
        return f"dial tcp {where}: {os_error}"
    if isinstance(exc, (aiohttp.ConnectionTimeoutError,)):
        return "dial tcp: i/o timeout"
    if isinstance(exc, (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError, asyncio.TimeoutError, TimeoutError)):
        return "net/http: timeout awaiting response headers"
    if isinstance(exc, (aiohttp.ServerDisconnectedError, http.client.RemoteDisconnected)):
        return "EOF"
    if isinstance(exc, (aiohttp.ClientPayloadError, http.client.IncompleteRead)):
        return "unexpected EOF"
    if isinstance(exc, (ConnectionResetError, aiohttp.ClientOSError)):
        return "read: connection reset by peer"
    return str(exc) or exc.__class__.__name__
