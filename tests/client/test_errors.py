"""Every HTTP status becomes its class of the one error tree, carrying what the server said.

Also: answers that are not the contract's (HTML from a proxy, broken JSON, a body that does
not decode) end as typed errors, never as a bare ``ValueError`` or httpx exception.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from memlayer_integrations import (
    APIResponseValidationError,
    APIStatusError,
    AsyncMemLayerClient,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    MemLayerClient,
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
    assert err.message == f"message for {code}"
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
    body = {"error": {"code": "not_found", "message": "gone", "field": None}, "request_id": "req_body"}
    client = make_client(Script(httpx.Response(404, json=body)))
    with pytest.raises(NotFoundError) as info:
        await call(client, "get", "mem_x")
    assert info.value.request_id == "req_body"


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({"Retry-After": "3600"}, 3600.0), ({"Retry-After": "2.5"}, 2.5), ({}, None), ({"Retry-After": "soon"}, None)],
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


# -- answers that are not the contract's ------------------------------------------------

HTML = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"


async def test_html_error_page_from_a_proxy_is_the_status_error(make_client, sleeps):
    answer = httpx.Response(502, content=HTML, headers={"Content-Type": "text/html"})
    client = make_client(Script(answer), max_retries=0)
    with pytest.raises(InternalServerError) as info:
        await call(client, "usage")
    assert info.value.status_code == 502
    assert info.value.code is None
    assert "text/html" in info.value.message
    assert "nginx" not in info.value.message  # the page is not dumped into the message


async def test_html_on_a_4xx_is_the_status_error(make_client):
    answer = httpx.Response(403, content=HTML, headers={"Content-Type": "text/html"})
    client = make_client(Script(answer))
    with pytest.raises(PermissionDeniedError) as info:
        await call(client, "usage")
    assert info.value.status_code == 403


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, content=HTML, headers={"Content-Type": "text/html"}),
        httpx.Response(200, content=b'{"plan": "free", ', headers={"Content-Type": "application/json"}),
        httpx.Response(200, json={"plan": "free"}),  # valid JSON, wrong shape
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, content=b""),
    ],
    ids=["html", "truncated-json", "missing-fields", "json-array", "empty"],
)
async def test_a_success_that_is_not_the_contract_is_a_validation_error(make_client, answer):
    script = Script(answer)
    client = make_client(script)
    with pytest.raises(APIResponseValidationError) as info:
        await call(client, "usage")
    assert info.value.status_code == 200
    assert len(script.requests) == 1  # not retried: the same answer would come back


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


async def test_a_body_that_does_not_decode_is_a_validation_error(make_client):
    # A proxy that says gzip and sends something else: httpx fails while decoding.
    answer = httpx.Response(
        200,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        stream=httpx.ByteStream(b"definitely not gzip"),
    )
    client = make_client(Script(answer))
    with pytest.raises(APIResponseValidationError):
        await call(client, "usage")


async def test_a_redirect_loop_is_a_validation_error(flavor, fake_key):
    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": str(request.url)})

    transport = httpx.MockTransport(loop)
    if flavor == "sync":
        client = MemLayerClient(
            fake_key, base_url="http://memlayer.test",
            http_client=httpx.Client(transport=transport, follow_redirects=True),
        )
    else:
        client = AsyncMemLayerClient(
            fake_key, base_url="http://memlayer.test",
            http_client=httpx.AsyncClient(transport=transport, follow_redirects=True),
        )
    with pytest.raises(APIResponseValidationError, match="TooManyRedirects"):
        await call(client, "usage")


async def test_a_redirect_not_followed_is_a_validation_error(make_client):
    client = make_client(Script(httpx.Response(301, headers={"Location": "https://elsewhere.test/"})))
    with pytest.raises(APIResponseValidationError) as info:
        await call(client, "usage")
    assert info.value.status_code == 301
