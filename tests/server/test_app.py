"""App-level behaviour: fresh apps, request ids, unexpected failures."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from memlayer_integrations.server import Plan, ServerSettings, create_app, keys


def test_an_unexpected_failure_is_a_json_500_with_a_request_id(tmp_path, caplog):
    app = create_app(ServerSettings(db_path=tmp_path / "a.db"))

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    app.state.service.execute = broken
    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as client:
        with app.state.db.write() as conn:
            secret, _ = keys.create_key(
                conn, plan_name="unlimited", plan=Plan(), name=None, now="t"
            )
        r = client.get("/v1/usage", headers={"X-API-Key": secret})
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == {
        "code": "internal_error",
        "message": "internal server error",
        "field": None,
    }
    assert body["request_id"] == r.headers["x-request-id"]
    assert body["request_id"] in caplog.text and secret not in caplog.text


def test_each_app_has_its_own_database(tmp_path):
    a = create_app(ServerSettings(db_path=tmp_path / "a.db"))
    b = create_app(ServerSettings(db_path=tmp_path / "b.db"))
    assert a.state.db is not b.state.db and a.state.service is not b.state.service
    with TestClient(a) as client:
        assert client.get("/v1/health").json()["status"] == "ok"
    assert (tmp_path / "a.db").exists() and not (tmp_path / "b.db").exists()


def test_request_ids_are_unique(tmp_path):
    with TestClient(create_app(ServerSettings(db_path=tmp_path / "a.db"))) as client:
        ids = {client.get("/v1/health").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_missing_extra_names_the_install_command():
    import subprocess
    import sys

    code = (
        "import sys\nsys.modules['fastapi'] = None\n"
        "try:\n    import memlayer_integrations.server\nexcept ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'memlayer-integrations[server]'" in out


def test_a_lone_bounded_request_runs_on_the_event_loop_and_others_on_threads(tmp_path):
    import json
    import socket
    import threading
    import time

    import httpx

    from memlayer_integrations.server import LocalMemLayerServer

    with LocalMemLayerServer(tmp_path / "a.db") as server:
        key = server.create_key(plan="unlimited")
        service = server._app.state.service
        ran_on: list[tuple[str, int]] = []
        execute = service.execute

        def recording(incoming, op, account):
            ran_on.append((incoming.path, threading.get_ident()))
            return execute(incoming, op, account)

        service.execute = recording
        headers = {"X-API-Key": key}
        assert httpx.get(server.url + "/v1/usage", headers=headers).status_code == 200
        # A remember whose body arrives in two parts: it waits inside its endpoint meanwhile.
        body = json.dumps({"content": "tea", "user_id": "u", "agent_id": "a"}).encode()
        host, port = server.url.removeprefix("http://").split(":")
        slow = socket.create_connection((host, int(port)))
        slow.sendall(
            f"POST /v1/memories HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:5]
        )
        time.sleep(0.5)
        assert httpx.get(server.url + "/v1/usage", headers=headers).status_code == 200
        slow.sendall(body[5:])
        assert slow.recv(65536).startswith(b"HTTP/1.1 201")
        slow.close()
        # Alone, but its work grows with what is stored: the thread pool.
        assert httpx.get(server.url + "/v1/scopes", headers=headers).status_code == 200
        # Alone, but it may use a whole query budget: the thread pool too.
        assert httpx.get(server.url + "/v1/memories?user_id=u", headers=headers).status_code == 200
    loop_thread = ran_on[0][1]
    assert [path for path, _ in ran_on] == [
        "/v1/usage",
        "/v1/usage",
        "/v1/memories",
        "/v1/scopes",
        "/v1/memories",
    ]
    assert ran_on[1][1] != loop_thread  # another request was in flight: the thread pool
    assert ran_on[2][1] == loop_thread  # alone again: no thread hop
    assert ran_on[3][1] != loop_thread
    assert ran_on[4][1] != loop_thread


def test_the_fixed_api_paths_go_straight_to_their_endpoints_and_the_rest_to_the_router(
    tmp_path, monkeypatch
):
    from fastapi.routing import APIRoute

    app = create_app(ServerSettings(db_path=tmp_path / "a.db"))
    routed: list[str] = []
    handle = APIRoute.handle

    async def recording(self, scope, receive, send):
        routed.append(scope["path"])
        await handle(self, scope, receive, send)

    monkeypatch.setattr(APIRoute, "handle", recording)
    with TestClient(app) as client:
        with app.state.db.write() as conn:
            secret, _ = keys.create_key(
                conn, plan_name="unlimited", plan=Plan(), name=None, now="t"
            )
        headers = {"X-API-Key": secret}
        usage = client.get("/v1/usage", headers=headers)
        batch = client.post("/v1/batch", json={"operations": [{"op": "usage"}]}, headers=headers)
        wrong_method = client.put("/v1/usage", headers=headers)
        by_id = client.get("/v1/memories/mem_" + "0" * 32, headers=headers)
        health = client.get("/v1/health")
    assert (usage.status_code, batch.status_code) == (200, 200)
    assert usage.headers["x-request-id"].startswith("req_")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"]
    assert (by_id.status_code, health.status_code) == (404, 200)
    # Only the wrong method (its 405), the path with an id and /health reached the router.
    assert routed == ["/v1/usage", "/v1/memories/mem_" + "0" * 32, "/v1/health"]
