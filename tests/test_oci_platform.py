"""Platform specifiers and matching, as dockerd 20.10 (containerd's platforms package) does them."""

import pytest

from dockerremote.errors import InvalidArgument
from dockerremote.oci import platform as plat
from dockerremote.oci.platform import Platform


@pytest.mark.parametrize("spec, want", [
    ("linux/amd64", Platform("linux", "amd64")),
    ("LINUX/X86_64", Platform("linux", "amd64")),
    ("linux/aarch64", Platform("linux", "arm64")),
    ("linux/arm64/v8", Platform("linux", "arm64")),
    ("linux/arm", Platform("linux", "arm")),          # v7 implied, left out as containerd does
    ("linux/arm/7", Platform("linux", "arm", "v7")),
    ("linux/armhf", Platform("linux", "arm")),
    ("linux/armel", Platform("linux", "arm", "v6")),
    ("linux/arm/v5", Platform("linux", "arm", "v5")),
    ("linux/i386", Platform("linux", "386")),
    ("windows/amd64", Platform("windows", "amd64")),
    ("arm64", Platform("linux", "arm64")),            # a lone architecture gets the host OS
    ("linux", Platform("linux", plat.host_arch())),   # a lone OS gets the host architecture
])
def test_parse(spec: str, want: Platform) -> None:
    assert plat.parse(spec) == want


@pytest.mark.parametrize("spec, message", [
    ("a/b/c/d", '"a/b/c/d": cannot parse platform specifier: invalid argument'),
    ("*", '"*": wildcards not yet supported: invalid argument'),
    ("foo", '"foo": unknown operating system or architecture: invalid argument'),
    ("linux/", '"" is an invalid component of "linux/": platform specifier component must match '
               '"^[A-Za-z0-9_-]+$": invalid argument'),
    ("a b", '"a b" is an invalid component of "a b": platform specifier component must match '
            '"^[A-Za-z0-9_-]+$": invalid argument'),
])
def test_parse_errors_are_dockerds(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        plat.parse(spec)
    assert e.value.message == message


def test_match_normalizes_names_and_variants() -> None:
    assert plat.matches(Platform("linux", "arm64"), Platform("linux", "arm64", "v8"))
    assert plat.matches(Platform("linux", "arm"), Platform("linux", "arm", "v7"))
    assert plat.matches(Platform("linux", "x86_64"), Platform("linux", "amd64"))
    assert not plat.matches(Platform("linux", "arm", "v6"), Platform("linux", "arm", "v7"))
    assert not plat.matches(Platform("linux", "amd64"), Platform("windows", "amd64"))


def test_select_first_match_and_arm_fallback() -> None:
    entries = [Platform("linux", "amd64"), Platform("linux", "arm64", "v8"), Platform("linux", "arm", "v7"),
               Platform("linux", "amd64")]
    assert plat.select(Platform("linux", "amd64"), entries) == 0
    assert plat.select(plat.parse("linux/arm64"), entries) == 1
    assert plat.select(plat.parse("linux/arm"), entries) == 2
    assert plat.select(plat.parse("linux/arm/v5"), entries) == 2   # dockerd's old os/arch-only match
    assert plat.select(plat.parse("linux/s390x"), entries) is None
    assert plat.select(plat.parse("linux/arm64/v9"), entries) is None
    assert plat.select(None, [None, Platform("linux", plat.host_arch(), plat.host().variant)]) == 1


def test_no_match_message() -> None:
    assert plat.no_match_message(plat.parse("linux/s390x")) == \
        "no matching manifest for linux/s390x in the manifest list entries"
    assert plat.no_match_message(plat.parse("linux/arm64/v9")) == \
        "no matching manifest for linux/arm64/v9 in the manifest list entries"
    assert plat.no_match_message(None).startswith(f"no matching manifest for linux/{plat.host_arch()}")
