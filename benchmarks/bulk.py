"""Bulk import: ``remember_many`` over thousands of memories in one call.

Before, a caller storing more than 100 memories had to cut them into requests of 100 (the
contract's largest ``remember_many``), each one request against the daily quota. Now one
call packs them into ``/batch`` requests of up to 1,000 (``BULK_ITEMS_PER_REQUEST``, fewer
if the 1 MiB body limit needs). This
measures both ways on the same texts, each into its own user: the requests that reached
the wire, the time, and memories per second. The two ways alternate (round 1: old then
new, round 2: new then old) so neither always runs on a warmer database.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from memlayer_integrations._constants import BULK_ITEMS_PER_REQUEST

from ._harness import Context, md_table, verdict
from ._text import TextGenerator

NAME = "bulk"
TITLE = "Bulk import with remember_many"

AGENT = "importer"
OLD_BATCH = 100


def _old_way(client: Any, texts: list[str], user: str) -> None:
    for i in range(0, len(texts), OLD_BATCH):
        client.remember_many(texts[i : i + OLD_BATCH], user_id=user, agent_id=AGENT)


def _new_way(client: Any, texts: list[str], user: str) -> None:
    client.remember_many(texts, user_id=user, agent_id=AGENT)


def _measure(ctx: Context, way: Any, texts: list[str], user: str) -> dict[str, Any]:
    counter: Counter = Counter()
    client = ctx.client(counter=counter)
    start = time.perf_counter()
    way(client, texts, user)
    seconds = time.perf_counter() - start
    requests = sum(counter.values())
    stored = sum(s.memories for s in client.list_scopes(user_id=user))
    return {
        "memories": len(texts),
        "stored": stored,
        "requests": requests,
        "seconds": round(seconds, 3),
        "memories_per_s": round(len(texts) / seconds, 1) if seconds else None,
    }


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.pick(tiny=300, quick=2_000, full=10_000)
    texts = TextGenerator(seed=20).memories(n)
    rounds = []
    for r, order in enumerate((("old", "new"), ("new", "old"))):
        row: dict[str, Any] = {}
        for way in order:
            fn = _old_way if way == "old" else _new_way
            row[way] = _measure(ctx, fn, texts, f"{way}_{r}")
        rounds.append(row)

    def best(way: str) -> dict[str, Any]:
        return min((row[way] for row in rounds), key=lambda m: m["seconds"])

    return {
        "memories": n,
        "average_chars": round(sum(len(t) for t in texts) / n, 1),
        "rounds": rounds,
        "old": best("old"),
        "new": best("new"),
    }


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    old, new = result["old"], result["new"]
    n = result["memories"]
    wanted = -(-n // BULK_ITEMS_PER_REQUEST)  # short memories: the item cap decides
    return [
        {
            "target": f"{n:,} short memories in at most {wanted} request(s), all stored",
            "measured": f"{new['requests']} request(s), {new['stored']:,} stored "
            f"(100 per request: {old['requests']})",
            "verdict": verdict(new["requests"] <= wanted and new["stored"] == n),
        },
        {
            "target": "one call is not slower than requests of 100",
            "measured": f"{new['memories_per_s']:,} vs {old['memories_per_s']:,} memories/s",
            "verdict": verdict(new["seconds"] <= old["seconds"] * 1.1),
        },
    ]


def render(result: dict[str, Any]) -> str:
    table = md_table(
        ["way", "requests", "seconds (best of 2)", "memories/s"],
        [
            [
                label,
                result[way]["requests"],
                result[way]["seconds"],
                result[way]["memories_per_s"],
            ]
            for way, label in (("old", "requests of 100"), ("new", "one remember_many call"))
        ],
    )
    return "\n".join(
        [
            f"{result['memories']:,} seeded sentences (about {result['average_chars']} characters "
            "each) stored under one user, each way into its own user; requests counted at the "
            "HTTP transport.",
            "",
            table,
        ]
    )
