"""/_ping, /version, /info, /system/df."""

from __future__ import annotations

import base64
import hashlib
import os
import platform
from typing import Any

from aiohttp import web

from dockerremote import __version__
from dockerremote.api import shapes, versions
from dockerremote.api.app import ENGINE_VERSION, Ctx, Router
from dockerremote.api.jsonstream import json_response
from dockerremote.errors import InvalidArgument

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "s390x": "s390x",
            "ppc64le": "ppc64le", "riscv64": "riscv64"}


def host_arch() -> str:
    m = platform.machine()
    return _GO_ARCH.get(m, m)


def _os_release(key: str, default: str) -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith(key + "="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return default


def engine_id(data_root: str) -> str:
    """A stable daemon ID in dockerd's shape (12 groups of 4 base32 characters), derived from
    the data root so it survives restarts without a key file."""
    raw = base64.b32encode(hashlib.sha256(data_root.encode()).digest()[:30]).decode()
    return ":".join(raw[i:i + 4] for i in range(0, 48, 4))


# What newer daemons (Moby 23+, API 1.42+) send on every /_ping, whatever the URL version.
# Builder-Version: "1" (the classic builder) rather than "2": we have no BuildKit session
# endpoints, so a client told "2" would fail in a more confusing way.
BUILDER_VERSION = "1"
SWARM_STATUS = "inactive"


async def ping(ctx: Ctx) -> web.StreamResponse:
    headers = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
               "Builder-Version": BUILDER_VERSION, "Swarm": SWARM_STATUS}
    if ctx.request.method == "HEAD":
        headers["Content-Length"] = "0"  # dockerd announces the empty body
        return web.Response(status=200, headers=headers, content_type="text/plain", charset="utf-8")
    return web.Response(text="OK", headers=headers, content_type="text/plain", charset="utf-8")


async def version(ctx: Ctx) -> web.StreamResponse:
    api, min_api = versions.render(versions.MAX_VERSION), versions.render(versions.MIN_VERSION)
    server_version = f"{ENGINE_VERSION}+dockerremote.{__version__}"
    kernel = platform.release()
    details = {"ApiVersion": api, "Arch": host_arch(), "BuildTime": "", "Experimental": "false",
               "GitCommit": "", "GoVersion": f"python{platform.python_version()}", "KernelVersion": kernel,
               "MinAPIVersion": min_api, "Os": "linux"}
    return json_response({
        "Platform": {"Name": ""},
        "Components": [{"Name": "Engine", "Version": server_version, "Details": details}],
        "Version": server_version, "ApiVersion": api, "MinAPIVersion": min_api, "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}", "Os": "linux", "Arch": host_arch(),
        "KernelVersion": kernel, "BuildTime": "",
    })


def _cgroup_version() -> str:
    """The host's cgroup version, as dockerd reports it (we run no containers, but the field is
    an enum of "1" and "2")."""
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def _mem_total() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def registry_config(mirrors_given: list[str], insecure_given: list[str]) -> dict[str, Any]:
    """/info's RegistryConfig as dockerd builds it from its flags (map keys sorted, as Go's)."""
    from dockerremote.registry.hosts import LOOPBACK, parse_insecure, shown_mirror, validate_mirror

    mirrors = [shown_mirror(validate_mirror(m)) for m in mirrors_given]
    names, nets = parse_insecure(insecure_given)
    index = {"docker.io": {"Name": "docker.io", "Mirrors": mirrors, "Secure": True, "Official": True}}
    for name in names - {"docker.io"}:  # dockerd never treats Docker Hub as insecure
        index[name] = {"Name": name, "Mirrors": [], "Secure": False, "Official": False}
    return {"AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": [str(n) for n in nets if n != LOOPBACK] + [str(LOOPBACK)],
            "IndexConfigs": dict(sorted(index.items())), "Mirrors": mirrors}


