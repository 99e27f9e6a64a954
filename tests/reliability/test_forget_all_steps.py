"""Bounded cost of ``forget_all``: a scope of any size is deleted in steps of at most
``store.FORGET_STEP`` memories, each its own short transaction, with the write lock free in
between, so another account's write goes in while a large ``forget_all`` runs. The answer
stays exact (every memory it deleted), counters, full-text and vector rows follow each step,
and a failure part way leaves a consistent database that a retry finishes.

The step is made small here (10) so a few hundred memories take many steps; what the steps
cost in time is measured outside the suite, never asserted.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from memlayer_integrations.server import LocalMemLayerServer, store
from memlayer_integrations.server.db import Database
from tests.server._helpers import assert_error

STEP = 10
SIZE = 95  # ten steps, the last one short


@pytest.fixture
def server(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalMemLayerServer]:
    monkeypatch.setattr(store, "FORGET_STEP", STEP)
    with LocalMemLayerServer(tmp_path / "steps.db") as s:
        yield s
        for http in _OPEN:
            http.close()
        _OPEN.clear()


_OPEN: list[httpx.Client] = []


def _account(server: LocalMemLayerServer, memories: int = SIZE) -> httpx.Client:
    """A client of a new account with ``memories`` memories in scope (u, a)."""
    http = httpx.Client(
        base_url=server.url + "/v1",
        headers={"X-API-Key": server.create_key(plan="unlimited")},
        timeout=60,
    )
    _OPEN.append(http)
    for start in range(0, memories, 50):
        items = [
            {"content": f"tea note {i}", "metadata": {"i": i}}
            for i in range(start, min(start + 50, memories))
        ]
        r = http.post("/memories/batch", json={"user_id": "u", "agent_id": "a", "items": items})
        assert r.status_code == 201, r.text
    return http


def _rows(server: LocalMemLayerServer, sql: str) -> int:
    with sqlite3.connect(server._app.state.db.path) as conn:
        return int(conn.execute(sql).fetchone()[0])


def test_another_account_writes_between_the_steps_of_a_large_forget_all(
    server: LocalMemLayerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    first_step, b_stored = threading.Event(), threading.Event()
    forgetting = threading.local()
    real_step, real_remember, real_write = store.forget_step, store.remember, Database.write

    def step(*args: Any, **kwargs: Any) -> int:
        deleted = real_step(*args, **kwargs)
        events.append(f"forget {deleted}")
        forgetting.active = True
        first_step.set()
        return deleted

    def remember(*args: Any, **kwargs: Any) -> Any:
        events.append("B remember")
        return real_remember(*args, **kwargs)

    @contextmanager
    def write(self: Database) -> Iterator[Any]:
        # The forget_all thread, about to open its next transaction (the lock is free),
        # waits for B's write to finish: B can only finish if it got the lock in between.
        if getattr(forgetting, "active", False):
            forgetting.active = False
            b_stored.wait(timeout=60)
        with real_write(self) as conn:
            yield conn

    a, b = _account(server), _account(server, 1)
    monkeypatch.setattr(store, "forget_step", step)
    monkeypatch.setattr(store, "remember", remember)
    monkeypatch.setattr(Database, "write", write)
    answers: dict[str, Any] = {}

    def forget_all() -> None:
        answers["forget_all"] = a.delete("/memories", params={"user_id": "u"})
        events.append("A answered")

    runner = threading.Thread(target=forget_all)
    runner.start()
    assert first_step.wait(timeout=60)
    r = b.post("/memories", json={"content": "coffee", "user_id": "u", "agent_id": "a"})
    events.append("B answered")
    b_stored.set()
    runner.join(timeout=120)

    assert r.status_code == 201
    assert answers["forget_all"].status_code == 200
    assert answers["forget_all"].json() == {"deleted": SIZE}
    # B's write went in after the first step and before the second; A answered last.
    assert events[:3] == [f"forget {STEP}", "B remember", "B answered"]
    assert events[3:] == [f"forget {STEP}"] * 8 + [f"forget {SIZE % STEP}", "A answered"]


def test_a_stepped_forget_all_leaves_counters_and_indexes_exact(
    server: LocalMemLayerServer,
) -> None:
    a, b = _account(server), _account(server, 3)
    r = a.delete("/memories", params={"user_id": "u"})
    assert r.json() == {"deleted": SIZE}
    assert a.get("/usage").json()["memories_stored"] == 0
    assert a.get("/scopes").json() == {"scopes": []}
    assert a.post("/memories/search", json={"query": "tea", "user_id": "u"}).json() == {
        "results": []
    }
    # The other account keeps all of its memories, findable by their words.
    assert b.get("/usage").json()["memories_stored"] == 3
    assert (
        len(b.post("/memories/search", json={"query": "tea", "user_id": "u"}).json()["results"])
        == 3
    )
    assert _rows(server, "SELECT count(*) FROM memories") == 3
    assert _rows(server, "SELECT sum(memory_count) FROM accounts") == 3
    assert _rows(server, "SELECT sum(memories) FROM scope_sizes") == 3
    # The full-text index holds exactly the rows that remain.
    assert _rows(server, "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'tea'") == 3


def test_a_failure_part_way_leaves_a_consistent_database_and_a_retry_finishes(
    server: LocalMemLayerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _account(server)
    kept = a.post(
        "/memories",
        json={"content": "kept answer", "user_id": "u", "agent_id": "a"},
        headers={"Idempotency-Key": "remember-1"},
    )
    assert kept.status_code == 201
    calls = 0
    real_step = store.forget_step

    def failing(*args: Any, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise RuntimeError("the process died here")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(store, "forget_step", failing)
    headers = {"Idempotency-Key": "forget-1"}
    r = a.delete("/memories", params={"user_id": "u"}, headers=headers)
    assert_error(r, 500, "internal_error")
    # Three steps were committed, each whole: counters agree with what is left.
    left = SIZE + 1 - 3 * STEP
    assert a.get("/usage").json()["memories_stored"] == left
    assert a.get("/scopes").json()["scopes"][0]["memories"] == left
    assert len(list(_ids(a))) == left
    assert _rows(server, "SELECT sum(memories) FROM scope_sizes") == left
    # No answer was kept, so the retry with the same key runs and finishes the job.
    monkeypatch.setattr(store, "forget_step", real_step)
    retry = a.delete("/memories", params={"user_id": "u"}, headers=headers)
    assert retry.status_code == 200 and retry.json() == {"deleted": left}
    assert "Idempotent-Replayed" not in retry.headers
    replay = a.delete("/memories", params={"user_id": "u"}, headers=headers)
    assert replay.json() == {"deleted": left}
    assert replay.headers["Idempotent-Replayed"] == "true"
    # The answer that showed a forgotten memory is gone: its replay runs nothing.
    gone = a.post(
        "/memories",
        json={"content": "kept answer", "user_id": "u", "agent_id": "a"},
        headers={"Idempotency-Key": "remember-1"},
    )
    assert_error(gone, 409, "idempotent_answer_gone", "Idempotency-Key")
    assert a.get("/usage").json()["memories_stored"] == 0


def _ids(http: httpx.Client) -> Iterator[str]:
    cursor = None
    while True:
        params: dict[str, Any] = {"user_id": "u", "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = http.get("/memories", params=params).json()
        yield from (m["id"] for m in page["memories"])
        cursor = page["next_cursor"]
        if not cursor:
            return


def test_forget_all_in_a_batch_is_refused_over_one_step_and_deletes_nothing(
    server: LocalMemLayerServer,
) -> None:
    a = _account(server)
    big = a.post("/batch", json={"operations": [{"op": "forget_all", "user_id": "u"}]})
    assert_error(big, 422, "query_too_expensive", "operations[0]")
    assert a.get("/usage").json()["memories_stored"] == SIZE
    keys = [f"k{i}" for i in range(STEP)]
    a.post(
        "/memories/batch",
        json={
            "user_id": "u",
            "agent_id": "b",
            "items": [{"content": f"keyed {k}", "key": k} for k in keys],
        },
    )
    ops = [{"op": "forget_all", "user_id": "u", "agent_id": "b", "keys": keys}]
    small = a.post("/batch", json={"operations": ops})
    assert small.json() == {"results": [{"deleted": STEP}]}
    assert a.get("/usage").json()["memories_stored"] == SIZE
