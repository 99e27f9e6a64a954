"""Workers: requests per second from 32 clients on ``memlayer serve --workers 1`` and ``2``.

One database per backend of the run (``_backends.py``: SQLite, and PostgreSQL when there is
one), filled once; the server is the real command (uvicorn's supervisor and its worker
processes for ``--workers 2``), and the clients run the concurrency benchmark's mix (three
recalls to one remember) from this process. SQLite writes one transaction at a time across
all the processes, so a second process adds capacity for recalls, not for writes; PostgreSQL
writes of different accounts run at once (one account's still one at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from memlayer_integrations import MemLayerClient

from ._drive import drive
from ._harness import Context, md_table, verdict
from ._text import TextGenerator

NAME = "workers"
TITLE = "Worker processes"

AGENT = "assistant"
RECALL_SHARE = 0.75
#: The issue's target for two workers against one, at 32 clients.
TARGET_RATIO = 1.5
_START_TIMEOUT_S = 60.0


@contextlib.contextmanager
def _serve(db: str | Path, workers: int, log: Path) -> Iterator[tuple[str, int]]:
    """``memlayer serve --workers N`` on ``db``: yields its URL and pid once every worker
    has started."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLAYER_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "memlayer_integrations.cli", "serve"),
                *("--db", str(db), "--port", "0", "--workers", str(workers)),
                *("--no-access-log", "--no-console"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            text = log.read_text(errors="replace")
            found = re.findall(r"listening on (http://\S+)", text)
            if found and text.count("Application startup complete") >= workers:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"memlayer serve did not start:\n{text[-2000:]}")
            time.sleep(0.05)
        httpx.get(found[0] + "/v1/health").raise_for_status()
        yield found[0], proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _key(db: str | Path) -> str:
    from datetime import datetime, timezone

    from memlayer_integrations.server import Plan, keys
    from memlayer_integrations.server.backend import open_backend
    from memlayer_integrations.server.store import iso

    database = open_backend(db)
    try:
        with database.write() as conn:
            key, _ = keys.create_key(
                conn,
                plan_name="unlimited",
                plan=Plan(),
                name="bench",
                now=iso(datetime.now(timezone.utc)),
            )
    finally:
        database.close()
    return key


def run(ctx: Context) -> dict[str, Any]:
    clients = ctx.pick(4, 32, 32)
    seconds = ctx.pick(0.5, 2.0, 8.0)
    max_ops = ctx.pick(200, 5_000, 40_000)
    users, per_user = ctx.pick((2, 50), (10, 100), (20, 500))

    gen = TextGenerator(seed=15)
    user_ids = [f"user_{i:03d}" for i in range(users)]
    corpus = {u: gen.memories(per_user) for u in user_ids}
    queries = {u: gen.queries(200, corpus[u]) for u in user_ids}
    fresh = gen.memories(2_000)

    rows = []
    ratio: dict[str, float] = {}
    for backend in ctx.backends.names:
        with tempfile.TemporaryDirectory(prefix="memlayer-bench-workers-") as tmp:
            db = ctx.backends.fresh(backend) or Path(tmp) / "workers.db"
            key = _key(db)
            mine = []
            for workers in (1, 2):
                with _serve(db, workers, Path(tmp) / f"serve-{workers}.log") as (url, pid):
                    if workers == 1:
                        with MemLayerClient(api_key=key, base_url=url) as client:
                            for u in user_ids:
                                for i in range(0, per_user, 100):
                                    client.remember_many(
                                        corpus[u][i : i + 100], user_id=u, agent_id=AGENT
                                    )
                    rng = random.Random(workers)

                    def step(worker: int, c: Any, rng: random.Random = rng) -> tuple[str, Any]:
                        user = user_ids[worker % users]
                        if rng.random() < RECALL_SHARE:
                            found = c.recall(rng.choice(queries[user]), user_id=user, limit=10)
                            return "recall", found
                        return "remember", c.remember(
                            rng.choice(fresh), user_id=user, agent_id=AGENT
                        )

                    row = asyncio.run(
                        drive(
                            url,
                            key,
                            clients,
                            step,
                            seconds=seconds,
                            max_ops=max_ops,
                            server_pid=pid,
                        )
                    )
                    row["processes"] = workers
                    row["backend"] = backend
                    mine.append(row)
        ratio[backend] = round(mine[1]["requests_per_s"] / max(mine[0]["requests_per_s"], 1e-9), 2)
        rows += mine
    return {
        "rows": rows,
        "backends": list(ctx.backends.names),
        "clients": clients,
        "preloaded_memories": users * per_user,
        "seconds_per_level": seconds,
        "max_requests_per_level": max_ops,
        "recall_share": RECALL_SHARE,
        "ratio": ratio,
    }


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    errors = sum(r["errors"] for r in result["rows"])
    out = []
    for backend in result["backends"]:
        one, two = (r for r in result["rows"] if r["backend"] == backend)
        ratio = result["ratio"][backend]
        out.append(
            {
                "target": f"{backend}: {result['clients']} clients on 2 workers: at least "
                f"{TARGET_RATIO}x the requests per second of 1",
                "measured": f"{ratio}x ({one['requests_per_s']:,.0f} -> "
                f"{two['requests_per_s']:,.0f} req/s)",
                "verdict": verdict(ratio >= TARGET_RATIO),
            }
        )
    out.append(
        {
            "target": "no errors with several processes on one database",
            "measured": f"{errors} errors",
            "verdict": verdict(errors == 0),
        }
    )
    return out


def render(result: dict[str, Any]) -> str:
    table = md_table(
        [
            "backend",
            "workers",
            "requests",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "server CPU %",
            "load CPU %",
        ],
        [
            [
                r["backend"],
                r["processes"],
                r["requests"],
                r["requests_per_s"],
                r["latency"]["p50_ms"],
                r["latency"]["p99_ms"],
                r["errors"],
                r["server_cpu_percent"],
                r["load_cpu_percent"],
            ]
            for r in result["rows"]
        ],
    )
    return "\n".join(
        [
            f"`memlayer serve --workers N` on one database of {result['preloaded_memories']:,} "
            f"memories; {result['clients']} clients ({result['recall_share']:.0%} recalls, the rest "
            f"remembers), back to back, for {result['seconds_per_level']:g} s or "
            f"{result['max_requests_per_level']:,} requests per row. Server CPU sums the "
            "supervisor and its workers, in % of one core (not PostgreSQL's own processes); the "
            "load runs in this process, on the same cores.",
            "",
            table,
        ]
    )
