"""Fuzzing from the OpenAPI document: the server, fuzzed with Schemathesis from its own
``docs/openapi.json``, never answers 5xx, every answer matches the schema (status
documented, content type, body), a request the schema forbids is refused with a 4xx, and
one it allows is not refused as invalid.

Every operation is fuzzed with requests the schema allows and requests it forbids, a bounded
and derandomized number of each, in a process of its own so that every run sends the same
requests (``_openapi_fuzz_cases.py`` says why). Where fuzzing found the schema and the server
disagreeing, the case is also pinned here on its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import pytest

from ._openapi_fuzz_cases import OPENAPI, OPERATIONS

CASES = Path(__file__).with_name("_openapi_fuzz_cases.py")
ROOT = Path(__file__).resolve().parents[2]


def test_the_server_survives_fuzzing_from_its_openapi_document():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLAYER_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(CASES),
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "--no-header",
            "--tb=short",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    report = proc.stdout[-30_000:] + proc.stderr[-5_000:]
    assert proc.returncode == 0, report
    passed = re.search(r"(\d+) passed", proc.stdout)
    assert passed and int(passed.group(1)) == len(OPERATIONS) >= 20, (
        report
    )  # all 12 operations, both ways


# Where fuzzing found the schema and the server disagreeing: each case pinned, so the fix stays.
DISAGREEMENTS = [
    (
        "POST",
        "/memories/search",
        "RecallRequest",
        {"query": "tea", "user_id": "u", "limit": 31.0},
        200,
    ),  # JSON's 31.0 is 31
    (
        "POST",
        "/memories/search",
        "RecallRequest",
        {"query": "tea", "user_id": "u", "limit": 31.5},
        422,
    ),
    (
        "POST",
        "/memories/search",
        "RecallRequest",
        {"query": "tea", "user_id": "u", "filters": {"n": {"$lt": True}}},
        422,
    ),
    (
        "POST",
        "/memories/search",
        "RecallRequest",
        {"query": "tea", "user_id": "u", "filters": {"n": {"$eq": True}}},
        200,
    ),
    (
        "POST",
        "/memories",
        "RememberRequest",
        {"content": "\x1e", "user_id": "u", "agent_id": "a"},
        422,
    ),  # Python's white space
    (
        "POST",
        "/memories",
        "RememberRequest",
        {"content": "\ufeff", "user_id": "u", "agent_id": "a"},
        201,
    ),  # not Python's
    ("PATCH", "/memories/{id}", "UpdateRequest", {}, 422),  # content, metadata or both
    ("PATCH", "/memories/{id}", "UpdateRequest", {"content": None}, 422),
    ("PATCH", "/memories/{id}", "UpdateRequest", {"metadata": {"k": 1}}, 200),
]


@pytest.mark.parametrize(("method", "path", "model", "body", "status"), DISAGREEMENTS)
def test_the_schema_and_the_server_agree_where_fuzzing_found_they_did_not(
    http, method, path, model, body, status
):
    components = json.loads(OPENAPI.read_text(encoding="utf-8"))["components"]
    # jsonschema_rs: regular expressions as JSON Schema means them (ECMA-262), not as Python does
    schema_says_valid = jsonschema_rs.is_valid(
        {"$ref": f"#/components/schemas/{model}", "components": components}, body
    )
    memory = http.post(
        "/memories", json={"content": "to update", "user_id": "u", "agent_id": "a"}
    ).json()
    response = http.request(method, path.replace("{id}", memory["id"]), json=body)
    assert response.status_code == status, response.text
    assert schema_says_valid == (status < 300)
