"""Authentication exactly per the contract: X-API-Key only, 401/403 with fixed codes."""

from __future__ import annotations

import httpx
import pytest

from ._helpers import assert_error


def test_missing_and_empty_key(anon):
    assert assert_error(anon.get("/usage"), 401, "invalid_api_key")["error"]["message"] == "invalid or missing API key"
    assert_error(anon.get("/usage", headers={"X-API-Key": ""}), 401, "invalid_api_key")


@pytest.mark.parametrize("key", ["sk_live_abc", "ml_test_abc", "ml_live_", "ml_live_abc-def", "ml_live_äbc", "ML_LIVE_abc"])
def test_wrong_format(anon, key):
    response = anon.get("/usage", headers={"X-API-Key": key.encode("utf-8")})
    assert assert_error(response, 401, "wrong_key_format")["error"]["message"] == "wrong key format"


def test_unknown_key_of_the_right_format(anon):
    assert_error(anon.get("/usage", headers={"X-API-Key": "ml_live_" + "a" * 40}), 401, "invalid_api_key")


def test_auth_comes_before_validation(anon):
    assert_error(anon.post("/memories", content=b"{not json"), 401, "invalid_api_key")


@pytest.mark.parametrize("header", ["x-api-key", "X-API-KEY", "X-Api-Key"])
def test_header_name_is_case_insensitive(anon, api_key, header):
    assert anon.get("/usage", headers={header: api_key}).status_code == 200


def test_key_in_query_string_is_not_read(anon, api_key):
    for name in ("api_key", "X-API-Key", "key"):
        assert_error(anon.get("/usage", params={name: api_key}), 401, "invalid_api_key")


def test_two_key_headers_are_refused(anon, api_key):
    response = anon.get("/usage", headers=[("X-API-Key", api_key), ("X-API-Key", api_key)])
    assert_error(response, 401, "invalid_api_key")


def test_revoked_key(local_server, anon):
    key = local_server.create_key()
    assert anon.get("/usage", headers={"X-API-Key": key}).status_code == 200
    local_server.revoke_key(key)
    assert_error(anon.get("/usage", headers={"X-API-Key": key}), 401, "invalid_api_key")


def test_suspended_then_unsuspended(local_server, anon):
    key = local_server.create_key()
    local_server.suspend_key(key)
    body = assert_error(anon.get("/usage", headers={"X-API-Key": key}), 403, "account_suspended")
    assert body["error"]["message"] == "account suspended"
    local_server.unsuspend_key(key)
    assert anon.get("/usage", headers={"X-API-Key": key}).status_code == 200


def test_key_is_never_echoed(base_url, api_key):
    with httpx.Client(base_url=base_url + "/v1", headers={"X-API-Key": api_key}) as http:
        responses = [
            http.get("/usage"),
            http.post("/memories", json={"content": api_key, "user_id": "u", "agent_id": "a", "bogus": 1}),
            http.get("/nowhere"),
        ]
    for r in responses:
        assert api_key not in r.text
        assert all(api_key not in v for v in r.headers.values())


def test_docs_and_openapi_need_no_key(base_url):
    assert httpx.get(base_url + "/openapi.json").json()["info"]["title"] == "MemLayer"
    docs = httpx.get(base_url + "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert docs.headers["x-request-id"].startswith("req_")
