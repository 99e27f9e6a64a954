"""The checked-in docs/openapi.json is exactly what the app generates."""

from __future__ import annotations

import json
from pathlib import Path

from memlayer_integrations.server import create_app, render_openapi

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_checked_in_openapi_matches_the_app():
    assert OPENAPI.read_text(encoding="utf-8") == render_openapi(), (
        "docs/openapi.json is out of date: run `memlayer openapi --output docs/openapi.json`"
    )


def test_schema_describes_bodies_errors_and_auth():
    doc = json.loads(render_openapi())
    schemas = doc["components"]["schemas"]
    for name in (
        "RememberRequest",
        "RememberManyRequest",
        "RecallRequest",
        "UpdateRequest",
        "BatchRequest",
        "Memory",
        "RecalledMemory",
        "Usage",
        "Scope",
        "ErrorResponse",
    ):
        assert name in schemas
    assert doc["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    assert set(schemas["RememberRequest"]["required"]) == {"content", "user_id", "agent_id"}
    assert schemas["RememberRequest"]["additionalProperties"] is False
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if path == "/v1/health":
                assert "security" not in op
                continue
            assert op["security"] == [{"ApiKeyAuth": []}]
            assert (
                op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"]
                == "#/components/schemas/ErrorResponse"
            )
            if method in ("post", "patch"):
                assert op["requestBody"]["content"]["application/json"]["schema"][
                    "$ref"
                ].startswith("#/components/schemas/")


def test_creating_an_app_touches_no_file(tmp_path):
    from memlayer_integrations.server import ServerSettings

    create_app(ServerSettings(db_path=tmp_path / "never.db")).openapi()
    assert not (tmp_path / "never.db").exists()
