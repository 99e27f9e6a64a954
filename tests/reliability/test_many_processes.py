"""Several server processes on one database behave as one server.

Three ``memlayer serve`` processes on one database (and, the same way, one ``memlayer serve
--workers 3``) are raced by many concurrent clients spread across them, with bounded counts:
a daily quota of 100 requests lets exactly 100 through, a cap of 30 memories stores exactly
30, one ``Idempotency-Key`` sent to every process stores once, a page cursor handed out by
one process pages on another, and what one process writes the next recall on another finds
(or, once forgotten, does not). Every counter is then checked against the rows.

The database every process of a test opens comes from one fixture, ``shared_database``,
on each backend: a SQLite file, and a PostgreSQL database in the suite's private cluster
(``tests/_backends.py``), where what keeps the processes consistent is PostgreSQL's
transactions and advisory locks, never anything held in one process.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from memlayer_integrations.server import keys
from memlayer_integrations.server.backend import open_backend

from ._process import ServerProcess, create_key

PROCESSES = 3
CLIENTS = 32


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_database(request, tmp_path_factory) -> Iterator[str | Path]:
    """The database all the server processes share: a SQLite file, or a fresh PostgreSQL
    database (dropped afterwards)."""
    if request.param == "sqlite":
        yield tmp_path_factory.mktemp("shared") / "shared.db"
        return
    databases = request.getfixturevalue("postgres_cluster")
    url: str = databases.fresh()
    yield url
    databases.cluster.drop_database(url)


@pytest.fixture(scope="module", params=["3 processes", "--workers 3"])
def urls(request, shared_database: str | Path, tmp_path_factory) -> Iterator[list[str]]:
    """One URL per server process: three ``memlayer serve``, or the one port of
    ``memlayer serve --workers 3`` three times (the kernel spreads its connections). Each
    test uses accounts of its own."""
    tmp_path = tmp_path_factory.mktemp("logs")
    create_key(shared_database)  # the database exists before the processes race to open it
    if request.param == "--workers 3":
        with ServerProcess(shared_database, tmp_path / "w.log", ["--workers", "3"]) as server:
            yield [server.url] * PROCESSES
        return
    servers = [
        ServerProcess(shared_database, tmp_path / f"s{i}.log", ["--no-access-log"])
        for i in range(PROCESSES)
    ]
    try:
        yield [s.url for s in servers]
    finally:
        for server in servers:
            server.stop()


def _spread(urls: list[str], key: str, requests: list[tuple[str, str, dict]]) -> list:
    """Send ``requests`` (method, path, keyword arguments) from ``CLIENTS`` threads, the
    i-th to server ``i % len(urls)``; the responses in order."""
    clients = [
        httpx.Client(
            base_url=url + "/v1",
            headers={"X-API-Key": key},
            timeout=60,
            # Well under uvicorn's 5 s keep-alive: a connection the server is closing as
            # idle is never picked for the next request (a reset no server can prevent).
            limits=httpx.Limits(max_connections=CLIENTS, keepalive_expiry=1.0),
        )
        for url in urls
    ]
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [
                pool.submit(clients[i % len(clients)].request, method, path, **kwargs)
                for i, (method, path, kwargs) in enumerate(requests)
            ]
            return [f.result() for f in futures]
    finally:
        for client in clients:
            client.close()


def _account(db_path: str | Path, key: str) -> int:
    db = open_backend(db_path)
    try:
        with db.read() as conn:
            account = keys.authenticate(conn, key)
    finally:
        db.close()
    assert account is not None
    return account.id


def _counters(db_path: str | Path) -> dict:
    """Every stored counter, checked against the rows; memories and requests per account."""
    db = open_backend(db_path)
    try:
        with db.read() as conn:
            rows = conn.execute(
                "SELECT a.id, a.memory_count, (SELECT count(*) FROM memories m"
                " WHERE m.account_id = a.id) AS actual FROM accounts a"
            ).fetchall()
            scopes = conn.execute(
                "SELECT s.memories, s.chars, count(m.rowid) AS actual,"
                " coalesce(sum(length(m.content)), 0) AS actual_chars FROM scope_sizes s"
                " LEFT JOIN memories m ON m.account_id = s.account_id AND m.user_id = s.user_id"
                " AND m.agent_id = s.agent_id GROUP BY s.account_id, s.user_id, s.agent_id"
            ).fetchall()
            requests = dict(conn.execute("SELECT account_id, requests FROM request_counts"))
    finally:
        db.close()
    for row in rows:
        assert row["memory_count"] == row["actual"], dict(row)
    for scope in scopes:
        assert (scope["memories"], scope["chars"]) == (scope["actual"], scope["actual_chars"])
    return {
        "memories": {row["id"]: row["actual"] for row in rows},
        "requests": requests,
    }


def test_quota_and_memory_cap_are_exact_across_processes(urls, shared_database):
    key = create_key(shared_database, "team", memories=30, requests_per_day=100)
    requests = [
        ("POST", "/memories", {"json": {"content": f"fact {i}", "user_id": "u", "agent_id": "a"}})
        for i in range(160)
    ]
    responses = _spread(urls, key, requests)
    statuses = Counter(r.status_code for r in responses)
    codes = Counter(r.json()["error"]["code"] for r in responses if r.status_code >= 400)
    assert statuses == {201: 30, 403: 70, 429: 60}, statuses
    assert codes == {"memory_limit_reached": 70, "daily_quota_exceeded": 60}
    counters, account = _counters(shared_database), _account(shared_database, key)
    assert counters["memories"][account] == 30
    assert counters["requests"][account] == 100


def test_one_idempotency_key_sent_to_every_process_stores_once(urls, shared_database):
    key = create_key(shared_database)
    body = {"content": "stored once", "user_id": "u", "agent_id": "a"}
    same = ("POST", "/memories", {"json": body, "headers": {"Idempotency-Key": "once-1"}})
    responses = _spread(urls, key, [same] * (4 * PROCESSES))
    assert {r.status_code for r in responses} == {201}
    replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 4 * PROCESSES - 1
    assert len({r.content for r in responses}) == 1  # the same memory, every time
    counters, account = _counters(shared_database), _account(shared_database, key)
    assert counters["memories"][account] == 1
    assert counters["requests"][account] == 1  # replays are free


def test_usage_cursors_and_recall_agree_across_processes(urls, shared_database):
    key = create_key(shared_database)
    writes = [
        ("POST", "/memories", {"json": {"content": f"note {i}", "user_id": "u", "agent_id": "a"}})
        for i in range(40)
    ]
    ids = [r.json()["id"] for r in _spread(urls, key, writes)]
    forgets = [("DELETE", f"/memories/{memory_id}", {}) for memory_id in ids[::2]]
    assert {r.status_code for r in _spread(urls, key, forgets)} == {204}
    counters, account = _counters(shared_database), _account(shared_database, key)
    assert counters["memories"][account] == 20
    requests = counters["requests"][account]
    assert requests == 40 + 20

    usages = [
        httpx.get(url + "/v1/usage", headers={"X-API-Key": key}).json()
        for url in dict.fromkeys(urls)
    ]
    assert [u["memories_stored"] for u in usages] == [20] * len(usages)
    assert [u["requests_today"] for u in usages] == list(
        range(requests + 1, requests + 1 + len(usages))
    )

    # A cursor from one process pages on the next.
    seen: list[str] = []
    cursor = None
    for url in itertools.cycle(urls):
        params = {"user_id": "u", "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(url + "/v1/memories", params=params, headers={"X-API-Key": key}).json()
        seen += [m["id"] for m in page["memories"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    kept = ids[1::2]
    assert sorted(seen) == sorted(kept) and len(seen) == len(set(seen))

    # What one process writes or forgets, a recall on another sees at once.
    def recall(url: str) -> list[tuple[str, float]]:
        found = httpx.post(
            url + "/v1/memories/search",
            json={"query": "zebra note", "user_id": "u"},
            headers={"X-API-Key": key},
        ).json()["results"]
        return [(hit["memory"]["content"], hit["score"]) for hit in found]

    zebra = httpx.post(
        urls[0] + "/v1/memories",
        json={"content": "the zebra note", "user_id": "u", "agent_id": "a"},
        headers={"X-API-Key": key},
    ).json()
    answers = [recall(url) for url in urls]
    assert answers[1][0][0] == "the zebra note"
    assert answers[0] == answers[1] == answers[2]  # the same statistics everywhere
    deleted = httpx.delete(urls[2] + f"/v1/memories/{zebra['id']}", headers={"X-API-Key": key})
    assert deleted.status_code == 204
    assert all(content != "the zebra note" for content, _ in recall(urls[1]))
    _counters(shared_database)
