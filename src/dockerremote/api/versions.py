"""API versions: the range we serve and the one table of what changes with the version.

Every version-dependent behaviour is a row in SWITCHES; handlers and shapes ask
`version.has(name)`. Adding an API version is moving MAX_VERSION and adding the rows that
change; nothing else should compare version numbers.

Sources: moby's api/docs/CHANGELOG.md, the frozen specs (v1.41, v1.44, v1.52) and the
version gates of moby's image, system and distribution routes. Up to 1.41 the reference is
dockerd 20.10 as it answers here; later rows follow moby's source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockerremote.errors import InvalidArgument

Version = tuple[int, ...]

MIN_VERSION: Version = (1, 24)
MAX_VERSION: Version = (1, 52)
REQUEST_KEY = "dockerremote.api_version"  # where app.py leaves a request's ApiVersion (for streams)


@dataclass(frozen=True)
class Switch:
    since: Version | None = None  # first version with the behaviour
    until: Version | None = None  # first version without it
    doc: str = ""


SWITCHES: dict[str, Switch] = {
    # -- GET /images/json ---------------------------------------------------------------------
    "legacy_filter_param": Switch(until=(1, 41), doc="?filter=<glob> is a reference filter (dockerd 20.10)"),
    "list_shared_size": Switch(since=(1, 42), doc="?shared-size=1 computes SharedSize (else -1)"),
    "none_placeholders": Switch(until=(1, 43), doc="<none>:<none>/<none>@<none> for untagged images and "
                                                   "null for an empty RepoTags/RepoDigests; [] from 1.43"),
    "virtual_size": Switch(until=(1, 44), doc="VirtualSize in list, inspect and df"),
    "list_until_filter": Switch(since=(1, 44), doc="the `until` filter (Moby 25; dockerd 20.10 refuses it)"),
    "list_manifests": Switch(since=(1, 47), doc="?manifests=1 adds the Manifests field"),
    "descriptor": Switch(since=(1, 48), doc="Descriptor (the OCI index or manifest pulled) in list and inspect"),
    "list_containers_count": Switch(since=(1, 51), doc="Containers is the real count (0 here), not -1"),
    # -- GET /images/{name}/json ----------------------------------------------------------------
    "inspect_zero_created": Switch(until=(1, 44), doc="a config without `created` shows 0001-01-01T00:00:00Z; "
                                                      "from 1.44 Created is left out"),
    "container_config": Switch(until=(1, 45), doc="inspect has Container and ContainerConfig"),
    "inspect_manifests": Switch(since=(1, 48), doc="?manifests=1 adds the Manifests field"),
    "inspect_platform": Switch(since=(1, 49), doc="?platform=<JSON OCI platform> selects the image"),
    "inspect_container_fields": Switch(until=(1, 50), doc="Config is container.Config (Hostname, Domainname, "
                                                          "Attach*, Tty, OpenStdin, StdinOnce, Image...); from "
                                                          "1.50 the OCI image config"),
    "inspect_empty_fields": Switch(until=(1, 52), doc="Parent, Comment, DockerVersion, Author and Config's Cmd, "
                                                      "Entrypoint, Env, Labels, OnBuild, User, Volumes, "
                                                      "WorkingDir are shown even when empty"),
    # -- JSON `platform` parameters (JSON OCI platforms) -----------------------------------------
    "create_platform": Switch(since=(1, 32), doc="POST /images/create honours platform (os/arch string)"),
    "import_platform_arch": Switch(since=(1, 42), doc="an import records the platform's arch and variant, "
                                                      "not the host's (Moby 23; unversioned there)"),
    "push_platform": Switch(since=(1, 46), doc="push ?platform="),
    "history_platform": Switch(since=(1, 48), doc="history ?platform="),
    "archive_platform": Switch(since=(1, 48), doc="save and load ?platform="),
    "archive_platforms": Switch(since=(1, 52), doc="save and load take several platform values"),
    "delete_platforms": Switch(since=(1, 50), doc="DELETE /images/{name} ?platforms="),
    # -- progress streams (create, load, push) ---------------------------------------------------
    "stream_progress_text": Switch(until=(1, 52), doc="the `progress` bar string (deprecated in 1.48; Docker 29, "
                                                      "API 1.52, no longer sends it)"),
    "stream_error_text": Switch(doc="the `error` string beside errorDetail (deprecated in 1.48, but moby 29 "
                                    "still sends it at every version)"),
    # -- /info and /system/df ---------------------------------------------------------------------
    "info_nondistributable": Switch(until=(1, 47), doc="RegistryConfig.AllowNondistributableArtifacts*"),
    "info_expected_commits": Switch(until=(1, 49), doc="*Commit.Expected in /info"),
    "info_bridge_nf": Switch(until=(1, 50), doc="BridgeNfIptables and BridgeNfIp6tables in /info"),
    "df_type": Switch(since=(1, 42), doc="/system/df ?type= picks the object kinds computed; the others are null"),
    "df_usage_objects": Switch(since=(1, 52), doc="/system/df has ImageUsage, ContainerUsage, VolumeUsage, "
                                                  "BuildCacheUsage; ?verbose=1 drops the legacy fields"),
}


def parse(text: str) -> Version:
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", text):
        raise InvalidArgument(f"invalid API version: {text}")
    return tuple(int(p) for p in text.split("."))


def render(v: Version) -> str:
    return ".".join(str(p) for p in v)


def _cmp_key(v: Version) -> Version:
    return v + (0,) * (3 - len(v)) if len(v) < 3 else v


def check(text: str) -> Version:
    """Validate a URL version against our range, with dockerd's messages."""
    v = parse(text)
    if _cmp_key(v) < _cmp_key(MIN_VERSION):
        raise InvalidArgument(
            f"client version {text} is too old. Minimum supported API version is "
            f"{render(MIN_VERSION)}, please upgrade your client to a newer version")
    if _cmp_key(v) > _cmp_key(MAX_VERSION):
        raise InvalidArgument(
            f"client version {text} is too new. Maximum supported API version is {render(MAX_VERSION)}")
    return v


@dataclass(frozen=True)
class ApiVersion:
    value: Version

    def has(self, switch: str) -> bool:
        s = SWITCHES[switch]
        v = _cmp_key(self.value)
        if s.since is not None and v < _cmp_key(s.since):
            return False
        if s.until is not None and v >= _cmp_key(s.until):
            return False
        return True

    def key(self, *switches: str) -> tuple[bool, ...]:
        """The answers to several switches: a cache key for a version-shaped view."""
        return tuple(self.has(s) for s in switches)

    def __str__(self) -> str:
        return render(self.value)
