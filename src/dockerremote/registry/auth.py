"""Credentials and the registry's authentication dance.

X-Registry-Auth → AuthConfig (repr never shows a secret). A registry says how it wants to be
asked in the WWW-Authenticate challenge of `GET /v2/`: Basic (send the credentials) or Bearer
(get a token from the realm for a scope: with Basic credentials by GET, with an identity token
by the OAuth2 refresh_token grant by POST; a `registrytoken` is sent as the Bearer directly).
Tokens are cached per (realm, service, scopes, credentials) until shortly before they expire.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import time
from dataclasses import dataclass, fields
from typing import Any

import aiohttp
from yarl import URL

from dockerremote.registry.errors import RegistryError, code_text, parse_error_body, status_text, transport_text

MIN_TOKEN_LIFETIME = 60      # distribution's client: shorter or missing expires_in counts as 60 s
EARLY_REFRESH = 10           # get a new token this long before the old one expires
MAX_TOKEN_RESPONSE = 1 << 20


@dataclass(frozen=True, repr=False)
class AuthConfig:
    """A decoded X-Registry-Auth. Frozen and hashable; repr shows no secret."""

    username: str = ""
    password: str = ""
    auth: str = ""
    email: str = ""
    serveraddress: str = ""
    identitytoken: str = ""
    registrytoken: str = ""

    def __repr__(self) -> str:
        shown = [f"username={self.username!r}"] if self.username else []
        if self.serveraddress:
            shown.append(f"serveraddress={self.serveraddress!r}")
        for secret in ("password", "auth", "identitytoken", "registrytoken"):
            if getattr(self, secret):
                shown.append(f"{secret}=<redacted>")
        return f"AuthConfig({', '.join(shown)})"

    __str__ = __repr__

    def basic(self) -> tuple[str, str] | None:
        """(username, password) for Basic auth; the `auth` field (base64 user:pass) as a fallback."""
        if self.username or self.password:
            return self.username, self.password
        if self.auth:
            try:
                user, sep, pw = base64.b64decode(self.auth + "=" * (-len(self.auth) % 4)).decode().partition(":")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                return None
            if sep:
                return user, pw
        return None

    @property
    def key(self) -> str:
        """Identifies the credentials in cache keys without holding them in the clear."""
        h = hashlib.sha256()
        for f in fields(self):
            h.update(getattr(self, f.name).encode() + b"\0")
        return h.hexdigest()[:32]


_FIELDS = {f.name for f in fields(AuthConfig)}


def basic_authorization(username: str, password: str) -> str:
    """The value of an Authorization (or Proxy-Authorization) header for username:password."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def decode_registry_auth(header: str | None) -> AuthConfig | None:
    """X-Registry-Auth as dockerd reads it: base64url JSON; anything unreadable is anonymous."""
    if not header or not header.strip():
        return None
    raw = header.strip()
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        doc = json.loads(data)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    return _from_doc(doc)


def _from_doc(doc: dict) -> AuthConfig | None:
    names = {f.name for f in fields(AuthConfig)}
    values: dict[str, str] = {}
    for k, v in doc.items():  # Go's encoding/json matches field names case-insensitively
        name = k.lower() if isinstance(k, str) else ""
        if name in names:
            if v is None:
                continue
            if not isinstance(v, str):
                return None  # dockerd's decoder fails on it: anonymous
            values[name] = v
    cfg = AuthConfig(**values)
    if not any((cfg.username, cfg.password, cfg.auth, cfg.identitytoken, cfg.registrytoken)):
        return None
    return cfg


_GO_SYNTAX = (("Expecting value", "looking for beginning of value"),
              ("Expecting property name enclosed in double quotes", "looking for beginning of object key string"),
              ("Expecting ':' delimiter", "after object key"),
              ("Expecting ',' delimiter", "after object key:value pair"))
_GO_KINDS = {list: "array", str: "string", bool: "bool", int: "number", float: "number"}


