"""Strict manifest parsing: the four kinds, schema1 refused, type/body contradictions refused."""

import json

import pytest

from dockerremote.oci import manifest as mf
from dockerremote.oci.platform import Platform

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
D3 = "sha256:" + "c" * 64


def image_doc(media_type: str | None = mf.DOCKER_MANIFEST, **extra: object) -> bytes:
    doc: dict = {"schemaVersion": 2}
    if media_type is not None:
        doc["mediaType"] = media_type
    doc["config"] = {"mediaType": mf.DOCKER_CONFIG, "size": 7, "digest": D1}
    doc["layers"] = [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 10, "digest": D2},
                     {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 20, "digest": D3}]
    doc.update(extra)
    return json.dumps(doc).encode()


def index_doc(media_type: str | None = mf.DOCKER_LIST, **extra: object) -> bytes:
    doc: dict = {"schemaVersion": 2}
    if media_type is not None:
        doc["mediaType"] = media_type
    doc["manifests"] = [
        {"mediaType": mf.DOCKER_MANIFEST, "size": 5, "digest": D1, "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": mf.DOCKER_MANIFEST, "size": 6, "digest": D2,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
    ]
    doc.update(extra)
    return json.dumps(doc).encode()


def test_docker_manifest() -> None:
    m = mf.parse(image_doc(), mf.DOCKER_MANIFEST)
    assert isinstance(m, mf.ImageManifest)
    assert m.config.digest == D1 and m.config.size == 7
    assert [(d.digest, d.size) for d in m.layers] == [(D2, 10), (D3, 20)]


def test_oci_manifest_media_type_optional_in_body() -> None:
    m = mf.parse(image_doc(None), mf.OCI_MANIFEST + "; charset=utf-8")
    assert isinstance(m, mf.ImageManifest) and m.media_type == mf.OCI_MANIFEST


def test_lists_and_indexes_carry_platforms() -> None:
    for mt, body_type in ((mf.DOCKER_LIST, mf.DOCKER_LIST), (mf.OCI_INDEX, None), (mf.OCI_INDEX, mf.OCI_INDEX)):
        m = mf.parse(index_doc(body_type), mt)
        assert isinstance(m, mf.ManifestIndex)
        assert m.platforms() == [Platform("linux", "amd64"), Platform("linux", "arm64", "v8")]


def test_vague_content_type_uses_the_body() -> None:
    assert isinstance(mf.parse(index_doc(), "application/json"), mf.ManifestIndex)
    assert isinstance(mf.parse(image_doc(mf.OCI_MANIFEST), ""), mf.ImageManifest)


@pytest.mark.parametrize("data, media_type, message", [
    (image_doc(mf.OCI_MANIFEST), mf.DOCKER_MANIFEST,
     f"mediaType in manifest should be '{mf.DOCKER_MANIFEST}' not '{mf.OCI_MANIFEST}'"),
    (image_doc(None), mf.DOCKER_MANIFEST, f"mediaType in manifest should be '{mf.DOCKER_MANIFEST}' not ''"),
    (image_doc(mf.DOCKER_MANIFEST), mf.OCI_MANIFEST,
     f"if present, mediaType in manifest should be '{mf.OCI_MANIFEST}' not '{mf.DOCKER_MANIFEST}'"),
    (image_doc(None, manifests=[]), mf.OCI_MANIFEST, "ocimanifest: expected manifest but found index"),
    (index_doc(mf.OCI_INDEX), mf.DOCKER_LIST,
     f"mediaType in manifest list should be '{mf.DOCKER_LIST}' not '{mf.OCI_INDEX}'"),
    (index_doc(None, layers=[]), mf.OCI_INDEX, "index: expected index but found manifest"),
    (image_doc(), "application/x-nonsense", "unsupported manifest media type and no default available: "
                                            "application/x-nonsense"),
])
def test_type_contradicting_body_is_refused(data: bytes, media_type: str, message: str) -> None:
    with pytest.raises(mf.ManifestError) as e:
        mf.parse(data, media_type)
    assert e.value.message == message


def test_schema1_is_refused_clearly() -> None:
    doc = json.dumps({"schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": [], "history": []}).encode()
    for mt in (mf.SCHEMA1[1], "application/json", ""):
        with pytest.raises(mf.ManifestError) as e:
            mf.parse(doc, mt, "127.0.0.1:5000/old:1")
        assert "schema 1 support has been removed" in e.value.message
        assert "127.0.0.1:5000/old:1" in e.value.message


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d["layers"][0].update(digest="sha256:xyz"), "invalid checksum digest length"),
    (lambda d: d["layers"][0].update(digest="sha256:" + "A" * 64), "invalid checksum digest format"),
    (lambda d: d["layers"][0].update(digest="nodigest"), "invalid checksum digest format"),
    (lambda d: d["layers"][0].update(digest="sha512:" + "a" * 128), "unsupported digest algorithm"),
    (lambda d: d["layers"][0].update(size=-1), "invalid size"),
    (lambda d: d["layers"][0].update(size="10"), "invalid size"),
    (lambda d: d.pop("config"), "no config descriptor"),
    (lambda d: d.update(layers={}), "layers is not a list"),
    (lambda d: d.update(schemaVersion=3), "schemaVersion"),
])
def test_strict_descriptors(mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(image_doc())
    mutate(doc)
    with pytest.raises(mf.ManifestError) as e:
        mf.parse(json.dumps(doc).encode(), mf.DOCKER_MANIFEST)
    assert fragment in e.value.message


def test_not_json() -> None:
    with pytest.raises(mf.ManifestError):
        mf.parse(b"<html>", mf.DOCKER_MANIFEST)
    with pytest.raises(mf.ManifestError):
        mf.parse(b"[1]", mf.DOCKER_MANIFEST)


def test_config_media_type_check() -> None:
    m = mf.parse(image_doc(), mf.DOCKER_MANIFEST)
    assert isinstance(m, mf.ImageManifest)
    mf.check_image_config(m)
    doc = json.loads(image_doc())
    doc["config"]["mediaType"] = mf.PLUGIN_CONFIG
    plugin = mf.parse(json.dumps(doc).encode(), mf.DOCKER_MANIFEST)
    assert isinstance(plugin, mf.ImageManifest)
    with pytest.raises(mf.ManifestError) as e:
        mf.check_image_config(plugin)
    assert e.value.message == f'Encountered remote "{mf.PLUGIN_CONFIG}"(plugin) when fetching'
