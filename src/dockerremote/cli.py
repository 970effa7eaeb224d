"""`dockerremote serve|version`: flags named like dockerd's, then config → store → app."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from dockerremote import __version__, config
from dockerremote.errors import DockerRemoteError, InvalidArgument
from dockerremote.tls import server_context

log = logging.getLogger("dockerremote")

MAX_HEADER = 1 << 20  # Go's http.DefaultMaxHeaderBytes
SHUTDOWN_GRACE = 5.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockerremote", description="The Docker Engine image API, in Python.")
    p.add_argument("--version", action="version", version=f"dockerremote {__version__}")
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("serve", help="run the daemon")
    s.add_argument("--data-root", dest="data_root", help="where images are stored")
    s.add_argument("-H", "--host", dest="hosts", action="append", default=[],
                   help="unix://PATH or tcp://HOST:PORT (repeatable)")
    s.add_argument("--config-file", dest="config_file", help="daemon.json-style settings")
    s.add_argument("--registry-mirror", dest="registry_mirrors", action="append", default=[])
    s.add_argument("--insecure-registry", dest="insecure_registries", action="append", default=[])
    s.add_argument("--max-concurrent-downloads", dest="max_concurrent_downloads", type=int)
    s.add_argument("--max-concurrent-uploads", dest="max_concurrent_uploads", type=int)
    s.add_argument("-l", "--log-level", dest="log_level",
                   choices=["debug", "info", "warn", "error", "fatal"])
    s.add_argument("--allow-nonloopback", dest="allow_nonloopback", action="store_true", default=None,
                   help="listen on a non-loopback TCP address without client certificates (insecure)")
    s.add_argument("--tls", dest="tls", action="store_true", default=None, help="serve TCP hosts over TLS")
    s.add_argument("--tlsverify", dest="tlsverify", action="store_true", default=None,
                   help="TLS, and require client certificates signed by --tlscacert (implies --tls)")
    s.add_argument("--tlscacert", dest="tlscacert", help="trust client certificates signed by this CA")
    s.add_argument("--tlscert", dest="tlscert", help="the server's TLS certificate")
    s.add_argument("--tlskey", dest="tlskey", help="the server's TLS key")
    sub.add_parser("version", help="print the version")
    return p


def _check_host(host: str, allow_nonloopback: bool, tls: bool = False) -> tuple[str, str, int | None]:
    """('unix', path, None) or ('tcp', host, port); refuses what dockerd users would not expect.
    A TCP host without a port takes dockerd's: 2376 with TLS, 2375 without."""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
        if not path:
            raise InvalidArgument(f"invalid host: {host}")
        return "unix", path, None
    if host.startswith("tcp://"):
        u = urlsplit(host)
        try:
            port = u.port or (2376 if tls else 2375)
        except ValueError:
            port = 0
        if not u.hostname or not port or u.path not in ("", "/"):
            raise InvalidArgument(f"invalid tcp host (want tcp://HOST:PORT): {host}")
        try:
            loopback = u.hostname == "localhost" or ipaddress.ip_address(u.hostname).is_loopback
        except ValueError:
            loopback = False
        if not loopback and not allow_nonloopback:
            raise InvalidArgument(f"refusing to listen on {host} without client certificates (--tlsverify): "
                                  "pass --allow-nonloopback to do it anyway")
        return "tcp", u.hostname, port
    raise InvalidArgument(f"invalid host: {host} (want unix://PATH or tcp://HOST:PORT)")


def _open_ok(settings: config.Settings) -> bool:
    """A non-loopback TCP host is fine with client certificates required, or when asked for."""
    return bool(settings.tlsverify or settings.allow_nonloopback)


async def _serve(settings: config.Settings, binds: list[tuple[str, str, int | None]],
                 tls: ssl.SSLContext | None) -> None:
    """Serve on `binds` (checked hosts); TCP ones over `tls` when given."""
    from dockerremote.api.app import make_app
    from dockerremote.store.images import ImageStore

    store = await asyncio.to_thread(ImageStore, settings.data_root)
    app = make_app(store, settings)
    # Go's server takes up to 1 MiB of headers (an X-Registry-Auth with a long identity token
    # is several KiB) and hands a body over as sent, whatever its Content-Encoding says: the
    # load and import paths detect compression by magic bytes, as dockerd does.
    # On SIGTERM, requests still running get SHUTDOWN_GRACE seconds, then are cancelled (their
    # transfers clean up): aiohttp's default of 60 s outlasts what a service manager waits
    runner = web.AppRunner(app, access_log=None, handle_signals=False, max_line_size=MAX_HEADER,
                           max_field_size=MAX_HEADER, max_headers=1024, auto_decompress=False,
                           shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()
    try:
        for kind, where, port in binds:
            if kind == "unix":
                Path(where).parent.mkdir(parents=True, exist_ok=True)
                if os.path.exists(where):
                    os.unlink(where)
                await web.UnixSite(runner, where).start()
                os.chmod(where, 0o660)
                print(f"dockerremote {__version__} listening on unix://{where} (data root {settings.data_root})",
                      flush=True)
            else:
                await web.TCPSite(runner, where, port, ssl_context=tls).start()
                print(f"dockerremote {__version__} listening on tcp://{where}:{port} "
                      f"({'TLS, ' if tls else ''}data root {settings.data_root})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
        store.close()
        for kind, where, _ in binds:
            if kind == "unix" and os.path.exists(where):
                os.unlink(where)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"dockerremote {__version__}")
        return 0
    if args.command != "serve":
        _parser().print_help()
        return 2
    try:
        file_values = config.load_file(Path(args.config_file)) if args.config_file else {}
        flags = {k: getattr(args, k) for k in ("data_root", "hosts", "registry_mirrors", "insecure_registries",
                                                "max_concurrent_downloads", "max_concurrent_uploads",
                                                "log_level", "allow_nonloopback", "tls", "tlsverify",
                                                "tlscacert", "tlscert", "tlskey")}
        settings = config.build(file_values, flags)
        level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(settings.log_level, settings.log_level.upper())
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        binds = [_check_host(h, _open_ok(settings), settings.tls_enabled) for h in settings.effective_hosts()]
        from dockerremote.registry.hosts import parse_insecure, validate_mirror

        for mirror in settings.registry_mirrors:  # refused at start, as dockerd does
            validate_mirror(mirror)
        parse_insecure(list(settings.insecure_registries))
        tls = None
        if settings.tls_enabled:  # a missing or unreadable certificate stops the start, with its name
            tls = server_context(settings.tlscacert, settings.tlscert, settings.tlskey, settings.tlsverify)
        from dockerremote.tuning import tune_process

        tune_process()
        asyncio.run(_serve(settings, binds, tls))
    except DockerRemoteError as exc:
        print(f"dockerremote: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"dockerremote: {exc}", file=sys.stderr)
        return 1
    return 0
