"""When the clients retry, how long they wait, and what they resend.

Sleeps are recorded (``sleeps`` fixture), never slept, so the delays themselves are asserted.
What each fault (a 5xx burst, a reset, a timeout, a proxy's HTML page ...) ends as is pinned
in ``tests/reliability/test_faults.py``.
"""

from __future__ import annotations

import httpx
import pytest

from memlayer_integrations import (
    APIConnectionError,
    APIStatusError,
    ConflictError,
    InternalServerError,
    RateLimitError,
    _base_client,
    _constants,
)

from ._support import Script, call, collect, error_response, memory_json, usage_json

OK_USAGE = httpx.Response(200, json=usage_json())
OK_MEMORY = httpx.Response(201, json=memory_json())


def server_error(status: int = 503) -> httpx.Response:
    return error_response(status, "internal_error", "try again")


# -- what is not retried -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "bad_request"),
        (401, "invalid_api_key"),
        (403, "account_suspended"),
        (403, "memory_limit_reached"),
        (404, "not_found"),
        (409, "conflict"),
        (413, "payload_too_large"),
        (415, "unsupported_media_type"),
        (422, "validation_error"),
        (418, "teapot"),
    ],
)
async def test_other_4xx_are_not_retried(make_client, sleeps, status, code):
    script = Script(error_response(status, code), OK_MEMORY)
    client = make_client(script)
    with pytest.raises(APIStatusError) as info:
        await call(client, "remember", "x", user_id="u1", agent_id="bot")
    assert info.value.status_code == status
    assert len(script.requests) == 1
    assert sleeps == []


# -- how long it waits ----------------------------------------------------------------------


@pytest.mark.parametrize(("jitter", "factor"), [(0.0, 1.0), (0.999999, 0.75)])
async def test_backoff_doubles_up_to_the_cap_with_bounded_jitter(
    make_client, sleeps, monkeypatch, jitter, factor
):
    monkeypatch.setattr(_base_client.random, "random", lambda: jitter)
    script = Script(httpx.ConnectError("down"))
    client = make_client(script, max_retries=7)
    with pytest.raises(APIConnectionError):
        await call(client, "usage")
    expected = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert sleeps == pytest.approx([d * factor for d in expected], rel=1e-5)


async def test_real_jitter_stays_within_a_quarter_below_the_backoff(make_client, sleeps):
    client = make_client(Script(server_error()), max_retries=6)
    for _ in range(5):
        with pytest.raises(InternalServerError):
            await call(client, "usage")
    backoffs = [min(0.5 * 2**i, 8.0) for i in range(6)] * 5
    assert len(sleeps) == len(backoffs)
    for delay, backoff in zip(sleeps, backoffs, strict=True):
        assert 0.75 * backoff <= delay <= backoff
    assert len(set(sleeps)) > 6  # jittered, not a fixed schedule


@pytest.mark.parametrize("retry_after", ["0", "1", "7.5", "60"])
async def test_retry_after_is_honoured(make_client, sleeps, retry_after):
    limited = error_response(429, "rate_limited", "slow down", headers={"Retry-After": retry_after})
    script = Script(limited, OK_USAGE)
    client = make_client(script)
    await call(client, "usage")
    assert sleeps == [float(retry_after)]
    assert len(script.requests) == 2


async def test_retry_after_above_the_cap_is_raised_not_slept_on(make_client, sleeps):
    over = str(int(_constants.MAX_RETRY_AFTER) + 1)
    script = Script(
        error_response(429, "rate_limited", "slow down", headers={"Retry-After": over}), OK_USAGE
    )
    client = make_client(script, max_retries=5)
    with pytest.raises(RateLimitError) as info:
        await call(client, "usage")
    assert info.value.retry_after == float(over)
    assert not info.value.is_daily_quota
    assert sleeps == []
    assert len(script.requests) == 1


async def test_rate_limited_without_retry_after_backs_off(make_client, sleeps, monkeypatch):
    monkeypatch.setattr(_base_client.random, "random", lambda: 0.0)
    script = Script(
        error_response(429, "rate_limited"), error_response(429, "rate_limited"), OK_USAGE
    )
    await call(make_client(script), "usage")
    assert sleeps == [0.5, 1.0]


# -- what it resends ------------------------------------------------------------------------

