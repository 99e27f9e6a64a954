"""Idempotency-Key: a replay returns the first answer, changes nothing and costs no quota."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from .._support import send_raw
from ._helpers import assert_error

BODY = {"content": "likes tea", "user_id": "u1", "agent_id": "bot"}


def count(http: httpx.Client) -> int:
    return len(http.get("/memories", params={"user_id": "u1"}).json()["memories"])


def test_replay_returns_the_first_response_and_stores_once(http):
    first = http.post("/memories", json=BODY, headers={"Idempotency-Key": "idem-1"})
    again = http.post("/memories", json=BODY, headers={"Idempotency-Key": "idem-1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert count(http) == 1


def test_replays_are_not_counted(base_url, local_server):
    with httpx.Client(
        base_url=base_url + "/v1", headers={"X-API-Key": local_server.create_key(plan="tiny")}
    ) as http:
        first = http.post("/memories", json=BODY, headers={"Idempotency-Key": "k"})
        for _ in range(3):
            replay = http.post("/memories", json=BODY, headers={"Idempotency-Key": "k"})
        assert (
            first.headers["x-ratelimit-remaining"] == replay.headers["x-ratelimit-remaining"] == "9"
        )
        assert http.get("/usage").json()["requests_today"] == 2


def test_reuse_for_another_body_path_or_method_is_409(http):
    memory = http.post("/memories", json=BODY, headers={"Idempotency-Key": "same"}).json()
    assert_error(
        http.post(
            "/memories", json={**BODY, "content": "other"}, headers={"Idempotency-Key": "same"}
        ),
        409,
        "idempotency_key_reused",
        "Idempotency-Key",
    )
    assert_error(
        http.post(
            "/memories/search",
            json={"query": "tea", "user_id": "u1"},
            headers={"Idempotency-Key": "same"},
        ),
        409,
        "idempotency_key_reused",
        "Idempotency-Key",
    )
    assert_error(
        http.delete(f"/memories/{memory['id']}", headers={"Idempotency-Key": "same"}),
        409,
        "idempotency_key_reused",
        "Idempotency-Key",
    )
    assert count(http) == 1


def test_keys_are_per_account(http, base_url, local_server):
    http.post("/memories", json=BODY, headers={"Idempotency-Key": "shared"})
    with httpx.Client(
        base_url=base_url + "/v1", headers={"X-API-Key": local_server.create_key()}
    ) as other:
        r = other.post("/memories", json=BODY, headers={"Idempotency-Key": "shared"})
        assert r.status_code == 201 and count(other) == 1


def test_forget_replay_is_204_not_404(http):
    memory = http.post("/memories", json=BODY).json()
    for _ in range(2):
        r = http.delete(f"/memories/{memory['id']}", headers={"Idempotency-Key": "del"})
        assert r.status_code == 204


def test_errors_are_not_stored_so_a_fixed_retry_runs(http):
    bad = http.post(
        "/memories", json={**BODY, "content": " "}, headers={"Idempotency-Key": "retry"}
    )
    assert_error(bad, 422, "validation_error", "content")
    assert (
        http.post(
            "/memories", json={**BODY, "content": " "}, headers={"Idempotency-Key": "retry"}
        ).status_code
        == 422
    )


def test_invalid_idempotency_key_is_400(http):
    for key in ["x" * 256, "tab\there", "é"]:
        r = http.post("/memories", json=BODY, headers={"Idempotency-Key": key.encode()})
        assert_error(r, 400, "bad_request", "Idempotency-Key")
    assert count(http) == 0


def test_concurrent_duplicates_store_once(http):
    def send(_: int) -> httpx.Response:
        return http.post(
            "/memories/batch",
            json={
                "user_id": "u1",
                "agent_id": "bot",
                "items": [{"content": "a"}, {"content": "b"}],
            },
            headers={"Idempotency-Key": "race"},
        )

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(send, range(32)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.text for r in responses}) == 1
    assert count(http) == 2


def test_a_recall_is_not_kept_so_a_repeat_answers_afresh(http):
    """Only writes keep answers: a read is safe to run again, and keeping its (possibly
    large) answer would only cost disk and replay what may since have been forgotten."""
    http.post("/memories", json=BODY)
    q = {"query": "tea", "user_id": "u1"}
    first = http.post("/memories/search", json=q, headers={"Idempotency-Key": "r"})
    http.post("/memories", json={**BODY, "content": "more tea"})
    again = http.post("/memories/search", json=q, headers={"Idempotency-Key": "r"})
    assert "Idempotent-Replayed" not in again.headers
    assert len(again.json()["results"]) == len(first.json()["results"]) + 1


def test_white_space_around_header_values_is_not_part_of_them(http, base_url, api_key):
    def post(header_lines: list[bytes]) -> bytes:
        head = b"\r\n".join(
            [
                b"POST /v1/memories HTTP/1.1",
                b"Host: x",
                b"X-API-Key: " + api_key.encode(),
                *header_lines,
            ]
        )
        return send_raw(base_url, head, json.dumps(BODY).encode())

    first = post([b"Content-Type: application/json \t", b"Idempotency-Key: \t ows-1 \t"])
    assert first.startswith(b"HTTP/1.1 201")
    # The same Idempotency-Key without the white space: a replay, stored once.
    again = post([b"Content-Type: application/json", b"Idempotency-Key: ows-1"])
    assert again.startswith(b"HTTP/1.1 201") and b"idempotent-replayed: true" in again.lower()
    assert count(http) == 1


def test_a_batch_of_reads_that_refresh_expiry_is_not_kept_either(http):
    """A read with ``refresh_ttl`` runs in the write transaction (it restarts clocks), but
    it is still a read: its answer is not kept, so a repeat answers afresh."""
    http.post("/memories", json={**BODY, "ttl": 3600})
    reads = {
        "operations": [
            {"op": "list", "user_id": "u1", "refresh_ttl": True},
            {"op": "recall", "query": "tea", "user_id": "u1", "refresh_ttl": True},
        ]
    }
    first = http.post("/batch", json=reads, headers={"Idempotency-Key": "refresh"})
    http.post("/memories", json={**BODY, "content": "likes green tea"})
    again = http.post("/batch", json=reads, headers={"Idempotency-Key": "refresh"})
    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in again.headers
    assert len(again.json()["results"][0]["memories"]) == 2
    assert len(first.json()["results"][0]["memories"]) == 1


def test_forgetting_one_memory_of_a_batch_drops_that_answer_only(http):
    def put_batch(key: str, agent: str) -> httpx.Response:
        items = [{"content": f"{agent} fact {i}", "key": f"k{i}"} for i in range(100)]
        body = {
            "operations": [
                {"op": "remember_many", "user_id": "u1", "agent_id": agent, "items": items}
            ]
        }
        return http.post("/batch", json=body, headers={"Idempotency-Key": key})

    first, other = put_batch("b-1", "one"), put_batch("b-2", "two")
    assert first.status_code == other.status_code == 200
    memories = first.json()["results"][0]["memories"]
    assert len(memories) == 100
    assert http.delete(f"/memories/{memories[57]['id']}").status_code == 204
    assert_error(put_batch("b-1", "one"), 409, "idempotent_answer_gone", "Idempotency-Key")
    replay = put_batch("b-2", "two")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.content == other.content
    # The replay ran nothing: the forgotten memory stays forgotten.
    listed = http.get("/memories", params={"user_id": "u1", "agent_id": "one", "limit": 100})
    assert len(listed.json()["memories"]) == 99