def auth_from_body(data: bytes) -> AuthConfig | None:
    """The auth JSON an API client without X-Registry-Auth sends as the body (dockerd 20.10's
    fallback for push): decoded as Go's json.Decoder would; ValueError with Go's text when it
    cannot be (the caller answers 400 `Bad parameters and missing X-Registry-Auth: <text>`)."""
    doc = _decode_auth_doc(data)
    return None if doc is None else _from_doc(doc)


def login_from_body(data: bytes) -> AuthConfig:
    """POST /auth's body: every field kept, even with no credential at all (a login with none
    still succeeds at a registry that asks for none). ValueError with Go's text if unreadable."""
    doc = _decode_auth_doc(data) or {}
    values = {k.lower(): v for k, v in doc.items() if isinstance(k, str) and k.lower() in _FIELDS and v is not None}
    return AuthConfig(**values)


def _decode_auth_doc(data: bytes) -> dict | None:
    text = data.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise ValueError("EOF")
    try:
        doc, _ = json.JSONDecoder().raw_decode(text)  # the first value only, as Decode reads
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            raise ValueError("unexpected EOF") from None
        where = next((go for py, go in _GO_SYNTAX if exc.msg.startswith(py)), "looking for beginning of value")
        raise ValueError(f"invalid character {text[exc.pos]!r} {where}") from None
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ValueError(f"json: cannot unmarshal {_GO_KINDS.get(type(doc), 'number')} into Go value of "
                         "type types.AuthConfig")
    for k, v in doc.items():
        if isinstance(k, str) and k.lower() in _FIELDS and v is not None and not isinstance(v, str):
            raise ValueError(f"json: cannot unmarshal {_GO_KINDS.get(type(v), 'object')} into Go struct field "
                             f"AuthConfig.{k} of type string")
    return doc


# --------------------------------------------------------------------------- challenges

@dataclass(frozen=True)
class Challenge:
    scheme: str                  # lower-case: "basic", "bearer"
    params: dict[str, str]


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Parse WWW-Authenticate values (RFC 9110 11.6.1): schemes with auth-params, quoted or not."""
    out: list[Challenge] = []
    for value in values:
        i, n = 0, len(value)
        current: Challenge | None = None
        while i < n:
            while i < n and value[i] in " \t,":
                i += 1
            start = i
            while i < n and value[i] not in " \t,=":
                i += 1
            token = value[start:i]
            if not token:
                break
            j = i
            while j < n and value[j] in " \t":
                j += 1
            if j < n and value[j] == "=" and current is not None:
                i = j + 1
                while i < n and value[i] in " \t":
                    i += 1
                if i < n and value[i] == '"':
                    i += 1
                    buf = []
                    while i < n and value[i] != '"':
                        if value[i] == "\\" and i + 1 < n:
                            i += 1
                        buf.append(value[i])
                        i += 1
                    i += 1
                    param = "".join(buf)
                else:
                    start = i
                    while i < n and value[i] not in " \t,":
                        i += 1
                    param = value[start:i]
                current.params[token.lower()] = param
            else:
                current = Challenge(token.lower(), {})
                out.append(current)
    return out


def scope(path: str, push: bool = False) -> str:
    return f"repository:{path}:{'push,pull' if push else 'pull'}"  # dockerd's order


# --------------------------------------------------------------------------- tokens

@dataclass
class _Token:
    value: str
    expires_at: float


class TokenCache:
    """Bearer tokens by (realm, service, scopes, credentials key), with one fetch at a time per key."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[tuple, _Token] = {}
        self._locks: dict[tuple, asyncio.Lock] = {}

    def get(self, key: tuple) -> str | None:
        t = self._tokens.get(key)
        if t is None:
            return None
        if self._clock() >= t.expires_at:
            del self._tokens[key]
            return None
        return t.value

    def put(self, key: tuple, value: str, expires_in: float | None) -> None:
        life = expires_in if expires_in and expires_in >= MIN_TOKEN_LIFETIME else MIN_TOKEN_LIFETIME
        self._tokens[key] = _Token(value, self._clock() + life - min(EARLY_REFRESH, life / 2))

    def drop(self, key: tuple, value: str) -> None:
        """Forget a token the registry refused (unless another task already replaced it)."""
        t = self._tokens.get(key)
        if t is not None and t.value == value:
            del self._tokens[key]

    def lock(self, key: tuple) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock


