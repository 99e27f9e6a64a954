"""Storage: migrations and concurrency (keys as salted hashes: tests/reliability/test_secrets.py)."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from memlayer_integrations.server import LocalMemLayerServer
from memlayer_integrations.server.db import MIGRATIONS, SCHEMA_VERSION, Database, SchemaTooNewError


def test_new_database_is_at_the_latest_version_in_wal_mode(tmp_path):
    db = Database(tmp_path / "m.db")
    db.open()
    db.close()
    conn = sqlite3.connect(tmp_path / "m.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_reopening_runs_no_migration_twice(db_location):
    with LocalMemLayerServer(db_location) as server:
        key = server.create_key()
        httpx.post(
            server.url + "/v1/memories",
            json={"content": "kept", "user_id": "u", "agent_id": "a"},
            headers={"X-API-Key": key},
        ).raise_for_status()
    with LocalMemLayerServer(db_location) as server:
        r = httpx.get(
            server.url + "/v1/memories", params={"user_id": "u"}, headers={"X-API-Key": key}
        )
        assert [m["content"] for m in r.json()["memories"]] == ["kept"]


def test_a_version_1_database_keeps_its_memories_and_finds_them_in_scope(tmp_path):
    from memlayer_integrations.server import search as search_module
    from memlayer_integrations.server.db import _statements, migrate

    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    conn.row_factory = sqlite3.Row
    for statement in _statements(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version=1")
    conn.execute(
        "INSERT INTO accounts (id, plan, created_at) VALUES (1, 'free', 't'), (2, 'free', 't')"
    )
    rows = [
        ("mem_1", 1, "u", "a", "green tea please"),
        ("mem_2", 2, "u", "a", "green tea for another account"),
    ]
    conn.executemany(
        "INSERT INTO memories (id, account_id, user_id, agent_id, content, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 't', 't')",
        rows,
    )
    assert migrate(conn) == 1
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [r[0] for r in conn.execute("SELECT memory_count FROM accounts ORDER BY id")] == [1, 1]
    sizes = "SELECT account_id, user_id, agent_id, memories FROM scope_sizes ORDER BY account_id"
    assert [tuple(r) for r in conn.execute(sizes)] == [(1, "u", "a", 1), (2, "u", "a", 1)]
    hits = search_module.search(
        conn, 1, "tea", user_id="u", agent_id="a", session_id=None, filters=None, limit=10, offset=0
    )
    assert [row["id"] for row, _ in hits] == ["mem_1"]
    conn.execute("UPDATE memories SET content = 'black coffee' WHERE id = 'mem_1'")
    assert (
        search_module.search(
            conn,
            1,
            "tea",
            user_id="u",
            agent_id=None,
            session_id=None,
            filters=None,
            limit=10,
            offset=0,
        )
        == []
    )
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.execute("INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)")


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "new.db")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNewError, match="newer"):
        Database(tmp_path / "new.db").open()


def test_a_failing_migration_leaves_the_database_untouched(tmp_path, monkeypatch):
    from memlayer_integrations.server import db as db_module

    monkeypatch.setattr(
        db_module, "MIGRATIONS", (*MIGRATIONS, "CREATE TABLE x (a);\nTHIS IS NOT SQL;")
    )
    monkeypatch.setattr(db_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(sqlite3.OperationalError):
        Database(tmp_path / "m.db").open()
    conn = sqlite3.connect(tmp_path / "m.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_concurrent_clients(tmp_path):
    """32 clients writing and reading at once: every write stored once, no error."""
    with LocalMemLayerServer(tmp_path / "c.db") as server:
        key = server.create_key()

        def work(n: int) -> list[int]:
            statuses = []
            with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as http:
                for i in range(4):
                    statuses.append(
                        http.post(
                            "/memories",
                            json={
                                "content": f"fact {n} {i}",
                                "user_id": f"u{n % 4}",
                                "agent_id": "a",
                            },
                        ).status_code
                    )
                    statuses.append(
                        http.post(
                            "/memories/search", json={"query": f"fact {i}", "user_id": f"u{n % 4}"}
                        ).status_code
                    )
                    statuses.append(http.get("/usage").status_code)
            return statuses

        with ThreadPoolExecutor(32) as pool:
            statuses = [s for batch in pool.map(work, range(32)) for s in batch]
        assert statuses.count(201) == 128 and set(statuses) == {200, 201}
        usage = httpx.get(server.url + "/v1/usage", headers={"X-API-Key": key}).json()
        assert usage["memories_stored"] == 128 and usage["requests_today"] == 385


def test_version_7_moves_the_kept_answers_links_to_rowids_and_keeps_their_rules(tmp_path):
    from memlayer_integrations.server.db import _statements, migrate

    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    for migration in MIGRATIONS[:6]:
        for statement in _statements(migration):
            conn.execute(statement)
    conn.execute("PRAGMA user_version=6")
    conn.execute(
        "INSERT INTO accounts (id, plan, created_at) VALUES (1, 'free', 't'), (2, 'free', 't')"
    )
    conn.executemany(
        "INSERT INTO memories (id, account_id, user_id, agent_id, content, created_at, updated_at)"
        " VALUES (?, ?, 'u', 'a', ?, 't', 't')",
        [("mem_a", 1, "a"), ("mem_b", 1, "b"), ("mem_c", 2, "c")],
    )
    conn.executemany(
        "INSERT INTO idempotency (account_id, key, fingerprint, status, body, created_at, kept)"
        " VALUES (?, ?, 'f', 201, ?, 1e12, ?)",
        [(1, "both", b"ab", 1), (1, "only-b", b"b", 1), (2, "c", b"c", 1), (1, "gone", b"", 0)],
    )
    conn.executemany(
        "INSERT INTO idempotency_memories (account_id, key, memory_id) VALUES (?, ?, ?)",
        [(1, "both", "mem_a"), (1, "both", "mem_b"), (1, "only-b", "mem_b"), (2, "c", "mem_c")],
    )
    answers = dict(conn.execute("SELECT key, rowid FROM idempotency").fetchall())
    assert migrate(conn) == 6
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # The answers keep their ids, and each link names the memory's rowid.
    assert dict(conn.execute("SELECT key, id FROM idempotency").fetchall()) == answers
    links = conn.execute(
        "SELECT i.key, m.id FROM idempotency_links AS l JOIN idempotency AS i ON i.id = l.answer"
        " JOIN memories AS m ON m.rowid = l.memory_rowid ORDER BY 1, 2"
    ).fetchall()
    assert links == [("both", "mem_a"), ("both", "mem_b"), ("c", "mem_c"), ("only-b", "mem_b")]
    assert "idempotency_memories" not in {
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    # Forgetting a memory drops exactly the answers that show it, and its links.
    conn.execute("DELETE FROM memories WHERE id = 'mem_a'")
    state = "SELECT key, kept, length(body) FROM idempotency ORDER BY key"
    assert conn.execute(state).fetchall() == [
        ("both", 0, 0),
        ("c", 1, 1),
        ("gone", 0, 0),
        ("only-b", 1, 1),
    ]
    # An answer's day over: its links go with it.
    conn.execute("DELETE FROM idempotency WHERE key = 'c'")
    remaining = conn.execute("SELECT memory_rowid, answer FROM idempotency_links").fetchall()
    assert sorted(remaining) == sorted(
        conn.execute(
            "SELECT m.rowid, i.id FROM memories AS m, idempotency AS i"
            " WHERE (m.id, i.key) IN (VALUES ('mem_b', 'both'), ('mem_b', 'only-b'))"
        ).fetchall()
    )
    # Keys stay unique per account.
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO idempotency (account_id, key, fingerprint, status, body, created_at)"
            " VALUES (1, 'both', 'f', 201, x'', 0)"
        )
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_the_same_text_lookup_reads_the_index_of_memories_without_a_key(tmp_path):
    db = Database(tmp_path / "m.db")
    db.open()
    db.close()
    conn = sqlite3.connect(tmp_path / "m.db")
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT rowid FROM memories WHERE account_id = ? AND user_id = ?"
        " AND agent_id = ? AND key IS NULL AND substr(content, 1, 64) IN (?, ?)",
        (1, "u", "a", "x", "y"),
    ).fetchall()
    assert any("USING INDEX memories_text" in row[-1] for row in plan), plan
    conn.execute("INSERT INTO accounts (id, plan, created_at) VALUES (1, 'free', 't')")
    conn.executemany(
        "INSERT INTO memories (id, account_id, user_id, agent_id, key, content, created_at,"
        " updated_at) VALUES (?, 1, 'u', 'a', ?, 'same', 't', 't')",
        [("mem_k", "k"), ("mem_n", None)],
    )
    count = "SELECT count(*) FROM memories INDEXED BY memories_text WHERE key IS NULL"
    assert conn.execute(count).fetchone()[0] == 1
