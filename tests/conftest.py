"""Fixtures: our daemon (fresh per test), the reference dockerd (once per session, if it runs)."""

from __future__ import annotations

import io
import tarfile
from typing import Iterator

import pytest

from tests.support.proc import Engine, start_daemon, start_reference_dockerd, stop


@pytest.fixture
def daemon() -> Iterator[Engine]:
    engine = start_daemon()
    try:
        yield engine
    finally:
        if engine.proc and engine.proc.poll() is None:
            stop(engine)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Engine]:
    """The reference dockerd 20.10; tests that compare with it are skipped where it cannot run."""
    engine = start_reference_dockerd()
    if engine is None:
        pytest.skip("reference dockerd not available")
    try:
        yield engine
    finally:
        stop(engine)


def make_tar(files: dict[str, bytes], mtime: int = 1_700_000_000) -> bytes:
    """A deterministic rootfs tar: same files, same bytes, same DiffID."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = mtime
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def rootfs_tar() -> bytes:
    return make_tar({"bin/hello": b"hi\n", "etc/motd": b"welcome\n"})
