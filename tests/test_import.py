"""Import (POST /images/create?fromSrc=): the config we write, `changes`, archives, URLs and
errors, through the docker CLI, docker-py and raw requests. The expected values were read
from the reference dockerd 20.10 (test_compat_dockerd.py checks them side by side)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import random
import tarfile
import urllib.parse
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Iterator

import pytest
import zstandard

from dockerremote.api.progress import Throttle, progress_message
from dockerremote.errors import InvalidArgument
from dockerremote.transfer.changes import apply_changes
from dockerremote.transfer.importer import go_json
from tests.conftest import make_tar
from tests.support.httpserver import serving
from tests.support.proc import Engine, start_daemon, stop

EMPTY_SHA = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ROOTFS = make_tar({"bin/hello": b"hi\n", "etc/motd": b"welcome\n"})
DIFF_ID = "sha256:" + hashlib.sha256(ROOTFS).hexdigest()
BIG = make_tar({"big.bin": bytes(range(256)) * 12_000})  # ~3 MB
BASE = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
        "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
        "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
        "OnBuild": None, "Labels": None}


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """One daemon for the tests that only add uniquely named images."""
    e = start_daemon()
    try:
        yield e
    finally:
        stop(e)


def create(e: Engine, body: bytes = ROOTFS, version: str = "", **params: str | list[str]):
    query = urllib.parse.urlencode([(k, v) for k, vs in params.items()
                                    for v in (vs if isinstance(vs, list) else [vs])])
    return e.request("POST", f"{version}/images/create?{query}", body, {"Content-Type": "application/tar"})


def import_ok(e: Engine, body: bytes = ROOTFS, version: str = "", **params: str | list[str]) -> str:
    r = create(e, body, version, fromSrc="-", **params)
    assert r.status == 200, r.body
    lines = r.lines()
    assert len(lines) == 1 and list(lines[0]) == ["status"], lines
    return lines[0]["status"]


def config_bytes(e: Engine, image_id: str) -> bytes:
    return (e.data_root / "blobs" / "sha256" / image_id.split(":")[1]).read_bytes()


def blobs(e: Engine) -> set[str]:
    return {p.name for p in (e.data_root / "blobs" / "sha256").iterdir()}


# -- changes (unit) -------------------------------------------------------------------------

@pytest.mark.parametrize("changes, expected", [
    (['CMD ["sh"]'], {"Cmd": ["sh"]}),
    (["CMD echo  hi"], {"Cmd": ["/bin/sh", "-c", "echo  hi"]}),
    (["CMD"], {"Cmd": ["/bin/sh", "-c"]}),  # 20.10 prepends the shell to an empty line
    (["CMD []"], {"Cmd": []}),
    (['ENTRYPOINT ["a","b"]'], {"Entrypoint": ["a", "b"]}),
    (["ENTRYPOINT"], {}),
    (["ENTRYPOINT e", "CMD c"], {"Entrypoint": ["/bin/sh", "-c", "e"], "Cmd": ["/bin/sh", "-c", "c"]}),
    (["CMD c", "ENTRYPOINT e"], {"Entrypoint": ["/bin/sh", "-c", "e"], "Cmd": ["/bin/sh", "-c", "c"]}),
    (["CMD", "ENTRYPOINT e"], {"Entrypoint": ["/bin/sh", "-c", "e"]}),  # an empty CMD is not "set"
    (["ENV A=b"], {"Env": ["A=b"]}),
    (["ENV A b c"], {"Env": ["A=b c"]}),
    (['ENV A=1 B="2 3"'], {"Env": ["A=1", "B=2 3"]}),
    (["ENV A=1", "ENV B=2", "ENV A=3"], {"Env": ["A=3", "B=2"]}),  # replaced in place
    (["ENV A=1", "ENV B=$A C=${A}x D=${Z:-def} E=${A:+alt} F=\\$A"],
     {"Env": ["A=1", "B=1", "C=1x", "D=def", "E=alt", "F=$A"]}),
    (["ENV A=1 B=$A"], {"Env": ["A=1", "B="]}),  # expanded with the env before the line
    (["EXPOSE 80/udp 90-91"], {"ExposedPorts": {"80/udp": {}, "90/tcp": {}, "91/tcp": {}}}),
    (["EXPOSE 1.2.3.4:8080:80/TCP"], {"ExposedPorts": {"80/tcp": {}}}),
    (['ENV P="81 82"', "EXPOSE $P"], {"Env": ["P=81 82"], "ExposedPorts": {"81/tcp": {}, "82/tcp": {}}}),
    (["HEALTHCHECK NONE"], {"Healthcheck": {"Test": ["NONE"]}}),
    (["HEALTHCHECK --interval=5s --timeout=3s --start-period=1m --retries=3 CMD curl x"],
     {"Healthcheck": {"Test": ["CMD-SHELL", "curl x"], "Interval": 5 * 10**9, "Timeout": 3 * 10**9,
                      "StartPeriod": 60 * 10**9, "Retries": 3}}),
    (['HEALTHCHECK CMD ["a","b"]'], {"Healthcheck": {"Test": ["CMD", "a", "b"]}}),
    (["LABEL z=1 a=2", "LABEL a b"], {"Labels": {"z": "1", "a": "b"}}),
    (['LABEL "a b"=c'], {"Labels": {"a b": "c"}}),
    (["ONBUILD run  x  "], {"OnBuild": ["run  x  "]}),
    (["ENV U=x", "USER $U:grp"], {"Env": ["U=x"], "User": "x:grp"}),
    (['VOLUME ["/a","/b"]', "VOLUME /c /d"], {"Volumes": {"/a": {}, "/b": {}, "/c": {}, "/d": {}}}),
    (["WORKDIR a", "WORKDIR ../b/./c"], {"WorkingDir": "/b/c"}),
    (["WORKDIR /a/../b/"], {"WorkingDir": "/a/../b/"}),  # an absolute path is kept as written
    (["CMD a \\", "b"], {"Cmd": ["/bin/sh", "-c", "a b"]}),  # changes are one Dockerfile
    (["# escape=`\nENV A=x`\nB"], {"Env": ["A=xB"]}),
    (["\ufeffCMD x"], {"Cmd": ["/bin/sh", "-c", "x"]}),
])
def test_changes(changes: list[str], expected: dict) -> None:
    assert apply_changes(changes) == {**BASE, **expected}


@pytest.mark.parametrize("changes, message", [
    (["RUN x"], "run is not a valid change command"),
    (["bogus x"], "bogus is not a valid change command"),
    (["STOPSIGNAL 9"], "stopsignal is not a valid change command"),  # only from Moby 23
    ([""], "file with no instructions"),
    (["# only a comment"], "file with no instructions"),
    (["ENV"], "ENV requires at least one argument"),
    (["ENV A"], "ENV must have two arguments"),
    (["ENV =x"], "ENV names can not be blank"),
    (["ENV A=1 B"], 'Syntax error - can\'t find = in "B". Must be of the form: name=value'),
    (["ENV --foo A=1"], "Unknown flag: foo"),
    (["ENV A=${"], 'failed to process "${": syntax error: missing \'}\''),
    (["ENV A=${Z:?must}"], 'failed to process "${Z:?must}": Z: must'),
    (['ENV A="x'], 'failed to process "\\"x": unexpected end of statement while looking for matching double-quote'),
    (["CMD [\"a\", 1]"], "when using JSON array syntax, arrays must be comprised of strings only"),
    (["EXPOSE"], "EXPOSE requires at least one argument"),
    (["EXPOSE abc"], "Invalid containerPort: abc"),
    (["EXPOSE 80/xyz"], "Invalid proto: xyz"),
    (["EXPOSE 90-80"], "Invalid containerPort: 90-80"),
    (["HEALTHCHECK"], "HEALTHCHECK requires at least one argument"),
    (["HEALTHCHECK NONE x"], "HEALTHCHECK NONE takes no arguments"),
    (["HEALTHCHECK CMD"], "Missing command after HEALTHCHECK CMD"),
    (["HEALTHCHECK FOO x"], 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
    (["HEALTHCHECK --interval=0s CMD x"], 'Interval "interval" cannot be less than 1ms'),
    (["HEALTHCHECK --interval=5 CMD x"], 'time: missing unit in duration "5"'),
    (["HEALTHCHECK --interval=5x CMD x"], 'time: unknown unit "x" in duration "5x"'),
    (["HEALTHCHECK --retries=0 CMD x"], "--retries must be at least 1 (not 0)"),
    (["HEALTHCHECK --retries=x CMD x"], 'strconv.ParseInt: parsing "x": invalid syntax'),
    (["HEALTHCHECK --bogus=1 CMD x"], "Unknown flag: bogus"),
    (["HEALTHCHECK --interval CMD x"], "Missing a value on flag: interval"),
    (["HEALTHCHECK --interval=1s --interval=2s CMD x"], "Duplicate flag specified: interval"),
    (["LABEL a"], "LABEL must have two arguments"),
    (["ONBUILD ONBUILD x"], "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    (["ONBUILD FROM x"], "FROM isn't allowed as an ONBUILD trigger"),
    (["ONBUILD"], "ONBUILD requires at least one argument"),
    (["USER"], "USER requires exactly one argument"),
    (["VOLUME"], "VOLUME requires at least one argument"),
    (['VOLUME [""]'], "VOLUME specified can not be an empty string"),
    (["WORKDIR"], "WORKDIR requires exactly one argument"),
    (["ENV", "RUN x"], "run is not a valid change command"),  # the command check comes first
    (["HEALTHCHECK CMD [1]", "RUN x"],
     "when using JSON array syntax, arrays must be comprised of strings only"),  # ...after parsing
])
def test_change_errors(changes: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        apply_changes(changes)
    assert exc.value.message == message


def test_go_json_escapes_like_encoding_json() -> None:
    assert go_json({"b": "<x>&\b\f\n\u2028é\\\"\x01", "a": [1, True, None], "c": {}}) == \
        '{"b":"\\u003cx\\u003e\\u0026\\u0008\\u000c\\n\\u2028é\\\\\\"\\u0001","a":[1,true,null],"c":{}}'


# -- progress cadence (unit) -----------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_throttle_follows_dockerds_progress_reader() -> None:
    clock = Clock()
    t = Throttle(10_000_000, clock)  # 1% = 100 kB is the step (less than 512 KiB)
    assert not t.update(100_000)  # not *more* than 1%
    assert t.update(100_001)  # first line: the token bucket starts full
    assert not t.update(300_000)  # more than 1% new, but within 100 ms
    clock.t = 0.1
    assert t.update(500_000)
    clock.t = 0.15
    assert not t.update(9_000_000)
    assert t.update(10_000_000)  # current == total is always written
    assert not t.finish(10_000_000)  # ...and not repeated at the end
    big = Throttle(1 << 40, Clock())
    assert not big.update(512 * 1024) and big.update(512 * 1024 + 1)  # 512 KiB cap on the step


def test_throttle_unknown_total_and_final_line() -> None:
    t = Throttle(-1, Clock())
    assert not t.update(1000)
    assert t.finish(1000)
    assert progress_message("Importing", 1000, -1) == {
        "status": "Importing", "progressDetail": {"current": 1000, "total": -1}, "progress": "     1kB"}
    assert progress_message("Importing", 0, 0) == {"status": "Importing", "progressDetail": {}}


# -- the daemon ------------------------------------------------------------------------------

def test_cli_import_file_stdin_and_config_bytes(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "rootfs.tar.gz"
    path.write_bytes(gzip.compress(ROOTFS))
    r = engine.docker("import", str(path), "imp-cli:1", "--change", 'CMD ["sh"]', "--change", "ENV A=b",
                      "--message", "first", check=True)
    image_id = r.stdout.decode().strip()
    raw = config_bytes(engine, image_id)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == image_id
    cfg = json.loads(raw)
    assert list(cfg) == ["architecture", "comment", "config", "container_config", "created", "docker_version",
                         "history", "os", "rootfs"]
    assert cfg["config"] == {**BASE, "Env": ["A=b"], "Cmd": ["sh"]}
    assert cfg["comment"] == "first" and cfg["history"] == [{"created": cfg["created"], "comment": "first"}]
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [DIFF_ID]}  # DiffID of the uncompressed tar
    assert raw.startswith(b'{"architecture":"') and b" " not in raw.split(b'"created"')[0].replace(b"/bin/sh", b"")

    r = engine.docker("import", "-", "imp-cli:2", input=ROOTFS, check=True)
    cfg2 = json.loads(config_bytes(engine, r.stdout.decode().strip()))
    assert cfg2["comment"] == "Imported from -"  # dockerd's default message
    assert cfg2["history"][0]["comment"] == "Imported from -"
    out = engine.docker("images", "imp-cli", "--format", "{{.Tag}} {{.Size}}", check=True).stdout.decode()
    assert sorted(out.split("\n")[:2]) == ["1 11B", "2 11B"]  # file content bytes, not tar bytes


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress,
                                      lambda b: zstandard.ZstdCompressor().compress(b)])
def test_compressed_archives_have_the_tar_diff_id(engine: Engine, compress) -> None:  # type: ignore[no-untyped-def]
    image_id = import_ok(engine, compress(ROOTFS))
    assert engine.request("GET", f"/images/{image_id}/json").json()["RootFS"]["Layers"] == [DIFF_ID]


def test_empty_body_is_an_empty_layer(engine: Engine) -> None:
    image_id = import_ok(engine, b"", repo="imp-empty")
    info = engine.request("GET", "/images/imp-empty/json").json()
    assert info["Id"] == image_id and info["Size"] == 0 and info["RootFS"]["Layers"] == [EMPTY_SHA]


def test_docker_py_import(engine: Engine, tmp_path: Path) -> None:
    api = engine.api_client()
    out = api.import_image(src=ROOTFS, repository="imp-py", tag="1", changes=["LABEL a=b", "EXPOSE 80"])
    image_id = json.loads(out)["status"]
    path = tmp_path / "rootfs.tar"
    path.write_bytes(ROOTFS)
    out2 = api.import_image(src=str(path), repository="imp-py:2")
    assert json.loads(out2)["status"].startswith("sha256:")
    info = api.inspect_image("imp-py:1")
    assert info["Id"] == image_id and info["Config"]["Labels"] == {"a": "b"}
    assert info["Config"]["ExposedPorts"] == {"80/tcp": {}} and info["Comment"] == "Imported from -"
    assert api.inspect_image("imp-py:2")["RepoTags"] == ["imp-py:2"]
    lbl = api.images(filters={"label": "a=b"})
    assert [i["Id"] for i in lbl] == [image_id]


def test_repo_tag_and_message_params(engine: Engine) -> None:
    import_ok(engine, repo="imp-p:a", tag="b", message="msg <&>")
    info = engine.request("GET", "/images/imp-p:b/json").json()
    assert info["RepoTags"] == ["imp-p:b"] and info["Comment"] == "msg <&>"
    assert info["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    raw = config_bytes(engine, info["Id"])
    assert b'"comment":"msg \\u003c\\u0026\\u003e"' in raw  # Go escapes HTML characters
    untagged = import_ok(engine)
    assert engine.request("GET", f"/images/{untagged}/json").json()["Metadata"]["LastTagTime"] == \
        "0001-01-01T00:00:00Z"
    import_ok(engine, repo="scratch")  # reserved for FROM only, not for import


@pytest.mark.parametrize("params, status, message", [
    ({"repo": "x@sha256:" + "0" * 64}, 400, "cannot import digest reference"),
    ({"repo": "X"}, 400, "invalid reference format: repository name must be lowercase"),
    ({"repo": "x:a:b"}, 400, "invalid reference format"),
    ({"repo": "x", "tag": "a:b"}, 400, "invalid tag format"),
    ({"platform": "windows"}, 400, "operating system is not supported"),
    ({"platform": "darwin/amd64"}, 400, "operating system is not supported"),
    ({"platform": "foo"}, 400, '"foo": unknown operating system or architecture: invalid argument'),
    ({"platform": "linux/"}, 400, '"" is an invalid component of "linux/": platform specifier component must '
                                  'match "^[A-Za-z0-9_-]+$": invalid argument'),
    ({"platform": "x/y/z/w"}, 400, '"x/y/z/w": cannot parse platform specifier: invalid argument'),
    ({"platform": "*"}, 400, '"*": wildcards not yet supported: invalid argument'),
    ({"changes": "RUN x"}, 400, "run is not a valid change command"),
    ({"repo": "X", "platform": "windows"}, 400, "invalid reference format: repository name must be lowercase"),
])
def test_import_errors_are_http_errors(engine: Engine, params: dict, status: int, message: str) -> None:
    before = blobs(engine)
    r = create(engine, fromSrc="-", **params)
    assert (r.status, r.json()) == (status, {"message": message})
    assert blobs(engine) == before


@pytest.mark.parametrize("platform, arch, variant", [
    ("linux", "amd64", None), ("LINUX", "amd64", None), ("linux/arm64", "arm64", None), ("amd64", "amd64", None),
    ("Linux/ARM64/v8", "arm64", None), ("linux/arm/v6", "arm", "v6")])  # arm64/v8 normalizes to no variant
def test_platform_of_an_import(engine: Engine, platform: str, arch: str, variant: str | None) -> None:
    """dockerd 20.10 (API 1.41) takes only the OS, the arch is the host's; Moby 23+ takes
    the platform whole, which clients of 1.42 and later get."""
    old = import_ok(engine, version="/v1.41", platform=platform)
    info = engine.request("GET", f"/v1.41/images/{old}/json").json()
    assert (info["Os"], info["Architecture"], info.get("Variant")) == ("linux", "amd64", None)
    new = import_ok(engine, platform=platform)
    info = engine.request("GET", f"/images/{new}/json").json()
    assert (info["Os"], info["Architecture"], info.get("Variant")) == ("linux", arch, variant)
    config = json.loads(config_bytes(engine, new))
    assert (config["architecture"], config.get("variant")) == (arch, variant)


def test_platform_ignored_below_1_32(engine: Engine) -> None:
    r = create(engine, version="/v1.31", fromSrc="-", platform="windows")
    assert r.status == 200 and r.lines()[0]["status"].startswith("sha256:")


def test_cli_import_errors(engine: Engine, tmp_path: Path) -> None:
    r = engine.docker("import", "--change", "RUN x", "-", "imp-e", input=ROOTFS)
    assert r.returncode == 1
    assert r.stderr.decode() == "Error response from daemon: run is not a valid change command\n"
    r = engine.docker("import", "--platform", "windows", "-", input=ROOTFS)
    assert r.returncode == 1 and b"operating system is not supported" in r.stderr


def tar_with(members: list[tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for m in members:
            t.addfile(m, io.BytesIO(b"x" * m.size) if m.isreg() else None)
    return buf.getvalue()


def member(name: str, size: int = 1, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.size, m.type, m.linkname = size, kind, link
    return m


@pytest.mark.parametrize("body, message", [
    (ROOTFS[:700], "ApplyLayer exit status 1 stdout:  stderr: unexpected EOF"),
    (gzip.compress(make_tar({"n": random.Random(7).randbytes(100_000)}))[:20_000],
     "ApplyLayer exit status 1 stdout:  stderr: unexpected EOF"),
    (b"not a tar at all" * 5, "ApplyLayer exit status 1 stdout:  stderr: unexpected EOF"),
    (b"\x01" * 2048, "ApplyLayer exit status 1 stdout:  stderr: archive/tar: invalid tar header"),
    # dockerd clamps these into the layer root when it unpacks; we never unpack, so we refuse
    # to keep a layer other tools could unpack outside their root
    (tar_with([member("../evil")]), '"../evil" is outside of the layer root'),
    (tar_with([member("a/../../evil")]), '"a/../../evil" is outside of the layer root'),
    (tar_with([member("a"), member("b", 0, tarfile.LNKTYPE, "../x")]), 'invalid hardlink "b" -> "../x"'),
])
def test_bad_archives_store_nothing(engine: Engine, body: bytes, message: str) -> None:
    before_blobs = blobs(engine)
    before = engine.request("GET", "/images/json?all=1").json()
    r = create(engine, body, fromSrc="-", repo="imp-bad")
    assert (r.status, r.json()) == (400, {"message": message})
    assert blobs(engine) == before_blobs
    assert engine.request("GET", "/images/json?all=1").json() == before
    assert engine.request("GET", "/images/imp-bad/json").status == 404


def test_inner_dotdot_and_symlinks_out_are_fine(engine: Engine) -> None:
    import_ok(engine, tar_with([member("a/../b"), member("s", 0, tarfile.SYMTYPE, "../../etc/passwd")]))


# -- URL sources -------------------------------------------------------------------------------

class Files(BaseHTTPRequestHandler):
    """Serves FILES[path] = (status, body, write size, send Content-Length)."""

    files: dict[str, tuple[int, bytes, int, bool]] = {}
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        status, body, step, length = self.files.get(self.path, (404, b"  not here \n", 1 << 20, True))
        self.send_response(status, {404: "File not found"}.get(status))
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for i in range(0, len(body), step):
            self.wfile.write(body[i:i + step])
            self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http() -> Iterator[str]:
    with serving(Files) as url:
        yield url


def test_url_import_stream(engine: Engine, http: str) -> None:
    Files.files["/big.tar"] = (200, BIG, 4096, True)  # ~750 small writes: many network reads
    # the `progress` text is a field of API <= 1.51 (versions.SWITCHES: stream_progress_text)
    r = create(engine, b"", version="/v1.41", fromSrc=f"{http}/big.tar", repo="imp-url")
    assert r.status == 200
    lines = r.lines()
    assert lines[0] == {"status": f"Downloading from {http}/big.tar"}
    progress = lines[1:-1]
    if progress and progress[-1] == {}:  # dockerd's mark of a last update the throttle had held
        progress.pop()                   # back (when the final read returns only EOF): a race
    assert 1 <= len(progress) <= 101, len(progress)  # throttled, not one line per read
    for p in progress:
        assert list(p) == ["status", "progressDetail", "progress"] and p["status"] == "Importing"
        assert p["progressDetail"]["total"] == len(BIG)
    assert progress[-1]["progressDetail"]["current"] == len(BIG)
    assert progress[-1]["progress"].startswith("[" + "=" * 50 + ">]")
    assert list(lines[-1]) == ["status"] and lines[-1]["status"].startswith("sha256:")
    assert b"\\u003e" in r.body and r.body.endswith(b"\r\n")
    info = engine.request("GET", "/images/imp-url/json").json()
    assert info["Comment"] == f"Imported from {http}/big.tar"
    assert info["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(BIG).hexdigest()]


def test_url_without_scheme_and_length(engine: Engine, http: str) -> None:
    Files.files["/nolen.tar.gz"] = (200, gzip.compress(ROOTFS), 1 << 20, False)
    host = http.removeprefix("http://")
    r = create(engine, b"", version="/v1.41", fromSrc=f"{host}/nolen.tar.gz")
    lines = r.lines()
    assert lines[0] == {"status": f"Downloading from {http}/nolen.tar.gz"}  # http:// added
    assert lines[-3]["progressDetail"]["total"] == -1 and lines[-3]["progress"].strip().endswith("B")
    assert lines[-2] == {}  # dockerd's mark of a progress that ended on a bare EOF
    info = engine.request("GET", f"/images/{lines[-1]['status']}/json").json()
    assert info["Comment"] == f"Imported from {http}/nolen.tar.gz" and info["RootFS"]["Layers"] == [DIFF_ID]


def test_url_errors(engine: Engine, http: str) -> None:
    r = create(engine, b"", fromSrc=f"{http}/missing.tar")
    assert r.status == 404  # dockerd keeps 400/401/403/404 from the server, body trimmed
    assert r.json() == {"message": f"failed to GET {http}/missing.tar with status 404 File not found: not here"}
    Files.files["/boom"] = (503, b"down", 1 << 20, True)
    r = create(engine, b"", fromSrc=f"{http}/boom")
    assert r.status == 500
    assert r.json()["message"] == f"failed to GET {http}/boom with status 503 Service Unavailable: down"
    r = create(engine, b"", fromSrc="http://127.0.0.1:1/x.tar")
    assert (r.status, r.json()) == (
        500, {"message": 'Get "http://127.0.0.1:1/x.tar": dial tcp 127.0.0.1:1: connect: connection refused'})
    r = create(engine, b"", fromSrc="ftp://127.0.0.1/x")
    assert r.json() == {"message": 'Get "ftp://127.0.0.1/x": unsupported protocol scheme "ftp"'}
    r = create(engine, b"")  # neither fromSrc nor fromImage: dockerd fetches "http://"
    assert r.json() == {"message": 'Get "http:": http: no Host in request URL'}


def test_url_bad_archive_is_an_in_stream_error(engine: Engine, http: str) -> None:
    Files.files["/garbage"] = (200, b"\x01" * 4096, 1 << 20, True)
    before = blobs(engine)
    r = create(engine, b"", fromSrc=f"{http}/garbage")
    assert r.status == 200  # the stream had started: the error is its last line
    msg = "ApplyLayer exit status 1 stdout:  stderr: archive/tar: invalid tar header"
    assert r.lines()[0] == {"status": f"Downloading from {http}/garbage"}
    assert r.lines()[-1] == {"errorDetail": {"message": msg}, "error": msg}
    assert blobs(engine) == before


def test_body_is_never_read_as_a_form(engine: Engine) -> None:
    # dockerd parses a form-encoded body as a form and imports nothing; we import the bytes
    r = engine.request("POST", "/images/create?fromSrc=-", ROOTFS,
                       {"Content-Type": "application/x-www-form-urlencoded"})
    image_id = r.lines()[-1]["status"]
    assert engine.request("GET", f"/images/{image_id}/json").json()["RootFS"]["Layers"] == [DIFF_ID]
