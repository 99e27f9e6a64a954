"""The MCP server: what a tool call costs over the bare client call it makes, and how long
``memlayer mcp`` takes to start.

Each tool is called through a real MCP session (the SDK's client and the server connected
by in-memory streams, so the figure is the protocol's and the server's own work: JSON-RPC,
argument validation, formatting the answer) alternately with the client calls it makes, on
the same async client and embedded server. Requests are counted at the transport. The start
figure is a ``memlayer mcp`` subprocess over stdio, from spawn to an answered
``list_tools``: it is what a client that starts the server per session waits.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from ._harness import AsyncCountingTransport, Context, md_table, verdict
from ._text import TextGenerator

NAME = "mcp"
TITLE = "MCP server"

USER = "user_mcp"
AGENT = "assistant"
#: A tool call may cost at most this much more than the client calls it makes (median): a
#: model's turn around it takes seconds, so a few milliseconds of protocol are noise there.
TARGET_OVERHEAD_MS = 5.0
#: Requests a tool call may send: one each, and forget two (it checks the scope first).
EXPECTED_REQUESTS = {"remember": 1, "recall": 1, "list_memories": 1, "forget": 2}


async def _timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return time.perf_counter() - t0


async def _measure(ctx: Context, iterations: int, budget_s: float) -> dict[str, Any]:
    from mcp.shared.memory import create_connected_server_and_client_session

    from memlayer_integrations import AsyncMemLayerClient, Op
    from memlayer_integrations.mcp import create_server

    gen = TextGenerator(seed=23)
    texts = gen.memories(200)
    queries = list(dict.fromkeys(gen.queries(300, texts)))
    counter: Counter[str] = Counter()
    http = httpx.AsyncClient(transport=AsyncCountingTransport(httpx.AsyncHTTPTransport(), counter))
    client = AsyncMemLayerClient(api_key=ctx.new_key(), base_url=ctx.server.url, http_client=http)
    try:
        stored = await client.remember_many(texts[:100], user_id=USER, agent_id=AGENT)
        # Each round's forget pair deletes what its remember pair stored, so the scope keeps
        # its size (and recall its cost) however many rounds run.
        doomed: list[str] = []
        server = create_server(client, user_id=USER, agent_id=AGENT)
        times: dict[str, dict[str, list[float]]] = {}
        requests: dict[str, dict[str, int]] = {}
        async with create_connected_server_and_client_session(server) as session:

            def pair(name: str, i: int) -> dict[str, Callable[[], Awaitable[Any]]]:
                q = queries[i % len(queries)]
                if name == "remember":
                    # Two texts: the same text in the same scope would be one memory.
                    text = f"{texts[i % len(texts)]} ({i}, bare)"
                    tool_text = f"{texts[i % len(texts)]} ({i}, tool)"

                    async def tool_remember() -> None:
                        result = await session.call_tool("remember", {"text": tool_text})
                        assert result.structuredContent is not None, result
                        doomed.append(result.structuredContent["memory"]["id"])

                    async def bare_remember() -> None:
                        memory = await client.remember(text, user_id=USER, agent_id=AGENT)
                        doomed.append(memory.id)

                    return {"tool": tool_remember, "bare": bare_remember}
                if name == "recall":
                    return {
                        "tool": lambda: session.call_tool("recall", {"query": q}),
                        "bare": lambda: client.recall(q, user_id=USER, agent_id=AGENT),
                    }
                if name == "list_memories":
                    return {
                        "tool": lambda: session.call_tool("list_memories", {}),
                        "bare": lambda: client.batch(
                            [Op.list(user_id=USER, agent_id=AGENT, limit=20)]
                        ),
                    }
                tool_id, bare_id = doomed.pop(), doomed.pop()

                async def bare_forget() -> None:
                    # What the tool sends: the scope check, then the delete.
                    await client.get(bare_id)
                    await client.forget(bare_id)

                return {
                    "tool": lambda: session.call_tool("forget", {"memory_id": tool_id}),
                    "bare": bare_forget,
                }

            names = list(EXPECTED_REQUESTS)
            for name in names:
                times[name] = {"tool": [], "bare": []}
                requests[name] = {"tool": 0, "bare": 0}
            for i in range(2):  # warm up both paths
                for name in ("remember", "recall", "list_memories"):
                    calls = pair(name, i)
                    await calls["tool"]()
                    await calls["bare"]()
            deadline = time.perf_counter() + budget_s
            done = 0
            for i in range(iterations):
                if time.perf_counter() > deadline or len(doomed) < 2:
                    break
                done += 1
                for name in names:
                    calls = pair(name, i)
                    # Alternate the order so drifts of the machine hit both paths alike.
                    for which in ("tool", "bare") if i % 2 else ("bare", "tool"):
                        before = sum(counter.values())
                        times[name][which].append(await _timed(calls[which]))
                        requests[name][which] += sum(counter.values()) - before
        rows = []
        for name in names:
            tool_ms = statistics.median(times[name]["tool"]) * 1000
            bare_ms = statistics.median(times[name]["bare"]) * 1000
            rows.append(
                {
                    "tool": name,
                    "iterations": done,
                    "tool_median_ms": round(tool_ms, 4),
                    "bare_median_ms": round(bare_ms, 4),
                    "overhead_ms": round(tool_ms - bare_ms, 4),
                    "requests_per_tool_call": round(requests[name]["tool"] / done, 3),
                    "requests_per_bare_call": round(requests[name]["bare"] / done, 3),
                }
            )
        return {"rows": rows, "memories_in_scope": len(stored)}
    finally:
        await client.aclose()


async def _start_seconds(ctx: Context) -> float:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLAYER_")}
    env.update(MEMLAYER_API_KEY=ctx.new_key(), MEMLAYER_BASE_URL=ctx.server.url)
    args = ["-m", "memlayer_integrations.cli", "mcp", "--user-id", USER, "--agent-id", AGENT]
    params = StdioServerParameters(command=sys.executable, args=args, env=env)
    t0 = time.perf_counter()
    with anyio.fail_after(120):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            await session.list_tools()
            return time.perf_counter() - t0


def run(ctx: Context) -> dict[str, Any]:
    iterations = ctx.pick(4, 60, 300)
    budget_s = ctx.pick(10.0, 15.0, 25.0)  # stop early on a slow machine
    starts = ctx.pick(1, 2, 3)
    result: dict[str, Any] = anyio.run(_measure, ctx, iterations, budget_s)
    seconds = [anyio.run(_start_seconds, ctx) for _ in range(starts)]
    result["start_median_s"] = round(statistics.median(seconds), 3)
    result["starts"] = starts
    result["iterations_planned"] = iterations
    result["budget_s"] = budget_s
    return result


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    worst = max(result["rows"], key=lambda r: r["overhead_ms"])
    counts_ok = all(
        r["requests_per_tool_call"] == EXPECTED_REQUESTS[r["tool"]] for r in result["rows"]
    )
    counts = ", ".join(f"{r['tool']} {r['requests_per_tool_call']:g}" for r in result["rows"])
    return [
        {
            "target": f"tool call - bare client call, median <= {TARGET_OVERHEAD_MS:g} ms",
            "measured": f"worst {worst['overhead_ms']:.3f} ms ({worst['tool']})",
            "verdict": verdict(worst["overhead_ms"] <= TARGET_OVERHEAD_MS),
        },
        {
            "target": "requests per tool call: 1, forget 2",
            "measured": counts,
            "verdict": verdict(counts_ok),
        },
    ]


def render(result: dict[str, Any]) -> str:
    table = md_table(
        [
            "tool",
            "iterations",
            "tool call median ms",
            "bare client median ms",
            "overhead ms",
            "requests per call",
        ],
        [
            [
                r["tool"],
                r["iterations"],
                r["tool_median_ms"],
                r["bare_median_ms"],
                r["overhead_ms"],
                f"{r['requests_per_tool_call']:g} / {r['requests_per_bare_call']:g}",
            ]
            for r in result["rows"]
        ],
        digits=3,
    )
    return "\n".join(
        [
            f"{result['memories_in_scope']} memories in the scope, embedded server. Each tool is "
            "called through an MCP session (the SDK's client, in-memory streams) alternately "
            "with the client calls it makes (for forget: get, then forget), order swapped every "
            'iteration; "requests per call" (tool / bare) is counted at the transport. Up to '
            f"{result['iterations_planned']:,} iterations or {result['budget_s']:g} s.",
            "",
            table,
            "",
            f"`memlayer mcp` over stdio, from spawn to an answered `list_tools`: median "
            f"{result['start_median_s']:.2f} s over {result['starts']} start(s).",
        ]
    )
