"""The frozen Engine API specs (Swagger 2.0) as JSON Schema validators, for the schema tests.

Conversion: each swagger definition becomes a JSON Schema under `definitions` ($ref stays
`#/definitions/X`); `x-nullable: true` allows null beside the declared type (a nullable
$ref becomes anyOf [ref, null]); swagger-only keys (x-*, example, format, readOnly...) are
ignored by jsonschema anyway. Nothing else is loosened: `additionalProperties` stays as
the spec says (absent means extra fields are allowed, as Swagger 2.0 means it).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REFERENCE = Path("/work/shared/reference")
if not REFERENCE.exists():  # a checkout outside the shared workspace
    REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"

# The frozen spec used for each API version: the nearest frozen one at or above it that we
# have (v1.41 also stands in for 1.24: older frozen files are not in the reference set).
FROZEN = ((1, 41), (1, 44), (1, 52))


def spec_for(version: str) -> str:
    v = tuple(int(p) for p in version.split("."))
    for f in FROZEN:
        if v <= f:
            return "v%d.%d" % f
    raise ValueError(f"no frozen spec at or above {version}")


@functools.lru_cache(maxsize=None)
def load(name: str) -> dict[str, Any]:
    with open(REFERENCE / f"{name}.yaml") as f:
        return yaml.safe_load(f)


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _convert(v) for k, v in node.items() if k not in ("example", "x-nullable")}
    if node.get("x-nullable") is True:
        if "$ref" in out:
            ref = out.pop("$ref")
            out = {"anyOf": [{"$ref": ref}, {"type": "null"}], **out}
        elif isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif "type" not in out and "allOf" not in out:
            pass  # untyped: null is allowed already
    if isinstance(out.get("required"), list) and isinstance(out.get("properties"), dict):
        # v1.52 (and later) ImageManifestSummary.ImageData requires `UnpackedSize`, a name it
        # does not declare and that moby's Go type never had (it is Size.Unpacked). A required
        # name with no declared property is a spec slip; it cannot be met by any daemon.
        out["required"] = [r for r in out["required"] if r in out["properties"]]
    return out


@functools.lru_cache(maxsize=None)
def definitions(name: str) -> dict[str, Any]:
    return _convert(copy.deepcopy(load(name)["definitions"]))


def response_schema(name: str, method: str, path: str, status: int = 200) -> dict[str, Any]:
    op = load(name)["paths"][path][method.lower()]
    schema = op["responses"][str(status)]["schema"] if str(status) in op["responses"] else \
        op["responses"][status]["schema"]
    return {**_convert(copy.deepcopy(schema)), "definitions": definitions(name)}


def definition(name: str, defn: str) -> dict[str, Any]:
    return {"$ref": f"#/definitions/{defn}", "definitions": definitions(name)}


def validate(instance: Any, schema: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError with the path of the first problem."""
    jsonschema.Draft7Validator(schema).validate(instance)


def response_headers(name: str, method: str, path: str, status: int = 200) -> list[str]:
    op = load(name)["paths"][path][method.lower()]
    resp = op["responses"].get(str(status)) or op["responses"].get(status) or {}
    return list((resp.get("headers") or {}).keys())
