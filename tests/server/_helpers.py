"""Small helpers for the server tests (raw HTTP, so the server is tested on its own)."""

from __future__ import annotations

import io
from typing import Any

import httpx

from memlayer_integrations.server.backend import open_backend
from memlayer_integrations.server.transfer import export


def remember(
    http: httpx.Client, content: str, user_id: str = "u1", agent_id: str = "bot", **fields
) -> dict:
    response = http.post(
        "/memories", json={"content": content, "user_id": user_id, "agent_id": agent_id, **fields}
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def assert_error(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict:
    """The contract's error body, with the request id in both places."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == code, body
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["field"] == field, body
    assert body["request_id"].startswith("req_")
    assert response.headers["x-request-id"] == body["request_id"]
    return body


def dump(location: Any) -> bytes:
    """``memlayer export --with-keys`` of the database at ``location`` (a SQLite path or a
    PostgreSQL URL), at a fixed time."""
    db = open_backend(location)
    try:
        out = io.BytesIO()
        export(db, out, now="2026-01-01T00:00:00.000000Z", with_keys=True)
        return out.getvalue()
    finally:
        db.close()
