"""LocalMemLayerServer from sync code, async code and a running event loop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from memlayer_integrations.server import LocalMemLayerServer, Plan, ServerSettings


def test_sync_with_block_and_temporary_db_removed():
    with LocalMemLayerServer() as server:
        assert server.url.startswith("http://127.0.0.1:")
        key = server.create_key(plan="unlimited", name="demo")
        r = httpx.post(
            server.url + "/v1/memories",
            json={"content": "x", "user_id": "u", "agent_id": "a"},
            headers={"X-API-Key": key},
        )
        assert r.status_code == 201
        db_path = Path(server.settings.db_path)
        assert db_path.exists()
    assert not db_path.exists() and not db_path.parent.exists()
    with pytest.raises(RuntimeError):
        _ = server.url


def test_start_stop_and_a_file_db_is_kept(tmp_path):
    server = LocalMemLayerServer(
        db_path=tmp_path / "kept.db", plans={"p": Plan(memories=1, requests_per_day=None)}
    )
    server.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
        with pytest.raises(ValueError, match="unknown plan"):
            server.create_key(plan="free")
        key = server.create_key(plan="p")
        usage = httpx.get(server.url + "/v1/usage", headers={"X-API-Key": key}).json()
        assert usage["memories_limit"] == 1 and usage["requests_limit"] is None
    finally:
        server.stop()
        server.stop()
    assert (tmp_path / "kept.db").exists()


async def test_async_with_inside_a_running_loop():
    assert asyncio.get_running_loop().is_running()
    async with LocalMemLayerServer() as server:
        key = server.create_key()
        async with httpx.AsyncClient(
            base_url=server.url + "/v1", headers={"X-API-Key": key}
        ) as http:
            results = await asyncio.gather(
                *[
                    http.post(
                        "/memories", json={"content": f"m{i}", "user_id": "u", "agent_id": "a"}
                    )
                    for i in range(10)
                ]
            )
            assert {r.status_code for r in results} == {201}
            assert (await http.get("/usage")).json()["memories_stored"] == 10


async def test_sync_with_also_works_inside_a_running_loop():
    # As in a Jupyter cell: plain `with`, while an event loop runs in this thread.
    with LocalMemLayerServer() as server:
        key = server.create_key()
        async with httpx.AsyncClient() as http:
            r = await http.get(server.url + "/v1/usage", headers={"X-API-Key": key})
        assert r.status_code == 200


def test_two_servers_share_nothing():
    with LocalMemLayerServer() as a, LocalMemLayerServer() as b:
        key = a.create_key()
        assert a.url != b.url
        assert httpx.get(b.url + "/v1/usage", headers={"X-API-Key": key}).status_code == 401


def test_settings_or_db_path_not_both(tmp_path):
    with pytest.raises(TypeError):
        LocalMemLayerServer(tmp_path / "x.db", settings=ServerSettings(db_path=tmp_path / "y.db"))


def test_bad_db_path_fails_at_start(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        LocalMemLayerServer(blocker / "sub" / "x.db").start()


def test_mutating_keys_after_stop_is_an_error():
    server = LocalMemLayerServer()
    with pytest.raises(RuntimeError, match="not running"):
        server.create_key()
    assert not os.environ.get("MEMLAYER_API_KEY")
