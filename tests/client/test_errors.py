"""Every HTTP status becomes its class of the one error tree, carrying what the server said,
and every operation checks the shape of its answer.

Answers that are not the contract's at all (HTML from a proxy, broken JSON, a body that does
not decode, redirects) are faults: ``tests/reliability/test_faults.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from memlayer_integrations import (
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    MemLayerError,
    MemoryLimitError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from memlayer_integrations._exceptions import parse_retry_after

from ._support import Script, call, error_response, memory_json

STATUS_CASES = [
    (400, "bad_request", BadRequestError),
    (400, "invalid_json", BadRequestError),
    (401, "invalid_api_key", AuthenticationError),
    (401, "wrong_key_format", AuthenticationError),
    (403, "account_suspended", PermissionDeniedError),
    (403, "memory_limit_reached", MemoryLimitError),
    (404, "not_found", NotFoundError),
    (409, "idempotency_key_reused", ConflictError),
    (409, "conflict", ConflictError),
    (413, "payload_too_large", BadRequestError),
    (415, "unsupported_media_type", BadRequestError),
    (422, "validation_error", UnprocessableEntityError),
    (429, "daily_quota_exceeded", RateLimitError),
    (418, "teapot", APIStatusError),
    (500, "internal_error", InternalServerError),
    (502, "internal_error", InternalServerError),
    (503, "internal_error", InternalServerError),
    (504, "internal_error", InternalServerError),
]


@pytest.mark.parametrize(("status", "code", "cls"), STATUS_CASES)
async def test_status_maps_to_its_class(make_client, sleeps, status, code, cls):
    script = Script(error_response(status, code, f"message for {code}", request_id="req_abc123"))
    client = make_client(script, max_retries=0)

    with pytest.raises(cls) as info:
        await call(client, "remember", "hello", user_id="u1", agent_id="bot")

    err = info.value
    assert type(err) is cls
    assert isinstance(err, APIStatusError) and isinstance(err, MemLayerError)
    assert err.status_code == status
    assert err.code == code
    # A refused key also says where it was sent.
    where = " (sent to http://memlayer.test, from base_url=)" if status == 401 else ""
    assert err.message == f"message for {code}{where}"
    assert err.request_id == "req_abc123"
    assert f"status {status}" in str(err) and "req_abc123" in str(err)
    assert len(script.requests) == 1


async def test_memory_limit_is_a_permission_error(make_client):
    client = make_client(Script(error_response(403, "memory_limit_reached")))
    with pytest.raises(PermissionDeniedError) as info:
        await call(client, "remember", "one too many", user_id="u1", agent_id="bot")
    assert isinstance(info.value, MemoryLimitError)


async def test_validation_error_names_its_field(make_client):
    answer = error_response(422, "validation_error", "content is empty", field="items[3].metadata")
    client = make_client(Script(answer))
    with pytest.raises(UnprocessableEntityError) as info:
        await call(client, "remember_many", ["a"], user_id="u1", agent_id="bot")
    assert info.value.field == "items[3].metadata"


async def test_field_is_none_when_the_error_has_none(make_client):
    client = make_client(Script(error_response(404, "not_found", "memory mem_x not found")))
    with pytest.raises(NotFoundError) as info:
        await call(client, "get", "mem_x")
    assert info.value.field is None
    assert info.value.message == "memory mem_x not found"


async def test_request_id_falls_back_to_the_body(make_client):
    body = {
        "error": {"code": "not_found", "message": "gone", "field": None},
        "request_id": "req_body",
    }
    client = make_client(Script(httpx.Response(404, json=body)))
    with pytest.raises(NotFoundError) as info:
        await call(client, "get", "mem_x")
    assert info.value.request_id == "req_body"


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"Retry-After": "3600"}, 3600.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({}, None),
        ({"Retry-After": "soon"}, None),
    ],
)
async def test_rate_limit_error_carries_retry_after(make_client, headers, retry_after):
    answer = error_response(429, "daily_quota_exceeded", "daily quota exceeded", headers=headers)
    client = make_client(Script(answer))
    with pytest.raises(RateLimitError) as info:
        await call(client, "usage")
    assert info.value.retry_after == retry_after
    assert info.value.is_daily_quota


def test_retry_after_as_an_http_date():
    in_two_hours = datetime.now(timezone.utc) + timedelta(hours=2)
    assert 7000 < parse_retry_after(format_datetime(in_two_hours, usegmt=True)) <= 7200
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("") is None


@pytest.mark.parametrize(
    ("method", "args", "body"),
    [
        ("remember", ("x",), {"id": "mem_1"}),
        ("recall", ("x",), {"results": [{"memory": memory_json(), "score": "high"}]}),
        ("list_scopes", (), {"scopes": "u1"}),
        ("remember_many", (["x"],), {"memories": None}),
        ("forget_all", (), {"deleted": "many"}),
        ("batch", ([{"op": "usage"}],), {"results": [{"usage": 1}]}),
        ("batch", ([{"op": "usage"}],), {"results": [{"usage": {}}, {"usage": {}}]}),
        ("batch", ([{"op": "usage"}],), "results"),
    ],
)
async def test_every_operation_validates_its_answer(make_client, method, args, body):
    scope = {} if method in ("list_scopes", "batch") else {"user_id": "u1"}
    if method in ("remember", "remember_many"):
        scope["agent_id"] = "bot"
    client = make_client(Script(httpx.Response(200, json=body)))
    with pytest.raises(APIResponseValidationError):
        await call(client, method, *args, **scope)


async def test_an_error_page_that_is_not_memlayers_says_so(make_client):
    client = make_client(lambda request: httpx.Response(404, html="<h1>Not Found</h1>"))
    with pytest.raises(NotFoundError) as info:
        await call(client, "usage")
    assert info.value.message == (
        "HTTP 404 with a non-JSON body (text/html): not a MemLayer error; check that the base "
        "URL is a MemLayer server"
    )
