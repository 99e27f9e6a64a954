"""Bad input gets the contract's 4xx, naming the field; never a 500.

Requests broken before or while they are parsed (not JSON, wrong content type, too large,
nested too deep) are in ``tests/reliability/test_bad_input.py``."""

from __future__ import annotations

import pytest

from ._helpers import assert_error

OK = {"content": "c", "user_id": "u", "agent_id": "a"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**OK, "content": ""}, "content"),
        ({**OK, "content": " \n\t "}, "content"),
        ({**OK, "content": "x" * 32769}, "content"),
        ({**OK, "content": 5}, "content"),
        ({"user_id": "u", "agent_id": "a"}, "content"),
        ({**OK, "user_id": ""}, "user_id"),
        ({**OK, "user_id": "a" * 257}, "user_id"),
        ({**OK, "agent_id": "bad\nid"}, "agent_id"),
        ({**OK, "session_id": "\x00"}, "session_id"),
        ({**OK, "key": "\x85"}, "key"),
        ({**OK, "metadata": []}, "metadata"),
        ({**OK, "metadata": "x"}, "metadata"),
        ({**OK, "metadata": {"k": "x" * 16400}}, "metadata"),
        ({**OK, "metdata": {}}, "metdata"),
    ],
)
def test_remember_fields(http, body, field):
    assert_error(http.post("/memories", json=body), 422, "validation_error", field)


def test_limits_are_inclusive(http):
    assert (
        http.post(
            "/memories", json={**OK, "content": "x" * 32768, "user_id": "u" * 256}
        ).status_code
        == 201
    )


@pytest.mark.parametrize(
    "raw",
    [
        r'"content": "c\ud800"',  # a lone high surrogate in a value
        r'"content": "c", "metadata": {"a": ["\uDFFF"]}',  # a lone low one, nested
        r'"content": "c", "metadata": {"k\udc00": 1}',  # in a key
        r'"content": "\ude00\ud83d"',  # a pair in the wrong order
    ],
)
def test_unpaired_surrogate_escapes_are_invalid_json(http, raw):
    body = '{"user_id": "u", "agent_id": "a", ' + raw + "}"
    response = http.post(
        "/memories", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_json")


def test_escapes_that_are_no_lone_surrogate_are_stored_as_written(http):
    # A pair is one character; an escaped backslash before "ud800" is text.
    body = r'{"user_id": "u", "agent_id": "a", "content": "\ud83d\ude00 and \\ud800"}'
    response = http.post(
        "/memories", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201
    assert response.json()["content"] == "\U0001f600 and \\ud800"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": "", "user_id": "u"}, "query"),
        ({"query": "   ", "user_id": "u"}, "query"),
        ({"query": "x" * 4097, "user_id": "u"}, "query"),
        ({"query": "x", "user_id": "u", "limit": 0}, "limit"),
        ({"query": "x", "user_id": "u", "limit": 101}, "limit"),
        ({"query": "x", "user_id": "u", "limit": True}, "limit"),
        ({"query": "x", "user_id": "u", "limit": "5"}, "limit"),
        ({"query": "x", "user_id": "u", "offset": 10001}, "offset"),
        ({"query": "x", "user_id": "u", "offset": -1}, "offset"),
        ({"query": "x", "user_id": "u", "filters": {"a": {"$regex": "x"}}}, "filters.a.$regex"),
        ({"query": "x", "user_id": "u", "filters": {"a": {}}}, "filters.a"),
        ({"query": "x", "user_id": "u", "filters": {"a": [1]}}, "filters.a"),
        ({"query": "x", "user_id": "u", "filters": {"a": {"$gt": None}}}, "filters.a.$gt"),
        ({"query": "x", "user_id": "u", "filters": {"a": 2**70}}, "filters.a"),
        ({"query": "x"}, "user_id"),
    ],
)
def test_recall_fields(http, body, field):
    assert_error(http.post("/memories/search", json=body), 422, "validation_error", field)


def test_remember_many_items(http):
    base = {"user_id": "u", "agent_id": "a"}
    assert_error(
        http.post("/memories/batch", json={**base, "items": []}), 422, "validation_error", "items"
    )
    assert_error(
        http.post("/memories/batch", json={**base, "items": [{"content": "x"}] * 101}),
        422,
        "validation_error",
        "items",
    )
    items = [{"content": "ok"}] * 3 + [{"content": "ok", "metadata": 1}]
    assert_error(
        http.post("/memories/batch", json={**base, "items": items}),
        422,
        "validation_error",
        "items[3].metadata",
    )


def test_memory_id_format(http):
    for bad in ("mem_XYZ", "mem_" + "A" * 32, "12", "mem_" + "0" * 33):
        assert_error(http.get(f"/memories/{bad}"), 422, "validation_error", "memory_id")


def test_query_parameters(http):
    assert_error(
        http.get("/memories", params=[("user_id", "a"), ("user_id", "b")]),
        422,
        "validation_error",
        "user_id",
    )
    assert_error(
        http.get("/memories", params={"user_id": "u", "agent_id": ""}),
        422,
        "validation_error",
        "agent_id",
    )
    assert_error(
        http.get("/memories", params={"user_id": "u", "filters": "[1]"}),
        422,
        "validation_error",
        "filters",
    )
    assert_error(
        http.get("/memories", params={"user_id": "u\x01"}), 422, "validation_error", "user_id"
    )
    assert_error(http.get("/scopes", params={"user_id": ""}), 422, "validation_error", "user_id")
    assert http.get("/memories", params={"user_id": "u", "unknown": "ignored"}).status_code == 200


def test_batch_shape(http):
    assert_error(
        http.post("/batch", json={"operations": "x"}), 422, "validation_error", "operations"
    )
    assert_error(
        http.post("/batch", json={"operations": [{"op": "usage"}] * 101}),
        422,
        "validation_error",
        "operations",
    )
    assert_error(
        http.post("/batch", json={"operations": [1]}), 422, "validation_error", "operations[0]"
    )
    assert_error(
        http.post("/batch", json={"operations": [{"op": "usage"}], "x": 1}),
        422,
        "validation_error",
        "x",
    )
    assert_error(
        http.post("/batch", json={"operations": [{"op": "list", "user_id": "u", "limit": 0}]}),
        422,
        "validation_error",
        "operations[0].limit",
    )
    assert_error(
        http.post("/batch", json={"operations": [{"op": "get", "memory_id": "nope"}]}),
        422,
        "validation_error",
        "operations[0].memory_id",
    )
