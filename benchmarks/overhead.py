"""Adapter overhead: how much slower an adapter call is than the client call it wraps.

Each adapter call and its bare client call (same arguments, same client, same connection,
same embedded server) run alternately, in alternating order, many times; the report gives
the medians and their ratio. Both return the same memories (checked once), so the
difference is the adapter's own work: building the query, converting results into the
framework's objects.
"""

from __future__ import annotations

import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ._harness import Context, md_table, verdict
from ._text import TextGenerator

NAME = "overhead"
TITLE = "Adapter overhead"

USER = "user_overhead"
AGENT = "assistant"
LIMIT = 5
TARGET_RATIO = 1.05


def _pairs(client: Any) -> list[dict[str, Any]]:
    """(adapter call, bare call) pairs, each taking a query, plus how to compare results."""
    pairs = []

    from langchain_core.messages import HumanMessage

    from memlayer_integrations.langchain import MemLayerMiddleware, MemLayerRetriever

    retriever = MemLayerRetriever(client=client, user_id=USER, agent_id=AGENT, k=LIMIT)
    pairs.append(
        {
            "name": "MemLayerRetriever.invoke (LangChain)",
            "adapter": lambda q: retriever.invoke(q),
            "bare": lambda q: client.recall(q, user_id=USER, agent_id=AGENT, limit=LIMIT),
            "adapter_ids": lambda out: [d.metadata["id"] for d in out],
        }
    )

    middleware = MemLayerMiddleware(user_id=USER, agent_id=AGENT, client=client, k=LIMIT)
    pairs.append(
        {
            "name": "MemLayerMiddleware recall step (before_agent)",
            "adapter": lambda q: middleware.before_agent(
                {"messages": [HumanMessage(q, id="m1")]}, None
            ),
            "bare": lambda q: client.recall(q, user_id=USER, agent_id=AGENT, limit=LIMIT),
            "adapter_ids": lambda out: [r["memory"]["id"] for r in out["memlayer_recalled"]],
        }
    )

    from memlayer_integrations.llama_index import MemLayerMemory

    memory = MemLayerMemory(client=client, user_id=USER, agent_id=AGENT, k=LIMIT)
    pairs.append(
        {
            "name": "MemLayerMemory.get (LlamaIndex)",
            "adapter": lambda q: memory.get(input=q),
            "bare": lambda q: client.recall(q, user_id=USER, agent_id=AGENT, limit=LIMIT),
            "adapter_ids": _ids_in_messages,
        }
    )
    return pairs


def _time(fn: Callable[[str], Any], q: str) -> float:
    t0 = time.perf_counter()
    fn(q)
    return time.perf_counter() - t0


_MEMORY_ID = re.compile(r"\[(mem_[0-9a-f]{32})\]")


def _ids_in_messages(messages: list[Any]) -> list[str]:
    return [i for m in messages for i in _MEMORY_ID.findall(str(m.content or ""))]


def run(ctx: Context) -> dict[str, Any]:
    iterations = ctx.pick(6, 100, 1_500)
    budget_s = ctx.pick(10.0, 20.0, 90.0)  # stop early on a slow machine, keeping every pair
    warm_up = ctx.pick(2, 10, 20)
    stored = ctx.pick(100, 500, 500)
    gen = TextGenerator(seed=11)
    texts = gen.memories(stored)
    # Distinct queries, so no call can be answered from an adapter's per-query cache.
    queries = list(dict.fromkeys(gen.queries(300, texts)))
    counter: Counter = Counter()
    with ctx.client(counter=counter) as client:
        for i in range(0, stored, 100):
            client.remember_many(texts[i : i + 100], user_id=USER, agent_id=AGENT)
        pairs = _pairs(client)
        for pair in pairs:
            q = queries[0]
            bare_ids = [r.memory.id for r in pair["bare"](q)]
            pair["same"] = pair["adapter_ids"](pair["adapter"](q)) == bare_ids
            pair["times"] = {"adapter": [], "bare": []}
            pair["requests"] = {"adapter": 0, "bare": 0}
        for q in queries[:warm_up]:
            for pair in pairs:
                pair["adapter"](q)
                pair["bare"](q)
        # Round robin over the pairs, swapping the order within a pair every iteration, so
        # that drifts of the machine hit adapter and bare calls alike.
        deadline = time.perf_counter() + budget_s
        done = 0
        for i in range(iterations):
            if time.perf_counter() > deadline:
                break
            done += 1
            q = queries[i % len(queries)]
            for pair in pairs:
                order = ("adapter", "bare") if i % 2 else ("bare", "adapter")
                for which in order:
                    before = sum(counter.values())
                    pair["times"][which].append(_time(pair[which], q))
                    pair["requests"][which] += sum(counter.values()) - before
    rows = []
    for pair in pairs:
        a_med = statistics.median(pair["times"]["adapter"]) * 1000
        b_med = statistics.median(pair["times"]["bare"]) * 1000
        rows.append(
            {
                "call": pair["name"],
                "iterations": done,
                "adapter_median_ms": round(a_med, 4),
                "bare_median_ms": round(b_med, 4),
                "overhead_us": round((a_med - b_med) * 1000, 1),
                "ratio": round(a_med / b_med, 4),
                "requests_per_adapter_call": round(pair["requests"]["adapter"] / done, 3),
                "requests_per_bare_call": round(pair["requests"]["bare"] / done, 3),
                "same_results": pair["same"],
            }
        )
    return {
        "rows": rows,
        "memories_in_scope": stored,
        "limit": LIMIT,
        "iterations_planned": iterations,
        "budget_s": budget_s,
    }


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    worst = max(result["rows"], key=lambda r: r["ratio"])
    return [
        {
            "target": f"adapter / bare client median <= {TARGET_RATIO}",
            "measured": f"worst {worst['ratio']:.3f} ({worst['call']})",
            "verdict": verdict(worst["ratio"] <= TARGET_RATIO),
        }
    ]


def render(result: dict[str, Any]) -> str:
    table = md_table(
        [
            "call",
            "iterations",
            "adapter median ms",
            "bare client median ms",
            "overhead µs",
            "ratio",
            "requests per call",
            "same results",
        ],
        [
            [
                r["call"],
                r["iterations"],
                r["adapter_median_ms"],
                r["bare_median_ms"],
                r["overhead_us"],
                r["ratio"],
                f"{r['requests_per_adapter_call']:g} / {r['requests_per_bare_call']:g}",
                r["same_results"],
            ]
            for r in result["rows"]
        ],
        digits=3,
    )
    return "\n".join(
        [
            f"{result['memories_in_scope']} memories in the scope, recall limit {result['limit']}, "
            "embedded server; adapter and bare calls alternate (order swapped every iteration) on "
            'the same client, round robin over the three pairs. "requests per call" (adapter / bare) '
            'is counted at the transport; "same results" checks the adapter returned the memories '
            f"the bare call did. Up to {result['iterations_planned']:,} iterations or "
            f"{result['budget_s']:g} s.",
            "",
            table,
        ]
    )