# Every POST, PATCH and DELETE carries an Idempotency-Key (recall is a POST too).
WRITES = [
    ("remember", ("x",), {"user_id": "u1", "agent_id": "bot"}),
    ("remember_many", (["x", "y"],), {"user_id": "u1", "agent_id": "bot"}),
    ("recall", ("x",), {"user_id": "u1"}),
    ("update", ("mem_1",), {"content": "y"}),
    ("forget", ("mem_1",), {}),
    ("forget_all", (), {"user_id": "u1"}),
    ("batch", ([{"op": "usage"}],), {}),
]


@pytest.mark.parametrize(("method", "args", "kwargs"), WRITES, ids=[w[0] for w in WRITES])
async def test_every_retry_of_a_write_resends_the_same_idempotency_key(
    make_client, sleeps, method, args, kwargs
):
    script = Script(httpx.ReadTimeout("timed out"), server_error(), server_error())
    client = make_client(script)
    with pytest.raises(InternalServerError):
        await call(client, method, *args, **kwargs)
    keys = script.header("Idempotency-Key")
    assert len(keys) == 3
    assert keys[0] and keys[0] == keys[1] == keys[2]
    assert 1 <= len(keys[0]) <= 255 and keys[0].isascii() and keys[0].isprintable()
    # The body is resent unchanged too, or the server would answer 409 idempotency_key_reused.
    assert len({r.content for r in script.requests}) == 1


async def test_separate_calls_get_separate_idempotency_keys(make_client):
    script = Script(OK_MEMORY)
    client = make_client(script)
    for _ in range(3):
        await call(client, "remember", "same text", user_id="u1", agent_id="bot")
    keys = script.header("Idempotency-Key")
    assert len(set(keys)) == 3 and None not in keys


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "answer"),
    [
        ("get", ("mem_1",), {}, httpx.Response(200, json=memory_json())),
        ("usage", (), {}, OK_USAGE),
        ("list_scopes", (), {}, httpx.Response(200, json={"scopes": []})),
    ],
)
async def test_reads_carry_no_idempotency_key(make_client, sleeps, method, args, kwargs, answer):
    script = Script(server_error(), answer)
    await call(make_client(script), method, *args, **kwargs)
    assert script.header("Idempotency-Key") == [None, None]


async def test_list_pages_carry_no_idempotency_key(make_client):
    script = Script(httpx.Response(200, json={"memories": [memory_json()], "next_cursor": None}))
    await collect(make_client(script).list_memories(user_id="u1"))
    assert script.header("Idempotency-Key") == [None]


async def test_a_replayed_conflict_is_not_retried(make_client, sleeps):
    script = Script(error_response(409, "idempotency_key_reused"))
    with pytest.raises(ConflictError):
        await call(make_client(script), "remember", "x", user_id="u1", agent_id="bot")
    assert len(script.requests) == 1


# -- timeouts -------------------------------------------------------------------------------


async def test_client_default_timeout_reaches_the_request(make_client):
    script = Script(OK_USAGE)
    await call(make_client(script), "usage")
    assert script.requests[0].extensions["timeout"] == _constants.DEFAULT_TIMEOUT.as_dict()
    assert _constants.DEFAULT_TIMEOUT.as_dict() == {
        "connect": 5.0,
        "read": 10.0,
        "write": 10.0,
        "pool": 10.0,
    }


@pytest.mark.parametrize(
    ("client_timeout", "expected"),
    [
        (3.0, httpx.Timeout(3.0)),
        (httpx.Timeout(2.0, read=7.0), httpx.Timeout(2.0, read=7.0)),
        (None, httpx.Timeout(None)),
    ],
)
async def test_client_timeout_argument_reaches_the_request(make_client, client_timeout, expected):
    script = Script(OK_USAGE)
    await call(make_client(script, timeout=client_timeout), "usage")
    assert script.requests[0].extensions["timeout"] == expected.as_dict()


@pytest.mark.parametrize(
    ("per_call", "expected"),
    [
        (1.5, httpx.Timeout(1.5)),
        (httpx.Timeout(4.0, connect=1.0), httpx.Timeout(4.0, connect=1.0)),
        (None, httpx.Timeout(None)),
    ],
)
async def test_per_call_timeout_overrides_the_client_default(
    make_client, sleeps, per_call, expected
):
    script = Script(server_error(), OK_MEMORY, httpx.Response(200, json=usage_json()))
    client = make_client(script, timeout=30.0)
    await call(client, "remember", "x", user_id="u1", agent_id="bot", timeout=per_call)
    await call(client, "usage")
    timeouts = [r.extensions["timeout"] for r in script.requests]
    assert timeouts[0] == timeouts[1] == expected.as_dict()  # the retry keeps the per-call timeout
    assert timeouts[2] == httpx.Timeout(30.0).as_dict()  # and it did not stick to the client
