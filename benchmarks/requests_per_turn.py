"""Requests per chat turn: what each adapter costs in MemLayer requests, counted on the wire.

A scripted 20-turn conversation runs through every adapter in the host it is made for, with
a deterministic model (so only memory traffic is measured), with no tool call and with 3
tool rounds per turn, in the default mode and in economy mode. The clients handed to the
adapters send through a transport that counts every HTTP request, so retries, pages and
batches are all counted.

"Steady state" is the median of turns 2 to 20 (turn 1 has nothing queued yet); "total"
includes what is sent when the adapter is closed (economy mode flushes its queue then).
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from typing import Any

import httpx

from memlayer_integrations import AsyncMemLayerClient

from ._harness import AsyncCountingTransport, Context, md_table, verdict
from ._scenarios import MEMORY_TOKEN_LIMIT, SCENARIOS, Counted
from ._text import TextGenerator

NAME = "requests_per_turn"
TITLE = "Requests per chat turn"

OTHERS = (
    "mem0's LlamaIndex memory makes 3 per turn in a chat engine and 4 or more in an agent; "
    "Zep's LangGraph helpers 2 to 3; a recall hook that runs on every model call makes k+1 "
    "with k tool rounds"
)


def _script(turns: int) -> list[str]:
    gen = TextGenerator(seed=2020)
    said: list[str] = []
    lines = []
    for i in range(turns):
        if i % 2 == 0:
            fact = gen.memory()
            said.append(fact)
            lines.append(f"Please keep in mind: {fact}")
        else:
            lines.append(gen.query(about=gen.choice(said)))
    return lines


def _measure(
    ctx: Context, scenario: Any, tool_rounds: int, economy: bool, script: list[str]
) -> dict[str, Any]:
    counter: Counter = Counter()
    key = ctx.new_key()
    # Async connections belong to the event loop that opened them: a scenario that uses the
    # async client closes it on its own loop; one that never did leaves nothing open.
    async_http = httpx.AsyncClient(
        transport=AsyncCountingTransport(httpx.AsyncHTTPTransport(), counter)
    )
    counted = Counted(
        client=ctx.client(key, counter=counter),
        async_client=AsyncMemLayerClient(
            api_key=key, base_url=ctx.server.url, http_client=async_http
        ),
        async_http=async_http,
        counter=counter,
    )
    per_turn = scenario.run(counted, script, tool_rounds=tool_rounds, economy=economy)
    if not async_http.is_closed:
        asyncio.run(async_http.aclose())
    closed_total = sum(counter.values())
    total_turns = sum(per_turn)
    steady = per_turn[1:] or per_turn
    return {
        "framework": scenario.framework,
        "adapter": scenario.adapter,
        "host": scenario.host,
        "io": scenario.io,
        "tool_rounds": tool_rounds,
        "economy": economy,
        "turns": len(per_turn),
        "per_turn": per_turn,
        "steady_state": statistics.median(steady),
        "max_per_turn": max(per_turn),
        "flush": closed_total - total_turns,
        "total": closed_total,
        "total_per_turn": round(closed_total / len(per_turn), 3),
        "routes": dict(sorted(counter.items())),
    }


def run(ctx: Context) -> dict[str, Any]:
    turns = ctx.pick(3, 6, 20)
    script = _script(turns)
    rows = []
    for scenario in SCENARIOS:
        rounds_options = (0, 3) if scenario.has_tools else (0,)
        for tool_rounds in rounds_options:
            for economy in (False, True) if scenario.has_economy else (False,):
                rows.append(_measure(ctx, scenario, tool_rounds, economy, script))
    return {
        "turns": turns,
        "rows": rows,
        "others": OTHERS,
        "memory_token_limit": MEMORY_TOKEN_LIMIT,
    }


def _label(row: dict[str, Any]) -> str:
    return f"{row['adapter']} in {row['host']}, {row['tool_rounds']} tool rounds"


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    default = [r for r in result["rows"] if not r["economy"]]
    economy = [r for r in result["rows"] if r["economy"]]
    worst = max(default, key=lambda r: r["max_per_turn"])
    over = sorted({_label(r) for r in default if r["max_per_turn"] > 2})
    measured = f"at most {worst['max_per_turn']} in a turn"
    measured += (
        f" ({'; '.join(over)}); every other run <= 2" if over else f" over {len(default)} runs"
    )
    out = [
        {
            "target": "default mode: <= 2 requests per turn, whatever the tool rounds",
            "measured": measured,
            "verdict": verdict(not over),
        }
    ]
    if economy:
        worst_steady = max(r["steady_state"] for r in economy)
        out.append(
            {
                "target": "economy mode: 1 request per turn in steady state",
                "measured": f"steady state at most {worst_steady:g} over {len(economy)} runs",
                "verdict": verdict(worst_steady <= 1),
            }
        )
    return out


def render(result: dict[str, Any]) -> str:
    rows = [
        [
            r["framework"],
            f"{r['adapter']} in {r['host']}",
            r["io"],
            r["tool_rounds"],
            "economy" if r["economy"] else "default",
            r["steady_state"],
            r["max_per_turn"],
            r["flush"],
            r["total"],
            r["total_per_turn"],
        ]
        for r in result["rows"]
    ]
    table = md_table(
        [
            "framework",
            "adapter",
            "io",
            "tool rounds",
            "mode",
            "per turn (steady)",
            "max in a turn",
            "at close",
            "total",
            "total / turn",
        ],
        rows,
    )
    uneven = [
        f"- {_label(r)}: {', '.join(str(n) for n in r['per_turn'])}"
        for r in result["rows"]
        if len(set(r["per_turn"])) > 1
    ]
    return "\n".join(
        [
            f"A scripted {result['turns']}-turn conversation; a deterministic model calls a dummy tool "
            "the given number of times per turn, then answers. Requests counted at the HTTP transport "
            'of the clients given to each adapter. "At close" is what closing the adapter sends '
            "(economy mode's last queued write). `MemLayerMemoryBlock` runs in "
            f"`Memory.from_defaults(token_limit={result['memory_token_limit']})`, small enough that "
            "messages flow from the short-term queue into the block during the conversation.",
            "",
            table,
            "",
            *(["Requests in each turn, where they vary:", "", *uneven, ""] if uneven else []),
            f"For comparison, from reading their code (not measured here): {result['others']}.",
        ]
    )
