"""MemLayerStore against LangGraph's own InMemoryStore: the same scenario on both must give
the same answers (sync and async), plus what is specific to MemLayer."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from memlayer_integrations import AuthenticationError, MemLayerScopeError
from memlayer_integrations.langchain import MemLayerStore, memlayer_namespace
from memlayer_integrations.langchain.store import decode_label, encode_label

ALICE = memlayer_namespace("alice@example.com", "prefs")
ALICE_NOTES = memlayer_namespace("alice@example.com", "notes", "work")
BOB = ("bob", "prefs")


def _load(store: BaseStore) -> None:
    store.put(
        ALICE,
        "drink",
        {"text": "green tea", "cups": 3, "tags": ["hot"], "nested": {"a": [1, {"b": None}]}},
    )
    store.put(ALICE, "food", {"text": "pizza", "cups": 1})
    store.put(ALICE_NOTES, "n1", {"text": "quarterly report", "cups": 0, "status": "open"})
    store.put(BOB, "drink", {"text": "coffee", "cups": 5, "status": "closed"})
    store.put(ALICE, "food", {"text": "sushi", "cups": 2})  # overwrite keeps the item's place
    store.put(ALICE, "gone", {"text": "soon deleted", "cups": 9})
    store.delete(ALICE, "gone")


def _observe(store: BaseStore) -> dict[str, Any]:
    def keys(items: list) -> list[tuple]:
        return [(tuple(i.namespace), i.key, i.value) for i in items]

    return {
        "get": store.get(ALICE, "drink").value,
        "get_overwritten": store.get(ALICE, "food").value,
        "get_deleted": store.get(ALICE, "gone"),
        "search_ns": keys(store.search(ALICE)),
        "search_prefix": keys(store.search((ALICE[0],))),
        "search_all": sorted(keys(store.search(()))),
        "eq": keys(store.search((ALICE[0],), filter={"cups": 2})),
        "$eq": keys(store.search(("bob",), filter={"status": {"$eq": "closed"}})),
        "$ne": sorted(keys(store.search((), filter={"cups": {"$ne": 3}}))),
        "range": sorted(keys(store.search((), filter={"cups": {"$gte": 2, "$lt": 5}}))),
        "$gt/$lte": keys(store.search((), filter={"cups": {"$gt": 2, "$lte": 3}})),
        "limit_offset": keys(store.search(ALICE, limit=1, offset=1)),
        "ns_all": store.list_namespaces(),
        "ns_prefix": store.list_namespaces(prefix=(ALICE[0],)),
        "ns_suffix": store.list_namespaces(suffix=("prefs",)),
        "ns_wildcard": store.list_namespaces(prefix=("*", "prefs")),
        "ns_depth": store.list_namespaces(max_depth=1),
        "ns_page": store.list_namespaces(limit=1, offset=1),
        # Last: InMemoryStore creates an (empty) namespace when a get reads a missing one.
        "get_missing_ns": store.get(("carol", "x"), "drink"),
    }


async def _aobserve_batch(store: BaseStore) -> list:
    results = await store.abatch(
        [
            GetOp(ALICE, "drink"),
            SearchOp(("bob",), None, 10, 0, None),
            ListNamespacesOp(None, 1, 10, 0),
            PutOp(ALICE, "new", {"text": "new"}),
            GetOp(ALICE, "new"),  # reads see the store as it was before the batch's writes
        ]
    )
    return [
        results[0].value,
        [(i.key, i.value) for i in results[1]],
        results[2],
        results[3],
        results[4],
        (await store.aget(ALICE, "new")).value,
    ]


@pytest.fixture
def store(clients: tuple) -> MemLayerStore:
    sync, async_, _ = clients
    return MemLayerStore(client=sync, async_client=async_)


def test_same_answers_as_in_memory_store(store: MemLayerStore) -> None:
    reference = InMemoryStore()
    _load(reference)
    _load(store)
    expected, got = _observe(reference), _observe(store)
    for what in expected:
        assert got[what] == expected[what], what
    # Not vacuous: the scenario does find things.
    assert len(got["search_all"]) == 4 and got["range"] and got["ns_all"]


async def test_async_same_answers_as_in_memory_store(store: MemLayerStore) -> None:
    reference = InMemoryStore()
    _load(reference)
    _load(store)
    assert await _aobserve_batch(store) == await _aobserve_batch(reference)
    await store.aput(BOB, "tea", {"text": "earl grey"})
    await store.adelete(BOB, "drink")
    assert [i.key for i in await store.asearch(("bob",))] == ["tea"]
    assert await store.alist_namespaces(prefix=("bob",)) == [("bob", "prefs")]


def test_filters_follow_the_contract_on_missing_fields(store: MemLayerStore) -> None:
    """The one documented difference: a missing field never matches, not even ``$ne``."""
    _load(store)
    assert [i.key for i in store.search((), filter={"status": {"$ne": "open"}})] == ["drink"]
    reference = InMemoryStore()
    _load(reference)
    assert len(reference.search((), filter={"status": {"$ne": "open"}})) == 3


def test_item_dates_come_from_the_memory(store: MemLayerStore) -> None:
    store.put(ALICE, "k", {"v": 1})
    first = store.get(ALICE, "k")
    store.put(ALICE, "k", {"v": 2})
    second = store.get(ALICE, "k")
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at


def test_query_search_ranks_by_relevance_and_respects_filters(store: MemLayerStore) -> None:
    _load(store)
    hits = store.search((ALICE[0],), query="green tea")
    assert [h.key for h in hits][:1] == ["drink"]
    assert hits[0].score is not None and hits[0].score > 0
    # The one item that passes the filter matches no word: it still comes back, unscored.
    unmatched = store.search((ALICE[0],), query="tea", filter={"cups": {"$lt": 2}})
    assert [(h.key, h.score) for h in unmatched] == [("n1", None)]
    assert [h.key for h in store.search(ALICE, query="sushi", limit=1)] == ["food"]


def test_index_fields_choose_the_searchable_text(clients: tuple) -> None:
    sync, async_, _ = clients
    store = MemLayerStore(client=sync, async_client=async_, index=["title"])
    store.put(("u",), "a", {"title": "walrus facts", "body": "penguin"})
    store.put(("u",), "b", {"title": "penguin facts", "body": "seal"}, index=["body"])
    # The match first and scored; the other item after it, unscored.
    assert [(h.key, h.score is None) for h in store.search(("u",), query="walrus")] == [
        ("a", False),
        ("b", True),
    ]
    assert [(h.key, h.score is None) for h in store.search(("u",), query="seal")] == [
        ("b", False),
        ("a", True),
    ]
    # "penguin" is in neither indexed text: both items come back, unscored, as listed.
    assert [(h.key, h.score) for h in store.search(("u",), query="penguin")] == [
        ("a", None),
        ("b", None),
    ]


def _embed(texts: list[str]) -> list[list[float]]:
    """A stand-in embedding for InMemoryStore: any vectors will do for what is compared."""
    return [[1.0, float(len(t) % 7)] for t in texts]


def _load_indexed(store: BaseStore) -> None:
    store.put(BOB, "tea", {"text": "green tea every morning", "cups": 3})
    store.put(BOB, "car", {"text": "an electric SUV", "cups": 0})
    store.put(BOB, "secret", {"text": "tea leaves in a tin", "cups": 1}, index=False)


@pytest.mark.parametrize("query", ["what does she drink", "tea", "green tea"])
def test_a_query_returns_every_item_that_passes_the_filter_as_langgraph_stores_do(
    store: MemLayerStore, query: str
) -> None:
    """InMemoryStore (with an index) ranks every item and puts those it holds no vector
    for (``index=False``) last, unscored; MemLayerStore returns the same items, the matches
    first, and the ``index=False`` item last and unscored even when its text has the word."""
    reference = InMemoryStore(index={"dims": 2, "embed": _embed, "fields": ["text"]})
    _load_indexed(reference)
    _load_indexed(store)
    expected, got = reference.search(BOB, query=query), store.search(BOB, query=query)
    assert sorted(h.key for h in got) == sorted(h.key for h in expected) == ["car", "secret", "tea"]
    assert (
        (got[-1].key, got[-1].score) == (expected[-1].key, expected[-1].score) == ("secret", None)
    )
    if "tea" in query:
        assert got[0].key == "tea" and got[0].score is not None and got[0].score > 0
    page = [h.key for h in store.search(BOB, query=query, limit=1, offset=2)]
    assert page == [h.key for h in reference.search(BOB, query=query, limit=1, offset=2)]
    filtered = store.search(BOB, query=query, filter={"cups": {"$gte": 1}})
    assert sorted(h.key for h in filtered) == ["secret", "tea"]
    assert filtered[-1].key == "secret"


def test_an_item_put_with_index_false_is_never_matched_by_its_text(store: MemLayerStore) -> None:
    store.put(BOB, "secret", {"text": "walrus"}, index=False)
    store.put(BOB, "open", {"text": "walrus"})
    hits = store.search(BOB, query="walrus")
    assert [(h.key, h.score is None) for h in hits] == [("open", False), ("secret", True)]
    assert store.get(BOB, "secret").value == {"text": "walrus"}  # stored all the same


async def test_async_query_search_fills_with_unmatched_items(store: MemLayerStore) -> None:
    _load_indexed(store)
    hits = await store.asearch(BOB, query="electric", limit=2)
    assert [(h.key, h.score is None) for h in hits] == [("car", False), ("tea", True)]


def test_one_batch_call_is_one_request(store: MemLayerStore, counter) -> None:
    counter.take()
    store.batch([PutOp(ALICE, str(i), {"i": i}) for i in range(30)] + [PutOp(BOB, "x", {"i": 0})])
    assert counter.take() == ["POST /v1/batch"]
    store.batch([GetOp(ALICE, "1"), GetOp(ALICE, "2"), GetOp(BOB, "x"), PutOp(ALICE, "3", None)])
    assert counter.take() == ["POST /v1/batch"]
    store.batch(
        [SearchOp(ALICE, {"i": {"$gt": 20}}, 5, 0, None), ListNamespacesOp(None, None, 10, 0)]
    )
    assert counter.take() == ["POST /v1/batch"]


def test_search_pages_past_one_list_page(store: MemLayerStore) -> None:
    store.batch([PutOp(("u",), f"{i:03}", {"i": i}) for i in range(120)])
    found = store.search(("u",), limit=15, offset=100)
    assert [i.value["i"] for i in found] == list(range(100, 115))


@pytest.fixture
def clocked(tmp_path):
    """A store on its own server whose clock the test moves, and that clock."""
    from datetime import datetime, timedelta, timezone

    from memlayer_integrations import MemLayerClient
    from memlayer_integrations.server import LocalMemLayerServer, ServerSettings

    now = [datetime(2026, 5, 1, 12, tzinfo=timezone.utc)]

    def advance(minutes: float) -> None:
        now[0] += timedelta(minutes=minutes)

    settings = ServerSettings(db_path=tmp_path / "ttl.db", clock=lambda: now[0])
    with LocalMemLayerServer(settings=settings) as server:
        client = MemLayerClient(api_key=server.create_key(plan="unlimited"), base_url=server.url)

        def make(**kwargs: Any) -> MemLayerStore:
            return MemLayerStore(client=client, **kwargs)

        yield make, advance
        client.close()


def test_ttl_in_minutes_expires_items(clocked) -> None:
    make, advance = clocked
    store = make()
    assert store.supports_ttl is True
    store.put(ALICE, "short", {"v": 1}, ttl=5)
    store.put(ALICE, "forever", {"v": 2})
    advance(4.9)
    assert store.get(ALICE, "short", refresh_ttl=False).value == {"v": 1}
    advance(0.2)
    assert store.get(ALICE, "short") is None
    assert [i.key for i in store.search(ALICE)] == ["forever"]


def test_reads_refresh_the_ttl_unless_told_not_to(clocked) -> None:
    make, advance = clocked
    store = make()
    store.put(ALICE, "a", {"text": "green tea"}, ttl=10)
    store.put(ALICE, "b", {"text": "black tea"}, ttl=10)
    advance(8)
    assert store.get(ALICE, "a") is not None  # restarts a's clock
    # The match first, then (as LangGraph's stores do) the item that matches no word.
    assert [i.key for i in store.search(ALICE, query="black", refresh_ttl=False)] == ["b", "a"]
    advance(8)  # 16 minutes after the put, 8 after a's refresh
    assert store.get(ALICE, "b", refresh_ttl=False) is None
    assert [i.key for i in store.search(ALICE)] == ["a"]  # a search refreshes too
    advance(9)
    assert store.get(ALICE, "a") is not None


def test_ttl_config_default_ttl_and_refresh_on_read(clocked) -> None:
    make, advance = clocked
    store = make(
        ttl_config={"default_ttl": 1, "refresh_on_read": False, "sweep_interval_minutes": 1}
    )
    store.put(ALICE, "k", {"v": 1})
    store.put(ALICE, "kept", {"v": 2}, ttl=None)  # an explicit None: no expiry
    advance(0.5)
    assert store.get(ALICE, "k") is not None  # refresh_on_read False: no refresh
    advance(0.6)
    assert store.get(ALICE, "k") is None
    assert store.get(ALICE, "kept") is not None


async def test_async_ttl(clocked) -> None:
    make, advance = clocked
    store = make()
    await store.aput(ALICE, "k", {"v": 1}, ttl=1)
    advance(2)
    assert await store.aget(ALICE, "k") is None


def test_a_put_without_ttl_replaces_an_expiring_item_for_good(clocked) -> None:
    make, advance = clocked
    store = make()
    store.put(ALICE, "k", {"v": 1}, ttl=1)
    store.put(ALICE, "k", {"v": 2})
    advance(5)
    assert store.get(ALICE, "k").value == {"v": 2}


def test_bad_ttl_is_a_value_error(store: MemLayerStore) -> None:
    with pytest.raises(ValueError, match="ttl"):
        store.batch([PutOp(ALICE, "k", {"v": 1}, ttl=-5.0)])


def test_namespace_encoding_is_exact() -> None:
    for raw in ["alice@example.com", "a%b", "%2E", "x.y.z", "plain"]:
        label = encode_label(raw)
        assert "." not in label
        assert decode_label(label) == raw
    with pytest.raises(InvalidNamespaceError):
        decode_label("a%41")  # not what encode_label makes: refused, so decoding stays exact
    assert memlayer_namespace("a.b@c.d", "x.y") == ("a%2Eb@c%2Ed", "x%2Ey")


def test_namespaces_map_to_scopes(store: MemLayerStore, clients: tuple) -> None:
    store.put(ALICE_NOTES, "n", {"v": 1})
    scopes = [(s.user_id, s.agent_id) for s in clients[0].list_scopes()]
    assert scopes == [("alice@example.com", "langgraph_store.notes.work")]
    # Memories of other agents of the same user are not store namespaces.
    clients[0].remember("unrelated", user_id="alice@example.com", agent_id="support_bot")
    assert store.list_namespaces() == [ALICE_NOTES]


def test_unsupported_filters_and_bad_labels_fail_loudly(store: MemLayerStore) -> None:
    with pytest.raises(ValueError, match="nested"):
        store.search(ALICE, filter={"nested": {"a": 1}})
    with pytest.raises(InvalidNamespaceError):
        store.put(("a.b",), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        store.put(("a%41",), "k", {"v": 1})


def test_authentication_error_propagates(base_url: str) -> None:
    store = MemLayerStore(api_key="ml_live_" + "0" * 32, base_url=base_url)
    with pytest.raises(AuthenticationError):
        store.get(ALICE, "k")


@pytest.mark.parametrize("agent_id", ["", "  ", "a.b"])
def test_a_bad_agent_id_is_a_scope_error(agent_id: str, api_key: str, base_url: str) -> None:
    with pytest.raises(MemLayerScopeError):
        MemLayerStore(agent_id=agent_id, api_key=api_key, base_url=base_url)


def test_each_store_operation_is_one_request(store: MemLayerStore, counter) -> None:
    _load(store)
    counter.take()
    calls = {
        "put": lambda: store.put(ALICE, "k", {"text": "tea"}),
        "get": lambda: store.get(ALICE, "k"),
        "delete": lambda: store.delete(ALICE, "k"),
        "search": lambda: store.search((ALICE[0],), query="tea", filter={"cups": {"$gt": 0}}),
        "search_ns": lambda: store.search(ALICE, limit=5),
        "list_namespaces": lambda: store.list_namespaces(prefix=(ALICE[0],)),
        "list_all_namespaces": lambda: store.list_namespaces(),
        "mixed_batch": lambda: store.batch(
            [
                GetOp(ALICE, "drink"),
                SearchOp(("bob",), None, 10, 0, "coffee"),
                ListNamespacesOp(None, None, 10, 0),
                PutOp(ALICE, "x", {"v": 1}),
                PutOp(ALICE, "food", None),
            ]
        ),
    }
    for name, call in calls.items():
        call()
        assert counter.take() == ["POST /v1/batch"], name


async def test_each_async_store_operation_is_one_request(store: MemLayerStore, counter) -> None:
    _load(store)
    counter.take()
    await store.aput(ALICE, "k", {"text": "tea"})
    assert (await store.aget(ALICE, "k")).value == {"text": "tea"}
    assert [i.key for i in await store.asearch((ALICE[0],), query="tea")][:1] == ["k"]
    assert await store.alist_namespaces(prefix=("bob",)) == [BOB]
    await store.adelete(ALICE, "k")
    assert counter.take() == ["POST /v1/batch"] * 5


def test_a_prefix_covers_its_namespace_and_those_below_it_only(store: MemLayerStore) -> None:
    store.put(("u", "notes"), "a", {"text": "tea"})
    store.put(("u", "notes", "work"), "b", {"text": "tea"})
    store.put(("u", "notesx"), "c", {"text": "tea"})  # shares the letters, not the namespace
    assert [i.key for i in store.search(("u", "notes"))] == ["a", "b"]
    assert sorted(i.key for i in store.search(("u", "notes"), query="tea")) == ["a", "b"]
    assert [i.key for i in store.search(("u",))] == ["a", "b", "c"]


def test_a_search_of_the_whole_store_lists_the_users_first(store: MemLayerStore, counter) -> None:
    _load(store)
    counter.take()
    assert sorted(i.key for i in store.search((), query="coffee")) == [
        "drink",
        "drink",
        "food",
        "n1",
    ]
    assert counter.take() == ["GET /v1/scopes", "POST /v1/batch"]


async def test_a_store_on_the_in_process_url_works_sync_and_async(local_server) -> None:
    store = MemLayerStore(api_key=local_server.create_key(), base_url=local_server.in_process_url)
    await store.aput(ALICE, "drink", {"text": "tea"})
    assert (await store.aget(ALICE, "drink")).value == {"text": "tea"}
    assert [i.key for i in store.search(ALICE, query="tea")] == ["drink"]
    await store.aclose()
    store.close()
