"""Which transport a client's own httpx client gets (``_transports``), and that it works."""

from __future__ import annotations

import socket

import httpx
import pytest

from memlayer_integrations import (
    APIConnectionError,
    AsyncMemLayerClient,
    MemLayerClient,
    _transports,
)
from memlayer_integrations._base_client import Call
from memlayer_integrations._plain_http import AsyncPlainHTTPTransport, PlainHTTPTransport


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000", "http://127.8.9.10:1/x", "http://localhost:8000", "http://[::1]:80"],
)
def test_plain_http_on_a_loopback_host_gets_the_lean_transport(url: str) -> None:
    assert isinstance(_transports.sync_transport(url), PlainHTTPTransport)
    assert isinstance(_transports.async_transport(url), AsyncPlainHTTPTransport)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8000",  # TLS stays with httpx
        "https://memlayer.online",
        "http://10.0.0.5:8000",
        "http://example.com",
        "http://localhost.example.com",
    ],
)
def test_anything_else_gets_httpx_s_own(url: str) -> None:
    assert _transports.sync_transport(url) is None
    assert _transports.async_transport(url) is None


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_proxy_of_the_environment_keeps_httpx_s_transport(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "http://proxy.internal:3128")
    assert _transports.sync_transport("http://127.0.0.1:8000") is None
    # What httpx would do with the same environment: a proxy applies.
    client = httpx.Client()
    assert client._transport_for_url(httpx.URL("http://127.0.0.1:8000")) is not client._transport
    client.close()


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*"])
def test_no_proxy_for_the_host_gives_the_lean_transport_back(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert isinstance(_transports.sync_transport("http://127.0.0.1:8000"), PlainHTTPTransport)


def test_an_https_only_proxy_does_not_apply_to_plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert isinstance(_transports.sync_transport("http://127.0.0.1:8000"), PlainHTTPTransport)


async def test_default_clients_of_a_local_server_use_it_and_work(
    base_url: str, api_key: str
) -> None:
    with MemLayerClient(api_key=api_key, base_url=base_url) as client:
        assert isinstance(client._http._transport, PlainHTTPTransport)
        stored = client.remember("plain http", user_id="u-plain", agent_id="bot")
        assert client.get(stored.id).content == "plain http"
    async with AsyncMemLayerClient(api_key=api_key, base_url=base_url) as aclient:
        assert isinstance(aclient._http._transport, AsyncPlainHTTPTransport)
        assert (await aclient.get(stored.id)).content == "plain http"


def test_a_users_own_http_client_is_never_touched(base_url: str, api_key: str) -> None:
    http = httpx.Client()
    with MemLayerClient(api_key=api_key, base_url=base_url, http_client=http) as client:
        assert client._http is http
        assert isinstance(http._transport, httpx.HTTPTransport)
    http.close()


async def test_our_own_transport_is_called_without_httpx_s_client_layer(
    monkeypatch: pytest.MonkeyPatch, local_server, api_key: str
) -> None:
    """A default client of a local server sends straight to its transport (``_send_once``):
    ``httpx.Client.send`` is never called, and what comes back is the same."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("httpx.Client.send was called")

    monkeypatch.setattr(httpx.Client, "send", refuse)
    monkeypatch.setattr(httpx.AsyncClient, "send", refuse)
    for url in (local_server.url, local_server.in_process_url):
        with MemLayerClient(api_key=api_key, base_url=url) as client:
            stored = client.remember("straight", user_id="u-direct", agent_id="bot")
            assert client.get(stored.id).content == "straight"
        async with AsyncMemLayerClient(api_key=api_key, base_url=url) as aclient:
            assert (await aclient.get(stored.id)).content == "straight"


def test_a_connection_error_of_our_own_transport_names_its_request(api_key: str) -> None:
    """Like ``httpx.Client.send``, the direct path puts the failed request on the error, so
    the client can mask the key in it (``scrub_key``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = MemLayerClient(api_key=api_key, base_url=f"http://127.0.0.1:{port}", max_retries=0)
    with pytest.raises(APIConnectionError) as info:
        client.usage()
    cause = info.value.__cause__
    assert isinstance(cause, httpx.ConnectError)
    assert cause.request.url.path == "/v1/usage"
    assert cause.request.headers["X-API-Key"] == api_key[:12] + "..."
    client.close()


def test_a_users_own_http_client_is_sent_through(base_url: str, api_key: str) -> None:
    """Given ``http_client=``, every request goes through its ``send`` (its hooks run)."""
    seen: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
    with MemLayerClient(api_key=api_key, base_url=base_url, http_client=http) as client:
        client.usage()
    assert seen == ["/v1/usage"]
    http.close()


@pytest.mark.parametrize(
    "call",
    [
        Call("GET", "/usage", parse=dict),
        Call("GET", "/memories", parse=dict, params=[("user_id", "u 1"), ("limit", "5")]),
        Call("POST", "/memories", parse=dict, json={"content": "é"}, idempotency_key="k-1"),
        Call("POST", "/batch", parse=dict, json={"ops": []}, timeout=2.5),
    ],
)
def test_our_own_client_builds_the_request_httpx_s_build_request_would(call: Call) -> None:
    """The requests of a client's own httpx client are built without ``build_request``
    (its header merge is done once): byte for byte the same request."""
    key = "ml_live_" + "b" * 24
    client = MemLayerClient(
        api_key=key, base_url="http://127.0.0.1:9", default_headers={"X-Trace": "t"}
    )
    for _ in range(2):  # built, then from the merged headers kept
        ours = client._build_request(client._http, call)
        client._owns_http = False
        theirs = client._build_request(client._http, call)
        client._owns_http = True
        assert ours.method == theirs.method
        assert ours.url == theirs.url
        assert ours.headers.raw == theirs.headers.raw
        assert ours.read() == theirs.read()
        assert ours.extensions == theirs.extensions
    client.close()
