"""Bad input: oversized bodies, deeply nested metadata, invalid UTF-8, wrong content types,
duplicate JSON keys and malformed query strings get a clear 4xx in the contract's error
shape, on every endpoint that reads them, and change nothing that was stored.

Field-by-field validation (lengths, types, ranges, names in ``error.field``) is pinned in
``tests/server/test_validation.py``; here the request is broken before or while it is parsed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server._helpers import assert_error, remember

OK = {"content": "c", "user_id": "u", "agent_id": "a"}
MiB = 1024 * 1024


def post_raw(http, path, content, content_type="application/json"):
    return http.post(
        path, content=content, headers={"Content-Type": content_type} if content_type else {}
    )


@pytest.fixture
def seeded(http: httpx.Client) -> dict[str, Any]:
    """A memory that every bad request below must leave alone."""
    return remember(http, "kept as it is", user_id="u", agent_id="a", key="k", metadata={"n": 1})


@pytest.fixture(scope="module")
def one_account(local_server) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:
    """One account and its memory for the many bodies below: each compares the state before
    and after itself, and none of them may change anything."""
    with httpx.Client(
        base_url=local_server.url + "/v1", headers={"X-API-Key": local_server.create_key()}
    ) as http:
        yield (
            http,
            remember(http, "kept as it is", user_id="u", agent_id="a", key="k", metadata={"n": 1}),
        )


def state(http: httpx.Client) -> Any:
    """Everything a bad request could have changed (not the request count: every request counts)."""
    usage = http.get("/usage").json()
    return (
        http.get("/memories", params={"user_id": "u"}).json(),
        http.get("/scopes").json(),
        usage["memories_stored"],
    )


#: Every endpoint that reads a JSON body, as (method, path); {id} is the seeded memory.
BODY_ENDPOINTS = [
    ("POST", "/memories"),
    ("POST", "/memories/batch"),
    ("POST", "/memories/search"),
    ("PATCH", "/memories/{id}"),
    ("POST", "/batch"),
]

DEEP = (
    b'{"content":"c","user_id":"u","agent_id":"a","metadata":'
    + b'{"a":' * 100_000
    + b"1"
    + b"}" * 100_001
)


@pytest.mark.parametrize(
    ("method", "path"), BODY_ENDPOINTS, ids=[f"{m} {p}" for m, p in BODY_ENDPOINTS]
)
@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"", "application/json", 400, "invalid_json"),
        (
            b'{"content": "a", "content": "b", "user_id": "u", "agent_id": "a"}',
            "application/json",
            400,
            "invalid_json",
        ),
        (
            b'{"content": "c", "user_id": "u", "agent_id": "a", "metadata": {"k": 1, "k": 2}}',
            "application/json",
            400,
            "invalid_json",
        ),
        (
            b'{"content": "\xff\xfe", "user_id": "u", "agent_id": "a"}',
            "application/json",
            400,
            "invalid_json",
        ),
        (
            b'{"content": "\xc0\xaf", "user_id": "u", "agent_id": "a"}',
            "application/json",
            400,
            "invalid_json",
        ),  # overlong
        (
            b'{"content": "\\ud800", "user_id": "u", "agent_id": "a"}',
            "application/json",
            400,
            "invalid_json",
        ),
        (
            b'\xef\xbb\xbf{"content": "c", "user_id": "u", "agent_id": "a"}',
            "application/json",
            400,
            "invalid_json",
        ),  # BOM
        (
            b'{"content": "c", "user_id": "u", "agent_id": "a", "metadata": {"x": NaN}}',
            "application/json",
            400,
            "invalid_json",
        ),
        (
            b'{"content": "c", "user_id": "u", "agent_id": "a", "metadata": {"x": 1e999}}',
            "application/json",
            400,
            "invalid_json",
        ),
        (
            b'{"content": "c", "user_id": "u", "agent_id": "a", "metadata": {"x": '
            + b"9" * 5000
            + b"}}",
            "application/json",
            400,
            "invalid_json",
        ),
        (json.dumps(OK).encode(), "text/plain", 415, "unsupported_media_type"),
        (
            json.dumps(OK).encode(),
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        (json.dumps(OK).encode(), None, 415, "unsupported_media_type"),
        (
            json.dumps(OK).encode("utf-16"),
            "application/json; charset=utf-16",
            415,
            "unsupported_media_type",
        ),
        (b"[1, 2]", "application/json", 422, "validation_error"),
        (b'"just a string"', "application/json", 422, "validation_error"),
        (DEEP, "application/json", 422, "validation_error"),
        (
            json.dumps({**OK, "content": "x" * MiB}).encode(),
            "application/json",
            413,
            "payload_too_large",
        ),
    ],
    ids=[
        "not-json",
        "empty",
        "duplicate-key",
        "duplicate-nested-key",
        "invalid-utf8",
        "overlong-utf8",
        "lone-surrogate",
        "bom",
        "nan",
        "infinity",
        "huge-integer",
        "text-plain",
        "form",
        "no-content-type",
        "utf16",
        "array",
        "string",
        "nested-100000-deep",
        "over-1-mib",
    ],
)
def test_bodies_that_are_not_the_expected_json(
    one_account, method, path, content, content_type, status, code
):
    http, seeded = one_account
    before = state(http)
    headers = {
        "Idempotency-Key": f"bad-{uuid.uuid4().hex}"
    }  # errors are not kept, so a retry would run again
    if content_type:
        headers["Content-Type"] = content_type
    response = http.request(
        method, path.replace("{id}", seeded["id"]), content=content, headers=headers
    )
    assert assert_error(response, status, code)["error"]["message"]  # says what is wrong
    assert state(http) == before
    assert http.get(f"/memories/{seeded['id']}").json() == seeded


def test_charset_utf8_is_accepted(http):
    assert (
        post_raw(
            http, "/memories", json.dumps(OK).encode(), "application/json; charset=UTF-8"
        ).status_code
        == 201
    )


def test_metadata_depth(http):
    nested: dict = {"v": 1}
    for _ in range(7):
        nested = {"n": nested}
    assert http.post("/memories", json={**OK, "metadata": nested}).status_code == 201  # depth 8
    before = state(http)
    assert_error(
        http.post("/memories", json={**OK, "metadata": {"n": nested}}),
        422,
        "validation_error",
        "metadata",
    )
    items = [{"content": "ok"}, {"content": "too deep", "metadata": {"n": nested}}]
    assert_error(
        http.post("/memories/batch", json={"user_id": "u", "agent_id": "a", "items": items}),
        422,
        "validation_error",
        "items[1].metadata",
    )
    r = post_raw(http, "/memories", DEEP)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    assert state(http) == before


def test_body_over_one_mib_is_413(http, seeded):
    before = state(http)
    big = json.dumps({**OK, "content": "x" * MiB}).encode()
    assert_error(post_raw(http, "/memories", big), 413, "payload_too_large")

    def chunks():  # no Content-Length: the limit holds while the body streams in
        yield b'{"content": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'", "user_id": "u", "agent_id": "a"}'

    assert_error(
        http.post("/memories", content=chunks(), headers={"Content-Type": "application/json"}),
        413,
        "payload_too_large",
    )
    assert state(http) == before


SCOPE_CASES = [  # query strings both list (GET) and forget all (DELETE) read
    ([("user_id", "u"), ("user_id", "v")], "user_id"),
    ([("user_id", "u\x00")], "user_id"),
    ([("user_id", "u"), ("agent_id", "")], "agent_id"),
    ([("user_id", "u"), *[("key", f"k{i}") for i in range(101)]], "keys"),
]
SCOPE_IDS = ["user-twice", "nul", "empty-agent", "101-keys"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        *SCOPE_CASES[1:2],
        *SCOPE_CASES[3:],  # (the others: tests/server/test_validation.py)
        ([("user_id", "u"), ("filters", '{"n": 1, "n": 2}')], "filters"),
        ([("user_id", "u"), ("filters", '{"n": ')], "filters"),
        ([("user_id", "u"), ("filters", "[" * 5000 + "]" * 5000)], "filters"),
        ([("user_id", "u"), ("filters", '{"n": {"$regex": ".*"}}')], "filters.n.$regex"),
        ([("user_id", "u"), ("limit", "1e3")], "limit"),
        ([("user_id", "u"), ("cursor", "../../etc/passwd")], "cursor"),
    ],
    ids=[
        "nul",
        "101-keys",
        "filters-duplicate-key",
        "filters-not-json",
        "filters-5000-deep",
        "filters-operator",
        "limit-not-integer",
        "cursor-forged",
    ],
)
def test_bad_list_query_strings_are_422(http, seeded, params, field):
    assert_error(http.get("/memories", params=params), 422, "validation_error", field)


@pytest.mark.parametrize(("params", "field"), SCOPE_CASES, ids=SCOPE_IDS)
def test_bad_forget_all_query_strings_are_422_and_delete_nothing(http, seeded, params, field):
    before = state(http)
    assert_error(http.delete("/memories", params=params), 422, "validation_error", field)
    assert state(http) == before


def nested_json(depth: int, opener: bytes = b'{"a":', closer: bytes = b"}") -> bytes:
    return opener * depth + b"1" + closer * depth


@pytest.mark.parametrize("depth", [9, 100, 478, 700, 990, 3000])
@pytest.mark.parametrize("kind", ["objects", "arrays"])
def test_metadata_nested_hundreds_deep_is_a_counted_422(http, seeded, depth, kind):
    """JSON that parses but nests deeper than Python may recurse is a 422, never a 500, and
    the request counts against the quota like any other."""
    inner = nested_json(depth - 1) if kind == "objects" else nested_json(depth - 1, b"[", b"]")
    metadata = b'{"a":' + inner + b"}"
    before = state(http)
    used = http.get("/usage").json()["requests_today"]
    bodies = [
        ("/memories", b'{"content":"c","user_id":"u","agent_id":"a","metadata":' + metadata + b"}"),
        (f"/memories/{seeded['id']}", b'{"metadata":' + metadata + b"}"),
        (
            "/batch",
            b'{"operations":[{"op":"update","memory_id":"%s","metadata":%s}]}'
            % (seeded["id"].encode(), metadata),
        ),
    ]
    for path, body in bodies:
        method = "PATCH" if path.startswith("/memories/mem_") else "POST"
        r = http.request(method, path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "validation_error"
    assert http.get("/usage").json()["requests_today"] == used + 1 + len(bodies)
    assert state(http) == before


def test_a_request_that_fails_inside_the_server_still_counts(tmp_path, monkeypatch):
    """Every authenticated request counts against the quota, a server failure included, so a
    request that makes the server fail cannot be repeated (and logged) without limit."""
    from fastapi.testclient import TestClient

    from memlayer_integrations.server import Plan, ServerSettings, create_app, keys, store

    app = create_app(ServerSettings(db_path=tmp_path / "f.db"))
    with TestClient(app, raise_server_exceptions=False) as client:
        with app.state.db.write() as conn:
            key, _ = keys.create_key(conn, plan_name="tiny", plan=Plan(5, 3), name=None, now="t")
        headers = {"X-API-Key": key}

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug")

        monkeypatch.setattr(store, "remember", broken)
        for _ in range(2):
            assert client.post("/v1/memories", json=OK, headers=headers).status_code == 500
        assert client.get("/v1/usage", headers=headers).json()["requests_today"] == 3
        r = client.post("/v1/memories", json=OK, headers=headers)
        assert r.status_code == 429 and r.json()["error"]["code"] == "daily_quota_exceeded"
        with app.state.db.read() as conn:
            assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 0
