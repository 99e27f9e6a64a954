"""Server scale: recall latency and remember throughput as one user's memories grow.

One user's scope is filled to 1k, 10k and 100k memories with ``remember_many`` batches of
100 (the loading throughput is measured on the way); at each size, realistic queries are
recalled (limit 10) and single ``remember`` calls are timed. Then a fresh server holds 100k
memories spread over 1,000 users, to show that one big account does not slow down the
others. On PostgreSQL, a last server holds issue #15's 1,000,000 memories over 10,000 users
(at ``--size full``; 2,000 over 20 at ``tiny``, 5,000 over 50 at ``quick``): too many to
send through HTTP in reasonable time, so they are loaded by ``memlayer import``'s code
(``_bulk_load.py``), then recall, single remember and list are measured through HTTP. The server runs in a child process (as ``memlayer serve`` would), so its latency
is not shared with the client's interpreter lock; memory is that process's RSS.

Each of the run's backends (``_backends.py``: SQLite, and PostgreSQL when there is one) gets
the same data and queries, and the rows are reported side by side.

Latencies are measured at the client: request, loopback HTTP, server work and parsing.
"""

from __future__ import annotations

import time
from typing import Any

from memlayer_integrations import MemLayerClient

from ._backends import database_bytes
from ._bulk_load import account_of_only_key, texts_of
from ._bulk_load import load as bulk_load
from ._harness import Context, md_table, summarize_ms, verdict
from ._serve import ChildServer, child_server
from ._text import TextGenerator

NAME = "scale"
TITLE = "Server scale"

AGENT = "assistant"
BATCH = 100


def _load(client: Any, texts: list[str], user_of: Any) -> dict[str, Any]:
    """Store ``texts`` in batches of 100 (one user per batch); time each request."""
    times = []
    start = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        chunk = texts[i : i + BATCH]
        t0 = time.perf_counter()
        client.remember_many(chunk, user_id=user_of(i), agent_id=AGENT)
        times.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    return {
        "memories": len(texts),
        "requests": len(times),
        "seconds": round(elapsed, 3),
        "memories_per_s": round(len(texts) / elapsed, 1) if elapsed else None,
        "batch_latency": summarize_ms(times) if times else None,
    }


def _recall(client: Any, queries: list[tuple[str, str]], warmup: int = 5) -> dict[str, Any]:
    for user, q in queries[:warmup]:
        client.recall(q, user_id=user, limit=10)
    times, hits = [], 0
    for user, q in queries:
        t0 = time.perf_counter()
        results = client.recall(q, user_id=user, limit=10)
        times.append(time.perf_counter() - t0)
        hits += bool(results)
    out = summarize_ms(times)
    out["queries_with_results"] = round(hits / len(queries), 3)
    return out


def _singles(client: Any, gen: TextGenerator, user: str, n: int) -> dict[str, Any]:
    times = []
    for _ in range(n):
        text = gen.memory()
        t0 = time.perf_counter()
        client.remember(text, user_id=user, agent_id=AGENT)
        times.append(time.perf_counter() - t0)
    out = summarize_ms(times)
    out["memories_per_s"] = round(n / sum(times), 1)
    return out


def _client(server: ChildServer) -> MemLayerClient:
    return MemLayerClient(api_key=server.keys[0], base_url=server.url)


def _warm_up(client: Any, gen: TextGenerator) -> None:
    """A few requests outside the measured scope, so the first figures are not cold starts."""
    for _ in range(10):
        client.remember(gen.memory(), user_id="warm_up", agent_id=AGENT)
        client.recall(gen.query(), user_id="warm_up")
    client.remember_many(gen.memories(100), user_id="warm_up", agent_id=AGENT)