class TokenError(RegistryError):
    """The token service refused or failed; the client prefixes the request it was for."""


async def fetch_token(session: aiohttp.ClientSession, challenge: Challenge, scopes: list[str],
                      auth: AuthConfig | None, *, ssl: Any = None, proxy: str | None = None,
                      headers: dict[str, str] | None = None) -> tuple[str, float | None]:
    """(token, expires_in) from the challenge's realm, as docker's token handler asks for it."""
    doc = await fetch_token_response(session, challenge, scopes, auth, ssl=ssl, proxy=proxy, headers=headers)
    expires = doc.get("expires_in")
    return doc["token"], float(expires) if isinstance(expires, (int, float)) and expires > 0 else None


async def fetch_token_response(session: aiohttp.ClientSession, challenge: Challenge, scopes: list[str],
                               auth: AuthConfig | None, *, ssl: Any = None, proxy: str | None = None,
                               headers: dict[str, str] | None = None, offline: bool = False) -> dict:
    """The token service's answer, its token under "token". `offline` (a login) asks for a
    refresh token too, as docker's login does (offline_token=true, client_id=docker)."""
    realm = challenge.params.get("realm", "")
    if not realm.startswith(("http://", "https://")):
        raise TokenError(f"token auth attempt for registry: invalid realm {realm!r}")
    service = challenge.params.get("service", "")
    creds = auth.basic() if auth else None
    hdrs = dict(headers or {})
    if auth is not None and auth.identitytoken:
        form = {"grant_type": "refresh_token", "refresh_token": auth.identitytoken, "service": service,
                "client_id": "docker", "scope": " ".join(scopes)}
        if offline:
            form["access_type"] = "offline"
        method, kwargs = "POST", {"data": form}
        url = realm
    else:
        params: list[tuple[str, str]] = []
        if service:
            params.append(("service", service))
        params += [("scope", s) for s in scopes]
        if creds and creds[0]:
            params.append(("account", creds[0]))
        if offline:
            params += [("offline_token", "true"), ("client_id", "docker")]
        if creds:
            hdrs["Authorization"] = basic_authorization(*creds)
        method, kwargs = "GET", {"params": params}
        url = realm
    try:
        async with session.request(method, url, headers=hdrs, ssl=ssl, proxy=proxy,
                                   allow_redirects=True, **kwargs) as resp:
            body = await resp.content.read(MAX_TOKEN_RESPONSE)
            shown = str(resp.url.with_query(None)) if method == "POST" else str(resp.url)
            status = resp.status
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        target = realm if method == "POST" else str(URL(realm).with_query(kwargs["params"]))
        raise TokenError(f'{method.capitalize()} "{target}": {transport_text(exc, target)}') from None
    if status != 200:
        parsed = parse_error_body(status, body) if 400 <= status < 500 else None
        if isinstance(parsed, tuple):
            raise TokenError(code_text(*parsed), parsed[0], status)
        if parsed is None:
            parsed = f"token auth attempt for registry: {shown} request failed with status: {status_text(status)}"
        raise TokenError(parsed, None, status)
    try:
        doc = json.loads(body)
    except ValueError:
        raise TokenError(f"unable to decode token response: invalid JSON from {shown}") from None
    if not isinstance(doc, dict):
        raise TokenError(f"unable to decode token response from {shown}")
    token = doc.get("access_token") or doc.get("token")
    if not isinstance(token, str) or not token:
        raise TokenError("authorization server did not include a token in the response")
    return {**doc, "token": token}
