"""App-level behaviour: fresh apps, request ids, unexpected failures."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from memlayer_integrations.server import ServerSettings, create_app


def test_an_unexpected_failure_is_a_json_500_with_a_request_id(tmp_path, caplog):
    app = create_app(ServerSettings(db_path=tmp_path / "a.db"))

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    app.state.service.execute = broken
    secret = "ml_live_" + "s" * 40
    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/v1/usage", headers={"X-API-Key": secret})
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == {"code": "internal_error", "message": "internal server error", "field": None}
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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'memlayer-integrations[server]'" in out
