"""Unit tests: reference parsing, normalization and error texts as dockerd 20.10 has them
(each expectation below was checked against the reference dockerd through POST /images/x/tag)."""

from __future__ import annotations

import pytest

from dockerremote import reference
from dockerremote.errors import InvalidReference

HEX64 = "a" * 64


@pytest.mark.parametrize("text, full, familiar", [
    ("alpine", "docker.io/library/alpine", "alpine"),
    ("alpine:3", "docker.io/library/alpine:3", "alpine:3"),
    ("library/alpine", "docker.io/library/alpine", "alpine"),
    ("docker.io/alpine", "docker.io/library/alpine", "alpine"),
    ("index.docker.io/alpine", "docker.io/library/alpine", "alpine"),
    ("docker.io/library/alpine:x", "docker.io/library/alpine:x", "alpine:x"),
    ("me/app", "docker.io/me/app", "me/app"),
    ("a/b/c", "docker.io/a/b/c", "a/b/c"),
    ("docker.io/library/a/b", "docker.io/library/a/b", "library/a/b"),
    ("localhost/x", "localhost/x", "localhost/x"),
    ("localhost:5000/x:1", "localhost:5000/x:1", "localhost:5000/x:1"),
    ("example.com/x", "example.com/x", "example.com/x"),
    ("Example.com/x", "Example.com/x", "Example.com/x"),  # an uppercase domain is fine
    ("a__b", "docker.io/library/a__b", "a__b"),
    ("a--b.c_d", "docker.io/library/a--b.c_d", "a--b.c_d"),
    ("x:" + "t" * 128, "docker.io/library/x:" + "t" * 128, "x:" + "t" * 128),
    ("x@sha256:" + HEX64, "docker.io/library/x@sha256:" + HEX64, "x@sha256:" + HEX64),
    ("x:t@sha256:" + HEX64, "docker.io/library/x:t@sha256:" + HEX64, "x:t@sha256:" + HEX64),
])
def test_normalize_and_familiar(text: str, full: str, familiar: str) -> None:
    ref = reference.parse(text)
    assert str(ref) == full
    assert ref.familiar == familiar


@pytest.mark.parametrize("text, message", [
    ("A", "invalid reference format: repository name must be lowercase"),
    ("x/Y", "invalid reference format: repository name must be lowercase"),
    ("ab/C:Tag", "invalid reference format: repository name must be lowercase"),
    # 20.10: an uppercase first component is not a domain, so these are "not lowercase"
    ("LOCALHOST/x", "invalid reference format: repository name must be lowercase"),
    ("Ab/c", "invalid reference format: repository name must be lowercase"),
    ("x@SHA256:" + HEX64, "invalid reference format: repository name must be lowercase"),
    (HEX64, f"invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings"),
    ("a:b:c", "invalid reference format"),
    ("a___b", "invalid reference format"),
    ("a-", "invalid reference format"),
    ("-a", "invalid reference format"),
    ("a..b", "invalid reference format"),
    ("a/", "invalid reference format"),
    ("/a", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("ab:", "invalid reference format"),
    (":t", "invalid reference format"),
    ("x:.a", "invalid reference format"),
    ("x:" + "t" * 129, "invalid reference format"),
    ("example.com:abc/x", "invalid reference format"),
    ("[::1]:5000/x", "invalid reference format"),  # no IPv6 hosts before distribution 2.8
    ("a b", "invalid reference format"),
    ("é", "invalid reference format"),
    ("x@sha256:abc", "invalid reference format"),
    ("a" * 256, "repository name must not be more than 255 characters"),
    ("docker.io/library/" + "a" * 238, "repository name must not be more than 255 characters"),
    ("docker.io/" + "a" * 245, "repository name must not be more than 255 characters"),  # + library/
    ("x@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("x@sha256:" + "A" * 64, "invalid checksum digest format"),
    ("x@sha256:" + "a" * 63, "invalid checksum digest length"),
    ("x@sha384:" + "a" * 95, "invalid checksum digest length"),
    ("", "invalid reference format"),
])
def test_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as exc:
        reference.parse(text)
    assert exc.value.message == message
    assert exc.value.status == 400


def test_255_characters_is_the_limit() -> None:
    name = "docker.io/library/" + "a" * 237  # the fully qualified name counts
    assert reference.parse(name).name == name


def test_tags_and_digests() -> None:
    ref = reference.parse("x:a")
    assert ref.with_tag("b").familiar == "x:b"
    assert reference.parse("x").tagged_or_latest().familiar == "x:latest"
    assert reference.parse("x@sha256:" + HEX64).tagged_or_latest().tag is None
    with pytest.raises(InvalidReference, match="^invalid tag format$"):
        ref.with_tag("a:b")
    with pytest.raises(InvalidReference, match="^invalid tag format$"):
        ref.with_tag("-x")
    assert ref.repository().familiar == "x"


def test_is_image_id() -> None:
    assert reference.is_image_id(HEX64)
    assert not reference.is_image_id("A" * 64)
    assert not reference.is_image_id("sha256:" + HEX64)
