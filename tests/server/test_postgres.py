"""What the PostgreSQL backend adds: a URL for --db, migrations, limits that hold across
server processes, the query budget as ``statement_timeout``, and one-line errors naming the
fix. (The contract itself runs on both backends through ``tests/_backends.py``.)"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from memlayer_integrations import cli
from memlayer_integrations._constants import KEY_PATTERN
from memlayer_integrations.server import LocalMemLayerServer, Plan, ServerSettings
from memlayer_integrations.server.backend import open_backend
from memlayer_integrations.server.db import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from memlayer_integrations.server.postgres.schema import SCHEMA_VERSION

from ._helpers import assert_error, dump


@pytest.fixture
def pg_url(postgres_cluster: Any) -> Iterator[str]:
    url: str = postgres_cluster.fresh()
    yield url
    postgres_cluster.cluster.drop_database(url)


@pytest.fixture
def empty_pg_url(postgres_cluster: Any) -> Iterator[str]:
    """A database without the server's tables (not copied from the migrated template)."""
    url: str = postgres_cluster.cluster.create_database()
    yield url
    postgres_cluster.cluster.drop_database(url)


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_migrate_applies_every_migration_once_on_each_backend(db_location, capsys):
    if isinstance(db_location, Path):
        expected = f"from schema version 0 to {SQLITE_SCHEMA_VERSION}"
    else:  # a fresh PostgreSQL database is copied from an already migrated template
        expected = f"schema version {SCHEMA_VERSION}, nothing to migrate"
    code, _, err = run(capsys, "migrate", "--db", str(db_location))
    assert code == 0 and expected in err, err
    code, _, err = run(capsys, "migrate", "--db", str(db_location))
    assert code == 0 and "nothing to migrate" in err, err


def test_migrate_creates_the_tables_of_an_empty_postgres_database(empty_pg_url, capsys):
    code, _, err = run(capsys, "migrate", "--db", empty_pg_url)
    assert code == 0 and f"migrated from schema version 0 to {SCHEMA_VERSION}" in err, err


def test_keys_commands_and_serve_settings_take_a_url(pg_url, capsys, monkeypatch):
    code, out, _ = run(capsys, "keys", "create", "--db", pg_url, "--plan", "unlimited")
    key = out.strip()
    assert code == 0 and KEY_PATTERN.fullmatch(key)
    code, out, _ = run(capsys, "keys", "list", "--db", pg_url)
    assert code == 0 and "unlimited" in out and key not in out
    code, _, _ = run(capsys, "keys", "suspend", "--db", pg_url, key)
    assert code == 0
    # $MEMLAYER_DB holds a URL as it is (not a path).
    monkeypatch.setenv("MEMLAYER_DB", pg_url)
    assert ServerSettings().db_path == pg_url
    with LocalMemLayerServer(settings=ServerSettings()) as server:
        r = httpx.get(server.url + "/v1/usage", headers={"X-API-Key": key})
    assert_error(r, 403, "account_suspended")


def test_an_unreachable_database_is_one_line_naming_the_fix(capsys):
    url = "postgresql://nobody@127.0.0.1:1/memlayer"
    for argv in (["keys", "list", "--db", url], ["migrate", "--db", url]):
        code, out, err = run(capsys, *argv)
        assert code == 1 and out == "", err
        assert err.count("\n") == 1 and "cannot connect to PostgreSQL at nobody@127.0.0.1:1" in err
        assert "check the URL" in err


def test_a_missing_postgres_extra_names_the_pip_install(pg_url, capsys, monkeypatch):
    for name in [m for m in sys.modules if m.startswith("memlayer_integrations.server.postgres")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    code, _, err = run(capsys, "keys", "list", "--db", pg_url)
    assert code == 1 and err.count("\n") == 1
    assert 'pip install "memlayer-integrations[postgres]"' in err
    with pytest.raises(ImportError, match=r"memlayer-integrations\[postgres\]"):
        open_backend(pg_url)


def _two_servers(url: str, plans: dict[str, Plan]) -> tuple[LocalMemLayerServer, ...]:
    """Two servers on one database: two pools and two sets of locks, as two processes."""
    return LocalMemLayerServer(url, plans=plans).start(), LocalMemLayerServer(
        url, plans=plans
    ).start()


def test_the_daily_quota_is_exact_across_servers_on_one_database(pg_url):
    servers = _two_servers(pg_url, {"q": Plan(memories=None, requests_per_day=30)})
    try:
        key = servers[0].create_key(plan="q")

        def hit(i: int) -> int:
            url = servers[i % 2].url + "/v1/usage"
            return httpx.get(url, headers={"X-API-Key": key}, timeout=30).status_code

        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(hit, range(60)))
    finally:
        for server in servers:
            server.stop()
    assert statuses.count(200) == 30 and statuses.count(429) == 30


def test_the_memory_cap_is_exact_across_servers_on_one_database(pg_url):
    servers = _two_servers(pg_url, {"m": Plan(memories=25, requests_per_day=None)})
    try:
        key = servers[0].create_key(plan="m")

        def store(i: int) -> int:
            body = {"content": f"fact number {i}", "user_id": "u", "agent_id": "a"}
            r = httpx.post(
                servers[i % 2].url + "/v1/memories",
                json=body,
                headers={"X-API-Key": key},
                timeout=30,
            )
            return r.status_code

        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(store, range(60)))
        usage = httpx.get(servers[1].url + "/v1/usage", headers={"X-API-Key": key}).json()
    finally:
        for server in servers:
            server.stop()
    assert statuses.count(201) == 25 and statuses.count(403) == 35
    assert usage["memories_stored"] == 25


