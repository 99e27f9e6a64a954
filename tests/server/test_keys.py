"""keys.add_key: another key to an existing account, which sees the account's memories; a
key the server knows is refused as soon as it is revoked or its account suspended."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from memlayer_integrations import AuthenticationError, MemLayerClient, PermissionDeniedError
from memlayer_integrations.server import LocalMemLayerServer, keys
from memlayer_integrations.server.db import Database

NOW = "2026-11-30T12:00:00+00:00"


def test_a_second_key_opens_the_same_account_and_outlives_the_first(tmp_path: Path) -> None:
    db_path = tmp_path / "m.db"
    with LocalMemLayerServer(db_path) as server:
        first = server.create_key(plan="free", name="one")
        with MemLayerClient(first, base_url=server.url) as client:
            stored = client.remember("likes tea", user_id="u", agent_id="a")

    db = Database(db_path)
    db.open()
    try:
        with db.write() as conn:
            (one,) = keys.list_keys(conn)
            second, _ = keys.add_key(conn, account_id=one.account_id, name="two", now=NOW)
            assert sorted((k.name, k.account_id, k.plan) for k in keys.list_keys(conn)) == [
                ("one", one.account_id, "free"),
                ("two", one.account_id, "free"),
            ]
            keys.revoke_key(conn, one.id, now=NOW)
    finally:
        db.close()

    with LocalMemLayerServer(db_path) as server:
        with MemLayerClient(second, base_url=server.url) as client:
            assert client.get(stored.id).content == "likes tea"
            assert client.usage().memories_stored == 1
        with (
            MemLayerClient(first, base_url=server.url) as client,
            pytest.raises(AuthenticationError),
        ):
            client.get(stored.id)


def test_a_known_key_is_refused_at_its_next_request_once_revoked_or_suspended_elsewhere(
    local_server: LocalMemLayerServer,
) -> None:
    # LocalMemLayerServer's key commands write the database directly, past the serving
    # process's memory of the keys it authenticated, as another process would.
    key = local_server.create_key(plan="free")
    with MemLayerClient(key, base_url=local_server.url, max_retries=0) as client:
        client.usage()
        local_server.suspend_key(key)
        with pytest.raises(PermissionDeniedError):
            client.usage()
        with pytest.raises(PermissionDeniedError):
            client.usage()
        local_server.unsuspend_key(key)
        client.usage()
        with local_server._db().write() as conn:
            conn.execute(
                "UPDATE accounts SET request_limit = 7 WHERE id = (SELECT account_id FROM"
                " api_keys WHERE id = ?)",
                (keys.find_key(conn, key),),
            )
        headers = {"X-API-Key": key}
        answer = httpx.get(local_server.url + "/v1/usage", headers=headers)
        assert answer.headers["X-RateLimit-Limit"] == "7"
        local_server.revoke_key(key)
        for _ in range(2):
            with pytest.raises(AuthenticationError):
                client.usage()
