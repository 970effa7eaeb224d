"""A real registry for the tests: Debian's `docker-registry` (CNCF distribution 2.8) on a loopback port.

    reg = start_registry()                    # anonymous
    reg = start_registry(auth="basic")        # htpasswd (bcrypt); reg.username / reg.password
    reg = start_registry(auth="token")        # bearer tokens signed by reg.issuer, a TokenIssuer
    ...
    reg.blob_gets(digest)                     # GETs of that blob the registry served (its access log)
    reg.stop()

The registry writes its access log (combined log format) to stdout, which we keep in a file so
tests can count what it really served. The token issuer runs in this process (a thread) and signs
ES256 JWTs with a key whose self-signed certificate is the registry's `rootcertbundle`.

Fixtures: `registry`, `basic_registry`, `token_registry` (one fresh registry per test); import
them into a test module (`from tests.support.registry import registry`) to use them.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SERVICE = "dockerremote-test-registry"
ISSUER = "dockerremote-test-issuer"

# One line of Apache's combined log format, as gorilla/handlers writes it for the registry.
_ACCESS_RE = re.compile(r'^(\S+) \S+ (\S+) \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)')


def free_port(ip: str = "127.0.0.1") -> int:
    """An ephemeral port: bind port 0, read what the kernel gave, release it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def non_loopback_ip() -> str | None:
    """An IPv4 address of this machine outside 127.0.0.0/8 (a 'secure' registry host), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


def make_tls(ip: str, root: Path) -> bytes:
    """A CA and a server certificate for `ip` (files ca.crt, server.crt, server.key); the CA PEM."""
    from tests.support import pki

    ca = pki.make_ca()
    ca.write(root / "ca.crt")
    pki.issue(ca, ip, ips=(ip,)).write(root / "server.crt", root / "server.key")
    return ca.cert_pem


def have_registry() -> bool:
    return os.path.exists(REGISTRY_BIN)


# --------------------------------------------------------------------------- htpasswd (basic)

def bcrypt_line(username: str, password: str) -> str:
    """`user:$2y$...` as `htpasswd -B` writes it; libxcrypt's bcrypt when htpasswd is missing."""
    exe = shutil.which("htpasswd")
    if exe:
        out = subprocess.run([exe, "-nbB", "-C", "5", username, password], check=True,
                             capture_output=True).stdout.decode()
        return out.strip()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # stdlib until 3.13; bcrypt comes from libxcrypt

    salt = base64.b64encode(os.urandom(16), altchars=b"./").decode()[:22]
    return f"{username}:{crypt.crypt(password, '$2b$05$' + salt)}"


