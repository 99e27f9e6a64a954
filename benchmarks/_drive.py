"""A bounded async load: N workers, each with its own client, until a deadline or a count.

Every call is timed and every failure is counted by operation and error class, never
retried (the clients are made with ``max_retries=0``) so the figures show what the server
did. Workers share one event loop in the load process; at high concurrency part of the
latency is that loop's queueing, which is also what an application would see.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import psutil

from memlayer_integrations import AsyncMemLayerClient, MemLayerError

from ._harness import summarize_ms

#: worker index, client -> (operation name, awaitable doing it)
Step = Callable[[int, AsyncMemLayerClient], tuple[str, Awaitable[Any]]]


def make_client(url: str, key: str) -> tuple[AsyncMemLayerClient, httpx.AsyncClient]:
    """A client that never retries, on its own connection (one worker = one application)."""
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
    client = AsyncMemLayerClient(
        api_key=key, base_url=url, http_client=http, max_retries=0, timeout=30.0
    )
    return client, http


def _cpu_seconds(process: psutil.Process) -> float:
    """CPU time of ``process`` and of its live children (``memlayer serve --workers``)."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = p.cpu_times()
            total += times.user + times.system
    return total


async def drive(
    url: str, key: str, workers: int, step: Step, *, seconds: float, max_ops: int, server_pid: int
) -> dict[str, Any]:
    """Run ``step`` in ``workers`` concurrent loops; return throughput, latencies, errors and
    the CPU used by the server process and by this (load) process, in % of one core."""
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: Counter = Counter()
    issued = 0
    pairs = [make_client(url, key) for _ in range(workers)]
    deadline = time.perf_counter() + seconds

    async def loop(index: int, client: AsyncMemLayerClient) -> None:
        nonlocal issued
        while issued < max_ops and time.perf_counter() < deadline:
            issued += 1
            name, awaitable = step(index, client)
            t0 = time.perf_counter()
            try:
                await awaitable
            except MemLayerError as exc:  # counted and reported: the point of a load test
                errors[f"{name}: {type(exc).__name__}"] += 1
            latencies[name].append(time.perf_counter() - t0)

    server, me = psutil.Process(server_pid), psutil.Process()
    cpu_start = (_cpu_seconds(server), _cpu_seconds(me))
    start = time.perf_counter()
    try:
        await asyncio.gather(*(loop(i, client) for i, (client, _) in enumerate(pairs)))
    finally:
        elapsed = time.perf_counter() - start
        cpu = (_cpu_seconds(server) - cpu_start[0], _cpu_seconds(me) - cpu_start[1])
        for _, http in pairs:
            await http.aclose()
    everything = [t for ts in latencies.values() for t in ts]
    return {
        "workers": workers,
        "requests": len(everything),
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(everything) / elapsed, 1),
        "latency": summarize_ms(everything),
        "by_operation": {name: summarize_ms(ts) for name, ts in sorted(latencies.items())},
        "server_cpu_percent": round(100 * cpu[0] / elapsed, 1),
        "load_cpu_percent": round(100 * cpu[1] / elapsed, 1),
        "errors": sum(errors.values()),
        "errors_by_kind": dict(errors),
    }
