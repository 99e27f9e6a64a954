"""Bounded output: every answer, a batch's included, has a byte cap, and over it the request
is refused (422 ``response_too_large``), not built and sent.

A list page stops early (after at least one memory) once it holds half the cap, so listing
never fails however large the memories: the rest comes with ``next_cursor``. A recall or a
batch whose answer would pass the cap is refused, storing nothing, and still counts.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from memlayer_integrations import MemLayerClient, RequestBudgetError
from memlayer_integrations.server import LocalMemLayerServer, ServerSettings
from tests.server._helpers import assert_error

CAP = 256 * 1024
BIG = "é" * 32_000  # about the longest content, two bytes a character


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMemLayerServer]:
    settings = ServerSettings(
        db_path=tmp_path_factory.mktemp("output") / "o.db", max_response_bytes=CAP
    )
    with LocalMemLayerServer(settings=settings) as s:
        yield s


@pytest.fixture(scope="module")
def http(server: LocalMemLayerServer) -> Iterator[httpx.Client]:
    """An account with 20 memories of 64 KiB each (1.3 MB), all mentioning tea."""
    key = server.create_key()
    with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as client:
        for start in range(0, 20, 2):
            items = [{"content": f"tea {i} {BIG}"} for i in range(start, start + 2)]
            r = client.post(
                "/memories/batch", json={"user_id": "u", "agent_id": "a", "items": items}
            )
            assert r.status_code == 201
        yield client


def test_a_list_page_stops_at_half_the_cap_and_the_cursor_brings_the_rest(http):
    contents, cursor, pages = [], None, 0
    while True:
        params = {"user_id": "u", "limit": 100, **({"cursor": cursor} if cursor else {})}
        r = http.get("/memories", params=params)
        assert r.status_code == 200 and len(r.content) <= CAP
        contents += [m["content"] for m in r.json()["memories"]]
        pages += 1
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert contents == [f"tea {i} {BIG}" for i in range(20)]  # all of them, in order
    assert pages >= 10  # about two 64 KiB memories fit half of 256 KiB


def test_a_recall_over_the_cap_is_refused(http):
    used = http.get("/usage").json()["requests_today"]
    r = http.post("/memories/search", json={"query": "tea", "user_id": "u", "limit": 10})
    assert_error(r, 422, "response_too_large")
    assert len(r.content) < 1000
    assert http.get("/usage").json()["requests_today"] == used + 2
    r = http.post("/memories/search", json={"query": "tea", "user_id": "u", "limit": 3})
    assert r.status_code == 200 and len(r.json()["results"]) == 3


def test_a_batch_of_lists_is_refused_at_the_operation_that_passes_the_cap(http):
    lists = [{"op": "list", "user_id": "u", "limit": 100}] * 30
    r = http.post("/batch", json={"operations": lists})
    body = assert_error(r, 422, "response_too_large", r.json()["error"]["field"])
    assert body["error"]["field"] in {f"operations[{i}]" for i in range(1, 4)}


def test_a_batch_with_a_write_over_the_cap_stores_nothing(http):
    before = http.get("/usage").json()["memories_stored"]
    ops = [
        {"op": "remember", "content": "not kept", "user_id": "u", "agent_id": "a"},
        *[{"op": "list", "user_id": "u", "limit": 100}] * 5,
    ]
    r = http.post("/batch", json={"operations": ops})
    assert_error(r, 422, "response_too_large", r.json()["error"]["field"])
    assert http.get("/usage").json()["memories_stored"] == before


def test_the_client_raises_the_budget_error(server, http):
    with (
        MemLayerClient(api_key=http.headers["X-API-Key"], base_url=server.url) as client,
        pytest.raises(RequestBudgetError) as info,
    ):
        client.recall("tea", user_id="u", limit=10)
    assert info.value.code == "response_too_large"
