"""Daily request quota, rate-limit headers and the memory limit."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from memlayer_integrations.server import LocalMemLayerServer, Plan, ServerSettings

from ._helpers import assert_error


def client(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url + "/v1", headers={"X-API-Key": key})


def next_midnight_epoch() -> int:
    tomorrow = datetime.now(timezone.utc).date() + timedelta(days=1)
    return calendar.timegm(tomorrow.timetuple())


def test_headers_on_every_authenticated_response(base_url, local_server):
    with client(base_url, local_server.create_key(plan="tiny")) as http:
        ok = http.get("/usage")
        error = http.get("/memories/not-an-id")
        missing = http.get("/memories", params={})
    assert ok.headers["x-ratelimit-limit"] == "10"
    assert ok.headers["x-ratelimit-remaining"] == "9"
    assert error.headers["x-ratelimit-remaining"] == "8" and error.status_code == 422
    assert missing.headers["x-ratelimit-remaining"] == "7"
    assert int(ok.headers["x-ratelimit-reset"]) == next_midnight_epoch()


def test_unlimited_plan_headers(http):
    r = http.get("/usage")
    assert (r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-remaining"]) == (
        "unlimited",
        "unlimited",
    )


def test_small_plan_quota_then_429(base_url, local_server):
    with client(base_url, local_server.create_key(plan="tiny")) as http:
        for _ in range(10):
            assert http.get("/usage").status_code == 200
        r = http.get("/usage")
        assert_error(r, 429, "daily_quota_exceeded")
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert 0 < int(r.headers["retry-after"]) <= 86400
        # Refused requests are not counted; a write is refused too.
        assert_error(
            http.post("/memories", json={"content": "x", "user_id": "u", "agent_id": "a"}),
            429,
            "daily_quota_exceeded",
        )


def test_free_plan_101st_request(base_url, free_key):
    with client(base_url, free_key) as http:
        for i in range(100):
            r = http.get("/usage")
            assert r.status_code == 200, i
        assert r.json()["requests_today"] == 100 and r.json()["requests_limit"] == 100
        assert r.headers["x-ratelimit-remaining"] == "0"
        r = http.get("/usage")
    assert_error(r, 429, "daily_quota_exceeded")
    retry_after = int(r.headers["retry-after"])
    now = datetime.now(timezone.utc).timestamp()
    assert abs((now + retry_after) - next_midnight_epoch()) <= 2


def test_quota_resets_at_midnight_utc_and_survives_restart(db_location):
    now = [datetime(2026, 3, 1, 23, 59, 0, tzinfo=timezone.utc)]
    plans = {"tiny": Plan(memories=5, requests_per_day=2)}
    settings = ServerSettings(db_path=db_location, plans=plans, clock=lambda: now[0])
    with LocalMemLayerServer(settings=settings) as server:
        key = server.create_key(plan="tiny")
        with client(server.url, key) as http:
            assert http.get("/usage").status_code == 200
    # A restart keeps the count.
    settings = ServerSettings(db_path=db_location, plans=plans, clock=lambda: now[0])
    with LocalMemLayerServer(settings=settings) as server, client(server.url, key) as http:
        assert http.get("/usage").json()["requests_today"] == 2
        r = http.get("/usage")
        assert_error(r, 429, "daily_quota_exceeded")
        assert r.headers["retry-after"] == "60"
        now[0] += timedelta(minutes=2)
        r = http.get("/usage")
        assert r.status_code == 200 and r.json()["requests_today"] == 1
        assert r.json()["resets_at"] == "2026-03-03T00:00:00Z"


def test_batch_is_one_request(base_url, local_server):
    with client(base_url, local_server.create_key(plan="tiny")) as http:
        r = http.post("/batch", json={"operations": [{"op": "usage"}] * 20})
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == "9"
        assert {x["usage"]["requests_today"] for x in r.json()["results"]} == {1}


def test_memory_limit_refuses_whole_writes(base_url, local_server):
    with client(base_url, local_server.create_key(plan="tiny")) as http:  # 5 memories
        items = [{"content": f"m{i}", "key": f"k{i}"} for i in range(4)]
        assert (
            http.post(
                "/memories/batch", json={"user_id": "u", "agent_id": "a", "items": items}
            ).status_code
            == 201
        )
        too_many = [{"content": "a"}, {"content": "b"}]
        r = http.post("/memories/batch", json={"user_id": "u", "agent_id": "a", "items": too_many})
        assert_error(r, 403, "memory_limit_reached")
        assert http.get("/usage").json()["memories_stored"] == 4
        batch = http.post(
            "/batch",
            json={
                "operations": [
                    {"op": "remember", "content": "fifth", "user_id": "u", "agent_id": "a"},
                    {"op": "remember", "content": "sixth", "user_id": "u", "agent_id": "a"},
                ]
            },
        )
        assert_error(batch, 403, "memory_limit_reached", "operations[1]")
        assert http.get("/usage").json()["memories_stored"] == 4
        # Replacing by key adds nothing, so it is allowed at the limit.
        assert (
            http.post(
                "/memories", json={"content": "fifth", "user_id": "u", "agent_id": "a"}
            ).status_code
            == 201
        )
        r = http.post(
            "/memories", json={"content": "k0 again", "user_id": "u", "agent_id": "a", "key": "k0"}
        )
        assert r.status_code == 200
        assert_error(
            http.post("/memories", json={"content": "x", "user_id": "u", "agent_id": "a"}),
            403,
            "memory_limit_reached",
        )
        usage = http.get("/usage").json()
    assert (usage["memories_stored"], usage["memories_limit"]) == (5, 5)


@pytest.mark.parametrize("plan", ["free"])
def test_free_plan_memory_limit_is_500(base_url, local_server, plan):
    with client(base_url, local_server.create_key(plan=plan)) as http:
        for n in range(5):
            items = [{"content": f"memory {n}-{i}"} for i in range(100)]
            assert (
                http.post(
                    "/memories/batch", json={"user_id": "u", "agent_id": "a", "items": items}
                ).status_code
                == 201
            )
        assert_error(
            http.post("/memories", json={"content": "501st", "user_id": "u", "agent_id": "a"}),
            403,
            "memory_limit_reached",
        )
        assert http.get("/usage").json()["memories_stored"] == 500
