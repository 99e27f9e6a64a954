"""Isolation: another account's remember and recall latency while an attacker runs the worst
requests a free-plan key can send, against the same figures unloaded.

The server runs in its own process. A victim account (300 memories) remembers and recalls
one request at a time; its p50/p99 are measured first alone, then while the attacker (a
free-plan account holding 500 memories of ~14 KB metadata, 1,100 keys each) sends, from
several connections at once, until its daily quota is spent or the phase ends:

- ``GET /v1/memories`` with 64 filters on the keys each object holds last;
- ``POST /v1/batch`` of 20 such lists, and of 30 plain lists of limit 100 (the answer
  amplification attack);
- a recall with the same 64 filters;

and holds 200 connections with half-sent request headers. The target: p99 under attack at
most 3x the unloaded p99. Also reported: what the attacker's requests got (their statuses)
and the server's RSS before and after.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx

from memlayer_integrations import MemLayerClient

from ._harness import Context, md_table, summarize_ms, verdict
from ._serve import child_server
from ._text import TextGenerator

NAME = "isolation"
TITLE = "Isolation under attack"

HEAVY = {f"k{i}": i for i in range(1100)}
FILTERS = {f"k{1099 - i}": {"$gte": 0} for i in range(64)}
TARGET_RATIO = 3.0


def _victim_round(client: MemLayerClient, fresh: list[str], queries: list[str], n: int) -> dict:
    timings: dict[str, list[float]] = {"remember": [], "recall": []}
    for i in range(n):
        start = time.perf_counter()
        client.remember(fresh[i % len(fresh)], user_id="victim", agent_id="bot")
        timings["remember"].append(time.perf_counter() - start)
        start = time.perf_counter()
        client.recall(queries[i % len(queries)], user_id="victim", limit=10)
        timings["recall"].append(time.perf_counter() - start)
    return {op: summarize_ms(t) for op, t in timings.items()}


def _attack_requests() -> list[tuple[str, str, dict[str, Any]]]:
    listing = {"op": "list", "user_id": "a", "filters": FILTERS, "limit": 100}
    return [
        ("GET", "/memories", {"params": {"user_id": "a", "filters": json.dumps(FILTERS)}}),
        ("POST", "/batch", {"json": {"operations": [listing] * 20}}),
        (
            "POST",
            "/batch",
            {"json": {"operations": [{"op": "list", "user_id": "a", "limit": 100}] * 30}},
        ),
        (
            "POST",
            "/memories/search",
            {"json": {"query": "heavy", "user_id": "a", "filters": FILTERS, "limit": 100}},
        ),
    ]


class _Attacker:
    """Worst requests from ``workers`` connections, and half-open connections, until stopped."""

    def __init__(self, url: str, key: str, workers: int, half_open: int) -> None:
        self.url, self.key = url, key
        self.stop = threading.Event()
        self.statuses: dict[str, int] = {}
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(workers)]
        self._half_open = half_open
        self._sockets: list[socket.socket] = []
        self._ready = threading.Barrier(workers + 1)  # every worker connected, then measure

    def _run(self, worker: int) -> None:
        requests = _attack_requests()
        with httpx.Client(
            base_url=self.url + "/v1", headers={"X-API-Key": self.key}, timeout=60
        ) as http:
            i = worker
            self._ready.wait()
            while True:  # at least one request each, however short the measured phase
                method, path, kwargs = requests[i % len(requests)]
                i += 1
                response = http.request(method, path, **kwargs)
                code = response.json()["error"]["code"] if response.status_code >= 400 else ""
                status = f"{response.status_code} {code}".strip()
                with self._lock:
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                if code == "daily_quota_exceeded" or self.stop.is_set():  # day spent, or done
                    return

    def __enter__(self) -> _Attacker:
        host, port = self.url.removeprefix("http://").split(":")
        for _ in range(self._half_open):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
            self._sockets.append(sock)
        for t in self._threads:
            t.start()
        self._ready.wait(timeout=60)  # the attack is under way before the victim is timed
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self._threads:
            t.join()
        for sock in self._sockets:
            sock.close()


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.pick(10, 60, 300)
    attacker_memories = ctx.pick(40, 200, 500)
    workers = ctx.pick(2, 4, 4)
    half_open = ctx.pick(20, 200, 200)
    gen = TextGenerator(seed=14)
    corpus, fresh = gen.memories(300), gen.memories(n)
    queries = gen.queries(100, corpus)

    with child_server(keys=1, plans=("free",)) as server:
        victim_key, attacker_key = server.keys
        with (
            MemLayerClient(api_key=victim_key, base_url=server.url, timeout=120) as victim,
            MemLayerClient(api_key=attacker_key, base_url=server.url, timeout=120) as attacker,
        ):
            for i in range(0, len(corpus), 100):
                victim.remember_many(corpus[i : i + 100], user_id="victim", agent_id="bot")
            for i in range(0, attacker_memories, 60):
                items = [
                    {"content": f"heavy memory {j}", "metadata": HEAVY}
                    for j in range(i, min(i + 60, attacker_memories))
                ]
                attacker.remember_many(items, user_id="a", agent_id="bot")
            rss_before = server.rss_mib()
            unloaded = _victim_round(victim, fresh, queries, n)
            with _Attacker(server.url, attacker_key, workers, half_open) as attack:
                loaded = _victim_round(victim, fresh, queries, n)
            statuses = dict(sorted(attack.statuses.items()))
            rss_after = server.rss_mib()
    ratios = {
        op: round(loaded[op]["p99_ms"] / max(unloaded[op]["p99_ms"], 1e-9), 2) for op in loaded
    }
    return {
        "victim_requests_per_phase": 2 * n,
        "attacker_memories": attacker_memories,
        "attacker_workers": workers,
        "half_open_connections": half_open,
        "unloaded": unloaded,
        "under_attack": loaded,
        "p99_ratio": ratios,
        "attacker_statuses": statuses,
        "server_rss_before_mib": rss_before,
        "server_rss_after_mib": rss_after,
    }


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    worst = max(result["p99_ratio"].values())
    return [
        {
            "target": f"another account's p99 under attack at most {TARGET_RATIO:g}x unloaded",
            "measured": ", ".join(
                f"{op} p99 {result['unloaded'][op]['p99_ms']:.1f} -> "
                f"{result['under_attack'][op]['p99_ms']:.1f} ms ({ratio:g}x)"
                for op, ratio in result["p99_ratio"].items()
            ),
            "verdict": verdict(worst <= TARGET_RATIO),
        }
    ]


def render(result: dict[str, Any]) -> str:
    rows = [
        [
            op,
            result["unloaded"][op]["p50_ms"],
            result["unloaded"][op]["p99_ms"],
            result["under_attack"][op]["p50_ms"],
            result["under_attack"][op]["p99_ms"],
            result["p99_ratio"][op],
        ]
        for op in result["unloaded"]
    ]
    table = md_table(
        ["victim op", "p50 ms", "p99 ms", "p50 ms attacked", "p99 ms attacked", "p99 ratio"],
        rows,
    )
    return "\n".join(
        [
            f"Server in its own process. The victim sends {result['victim_requests_per_phase']} "
            "requests per phase, one at a time; the attacker (free plan, "
            f"{result['attacker_memories']} memories of 1,100 metadata keys) sends the worst "
            f"lists, batches and recalls from {result['attacker_workers']} connections and "
            f"holds {result['half_open_connections']} half-sent requests. Attacker answers: "
            + ", ".join(f"{k}: {v}" for k, v in result["attacker_statuses"].items())
            + f". Server RSS {result['server_rss_before_mib']} -> "
            f"{result['server_rss_after_mib']} MiB.",
            "",
            table,
        ]
    )