def test_an_idempotent_write_runs_once_across_servers(pg_url):
    servers = _two_servers(pg_url, {"unlimited": Plan()})
    try:
        key = servers[0].create_key(plan="unlimited")
        headers = {"X-API-Key": key, "Idempotency-Key": "same-write"}
        body = {"content": "stored once", "user_id": "u", "agent_id": "a"}

        def send(i: int) -> httpx.Response:
            url = servers[i % 2].url + "/v1/memories"
            return httpx.post(url, json=body, headers=headers, timeout=30)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, range(16)))
        listed = httpx.get(
            servers[1].url + "/v1/memories", params={"user_id": "u"}, headers={"X-API-Key": key}
        ).json()["memories"]
    finally:
        for server in servers:
            server.stop()
    assert {a.status_code for a in answers} == {201}
    assert len({a.content for a in answers}) == 1  # the same answer, byte for byte
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 15
    assert [m["content"] for m in listed] == ["stored once"]


def test_the_query_budget_is_a_statement_timeout_with_the_same_answer(pg_url):
    settings = ServerSettings(db_path=pg_url, query_budget_seconds=1e-9)
    with LocalMemLayerServer(settings=settings) as server:
        key = server.create_key()
        with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as http:
            body = {"content": "green tea in the morning", "user_id": "u", "agent_id": "a"}
            assert http.post("/memories", json=body).status_code == 201
            assert_error(
                http.post("/memories/search", json={"query": "tea", "user_id": "u"}),
                422,
                "query_too_expensive",
            )
            assert_error(http.get("/memories", params={"user_id": "u"}), 422, "query_too_expensive")
            # Nothing of a refused batch is stored; the next request runs as usual.
            batch = {
                "operations": [
                    {"op": "remember", "content": "not kept", "user_id": "u", "agent_id": "a"},
                    {"op": "recall", "query": "tea", "user_id": "u"},
                ]
            }
            assert_error(
                http.post("/batch", json=batch), 422, "query_too_expensive", "operations[1]"
            )
            assert http.get("/usage").json()["memories_stored"] == 1


def test_text_with_a_nul_character_is_a_clear_422(pg_url):
    with LocalMemLayerServer(pg_url) as server:
        key = server.create_key()
        r = httpx.post(
            server.url + "/v1/memories",
            json={"content": "a\u0000b", "user_id": "u", "agent_id": "a"},
            headers={"X-API-Key": key},
        )
        assert_error(r, 422, "validation_error")
        assert "NUL" in r.json()["error"]["message"]


def test_metadata_holding_a_nul_character_is_stored_and_filtered(pg_url):
    with LocalMemLayerServer(pg_url) as server:
        key = server.create_key()
        with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as http:
            odd = {"note": "a\u0000b", "path": "c:\\u0000", "tag": "x"}
            body = {"content": "kept", "user_id": "u", "agent_id": "a", "metadata": odd}
            assert http.post("/memories", json=body).status_code == 201
            listed = http.get(
                "/memories", params={"user_id": "u", "filters": '{"tag": "x"}'}
            ).json()["memories"]
            assert [m["metadata"] for m in listed] == [odd]  # as written, U+0000 included
            literal = http.get(
                "/memories", params={"user_id": "u", "filters": '{"path": "c:\\\\u0000"}'}
            ).json()["memories"]
            assert [m["content"] for m in literal] == ["kept"]


def test_a_sqlite_database_moves_to_postgres_and_back_exactly(tmp_path, pg_url):
    from memlayer_integrations.server.transfer import import_dump

    source = tmp_path / "source.db"
    with LocalMemLayerServer(source) as server:
        key = server.create_key(plan="unlimited")
        with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as http:
            for body in (
                {"content": "Alice likes green tea", "session_id": "s1"},
                {"content": "The flat number is 42", "key": "flat", "metadata": {"ä": [1, 2.5]}},
            ):
                http.post("/memories", json={"user_id": "u", "agent_id": "a", **body})

    def load(location: Any, data: bytes) -> dict[str, int]:
        db = open_backend(location)
        try:
            return import_dump(db, io.BytesIO(data)).added
        finally:
            db.close()

    first = dump(source)
    assert load(pg_url, first)["memories"] == 2
    assert dump(pg_url) == first  # the same records, byte for byte
    assert sum(load(pg_url, first).values()) == 0  # a second import changes nothing
    back = tmp_path / "back.db"
    load(back, dump(pg_url))
    assert dump(back) == first
    with LocalMemLayerServer(pg_url) as server:
        with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as http:
            hits = http.post("/memories/search", json={"query": "tea", "user_id": "u"}).json()
            assert [h["memory"]["content"] for h in hits["results"]] == ["Alice likes green tea"]
        fresh = server.create_key()  # account ids continue after the imported ones
        with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": fresh}) as http:
            assert http.get("/memories", params={"user_id": "u"}).json()["memories"] == []
