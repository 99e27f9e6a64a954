"""Client configuration: base URL and key precedence, the key check before sending, the
headers every request carries, rate-limit headers, and who closes the HTTP client."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest
from pydantic import SecretStr

from memlayer_integrations import (
    DEFAULT_BASE_URL,
    APIConnectionError,
    APIResponseValidationError,
    AsyncMemLayerClient,
    AuthenticationError,
    MemLayerClient,
    MemLayerError,
    RateLimitError,
    __version__,
)

from ._support import Script, call, collect, error_response, memory_json, usage_json

# -- base URL -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/usage"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1/usage"),
        ("https://proxy.example/memlayer", "https://proxy.example/memlayer/v1/usage"),
        ("https://proxy.example/memlayer/", "https://proxy.example/memlayer/v1/usage"),
    ],
)
async def test_base_url_from_the_argument(make_client, base_url, expected):
    script = Script()
    client = make_client(script, base_url=base_url)
    assert client.base_url == expected.removesuffix("/v1/usage")
    await call(client, "usage")
    assert str(script.requests[0].url) == expected


@pytest.mark.parametrize("env_url", ["http://localhost:9999", "http://localhost:9999/"])
async def test_base_url_from_the_environment(make_client, monkeypatch, env_url):
    monkeypatch.setenv("MEMLAYER_BASE_URL", env_url)
    script = Script()
    await call(make_client(script, base_url=None), "usage")
    assert str(script.requests[0].url) == "http://localhost:9999/v1/usage"


async def test_the_argument_wins_over_the_environment(make_client, monkeypatch):
    monkeypatch.setenv("MEMLAYER_BASE_URL", "http://from-env.test")
    script = Script()
    await call(make_client(script, base_url="http://from-arg.test"), "usage")
    assert script.requests[0].url.host == "from-arg.test"


@pytest.mark.parametrize("env_value", [None, ""])
async def test_default_base_url(make_client, monkeypatch, env_value):
    if env_value is not None:
        monkeypatch.setenv("MEMLAYER_BASE_URL", env_value)
    script = Script()
    await call(make_client(script, base_url=None), "usage")
    assert DEFAULT_BASE_URL == "https://memlayer.online"
    assert str(script.requests[0].url) == "https://memlayer.online/v1/usage"


@pytest.mark.parametrize("cls", [MemLayerClient, AsyncMemLayerClient])
@pytest.mark.parametrize("bad", ["memlayer.online", "ftp://memlayer.online", ""])
def test_base_url_needs_a_scheme(cls, bad, fake_key):
    with pytest.raises(ValueError, match="http"):
        cls(fake_key, base_url=bad)


@pytest.mark.parametrize("cls", [MemLayerClient, AsyncMemLayerClient])
def test_negative_max_retries_is_refused(cls, fake_key):
    with pytest.raises(ValueError, match="max_retries"):
        cls(fake_key, max_retries=-1)


# -- the API key ----------------------------------------------------------------------------


async def test_api_key_from_the_argument_is_sent_in_x_api_key(make_client, fake_key):
    script = Script()
    await call(make_client(script, api_key=fake_key), "usage")
    assert script.header("X-API-Key") == [fake_key]
    assert "api_key" not in str(script.requests[0].url)  # never in the query string


async def test_api_key_from_the_environment(make_client, monkeypatch, fake_key):
    monkeypatch.setenv("MEMLAYER_API_KEY", fake_key)
    script = Script()
    await call(make_client(script, api_key=None), "usage")
    assert script.header("X-API-Key") == [fake_key]


async def test_the_key_argument_wins_over_the_environment(make_client, monkeypatch, fake_key):
    monkeypatch.setenv("MEMLAYER_API_KEY", "ml_live_fromenvironment0")
    script = Script()
    await call(make_client(script, api_key=fake_key), "usage")
    assert script.header("X-API-Key") == [fake_key]


@pytest.mark.parametrize("wrap", [SecretStr, lambda k: f"  {k}\n"], ids=["SecretStr", "padded"])
async def test_key_as_secret_str_or_with_surrounding_space(make_client, fake_key, wrap):
    script = Script()
    await call(make_client(script, api_key=wrap(fake_key)), "usage")
    assert script.header("X-API-Key") == [fake_key]


@pytest.mark.parametrize("cls", [MemLayerClient, AsyncMemLayerClient])
def test_a_key_of_the_wrong_type_is_refused(cls):
    with pytest.raises(TypeError, match="api_key"):
        cls(12345)


@pytest.mark.parametrize("key", [None, "", "   "], ids=["none", "empty", "blank"])
async def test_missing_key_raises_before_sending(make_client, key):
    script = Script()
    client = make_client(script, api_key=key)
    with pytest.raises(AuthenticationError) as info:
        await call(client, "remember", "x", user_id="u1", agent_id="bot")
    assert script.requests == []
    err = info.value
    assert err.status_code == 401 and err.code == "invalid_api_key" and err.request_id is None
    assert err.message.startswith("invalid or missing API key: no key was given")
    assert "api_key=" in err.message and "MEMLAYER_API_KEY" in err.message


@pytest.mark.parametrize(
    "key",
    [
        "sk-proj-abc123",
        "ml_test_abc123",
        "ML_LIVE_abc123",
        "ml_live_",
        "ml_live_abc-def",
        "ml_live_abc def",
        "ml_live_abc_def",
        "ml_live_ab\u00e7d",
    ],
)
async def test_wrong_key_format_raises_before_sending(make_client, key):
    script = Script()
    client = make_client(script, api_key=key)
    with pytest.raises(AuthenticationError) as info:
        await call(client, "usage")
    assert script.requests == []
    err = info.value
    assert "wrong key format" in str(err)
    assert err.code == "wrong_key_format" and err.status_code == 401
    assert "ml_live_" in err.message and "MEMLAYER_API_KEY" in err.message
    if key != "ml_live_":  # the bare prefix is part of the guidance itself
        assert key not in str(err) and key not in repr(err)


async def test_key_check_covers_lazy_listing(make_client):
    script = Script()
    iterator = make_client(script, api_key="not-a-key").list_memories(user_id="u1")
    with pytest.raises(AuthenticationError, match="wrong key format"):
        await collect(iterator)
    assert script.requests == []


# -- constructing, headers -------------------------------------------------------------------


@pytest.mark.parametrize("cls", [MemLayerClient, AsyncMemLayerClient])
async def test_constructing_a_client_sends_nothing(cls, fake_key):
    script = Script()
    transport = httpx.MockTransport(script)
    http = (
        httpx.Client(transport=transport)
        if cls is MemLayerClient
        else httpx.AsyncClient(transport=transport)
    )
    cls(fake_key, base_url="http://memlayer.test", http_client=http)
    cls(None, base_url="http://memlayer.test", http_client=http)  # even without a key
    cls("bad", base_url="http://memlayer.test", http_client=http)  # or with a malformed one
    assert script.requests == []


@pytest.mark.parametrize("cls", [MemLayerClient, AsyncMemLayerClient])
async def test_constructing_with_an_owned_http_client_needs_no_network(cls, fake_key, no_network):
    client = cls(fake_key, base_url="http://127.0.0.1:9")
    if cls is MemLayerClient:
        client.close()
    else:
        await client.aclose()


async def test_every_request_carries_the_contract_headers(make_client, fake_key):
    script = Script(httpx.Response(201, json=memory_json()), httpx.Response(200, json=usage_json()))
    client = make_client(script, default_headers={"X-Trace": "t1"})
    await call(client, "remember", "x", user_id="u1", agent_id="bot")
    await call(client, "usage")
    post, get = script.requests
    for request in (post, get):
        assert request.headers["X-API-Key"] == fake_key
        assert request.headers["Accept"] == "application/json"
        assert request.headers["User-Agent"] == f"memlayer-integrations/{__version__}"
        assert request.headers["X-Trace"] == "t1"
    assert post.headers["Content-Type"] == "application/json"
    assert "Content-Type" not in get.headers and get.content == b""


async def test_default_headers_cannot_override_the_key(make_client, fake_key):
    script = Script()
    client = make_client(script, default_headers={"X-API-Key": "ml_live_someoneelse"})
    await call(client, "usage")
    assert script.header("X-API-Key") == [fake_key]


# -- rate-limit headers -----------------------------------------------------------------------


async def test_rate_limit_headers_are_readable(make_client):
    headers = {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "69",
        "X-RateLimit-Reset": "1795824000",
    }
    client = make_client(Script(httpx.Response(200, json=usage_json(), headers=headers)))
    assert client.rate_limit is None  # nothing received yet
    await call(client, "usage")
    info = client.rate_limit
    assert (info.limit, info.remaining) == (100, 69)
    assert info.reset_at == datetime.fromtimestamp(1795824000, timezone.utc)


async def test_unlimited_rate_limit_reads_as_none(make_client):
    headers = {
        "X-RateLimit-Limit": "unlimited",
        "X-RateLimit-Remaining": "unlimited",
        "X-RateLimit-Reset": "1795824000",
    }
    client = make_client(Script(httpx.Response(200, json=usage_json(), headers=headers)))
    await call(client, "usage")
    assert client.rate_limit.limit is None and client.rate_limit.remaining is None
    assert client.rate_limit.reset_at is not None


async def test_rate_limit_is_updated_by_error_answers_too(make_client):
    first = httpx.Response(
        200, json=usage_json(), headers={"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "1"}
    )
    quota = error_response(
        429,
        "daily_quota_exceeded",
        headers={"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "Retry-After": "60"},
    )
    unauthenticated = httpx.Response(200, json={"status": "ok"})  # no X-RateLimit-* headers
    client = make_client(Script(first, quota, unauthenticated))
    await call(client, "usage")
    assert client.rate_limit.remaining == 1
    with pytest.raises(RateLimitError):
        await call(client, "usage")
    assert client.rate_limit.remaining == 0
    with pytest.raises(APIResponseValidationError):
        await call(client, "usage")
    assert client.rate_limit.remaining == 0  # an answer without the headers keeps the last known


# -- closing --------------------------------------------------------------------------------


def test_sync_context_manager_closes_its_own_http_client(fake_key):
    with MemLayerClient(fake_key, base_url="http://memlayer.test") as client:
        http = client._http
        assert not http.is_closed
    assert http.is_closed


def test_sync_context_manager_leaves_a_supplied_http_client_open(fake_key):
    http = httpx.Client(transport=httpx.MockTransport(Script()))
    with MemLayerClient(fake_key, base_url="http://memlayer.test", http_client=http) as client:
        client.usage()
    client.close()
    assert not http.is_closed
    assert (
        MemLayerClient(fake_key, base_url="http://memlayer.test", http_client=http).usage().plan
        == "free"
    )
    http.close()


async def test_async_context_manager_closes_its_own_http_client(fake_key):
    async with AsyncMemLayerClient(fake_key, base_url="http://memlayer.test") as client:
        http = client._http
        assert not http.is_closed
    assert http.is_closed

    other = AsyncMemLayerClient(fake_key, base_url="http://memlayer.test")
    await other.close()
    assert other._http.is_closed


async def test_async_context_manager_leaves_a_supplied_http_client_open(fake_key):
    http = httpx.AsyncClient(transport=httpx.MockTransport(Script()))
    async with AsyncMemLayerClient(
        fake_key, base_url="http://memlayer.test", http_client=http
    ) as client:
        await client.usage()
    await client.aclose()
    assert not http.is_closed
    await http.aclose()


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.mark.parametrize(
    ("given", "env", "url", "source"),
    [
        ("http://10.0.0.1:1", None, "http://10.0.0.1:1", "(from base_url=)"),
        (None, "http://10.0.0.2:1", "http://10.0.0.2:1", "(from $MEMLAYER_BASE_URL)"),
        (None, None, DEFAULT_BASE_URL, "(the default, as $MEMLAYER_BASE_URL is not set)"),
    ],
)
async def test_a_connection_error_names_the_url_and_where_it_came_from(
    flavor, fake_key, monkeypatch, given, env, url, source
):
    if env:
        monkeypatch.setenv("MEMLAYER_BASE_URL", env)
    transport = httpx.MockTransport(_refused)
    kwargs = {"api_key": fake_key, "base_url": given, "max_retries": 0}
    client = (
        MemLayerClient(http_client=httpx.Client(transport=transport), **kwargs)
        if flavor == "sync"
        else AsyncMemLayerClient(http_client=httpx.AsyncClient(transport=transport), **kwargs)
    )
    with pytest.raises(APIConnectionError) as info:
        await call(client, "usage")
    assert f"could not reach MemLayer at {url} {source}" in info.value.message
    assert "check that the server is running" in info.value.message


async def test_a_closed_client_raises_a_memlayer_error(flavor, fake_key):
    client = (
        MemLayerClient(api_key=fake_key)
        if flavor == "sync"
        else AsyncMemLayerClient(api_key=fake_key)
    )
    await call(client, "close")
    with pytest.raises(MemLayerError, match="is closed, so it cannot send requests"):
        await call(client, "usage")


async def test_an_answer_that_is_not_memlayers_names_the_url(make_client):
    client = make_client(lambda request: httpx.Response(200, html="<html>hello</html>"))
    with pytest.raises(APIResponseValidationError) as info:
        await call(client, "usage")
    assert "answer from http://memlayer.test (from base_url=) is not the expected JSON" in str(
        info.value
    )
    assert "check that this URL is a MemLayer server" in str(info.value)


@pytest.mark.parametrize("env", [None, "http://memlayer.test"])
async def test_a_refused_key_says_where_it_was_sent(flavor, fake_key, monkeypatch, env):
    if env:
        monkeypatch.setenv("MEMLAYER_BASE_URL", env)

    def refuse(request: httpx.Request) -> httpx.Response:
        return error_response(401, "invalid_api_key", "unknown API key")

    transport = httpx.MockTransport(refuse)
    kwargs = {"api_key": fake_key, "max_retries": 0}
    client = (
        MemLayerClient(http_client=httpx.Client(transport=transport), **kwargs)
        if flavor == "sync"
        else AsyncMemLayerClient(http_client=httpx.AsyncClient(transport=transport), **kwargs)
    )
    with pytest.raises(AuthenticationError) as info:
        await call(client, "usage")
    where = (
        "http://memlayer.test, from $MEMLAYER_BASE_URL"
        if env
        else f"{DEFAULT_BASE_URL}, the default, as $MEMLAYER_BASE_URL is not set"
    )
    assert info.value.message == f"unknown API key (sent to {where})"
    assert str(info.value).startswith(info.value.message + " (status 401")
