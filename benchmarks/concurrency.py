"""Concurrency: throughput and tail latency with 1, 8 and 32 concurrent async clients.

The server runs in its own process (see ``_serve.py``) with a pre-filled account; each
client is an :class:`AsyncMemLayerClient` on its own loopback connection, issuing a mix of
three recalls to one remember, back to back, until a time limit or a request count is
reached. Each of the run's backends (``_backends.py``) gets the same load, and the rows
are reported side by side.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from memlayer_integrations import MemLayerClient

from ._drive import drive
from ._harness import Context, md_table, verdict
from ._serve import child_server
from ._text import TextGenerator

NAME = "concurrency"
TITLE = "Concurrency"

AGENT = "assistant"
RECALL_SHARE = 0.75


def run(ctx: Context) -> dict[str, Any]:
    levels = ctx.pick([1, 4], [1, 8, 32], [1, 8, 32])
    seconds = ctx.pick(0.4, 0.8, 8.0)
    max_ops = ctx.pick(200, 3_000, 40_000)
    users, per_user = ctx.pick((2, 50), (10, 100), (20, 500))

    gen = TextGenerator(seed=32)
    user_ids = [f"user_{i:03d}" for i in range(users)]
    corpus = {u: gen.memories(per_user) for u in user_ids}
    queries = {u: gen.queries(200, corpus[u]) for u in user_ids}
    fresh = gen.memories(2_000)

    def step_for(rng: random.Random) -> Any:
        def step(worker: int, c: Any) -> tuple[str, Any]:
            user = user_ids[worker % users]
            if rng.random() < RECALL_SHARE:
                return "recall", c.recall(rng.choice(queries[user]), user_id=user, limit=10)
            return "remember", c.remember(rng.choice(fresh), user_id=user, agent_id=AGENT)

        return step

    rows = []
    rss_before: dict[str, float] = {}
    for backend in ctx.backends.names:
        with child_server(keys=1, db=ctx.backends.fresh(backend)) as server:
            key = server.keys[0]
            with MemLayerClient(api_key=key, base_url=server.url) as client:
                for u in user_ids:
                    for i in range(0, per_user, 100):
                        client.remember_many(corpus[u][i : i + 100], user_id=u, agent_id=AGENT)
            rss_before[backend] = server.rss_mib()
            for level in levels:
                row = asyncio.run(
                    drive(
                        server.url,
                        key,
                        level,
                        step_for(random.Random(level)),
                        seconds=seconds,
                        max_ops=max_ops,
                        server_pid=server.pid,
                    )
                )
                row["backend"] = backend
                row["server_rss_mib"] = server.rss_mib()
                rows.append(row)
    return {
        "rows": rows,
        "backends": list(ctx.backends.names),
        "preloaded_memories": users * per_user,
        "users": users,
        "seconds_per_level": seconds,
        "max_requests_per_level": max_ops,
        "recall_share": RECALL_SHARE,
        "server_rss_before_mib": rss_before,
    }


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for backend in result["backends"]:
        rows = [r for r in result["rows"] if r["backend"] == backend]
        errors = sum(r["errors"] for r in rows)
        top = rows[-1]
        out.append(
            {
                "target": f"{backend}: no errors under concurrent load",
                "measured": f"{errors} errors; {top['requests_per_s']:,.0f} req/s, p99 "
                f"{top['latency']['p99_ms']:.1f} ms at {top['workers']} clients",
                "verdict": verdict(errors == 0),
            }
        )
    return out


def render(result: dict[str, Any]) -> str:
    table = md_table(
        [
            "backend",
            "clients",
            "requests",
            "req/s",
            "p50 ms",
            "p99 ms",
            "recall p99 ms",
            "remember p99 ms",
            "errors",
            "server CPU %",
            "load CPU %",
            "server RSS MiB",
        ],
        [
            [
                r["backend"],
                r["workers"],
                r["requests"],
                r["requests_per_s"],
                r["latency"]["p50_ms"],
                r["latency"]["p99_ms"],
                r["by_operation"].get("recall", {}).get("p99_ms"),
                r["by_operation"].get("remember", {}).get("p99_ms"),
                r["errors"],
                r["server_cpu_percent"],
                r["load_cpu_percent"],
                r["server_rss_mib"],
            ]
            for r in result["rows"]
        ],
    )
    return "\n".join(
        [
            f"Server in its own process, {result['preloaded_memories']:,} memories over "
            f"{result['users']} users; each client recalls (limit 10) or remembers "
            f"({result['recall_share']:.0%} recalls), back to back, for "
            f"{result['seconds_per_level']:g} s or {result['max_requests_per_level']:,} requests per "
            "level. The clients share one event loop in the benchmark process; no retries. CPU is "
            "in % of one core, for the server process and for the load-generating process (on "
            "PostgreSQL, the database server's processes are not counted in either). Each backend "
            "gets a fresh database and the same load.",
            "",
            table,
        ]
    )