# --------------------------------------------------------------------------- token issuer

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(public_der: bytes) -> str:
    """The `kid` distribution looks keys up by: base32(sha256(SPKI DER)[:30]) in groups of four."""
    b32 = base64.b32encode(hashlib.sha256(public_der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


@dataclass
class TokenRequest:
    method: str
    account: str | None       # who the issuer decided the caller is (None = anonymous)
    scopes: list[str]
    grant: str                # "basic", "anonymous", "refresh_token", "password"


class TokenIssuer:
    """A small OAuth2-ish token server, like the ones in front of Docker Hub, in this process.

    GET  /token?service=&scope=...        Basic credentials (or none) -> {"token","access_token",...}
    POST /token  grant_type=refresh_token  refresh_token=<identity token>  -> {"access_token",...}
    POST /token  grant_type=password       username/password  -> {"access_token","refresh_token"}

    Scopes are honoured: a user gets the actions its ACL allows (`pull`, `push`) on the
    repositories asked for; anonymous callers get `anonymous_actions`. Wrong credentials -> 401.
    """

    def __init__(self, users: dict[str, str], anonymous_actions: tuple[str, ...] = (),
                 expires_in: int = 300) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.users = dict(users)
        self.anonymous_actions = tuple(anonymous_actions)
        self.expires_in = expires_in
        self.token_field = "both"          # "token", "access_token" or "both": what GET answers with
        self.expire_next = 0               # hand out this many tokens that are already expired
        self.fail_next = 0                 # answer this many requests with 503
        self.refresh_tokens: dict[str, str] = {u: "rt-" + secrets.token_hex(16) for u in users}
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()

        self._key = ec.generate_private_key(ec.SECP256R1())
        pub_der = self._key.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = libtrust_key_id(pub_der)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockerremote test token issuer")])
        now = _dt.datetime.now(_dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=30))
                .sign(self._key, hashes.SHA256()))
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)

        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet: credentials pass through here
                pass

            def do_GET(self) -> None:  # noqa: N802
                issuer._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                issuer._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- signing

    def sign(self, subject: str, access: list[dict], expires_in: int | None = None,
             expired: bool = False) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        now = int(time.time())
        ttl = self.expires_in if expires_in is None else expires_in
        exp = now - 3600 if expired else now + ttl  # far enough past the registry's leeway
        header = {"typ": "JWT", "alg": "ES256", "kid": self.kid}
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": exp, "nbf": now - 120,
                  "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def grant(self, account: str | None, scopes: list[str]) -> list[dict]:
        """The access list a caller gets: asked-for actions intersected with what it may do."""
        allowed = {"pull", "push", "delete", "*"} if account else set(self.anonymous_actions)
        out = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3 or parts[0] != "repository":
                continue
            name, actions = ":".join(parts[1:-1]), parts[-1].split(",")
            got = [a for a in actions if a in allowed]
            out.append({"type": "repository", "name": name, "actions": got})
        return out

    # -- HTTP

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(h.path)
        if url.path != "/token":
            return self._reply(h, 404, {"details": "not found"})
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return self._reply(h, 503, {"details": "token service unavailable"})
        query = urllib.parse.parse_qs(url.query)
        if method == "POST":
            n = int(h.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(h.rfile.read(n).decode())
            return self._post(h, form)
        scopes = [s for v in query.get("scope", []) for s in v.split(" ") if s]
        if query.get("service", [""])[0] != SERVICE:
            return self._reply(h, 400, {"details": "unknown service"})
        account: str | None = None
        grant = "anonymous"
        auth = h.headers.get("Authorization", "")
        if auth:
            if not auth.lower().startswith("basic "):
                return self._reply(h, 401, {"details": "unsupported authorization"})
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return self._reply(h, 401, {"details": "malformed credentials"})
            if self.users.get(user) != pw:
                self._record(TokenRequest(method, None, scopes, "basic-denied"))
                return self._reply(h, 401, {"details": "incorrect username or password"})
            account, grant = user, "basic"
        self._record(TokenRequest(method, account, scopes, grant))
        self._issue(h, account, scopes, refresh=None)

    def _post(self, h: BaseHTTPRequestHandler, form: dict[str, list[str]]) -> None:
        def one(k: str) -> str:
            return form.get(k, [""])[0]

        scopes = [s for v in form.get("scope", []) for s in v.split(" ") if s]
        if one("service") != SERVICE:
            return self._reply(h, 400, {"error": "invalid_request"})
        grant = one("grant_type")
        if grant == "refresh_token":
            account = next((u for u, t in self.refresh_tokens.items() if t == one("refresh_token")), None)
            if account is None:
                self._record(TokenRequest("POST", None, scopes, "refresh-denied"))
                return self._reply(h, 401, {"error": "invalid_grant"})
            self._record(TokenRequest("POST", account, scopes, "refresh_token"))
            return self._issue(h, account, scopes, refresh=self.refresh_tokens[account], oauth=True)
        if grant == "password":
            user = one("username")
            if self.users.get(user) != one("password"):
                self._record(TokenRequest("POST", None, scopes, "password-denied"))
                return self._reply(h, 401, {"error": "invalid_grant"})
            self._record(TokenRequest("POST", user, scopes, "password"))
            return self._issue(h, user, scopes, refresh=self.refresh_tokens[user], oauth=True)
        return self._reply(h, 400, {"error": "unsupported_grant_type"})

    def _issue(self, h: BaseHTTPRequestHandler, account: str | None, scopes: list[str],
               refresh: str | None, oauth: bool = False) -> None:
        with self._lock:
            expired = self.expire_next > 0
            self.expire_next -= 1 if expired else 0
        token = self.sign(account or "", self.grant(account, scopes), expired=expired)
        body: dict[str, Any] = {"expires_in": self.expires_in,
                                "issued_at": _dt.datetime.now(_dt.timezone.utc).isoformat()}
        if oauth:
            body["access_token"] = token
            body["scope"] = " ".join(scopes)
            if refresh:
                body["refresh_token"] = refresh
        else:
            if self.token_field in ("token", "both"):
                body["token"] = token
            if self.token_field in ("access_token", "both"):
                body["access_token"] = token
        self._reply(h, 200, body)

    def _record(self, r: TokenRequest) -> None:
        with self._lock:
            self.requests.append(r)

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


# --------------------------------------------------------------------------- the registry

@dataclass
class Access:
    """One line of the registry's access log."""

    method: str
    path: str
    status: int
    size: int
    user: str


@dataclass
class Registry:
    host: str                              # "127.0.0.1:PORT", as in image references
    url: str                               # "http://127.0.0.1:PORT" ("https://IP:PORT" with tls)
    root: Path
    proc: subprocess.Popen
    auth: str | None = None
    username: str = ""
    password: str = ""
    issuer: TokenIssuer | None = None
    ca_pem: bytes | None = None            # tls: the CA that signed the registry's certificate
    _sync_n: int = field(default=0, repr=False)

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    @property
    def ip(self) -> str:
        return self.host.rsplit(":", 1)[0]

    def connection(self, timeout: float = 120) -> http.client.HTTPConnection:
        """A plain connection to the registry (TLS trusting its CA when it has one)."""
        if self.ca_pem is None:
            return http.client.HTTPConnection(self.ip, self.port, timeout=timeout)
        import ssl

        ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        return http.client.HTTPSConnection(self.ip, self.port, timeout=timeout, context=ctx)

    @property
    def access_log(self) -> Path:
        return self.root / "access.log"

    @property
    def refresh_token(self) -> str:
        """The identity token of `username` (token auth): what `docker login` would store."""
        assert self.issuer is not None
        return self.issuer.refresh_tokens[self.username]

    # -- what the registry served

    def accesses(self, sync: bool = True) -> list[Access]:
        """Every request the registry logged, oldest first.

        The registry logs a request after its handler returns, which can be a moment after the
        client read the last byte; with sync=True we first send a marker request and wait
        (bounded) until its line is in the log, so every request that finished before is too.
        """
        if sync:
            self._sync()
        out = []
        for line in self.access_log.read_text(errors="replace").splitlines():
            m = _ACCESS_RE.match(line)
            if m:
                out.append(Access(m.group(3), m.group(4), int(m.group(5)),
                                  0 if m.group(6) == "-" else int(m.group(6)), m.group(2)))
        return out

    def blob_gets(self, digest: str, statuses: tuple[int, ...] = (200, 206)) -> int:
        """How many times the registry answered GET for this blob (any repository)."""
        suffix = f"/blobs/{digest}"
        return sum(1 for a in self.accesses()
                   if a.method == "GET" and a.path.split("?")[0].endswith(suffix) and a.status in statuses)

    def manifest_gets(self, ref: str) -> int:
        suffix = f"/manifests/{ref}"
        return sum(1 for a in self.accesses() if a.method == "GET" and a.path.endswith(suffix))

    def _sync(self) -> None:
        self._sync_n += 1
        marker = f"/v2/dockerremote-sync/n{self._sync_n}/tags/list"
        conn = self.connection(timeout=10)
        try:
            conn.request("GET", marker)
            conn.getresponse().read()
        finally:
            conn.close()
        deadline = time.monotonic() + 5
        while marker not in self.access_log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise AssertionError("registry access log did not show the sync marker")
            time.sleep(0.005)  # polling a file for a condition, bounded

    # -- credentials for the seeding code (not the client under test)

    def auth_header(self, repo: str, actions: str = "pull,push") -> dict[str, str]:
        if self.auth == "basic":
            raw = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        if self.auth == "token":
            assert self.issuer is not None
            access = self.issuer.grant(self.username, [f"repository:{repo}:{actions}"])
            return {"Authorization": f"Bearer {self.issuer.sign(self.username, access)}"}
        return {}

    def catalog_header(self) -> dict[str, str]:
        if self.auth == "token":
            assert self.issuer is not None
            token = self.issuer.sign(self.username, [{"type": "registry", "name": "catalog", "actions": ["*"]}])
            return {"Authorization": f"Bearer {token}"}
        return self.auth_header("x")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.issuer is not None:
            self.issuer.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _config(root: Path, port: int, auth: str | None, issuer: TokenIssuer | None,
            schema1: bool, ip: str = "127.0.0.1", tls: bool = False) -> str:
    """The registry's config.yml (YAML is a superset of JSON: we write JSON)."""
    cfg: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")},
                    "delete": {"enabled": True}, "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {"addr": f"{ip}:{port}", "secret": "dockerremote-tests",
                 "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    if tls:
        cfg["http"]["tls"] = {"certificate": str(root / "server.crt"), "key": str(root / "server.key")}
    if auth == "basic":
        cfg["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(root / "htpasswd")}}
    elif auth == "token":
        assert issuer is not None
        cfg["auth"] = {"token": {"realm": issuer.realm, "service": SERVICE, "issuer": ISSUER,
                                 "rootcertbundle": str(root / "issuer.pem")}}
    if schema1:
        cfg["compatibility"] = {"schema1": {"enabled": True}}
    return json.dumps(cfg, indent=1)


def start_registry(auth: str | None = None, username: str = "tester",
                   password: str | None = None, anonymous_pull: bool = False,
                   schema1: bool = False, port: int | None = None,
                   timeout: float = 15, ip: str = "127.0.0.1", tls: bool = False) -> Registry:
    """Start docker-registry on a free loopback port and return once /v2/ answers.

    auth: None (anonymous), "basic" (htpasswd) or "token" (bearer, with a TokenIssuer).
    anonymous_pull: with "token", anonymous callers may pull (like public repos on Docker Hub).
    ip/tls: listen on another address (non_loopback_ip(): a registry dockerd treats as secure)
    with a certificate for it signed by a fresh CA (reg.ca_pem; files in reg.root).
    """
    if auth not in (None, "basic", "token"):
        raise ValueError(f"auth must be None, 'basic' or 'token', not {auth!r}")
    root = Path(tempfile.mkdtemp(prefix="drreg", dir="/tmp"))
    password = password if password is not None else "pw-" + secrets.token_hex(6)
    issuer = None
    ca_pem = make_tls(ip, root) if tls else None
    if auth == "basic":
        (root / "htpasswd").write_text(bcrypt_line(username, password) + "\n")
    elif auth == "token":
        issuer = TokenIssuer({username: password}, anonymous_actions=("pull",) if anonymous_pull else ())
        (root / "issuer.pem").write_bytes(issuer.cert_pem)
    for attempt in range(5):  # the free port may be taken between our probe and the bind
        p = port or free_port(ip)
        (root / "config.yml").write_text(_config(root, p, auth, issuer, schema1, ip, tls))
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(root / "config.yml")],
                                stdout=open(root / "access.log", "wb"),
                                stderr=open(root / "registry.log", "wb"), cwd=root)
        reg = Registry(host=f"{ip}:{p}", url=f"{'https' if tls else 'http'}://{ip}:{p}", root=root, proc=proc,
                       auth=auth, username=username if auth else "", password=password if auth else "",
                       issuer=issuer, ca_pem=ca_pem)
        if _wait_ready(reg, timeout):
            return reg
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if port is not None or "address already in use" not in (root / "registry.log").read_text():
            break
    log = (root / "registry.log").read_text(errors="replace")
    if issuer is not None:
        issuer.stop()
    raise RuntimeError(f"docker-registry did not start:\n{log}")


def _wait_ready(reg: Registry, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reg.proc.poll() is not None:
            return False
        try:
            conn = reg.connection(timeout=2)
            conn.request("GET", "/v2/")
            status = conn.getresponse().status
            conn.close()
            if status in (200, 401):
                return True
        except OSError:
            pass
        time.sleep(0.02)  # polling a process that prints nothing we could wait on, bounded
    return False


# --------------------------------------------------------------------------- pytest fixtures

try:
    import pytest
except ImportError:  # usable without pytest (bench/)
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    def running_registry(auth: str | None = None) -> Iterator[Registry]:
        """A fixture body: a registry for the fixture's scope, or a skip where there is none."""
        if not have_registry():
            pytest.skip("docker-registry is not installed")
        reg = start_registry(auth=auth)
        try:
            yield reg
        finally:
            reg.stop()

    def _fixture(auth: str | None):  # type: ignore[no-untyped-def]
        def fx() -> Iterator[Registry]:
            yield from running_registry(auth)
        return fx

    registry = pytest.fixture(name="registry")(_fixture(None))
    basic_registry = pytest.fixture(name="basic_registry")(_fixture("basic"))
    token_registry = pytest.fixture(name="token_registry")(_fixture("token"))
