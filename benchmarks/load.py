"""Load test: a bounded mixed load across many users, with latencies, errors and a tally.

Workers remember, recall, list and forget for many users at once against a server in its own
process. Nothing is retried, so every failure is counted. At the end the account's
``memories_stored`` must equal what was acknowledged as stored minus what was acknowledged
as forgotten: a server that lost or doubled a write under load fails that check.
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

NAME = "load"
TITLE = "Load test (mixed operations, many users)"

AGENT = "assistant"
MIX = (("remember", 0.35), ("recall", 0.40), ("list", 0.15), ("forget", 0.10))


def run(ctx: Context) -> dict[str, Any]:
    workers = ctx.pick(4, 16, 16)
    users = ctx.pick(10, 100, 500)
    seconds = ctx.pick(0.5, 1.5, 20.0)
    max_ops = ctx.pick(200, 3_000, 20_000)

    gen = TextGenerator(seed=99)
    texts = gen.memories(3_000)
    questions = gen.queries(500, texts)
    user_ids = [f"user_{i:04d}" for i in range(users)]
    rng = random.Random(5)
    names = [n for n, _ in MIX]
    weights = [w for _, w in MIX]
    # Ids each user has stored and not yet forgotten; forget picks from them.
    live: dict[str, list[str]] = {u: [] for u in user_ids}
    tally = {"stored": 0, "forgotten": 0}

    async def remember(c: Any, user: str) -> None:
        memory = await c.remember(rng.choice(texts), user_id=user, agent_id=AGENT)
        live[user].append(memory.id)
        tally["stored"] += 1

    async def forget(c: Any, user: str) -> None:
        ids = live[user]
        memory_id = ids.pop(rng.randrange(len(ids)))
        try:
            await c.forget(memory_id)
        except BaseException:
            ids.append(memory_id)  # not acknowledged: still counts as live
            raise
        tally["forgotten"] += 1

    async def list_page(c: Any, user: str) -> None:
        async for _ in c.list_memories(user_id=user, page_size=20):
            break

    def step(worker: int, c: Any) -> tuple[str, Any]:
        user = rng.choice(user_ids)
        op = rng.choices(names, weights)[0]
        if op == "forget" and not live[user]:
            op = "remember"
        if op == "remember":
            return op, remember(c, user)
        if op == "forget":
            return op, forget(c, user)
        if op == "list":
            return op, list_page(c, user)
        return op, c.recall(rng.choice(questions), user_id=user, limit=10)

    with child_server(keys=1) as server:
        key = server.keys[0]
        row = asyncio.run(
            drive(
                server.url,
                key,
                workers,
                step,
                seconds=seconds,
                max_ops=max_ops,
                server_pid=server.pid,
            )
        )
        with MemLayerClient(api_key=key, base_url=server.url) as client:
            usage = client.usage()
        row["server_rss_mib"] = server.rss_mib()
    row["users"] = users
    row["seconds_limit"] = seconds
    row["max_requests"] = max_ops
    row["mix"] = dict(MIX)
    row["acknowledged_stored"] = tally["stored"]
    row["acknowledged_forgotten"] = tally["forgotten"]
    row["server_memories_stored"] = usage.memories_stored
    row["tally_matches"] = usage.memories_stored == tally["stored"] - tally["forgotten"]
    return row


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "target": "no errors; stored count matches acknowledged writes",
            "measured": f"{result['errors']} errors, p50 {result['latency']['p50_ms']:.1f} ms, "
            f"p99 {result['latency']['p99_ms']:.1f} ms; tally "
            f"{'matches' if result['tally_matches'] else 'DIFFERS'}",
            "verdict": verdict(result["errors"] == 0 and result["tally_matches"]),
        }
    ]


def render(result: dict[str, Any]) -> str:
    ops = result["by_operation"]
    table = md_table(
        ["operation", "requests", "p50 ms", "p99 ms", "max ms"],
        [[name, s["n"], s["p50_ms"], s["p99_ms"], s["max_ms"]] for name, s in ops.items()]
        + [
            [
                "all",
                result["latency"]["n"],
                result["latency"]["p50_ms"],
                result["latency"]["p99_ms"],
                result["latency"]["max_ms"],
            ]
        ],
    )
    mix = ", ".join(f"{k} {v:.0%}" for k, v in result["mix"].items())
    errors = ", ".join(f"{k}: {v}" for k, v in result["errors_by_kind"].items()) or "none"
    return "\n".join(
        [
            f"{result['workers']} concurrent clients over {result['users']} users ({mix}), server in "
            f"its own process, for {result['seconds_limit']:g} s or {result['max_requests']:,} requests; "
            f"no retries. {result['requests']:,} requests in {result['seconds']:g} s = "
            f"{result['requests_per_s']:,.0f} req/s.",
            "",
            table,
            "",
            f"Errors: {errors}. Acknowledged stored {result['acknowledged_stored']:,}, forgotten "
            f"{result['acknowledged_forgotten']:,}; the server reports {result['server_memories_stored']:,} "
            f"stored ({'matches' if result['tally_matches'] else 'does NOT match'}). Server RSS "
            f"{result['server_rss_mib']} MiB; CPU (% of one core) server {result['server_cpu_percent']}, "
            f"load generator {result['load_cpu_percent']}.",
        ]
    )
