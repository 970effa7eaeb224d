"""Unit tests: the `filters` parameter, Go's path.Match globs and prune's `until` values, with
the error texts dockerd 20.10 writes (checked against the reference dockerd)."""

from __future__ import annotations

import json

import pytest

from dockerremote.api import filters as flt
from dockerremote.errors import InvalidArgument

NOW = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z


def test_both_filter_encodings() -> None:
    cli = flt.parse(json.dumps({"label": {"a=b": True, "c": True}}))
    py = flt.parse(json.dumps({"label": ["a=b", "c"]}))
    assert sorted(cli.get("label")) == sorted(py.get("label")) == ["a=b", "c"]
    assert flt.parse(None).values == {} and flt.parse("").values == {}


@pytest.mark.parametrize("raw, message", [
    ("notjson", "invalid character 'o' in literal null (expecting 'u')"),
    ("{", "unexpected end of JSON input"),
    ('{"a" 1}', "invalid character '1' after object key"),
    ('{"a":["x"] "b"}', "invalid character '\"' after object key:value pair"),
    ('["x"]', "json: cannot unmarshal array into Go value of type map[string]map[string]bool"),
    ('{"label":"x"}', "json: cannot unmarshal string into Go value of type map[string]bool"),
    ('{"label":[1]}', "json: cannot unmarshal array into Go value of type map[string]bool"),
    ('{"label":{"x":"yes"}}', "json: cannot unmarshal string into Go value of type bool"),
    ('{"a":{"x":true},"b":["y"]}', "json: cannot unmarshal array into Go value of type map[string]bool"),
    ("{} x", "invalid character 'x' after top-level value"),
])
def test_bad_json_in_gos_words(raw: str, message: str) -> None:
    """The first decoder's error, as dockerd's filters.FromJSON returns it (a 400 here)."""
    with pytest.raises(InvalidArgument) as exc:
        flt.parse(raw)
    assert exc.value.message == message and exc.value.status == 400


def test_json_go_accepts() -> None:
    assert flt.parse("null").values == {}
    assert flt.parse('{"label":null}').values == {"label": []}
    assert flt.parse('{"label":{"a":false}}').values == {"label": ["a"]}  # keys count, as moby's Get
    assert flt.parse('{"label":["a",null]}').values == {"label": ["a"]}


def test_validate_and_invalid_value_texts() -> None:
    f = flt.parse('{"bogus":["1"]}')
    with pytest.raises(InvalidArgument, match=r"^Invalid filter 'bogus'$"):
        f.validate({"label"})
    assert flt.invalid_filter("dangling", ["x", "y"]).message == "Invalid filter 'dangling=[x y]'"


def test_exact_match_is_go_semantics() -> None:
    f = flt.parse('{"dangling":["true","false"],"empty":[]}')
    assert f.exact_match("dangling", "true") and f.exact_match("dangling", "false")
    assert not f.exact_match("dangling", "True")  # case-sensitive
    assert f.exact_match("empty", "anything") and f.exact_match("absent", "anything")
    # the map form's false values: listed by get(), never an exact match (Go's ExactMatch)
    f = flt.parse('{"dangling":{"true":false},"label":{"a":true,"b":false}}')
    assert f.get("dangling") == ["true"] and not f.exact_match("dangling", "true")
    assert f.exact_match("label", "a") and not f.exact_match("label", "b")


def test_match_kv_list() -> None:
    f = flt.parse('{"label":["a","b=2"]}')
    assert f.match_kv_list("label", {"a": "x", "b": "2"})
    assert not f.match_kv_list("label", {"a": "x", "b": "3"})
    assert not f.match_kv_list("label", {"b": "2"})
    assert not f.match_kv_list("label", None) and not f.match_kv_list("label", {})
    assert f.match_kv_list("absent", None)  # no values: no filtering
    assert flt.parse('{"label":["a="]}').match_kv_list("label", {"a": ""})


@pytest.mark.parametrize("pattern, name, expected", [
    ("*", "alpine", True),
    ("*", "me/app", False),  # * stays within a path element
    ("*/*", "me/app", True),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("[a-c]*", "busybox", True),
    ("[^a-c]*", "busybox", False),
    ("[!a]*", "!x", True),  # Go negates with ^ only
    ("\\*", "*", True),
    ("localhost:5000/*", "localhost:5000/x", True),
    ("al*:3.*", "alpine:3.19", True),
    ("[\\]]", "]", True),
])
def test_glob(pattern: str, name: str, expected: bool) -> None:
    assert flt.glob_match(pattern, name) is expected


@pytest.mark.parametrize("pattern", ["[", "a\\", "[]a]", "[a-]", "[z-a]", "[^"])
def test_bad_glob_is_dockerds_500(pattern: str) -> None:
    with pytest.raises(flt.BadPattern) as exc:
        flt.glob_match(pattern, "x")
    assert exc.value.message == "syntax error in pattern" and exc.value.status == 500


@pytest.mark.parametrize("value, expected", [
    ("10m", NOW - 600 * 10**9),
    ("1h30m", NOW - 5400 * 10**9),
    ("-1h", NOW + 3600 * 10**9),
    ("1.5s", NOW - 2 * 10**9),  # now minus 1.5s, as whole unix seconds (Go's Unix() floors)
    ("0", 0),
    ("1700000000", NOW),
    ("1700000000.5", NOW + 500_000_000),
    ("2023-11-14", 1_699_920_000 * 10**9),
    ("2023-11-14T22", NOW - 800 * 10**9),
    ("2023-11-14T22:13", NOW - 20 * 10**9),
    ("2023-11-14T22:13:20", NOW),
    ("2023-11-14T22:13:20Z", NOW),
    ("2023-11-14T22:13:20.25+01:00", NOW - 3600 * 10**9 + 250_000_000),
    ("2023-11-14T22:13Z", NOW - 20 * 10**9),
    ("2023-11-14Z", 1_699_920_000 * 10**9),
])
def test_until_values(value: str, expected: int) -> None:
    assert flt.parse_until(value, now_ns=NOW, local_offset=0) == expected


def test_until_uses_the_daemon_zone_without_an_offset() -> None:
    assert flt.parse_until("2023-11-14T22:13:20", NOW, local_offset=3600) == NOW - 3600 * 10**9
    assert flt.parse_until("2023-11-14T22:13:20Z", NOW, local_offset=3600) == NOW


@pytest.mark.parametrize("value, message", [
    ("xx", 'failed to parse value as time or duration: "xx"'),
    ("1.5.5", 'failed to parse value as time or duration: "1.5.5"'),
    ("2023-13-01", 'parsing time "2023-13-01": month out of range'),
    ("2023-02-30", 'parsing time "2023-02-30": day out of range'),
    ("-5", 'parsing time "-5" as "2006-01-02": cannot parse "-5" as "2006"'),
    ("2023-1-14", 'parsing time "2023-1-14" as "2006-01-02": cannot parse "1-14" as "01"'),
    ("2023-11-14T25:00", 'parsing time "2023-11-14T25:00": hour out of range'),
    ("2023-11-14T22:13:20junk", 'parsing time "2023-11-14T22:13:20junk": extra text: "junk"'),
    ("2023-11-14T22:13:20.5+0100", 'parsing time "2023-11-14T22:13:20.5+0100" as '
                                   '"2006-01-02T15:04:05.999999999Z07:00": cannot parse "+0100" as "Z07:00"'),
])
def test_until_errors(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        flt.parse_until(value, NOW, 0)
    assert exc.value.message == message
