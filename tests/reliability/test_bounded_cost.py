"""Bounded cost: no request holds the server, or a lock another account needs, for long.

A list or recall whose work grows with what is stored times what it asks for runs within a
per-request budget of database time (summed over a batch) and is refused past it with 422
``query_too_expensive``, storing nothing; the request still counts. Reads, a batch of reads
included, never run under the write lock. Budgets are set in steps here, so running out of
one does not depend on the machine's speed; how long requests take under attack is what
``python -m benchmarks isolation`` measures.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from memlayer_integrations import MemLayerClient, RequestBudgetError
from memlayer_integrations.server import LocalMemLayerServer, ServerSettings, store
from memlayer_integrations.server.budget import Budget, CpuShare
from memlayer_integrations.server.errors import ApiError
from tests.server._helpers import assert_error

#: Metadata of about 14 KB: 1,100 top-level keys, as in the attack the budget answers.
HEAVY = {f"k{i}": i for i in range(1100)}
#: 64 filters on the keys json_each reaches last: every one of them walks the whole object.
FILTERS = {f"k{1099 - i}": {"$gte": 0} for i in range(64)}
STEPS = 200_000  # far below what 64 filters over these memories need, far above a normal read


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMemLayerServer]:
    settings = ServerSettings(
        db_path=tmp_path_factory.mktemp("cost") / "cost.db",
        query_budget_seconds=3600.0,  # only the steps decide, whatever the machine
        query_budget_steps=STEPS,
        cpu_share_rate=1000.0,  # the share is tested on its own below
    )
    with LocalMemLayerServer(settings=settings) as s:
        yield s


@pytest.fixture(scope="module")
def heavy(server: LocalMemLayerServer) -> Iterator[httpx.Client]:
    """An account with 60 memories of heavy metadata, and one light memory."""
    key = server.create_key(plan="unlimited")
    with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as http:
        for start in range(0, 60, 20):
            items = [{"content": f"heavy {i}", "metadata": HEAVY} for i in range(start, start + 20)]
            r = http.post("/memories/batch", json={"user_id": "u", "agent_id": "a", "items": items})
            assert r.status_code == 201, r.text
        r = http.post("/memories", json={"content": "light tea", "user_id": "u", "agent_id": "b"})
        assert r.status_code == 201
        yield http


def requests_today(http: httpx.Client) -> int:
    return http.get("/usage").json()["requests_today"]


def test_a_list_past_the_budget_is_a_counted_422(heavy):
    used = requests_today(heavy)
    r = heavy.get("/memories", params={"user_id": "u", "filters": _json(FILTERS), "limit": 100})
    assert_error(r, 422, "query_too_expensive")
    assert requests_today(heavy) == used + 2
    # An ordinary list of the same account is well within it.
    r = heavy.get("/memories", params={"user_id": "u", "filters": '{"k1": 1}', "limit": 5})
    assert r.status_code == 200 and len(r.json()["memories"]) == 5


def test_a_recall_past_the_budget_is_a_422(heavy):
    body = {"query": "heavy", "user_id": "u", "filters": FILTERS, "limit": 100}
    assert_error(heavy.post("/memories/search", json=body), 422, "query_too_expensive")
    ok = heavy.post("/memories/search", json={"query": "tea", "user_id": "u"})
    assert [h["memory"]["content"] for h in ok.json()["results"]] == ["light tea"]


def test_a_batch_shares_one_budget_between_its_operations(heavy):
    # A list that matches nothing but walks half of every object: one fits the budget,
    # three together do not.
    one = {"op": "list", "user_id": "u", "filters": {"k550": {"$lt": 0}}, "limit": 100}
    assert heavy.post("/batch", json={"operations": [one]}).json() == {
        "results": [{"memories": [], "next_cursor": None}]
    }
    r = heavy.post("/batch", json={"operations": [one] * 3})
    body = assert_error(r, 422, "query_too_expensive", r.json()["error"]["field"])
    assert body["error"]["field"].startswith("operations[")


def test_a_batch_with_a_write_over_budget_stores_nothing(heavy):
    before = heavy.get("/usage").json()["memories_stored"]
    ops = [
        {"op": "remember", "content": "written first", "user_id": "u", "agent_id": "a"},
        {"op": "list", "user_id": "u", "filters": FILTERS, "limit": 100},
    ]
    r = heavy.post("/batch", json={"operations": ops})
    assert_error(r, 422, "query_too_expensive", "operations[1]")
    assert heavy.get("/usage").json()["memories_stored"] == before


def test_the_client_raises_the_budget_error(server, heavy):
    key = heavy.headers["X-API-Key"]
    with (
        MemLayerClient(api_key=key, base_url=server.url) as client,
        pytest.raises(RequestBudgetError) as info,
    ):
        list(client.list_memories(user_id="u", filters=FILTERS))
    assert info.value.status_code == 422 and info.value.code == "query_too_expensive"


def test_reads_never_run_under_the_write_lock(tmp_path, monkeypatch):
    """A read, and a batch made only of reads, does its work on a reader connection while
    the write lock is free: a slow read cannot hold up another account's write."""
    seen: list[bool] = []
    with LocalMemLayerServer(tmp_path / "locks.db") as server:
        lock = server._app.state.db._write_lock
        key = server.create_key()
        for name in ("list_page", "recall"):
            original = getattr(store, name)

            def spy(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                seen.append(lock.locked())
                return _original(*args, **kwargs)

            monkeypatch.setattr(store, name, spy)
        with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as http:
            http.post("/memories", json={"content": "tea", "user_id": "u", "agent_id": "a"})
            http.get("/memories", params={"user_id": "u"})
            http.post("/memories/search", json={"query": "tea", "user_id": "u"})
            reads = [
                {"op": "list", "user_id": "u"},
                {"op": "recall", "query": "tea", "user_id": "u"},
            ]
            assert http.post("/batch", json={"operations": reads * 3}).status_code == 200
    assert seen == [False] * 8


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def test_the_budget_counts_database_work_not_the_python_between_statements():
    import time

    conn = sqlite3.connect(":memory:")
    budget = Budget(seconds=0.05, max_response_bytes=1 << 20)
    with budget.guard(conn):
        conn.execute("SELECT 1").fetchall()
        deadline = time.thread_time() + 0.1  # scoring rows in Python, say
        while time.thread_time() < deadline:
            pass
        conn.execute("SELECT 2").fetchall()
    assert budget.spent_seconds < 0.05 and not budget.exhausted
    endless = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
    )
    # While SQL runs, the clock does count.
    with pytest.raises(ApiError, match="database work"), budget.guard(conn):
        conn.execute(endless).fetchall()
    conn.close()


