"""LangGraph stores side by side: ``MemLayerStore`` against LangGraph's own, one workload.

The stores: LangGraph's ``InMemoryStore``, ``SqliteStore`` (a file in WAL mode, as a
LangGraph app would keep one), ``PostgresStore`` when ``$MEMLAYER_BENCH_POSTGRES_URL``
names a database (langgraph-checkpoint-postgres installed), and ``MemLayerStore`` twice:
over loopback HTTP to a server in its own process, as ``memlayer serve`` runs (PostgreSQL
is another process too), and in process (the embedded server's ``in_process_url``, no
socket). Both use the client a user gets without ``http_client=``, so each request takes the
path a user's does; the requests an operation costs are counted by the server itself (its
daily request count, as ``usage()`` reports it).
Each is loaded with the same items (10,000 in 100 namespaces at full size), then every
operation runs on every store in turn, the order rotating each round, so a drift of the
machine hits all alike: put of a new key, get, search with a query (limit 10), and a batch
of 100 puts. Without an index LangGraph's stores answer a query by listing the namespace;
MemLayer ranks by the query's words and fills up with the other items (see
``MemLayerStore``), so its search does more. The report gives medians, the ratios to the
peers, ``MemLayerStore``'s requests per operation, and a floor: how long a request the server
refuses at authentication (an unknown key: nothing is counted or read beyond the key) takes
through each of its ways. Every operation is authenticated first, so none can be faster.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from memlayer_integrations import AuthenticationError, MemLayerClient

from ._harness import Context, md_table, summarize_ms, verdict
from ._serve import child_server
from ._text import TextGenerator

NAME = "store"
TITLE = "LangGraph stores side by side"

POSTGRES_ENV = "MEMLAYER_BENCH_POSTGRES_URL"
OPERATIONS = ("put", "get", "search", "batch_100_puts")
#: The issue's targets: over HTTP against PostgresStore, in process against SqliteStore.
HTTP_VS_POSTGRES = {"put": 1.5, "get": 1.5, "search": 1.5, "batch_100_puts": 2.0}
IN_PROCESS_VS_SQLITE = {"put": 3.0, "get": 3.0, "search": 3.0}


@contextlib.contextmanager
def _sqlite_store(directory: str) -> Iterator[Any]:
    from langgraph.store.sqlite import SqliteStore

    conn = sqlite3.connect(
        os.path.join(directory, "langgraph.db"), check_same_thread=False, isolation_level=None
    )
    conn.execute("PRAGMA journal_mode=WAL")
    try:
        store = SqliteStore(conn)
        store.setup()
        yield store
    finally:
        conn.close()


@contextlib.contextmanager
def _postgres_store(url: str) -> Iterator[Any]:
    from langgraph.store.postgres import PostgresStore

    with PostgresStore.from_conn_string(url) as store:
        store.setup()
        with store._cursor() as cur:  # a table left by an earlier run would skew the load
            cur.execute("DELETE FROM store WHERE prefix LIKE 'bench.%'")
        yield store


def _memlayer_store(
    stack: contextlib.ExitStack, base_url: str, key: str
) -> tuple[Any, MemLayerClient]:
    from memlayer_integrations.langchain import MemLayerStore

    client = stack.enter_context(MemLayerClient(api_key=key, base_url=base_url))
    return MemLayerStore(client=client), client


class _RequestCount:
    """The requests a client's account sent, from the server's own count (``usage()``):
    what the operations between two readings cost, retries and batches included."""

    def __init__(self, client: MemLayerClient) -> None:
        self.client = client
        first = client.usage().requests_today
        # What reading the count adds to it (the reading itself is a request).
        self.own = client.usage().requests_today - first
        self.last = client.usage().requests_today

    def since_last(self) -> int:
        now = self.client.usage().requests_today
        sent, self.last = now - self.last - self.own, now
        return sent


class _Workload:
    """The items every store is loaded with, and the operations timed on each."""

    def __init__(self, items: int, namespaces: int, seed: int = 31) -> None:
        gen = TextGenerator(seed=seed)
        texts = gen.memories(items)
        self.namespaces = [("bench", f"ns{n}") for n in range(namespaces)]
        self.items = [
            (self.namespaces[i % namespaces], f"k{i}", {"text": t, "n": i})
            for i, t in enumerate(texts)
        ]
        self.queries = [q for q in gen.queries(200, texts) if q.strip()]
        self.texts = texts

    def load(self, store: Any) -> None:
        from langgraph.store.base import PutOp

        for i in range(0, len(self.items), 100):
            store.batch([PutOp(ns, key, value) for ns, key, value in self.items[i : i + 100]])

    def call(self, op: str, store: Any, i: int, tag: str) -> Callable[[], Any]:
        from langgraph.store.base import PutOp

        ns, key, _ = self.items[(i * 7919) % len(self.items)]
        value = {"text": self.texts[i % len(self.texts)], "n": i}
        if op == "put":
            return lambda: store.put(ns, f"new-{tag}-{i}", value)
        if op == "get":
            return lambda: store.get(ns, key)
        if op == "search":
            return lambda: store.search(ns, query=self.queries[i % len(self.queries)], limit=10)
        puts = [PutOp(ns, f"batch-{tag}-{i}-{j}", value) for j in range(100)]
        return lambda: store.batch(puts)


def run(ctx: Context) -> dict[str, Any]:
    items, namespaces = ctx.pick((300, 3), (2_000, 20), (10_000, 100))
    rounds = ctx.pick(4, 60, 200)
    batch_rounds = ctx.pick(2, 10, 30)
    workload = _Workload(items, namespaces)
    postgres_url = os.environ.get(POSTGRES_ENV) or None
    with contextlib.ExitStack() as stack:
        from langgraph.store.memory import InMemoryStore

        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="store-bench-"))
        stores: dict[str, Any] = {
            "in_memory": InMemoryStore(),
            "sqlite": stack.enter_context(_sqlite_store(directory)),
        }
        if postgres_url:
            stores["postgres"] = stack.enter_context(_postgres_store(postgres_url))
        served = stack.enter_context(child_server(keys=1))
        clients: dict[str, MemLayerClient] = {}
        for name, url, key in (
            ("memlayer_http", served.url, served.keys[0]),
            ("memlayer_in_process", ctx.server.in_process_url, ctx.new_key()),
        ):
            stores[name], clients[name] = _memlayer_store(stack, url, key)
        for store in stores.values():
            workload.load(store)
        counts = {name: _RequestCount(client) for name, client in clients.items()}
        times: dict[str, dict[str, list[float]]] = {
            s: {op: [] for op in OPERATIONS} for s in stores
        }
        requests: dict[str, dict[str, int]] = {s: {} for s in counts}
        names = list(stores)
        for op in OPERATIONS:
            for r in range(batch_rounds if op == "batch_100_puts" else rounds):
                shift = r % len(names)
                for name in names[shift:] + names[:shift]:
                    call = workload.call(op, stores[name], r, name)
                    start = time.perf_counter()
                    call()
                    times[name][op].append(time.perf_counter() - start)
            for name, count in counts.items():
                requests[name][op] = count.since_last() // len(times[name][op])
        floor = _floor({name: client.base_url for name, client in clients.items()}, rounds)
    return {
        "items": items,
        "namespaces": namespaces,
        "rounds": rounds,
        "batch_rounds": batch_rounds,
        "postgres": postgres_url is not None,
        "stores": {s: {op: summarize_ms(ts) for op, ts in ops.items()} for s, ops in times.items()},
        "requests_per_operation": requests,
        "ratios": _ratios(times),
        "floor": floor,
    }


def _floor(urls: dict[str, str], rounds: int) -> dict[str, Any]:
    """The p50 of a request the server refuses at authentication (a well-formed key it does
    not know: 401 after one lookup by the key's hash, nothing counted), through a client of
    each MemLayer store's way, as its store's is built. Every operation is authenticated
    first, so none can take less: a target allowing less cannot be met by any server
    behind that client and transport, however little the rest of its work."""
    unknown = "ml_live_" + "0" * 40
    times: dict[str, list[float]] = {name: [] for name in urls}
    with contextlib.ExitStack() as stack:
        clients = {
            name: stack.enter_context(MemLayerClient(api_key=unknown, base_url=url))
            for name, url in urls.items()
        }
        for _ in range(rounds):
            for name, client in clients.items():
                start = time.perf_counter()
                try:
                    client.usage()
                except AuthenticationError:
                    times[name].append(time.perf_counter() - start)
                else:
                    raise RuntimeError("the server accepted a key it never issued")
    return {name: summarize_ms(ts) for name, ts in times.items()}


def _ratios(times: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Each MemLayer way's median over each peer's, per operation."""
    out: dict[str, dict[str, float]] = {}
    for ours in ("memlayer_http", "memlayer_in_process"):
        for peer in ("sqlite", "postgres", "in_memory"):
            if peer not in times:
                continue
            out[f"{ours}/{peer}"] = {
                op: round(
                    statistics.median(times[ours][op])
                    / max(statistics.median(times[peer][op]), 1e-9),
                    2,
                )
                for op in OPERATIONS
            }
    return out


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    ratios = result["ratios"]
    if result["postgres"]:
        for op, limit in HTTP_VS_POSTGRES.items():
            ratio = ratios["memlayer_http/postgres"][op]
            out.append(
                {
                    "target": f"{op} over loopback HTTP at most {limit}x PostgresStore",
                    "measured": f"{ratio}x",
                    "verdict": verdict(ratio <= limit),
                }
            )
    for op, limit in IN_PROCESS_VS_SQLITE.items():
        ratio = ratios["memlayer_in_process/sqlite"][op]
        out.append(
            {
                "target": f"{op} in process at most {limit}x SqliteStore (WAL)",
                "measured": f"{ratio}x",
                "verdict": verdict(ratio <= limit),
            }
        )
    for name, ops in result["requests_per_operation"].items():
        out.append(
            {
                "target": f"{name}: one request per operation",
                "measured": ", ".join(f"{op} {n}" for op, n in ops.items()),
                "verdict": verdict(all(n == 1 for n in ops.values())),
            }
        )
    return out


_LABELS = {
    "in_memory": "InMemoryStore",
    "sqlite": "SqliteStore (WAL)",
    "postgres": "PostgresStore",
    "memlayer_http": "MemLayerStore, HTTP",
    "memlayer_in_process": "MemLayerStore, in process",
}


def render(result: dict[str, Any]) -> str:
    stores = result["stores"]
    table = md_table(
        ["store", *(f"{op} p50 ms" for op in OPERATIONS)],
        [[_LABELS[s], *(stores[s][op]["p50_ms"] for op in OPERATIONS)] for s in stores],
        digits=3,
    )
    ratios = md_table(
        ["ratio of medians", *OPERATIONS],
        [[pair, *(r[op] for op in OPERATIONS)] for pair, r in result["ratios"].items()],
    )
    floor = result["floor"]
    below = _below_floor(result)
    floor_line = (
        f"A request the server refuses at authentication (an unknown key, 401) takes "
        f"{floor['memlayer_http']['p50_ms']:.3f} ms p50 over HTTP and "
        f"{floor['memlayer_in_process']['p50_ms']:.3f} ms in process: no operation can be "
        "faster. "
        + (
            "Targets allowing less than that: " + "; ".join(below) + "."
            if below
            else "Every target allows more than that."
        )
    )
    missing = (
        ""
        if result["postgres"]
        else f" PostgresStore was not measured: set `${POSTGRES_ENV}` to a database URL."
    )
    return "\n".join(
        [
            f"{result['items']:,} items in {result['namespaces']} namespaces in each store; "
            f"{result['rounds']} rounds of each single operation and {result['batch_rounds']} "
            f"batches, every store in turn.{missing}",
            "",
            table,
            "",
            ratios,
            "",
            floor_line,
        ]
    )


def _below_floor(result: dict[str, Any]) -> list[str]:
    """The targets whose allowed time (the limit times the peer's median) is below the
    floor of their way of reaching the server (:func:`_floor`)."""
    stores, floor = result["stores"], result["floor"]
    limits = [("memlayer_in_process", "sqlite", IN_PROCESS_VS_SQLITE)]
    if result["postgres"]:
        limits.insert(0, ("memlayer_http", "postgres", HTTP_VS_POSTGRES))
    out = []
    for ours, peer, ops in limits:
        for op, limit in ops.items():
            allowed = limit * stores[peer][op]["p50_ms"]
            if allowed < floor[ours]["p50_ms"]:
                out.append(f"{op} {_LABELS[ours].split(', ')[1]}: {allowed:.3f} ms")
    return out
