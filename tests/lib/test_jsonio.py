"""The json-free JSON reader/writer behaves like json for CNI documents."""

import json

import pytest
from dockline.cni import jsonio

DOCS = [
    '{"a": 1}',
    ' [1, 2.5, -3e2, "x\\u00e9\\n", true, false, null] ',
    "{}",
    '"s"',
    '{"nested": {"list": [{"k": "v"}]}}',
]


@pytest.mark.parametrize("doc", DOCS)
def test_loads_matches_json(doc):
    assert jsonio.loads(doc) == json.loads(doc)
    assert jsonio.loads(doc.encode()) == json.loads(doc)


@pytest.mark.parametrize(
    "doc", ["", "  ", "{", '{"a":1} x', "NaN", '{"a": Infinity}', "{'a': 1}", b"\xff\xfe"]
)
def test_loads_rejects(doc):
    with pytest.raises(jsonio.DecodeError):
        jsonio.loads(doc)


def test_dumps_round_trip_and_utf8():
    value = {"name": "é", "list": [1, None, True, 2.5, 'a"b']}
    text = jsonio.dumps(value)
    assert "é" in text
    assert json.loads(text) == value