def test_cpu_share_refills_at_its_rate_and_ordinary_requests_never_pay():
    now = [0.0]
    share = CpuShare(rate=0.1, burst=0.25, free_seconds=0.02, clock=lambda: now[0])
    for _ in range(1000):
        share.charge(1, 0.019)  # ordinary requests: free
    assert share.wait(1) is None
    for _ in range(4):
        share.charge(1, 0.1)  # four budget-sized ones: 0.32 s charged, 0.25 in the bucket
    wait = share.wait(1)
    assert wait == pytest.approx(0.7 + 0.001)  # -0.07 s at 0.1 s a second
    assert share.wait(2) is None  # another account is not affected
    now[0] += 0.8
    assert share.wait(1) is None


def test_an_account_over_its_cpu_share_gets_a_counted_429(tmp_path):
    settings = ServerSettings(
        db_path=tmp_path / "share.db",
        cpu_share_rate=1e-6,
        cpu_share_burst=1e-9,
        cpu_free_seconds=0.0,
    )
    with LocalMemLayerServer(settings=settings) as server:
        key, other = server.create_key(), server.create_key()
        with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as http:
            write = http.post("/memories", json={"content": "t", "user_id": "u", "agent_id": "a"})
            assert write.status_code == 201  # a write's cost is capped, never charged
            first = http.get("/memories", params={"user_id": "u"})
            assert first.status_code == 200  # it ran, and its database time emptied the bucket
            r = http.get("/memories", params={"user_id": "u"})
            assert_error(r, 429, "rate_limited")
            assert int(r.headers["Retry-After"]) >= 1
            assert r.headers["X-RateLimit-Remaining"] == "unlimited"
        usage = httpx.get(server.url + "/v1/usage", headers={"X-API-Key": other})
        assert usage.status_code == 200  # the other account is served
    with sqlite3.connect(tmp_path / "share.db") as conn:
        counted = conn.execute("SELECT sum(requests) FROM request_counts").fetchone()[0]
    assert counted == 4  # the refused request counted too