async def info(ctx: Ctx) -> web.StreamResponse:
    s = ctx.settings
    images = ctx.store.index.images
    v = ctx.version
    out = {
        "ID": engine_id(str(s.data_root)), "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
        "Images": len(images), "Driver": "dockerremote", "DriverStatus": [["Store", "blobs + sqlite"]],
        "Plugins": {"Volume": [], "Network": [], "Authorization": [], "Log": []},  # none
        "MemoryLimit": False, "SwapLimit": False, "KernelMemory": False, "KernelMemoryTCP": False,
        "CpuCfsPeriod": False, "CpuCfsQuota": False,
        "CPUShares": False, "CPUSet": False, "PidsLimit": False, "IPv4Forwarding": False,
        "BridgeNfIptables": False, "BridgeNfIp6tables": False, "Debug": s.log_level == "debug",
        "NFd": len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0,
        "OomKillDisable": False, "NGoroutines": 0, "SystemTime": shapes.now_rfc3339(),
        "LoggingDriver": "", "CgroupDriver": "none", "CgroupVersion": _cgroup_version(), "NEventsListener": 0,
        "KernelVersion": platform.release(), "OperatingSystem": _os_release("PRETTY_NAME", "Linux"),
        "OSVersion": _os_release("VERSION_ID", ""),
        "OSType": "linux", "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry_config(list(s.registry_mirrors), list(s.insecure_registries)),
        "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(), "GenericResources": [],
        "DockerRootDir": str(s.data_root), "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": platform.node(), "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": f"{ENGINE_VERSION}+dockerremote.{__version__}",
        "Runtimes": {}, "DefaultRuntime": "", "Swarm": {
            "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
            "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": False, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""}, "SecurityOptions": [], "Warnings": [],
    }
    if not v.has("info_bridge_nf"):
        del out["BridgeNfIptables"], out["BridgeNfIp6tables"]
    if not v.has("info_nondistributable"):
        reg: dict[str, Any] = out["RegistryConfig"]  # type: ignore[assignment]
        del reg["AllowNondistributableArtifactsCIDRs"], reg["AllowNondistributableArtifactsHostnames"]
    if not v.has("info_expected_commits"):
        for key in ("ContainerdCommit", "RuncCommit", "InitCommit"):
            out[key] = {"ID": ""}
    return json_response(out)


DF_TYPES = ("container", "image", "volume", "build-cache")


def _df_types(ctx: Ctx) -> set[str]:
    """The object kinds to report: all, unless a 1.42+ client names some with ?type=."""
    asked = ctx.request.query.getall("type", [])
    if not asked or not ctx.version.has("df_type"):
        return set(DF_TYPES)
    for kind in asked:
        if kind not in DF_TYPES:
            raise InvalidArgument(f"unknown object type: {kind}")
    return set(asked)


async def system_df(ctx: Ctx) -> web.StreamResponse:
    store = ctx.store
    kinds = _df_types(ctx)
    items: list | None = None
    layers_size = 0
    if "image" in kinds:
        with store.index.lock:
            items = [shapes.list_item(store, img, ctx.version, with_shared_size=True, containers=0)
                     for img in shapes.sorted_images(store.index.images.values())]
            layers_size = sum(lay.size for lay in store.index.layers.values())
    # no containers nor volumes here: empty when asked for, null (moby's nil slice) when not
    containers: list[Any] | None = [] if "container" in kinds else None
    volumes: list[Any] | None = [] if "volume" in kinds else None
    if not ctx.version.has("df_usage_objects"):
        return json_response({"LayersSize": layers_size, "Images": items, "Containers": containers,
                              "Volumes": volumes, "BuildCache": None, "BuilderSize": 0})
    # 1.52: the usage objects; the legacy fields too unless the client asked for `verbose`
    # (moby keeps both for clients that use the newest version unknowingly, e.g. docker-py).
    verbose = ctx.query_bool("verbose")
    out: dict = {}
    if not verbose:
        if layers_size:  # omitempty
            out["LayersSize"] = layers_size
        out.update({"Images": items, "Containers": containers, "Volumes": volumes})
    empty = {"ActiveCount": 0, "Reclaimable": 0, "TotalCount": 0, "TotalSize": 0}
    if items is not None:
        image_usage: dict = {"ActiveCount": 0, "Reclaimable": layers_size, "TotalCount": len(items),
                             "TotalSize": layers_size}
        if items:  # Items: omitempty
            image_usage["Items"] = items
        out["ImageUsage"] = image_usage
    if containers is not None:
        out["ContainerUsage"] = dict(empty)
    if volumes is not None:
        out["VolumeUsage"] = dict(empty)
    return json_response(out)


def register(router: Router) -> None:
    router.add("GET", "/_ping", ping)
    router.add("GET", "/version", version)
    router.add("GET", "/info", info)
    router.add("GET", "/system/df", system_df)