def _rows(ctx: Context, backend: str) -> list[dict[str, Any]]:
    """The figures of one backend: a row per single-user size, then the spread one."""
    stages = ctx.pick([100, 300], [1_000, 3_000], [1_000, 10_000, 100_000])
    n_queries = ctx.pick(10, 50, 300)
    n_singles = ctx.pick(10, 30, 200)
    spread_total, spread_users = ctx.pick((300, 3), (3_000, 30), (100_000, 1_000))

    gen = TextGenerator(seed=20261127)
    user = "user_0001"
    rows: list[dict[str, Any]] = []
    with child_server(keys=1, db=ctx.backends.fresh(backend)) as server, _client(server) as client:
        rss_start = server.rss_mib()
        _warm_up(client, gen)
        corpus: list[str] = []  # what queries may be about
        stored = 0  # what the scope holds, single writes included
        for target in stages:
            texts = gen.memories(target - stored)
            load = _load(client, texts, lambda i: user)
            corpus.extend(texts)
            stored += len(texts)
            queries = [(user, q) for q in gen.queries(n_queries, corpus)]
            recall = _recall(client, queries)
            # Singles come after the recall figures, so recall is measured at exactly `target`.
            singles = _singles(client, gen, user, n_singles)
            stored += n_singles
            rows.append(
                {
                    "backend": backend,
                    "rss_start_mib": rss_start,
                    "memories": target,
                    "users": 1,
                    "load": load,
                    "recall": recall,
                    "remember_single": singles,
                    "rss_mib": server.rss_mib(),
                    "rss_growth_mib": round(server.rss_mib() - rss_start, 1),
                    "db_bytes": database_bytes(server.db_path),
                }
            )

    # 100k spread over many users, on a fresh server so the first scenario is not in its index.
    spread_gen = TextGenerator(seed=7)
    per_user = spread_total // spread_users
    if per_user % BATCH:
        raise ValueError(
            f"memories per user ({per_user}) must be a multiple of {BATCH}: a batch has one user"
        )
    with child_server(keys=1, db=ctx.backends.fresh(backend)) as server, _client(server) as client:
        spread_rss_start = server.rss_mib()
        users = [f"user_{i:05d}" for i in range(spread_users)]
        texts = spread_gen.memories(per_user * spread_users)
        _warm_up(client, spread_gen)
        load = _load(client, texts, lambda i: users[i // per_user])
        queries = []
        for _ in range(n_queries):
            u = spread_gen.rng.randrange(spread_users)
            own = texts[u * per_user : (u + 1) * per_user]
            queries.append((users[u], spread_gen.queries(1, own)[0]))
        recall = _recall(client, queries)
        singles = _singles(client, spread_gen, users[0], n_singles)
        rows.append(
            {
                "backend": backend,
                "rss_start_mib": spread_rss_start,
                "memories": per_user * spread_users,
                "users": spread_users,
                "load": load,
                "recall": recall,
                "remember_single": singles,
                "rss_mib": server.rss_mib(),
                "rss_growth_mib": round(server.rss_mib() - spread_rss_start, 1),
                "db_bytes": database_bytes(server.db_path),
            }
        )

    return rows


def _lists(client: Any, users: list[str], rng: Any, n: int) -> dict[str, Any]:
    """List every memory of ``n`` random users (a page of up to 100 each)."""
    times, listed = [], 0
    for _ in range(n):
        user = users[rng.randrange(len(users))]
        t0 = time.perf_counter()
        listed += len(list(client.list_memories(user_id=user, agent_id=AGENT, page_size=100)))
        times.append(time.perf_counter() - t0)
    out = summarize_ms(times)
    out["memories_per_list"] = round(listed / n, 1)
    return out


def _many_users(ctx: Context) -> dict[str, Any]:
    """Issue #15's many-users row on PostgreSQL: a bulk import, then HTTP measurements."""
    total, n_users = ctx.pick((2_000, 20), (5_000, 50), (1_000_000, 10_000))
    n_queries = ctx.pick(10, 50, 300)
    n_singles = ctx.pick(10, 30, 200)
    per_user = total // n_users
    gen = TextGenerator(seed=15)
    users = [f"user_{i:05d}" for i in range(n_users)]
    texts = texts_of(gen, n_users, per_user)
    db = ctx.backends.fresh("postgres")
    if db is None:  # only SQLite's is a temporary file
        raise RuntimeError("the many-users row needs a PostgreSQL database")
    with child_server(keys=1, db=db) as server, _client(server) as client:
        rss_start = server.rss_mib()
        load = bulk_load(db, account_of_only_key(db), AGENT, users, texts)
        _warm_up(client, gen)
        queries = []
        for _ in range(n_queries):
            u = gen.rng.randrange(n_users)
            queries.append((users[u], gen.queries(1, texts[u])[0]))
        recall = _recall(client, queries)
        lists = _lists(client, users, gen.rng, n_queries)
        singles = _singles(client, gen, users[gen.rng.randrange(n_users)], n_singles)
        return {
            "backend": "postgres",
            "memories": total,
            "users": n_users,
            "load": load,
            "recall": recall,
            "list": lists,
            "remember_single": singles,
            "rss_start_mib": rss_start,
            "rss_mib": server.rss_mib(),
            "db_bytes": database_bytes(db),
        }


def run(ctx: Context) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    growth: dict[str, dict[str, float]] = {}
    for backend in ctx.backends.names:
        mine = _rows(ctx, backend)
        one_user = [r for r in mine if r["users"] == 1]
        first, last = one_user[0], one_user[-1]
        growth[backend] = {
            "memories_ratio": round(last["memories"] / first["memories"], 1),
            "recall_p50_ratio": round(last["recall"]["p50_ms"] / first["recall"]["p50_ms"], 2),
        }
        rows += mine
    return {
        "rows": rows,
        "many_users": _many_users(ctx) if "postgres" in ctx.backends.names else None,
        "backends": list(ctx.backends.names),
        "growth": growth,
        "queries_per_size": ctx.pick(10, 50, 300),
        "recall_limit": 10,
        "batch_size": BATCH,
    }


#: Recall p50 at the largest single-user size, per backend (issue #15 for PostgreSQL's).
RECALL_P50_TARGET_MS = {"sqlite": 10.0, "postgres": 15.0}


#: The many-users load: 1,000,000 memories in at most five minutes.
LOAD_PER_S_TARGET = 1_000_000 / 300


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    many = result.get("many_users")
    if many is not None:
        rate = many["load"]["memories_per_s"]
        out.append(
            {
                "target": f"postgres: {many['memories']:,} memories over {many['users']:,} users "
                f"imported at >= {LOAD_PER_S_TARGET:,.0f} memories/s (1M in 5 min)",
                "measured": f"{rate:,.0f} memories/s ({many['load']['seconds']:g} s)",
                "verdict": verdict(rate >= LOAD_PER_S_TARGET),
            }
        )
    for backend in result["backends"]:
        one_user = [r for r in result["rows"] if r["users"] == 1 and r["backend"] == backend]
        biggest = one_user[-1]
        p50, limit = biggest["recall"]["p50_ms"], RECALL_P50_TARGET_MS[backend]
        g = result["growth"][backend]
        out += [
            {
                "target": f"{backend}: recall p50 < {limit:g} ms at {biggest['memories']:,} "
                "memories (one user)",
                "measured": f"{p50:.2f} ms",
                "verdict": verdict(p50 < limit),
            },
            {
                "target": f"{backend}: recall latency grows clearly below linear",
                "measured": f"{g['memories_ratio']:g}x memories -> {g['recall_p50_ratio']:g}x p50",
                "verdict": verdict(g["recall_p50_ratio"] < g["memories_ratio"] / 4),
            },
        ]
    return out


def render(result: dict[str, Any]) -> str:
    rows = result["rows"]
    table = md_table(
        [
            "backend",
            "memories",
            "users",
            "recall p50 ms",
            "recall p95 ms",
            "queries with results",
            "single remember p50 ms",
            "single remember /s",
            "batch load /s",
            "batch (100) p50 ms",
            "RSS MiB",
            "RSS growth MiB",
            "database MiB",
        ],
        [
            [
                r["backend"],
                r["memories"],
                r["users"],
                r["recall"]["p50_ms"],
                r["recall"]["p95_ms"],
                r["recall"]["queries_with_results"],
                r["remember_single"]["p50_ms"],
                r["remember_single"]["memories_per_s"],
                r["load"]["memories_per_s"],
                r["load"]["batch_latency"]["p50_ms"],
                r["rss_mib"],
                r["rss_growth_mib"],
                round(r["db_bytes"] / 2**20, 1),
            ]
            for r in rows
        ],
    )
    growth = "; ".join(
        f"{b}: {g['memories_ratio']:g}x the memories, {g['recall_p50_ratio']:g}x the recall p50"
        for b, g in result["growth"].items()
    )
    return "\n".join(
        [
            _render_intro(result),
            "",
            table,
            "",
            f"From the smallest to the largest single-user scope: {growth}.",
            *_render_many_users(result.get("many_users")),
        ]
    )


def _render_many_users(many: dict[str, Any] | None) -> list[str]:
    if many is None:
        return []
    load = many["load"]
    table = md_table(
        [
            "backend",
            "memories",
            "users",
            "load s",
            "load memories/s",
            "recall p50 ms",
            "recall p95 ms",
            "queries with results",
            "single remember p50 ms",
            "list p50 ms",
            "memories per list",
            "RSS MiB",
            "database MiB",
        ],
        [
            [
                many["backend"],
                many["memories"],
                many["users"],
                load["seconds"],
                load["memories_per_s"],
                many["recall"]["p50_ms"],
                many["recall"]["p95_ms"],
                many["recall"]["queries_with_results"],
                many["remember_single"]["p50_ms"],
                many["list"]["p50_ms"],
                many["list"]["memories_per_list"],
                many["rss_mib"],
                round(many["db_bytes"] / 2**20, 1),
            ]
        ],
    )
    return [
        "",
        f"**{many['memories']:,} memories over {many['users']:,} users** (issue #15): loaded "
        f"as a dump by `memlayer import`'s code ({load['imports']:,} imports of about "
        f"{load['memories'] // max(load['imports'], 1):,} memories, each one transaction; not "
        "through HTTP), into the database of the running server; then recall (a random "
        "user each, limit 10), list (all of a random user's memories) and single remember are "
        "measured through HTTP, as above.",
        "",
        table,
    ]


def _render_intro(result: dict[str, Any]) -> str:
    return "".join(
        [
            f"{result['queries_per_size']} queries per size (80 % about something stored), recall "
            f"limit {result['recall_limit']}; texts are seeded English-like sentences with Zipfian "
            f'word frequencies. "batch load /s" is the throughput of `remember_many` '
            f"({result['batch_size']} per request) while filling the scope up to that size. The "
            "server runs in its own process, as `memlayer serve` does, and the client in this one; "
            'RSS is the server process\'s, and "RSS growth" is measured from before loading (the '
            'spread row of each backend is a fresh server). "database" is the SQLite file with '
            "its WAL, or PostgreSQL's `pg_database_size`. Each backend gets the same data and "
            "queries; on PostgreSQL the server process talks to a PostgreSQL server on the same "
            "machine, which shares its cores.",
        ]
    )
