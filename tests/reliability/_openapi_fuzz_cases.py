"""The fuzz cases of ``test_openapi_fuzz.py``, which runs them with pytest in a fresh process.

Why a fresh process: Schemathesis derives part of what it generates from the state of the
interpreter (which modules the test session imported before, say), so the same derandomized
test produces other examples inside a full test run than alone. In a process of its own the
examples depend on the code only, and every run sends the same requests.

A few rules of the contract cannot be written in JSON Schema; for requests that break them
the "allowed requests are accepted" check is skipped (every other check still runs):

* a cursor is opaque and bound to its listing: only one a list handed out is valid, so
  generated ones are replaced by a real one, with the listing's conditions;
* a request body is at most 1 MiB;
* two items of one ``remember_many`` may not share a ``key``;
* metadata is at most 16 KiB serialized and 8 levels deep;
* a filter's integer must fit in 64 bits (SQLite's integers).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import checks as openapi_checks

from memlayer_integrations.server import LocalMemLayerServer, ServerSettings
from memlayer_integrations.server.schemas import MAX_METADATA_BYTES, MAX_METADATA_DEPTH

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
EXAMPLES = 25  # per operation and mode
MAX_BODY_BYTES = ServerSettings(db_path="unused.db").max_body_bytes
REFUSALS = (
    400,
    401,
    403,
    404,
    405,
    406,
    409,
    413,
    415,
    422,
    428,
    429,
)  # a request the schema forbids gets one

RESPONSE_CHECKS = [
    not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]
NEGATIVE_CHECKS = [*RESPONSE_CHECKS, openapi_checks.negative_data_rejection]
POSITIVE_CHECKS = [*RESPONSE_CHECKS, openapi_checks.positive_data_acceptance]


def operations() -> list[tuple[str, str, str]]:
    """(method, path, mode) for every operation; negative only where there is input to break."""
    found = []
    for path, methods in json.loads(OPENAPI.read_text(encoding="utf-8"))["paths"].items():
        for method, operation in methods.items():
            found.append((method.upper(), path, "positive"))
            if operation.get("parameters") or operation.get("requestBody"):
                found.append((method.upper(), path, "negative"))
    return found


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    with LocalMemLayerServer(tmp_path_factory.mktemp("fuzz") / "fuzz.db") as server:
        key = server.create_key()
        with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as http:
            for content in ("one", "two"):
                http.post(
                    "/memories", json={"content": content, "user_id": "u", "agent_id": "a"}
                ).raise_for_status()
            cursor = http.get("/memories", params={"user_id": "u", "limit": 1}).json()[
                "next_cursor"
            ]
        config = schemathesis.Config.from_dict(
            {
                "generation": {
                    "deterministic": True,
                    "allow-extra-parameters": False,
                    "with-security-parameters": False,
                },
                "auth": {"openapi": {"ApiKeyAuth": {"api_key": key}}},
                # A body over the 1 MiB limit is refused with 413, which Schemathesis does not list.
                "checks": {"negative_data_rejection": {"expected-statuses": [*REFUSALS]}},
            }
        )
        with requests.Session() as session:
            yield SimpleNamespace(
                url=server.url,
                session=session,
                cursor=cursor,
                schema=schemathesis.openapi.from_path(OPENAPI, config=config),
            )


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _breaks_an_unwritable_rule(body: Any) -> bool:
    """Whether a request body breaks one of the rules the schema cannot say (module docstring)."""
    if not isinstance(body, (dict, list)):
        return False
    return len(json.dumps(body).encode()) > MAX_BODY_BYTES or _breaks_a_field_rule(body)


def _breaks_a_field_rule(value: Any) -> bool:
    if isinstance(value, list):
        return any(map(_breaks_a_field_rule, value))
    if not isinstance(value, dict):
        return False
    items = value.get("items")
    if isinstance(items, list):
        keys = [i.get("key") for i in items if isinstance(i, dict) and i.get("key") is not None]
        if len(keys) != len(set(keys)):
            return True
    metadata = value.get("metadata")
    if isinstance(metadata, dict):
        size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode())
        if _depth(metadata) > MAX_METADATA_DEPTH or size > MAX_METADATA_BYTES:
            return True
    filters = value.get("filters")
    if isinstance(filters, dict) and any(_huge_integer(v) for v in filters.values()):
        return True
    return any(map(_breaks_a_field_rule, value.values()))


def _huge_integer(value: Any) -> bool:
    if isinstance(value, dict):
        return any(map(_huge_integer, value.values()))
    return isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63


def _use_real_cursors(case: Any, cursor: str) -> None:
    """Put the real cursor in, with the listing it was handed out for (user "u", no other
    condition): a cursor is only valid for its own listing."""

    def bind(listing: dict[str, Any], keys: str) -> None:
        listing["cursor"] = cursor
        listing["user_id"] = "u"
        for name in ("agent_id", "agent_prefix", "session_id", "filters", keys):
            listing.pop(name, None)

    if case.query and "cursor" in case.query:
        bind(case.query, "key")
    for operation in (case.body or {}).get("operations", []) if isinstance(case.body, dict) else []:
        if isinstance(operation, dict) and "cursor" in operation:
            bind(operation, "keys")


OPERATIONS = operations()


@pytest.mark.parametrize(
    ("method", "path", "mode"), OPERATIONS, ids=[" ".join(o) for o in OPERATIONS]
)
def test_every_answer_matches_the_schema(target, method, path, mode):
    operation = target.schema[path][method]
    statuses: list[int] = []

    @given(case=operation.as_strategy(GenerationMode(mode)))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )
    def fuzz(case: Any) -> None:
        if mode == "negative":
            checks = NEGATIVE_CHECKS
        else:
            _use_real_cursors(case, target.cursor)
            checks = RESPONSE_CHECKS if _breaks_an_unwritable_rule(case.body) else POSITIVE_CHECKS
        response = case.call_and_validate(
            base_url=target.url, session=target.session, checks=checks
        )
        statuses.append(response.status_code)

    fuzz()
    assert statuses and 401 not in statuses  # every request was authenticated: the key was sent
    if mode == "positive" and "{memory_id}" not in path:
        assert any(200 <= s < 300 for s in statuses)  # and some got through to the operation
