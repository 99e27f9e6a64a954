"""The benchmark suite runs at a tiny size and produces well-formed figures.

Timing never decides anything here: only that each benchmark runs, that its figures have
the expected shape and sane values (shares between 0 and 1, p50 <= p95, counts that add
up), and that the report is written. The LoCoMo benchmark runs on a small file in the same
format, so the suite does not depend on the data set being present.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from benchmarks import (
    bulk,
    concurrency,
    isolation,
    load,
    locomo,
    mcp_tools,
    overhead,
    requests_per_turn,
    scale,
    semantic,
    store,
    workers,
)
from benchmarks.__main__ import main
from benchmarks._backends import Backends, database_bytes, for_run
from benchmarks._harness import Context, CountingTransport, Skip, md_table, percentile, summarize_ms
from benchmarks._runner import BENCHMARKS
from benchmarks._text import TextGenerator

# LlamaIndex's workflow agents inspect their own pydantic fields when built, which warns.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")


@pytest.fixture
def ctx(local_server: Any) -> Any:
    context = Context(size="tiny", server=local_server)
    yield context
    context.close()


@pytest.fixture
def both_backends(postgres_cluster: Any) -> Any:
    """SQLite and PostgreSQL (fresh databases in the suite's cluster, dropped afterwards)."""
    backends = Backends(
        ("sqlite", "postgres"), postgres_cluster.fresh, postgres_cluster.cluster.drop_database
    )
    yield backends
    backends.close()


# Differences that may be negative: two medians within noise, RSS after a collection.
SIGNED = {"overhead_us", "overhead_ms", "rss_growth_mib"}


def _numbers(value: Any) -> list[float]:
    """Every number in a nested result that cannot be negative."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, dict):
        return [n for k, v in value.items() if k not in SIGNED for n in _numbers(v)]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _numbers(v)]
    return []


def _check_common(module: Any, result: dict[str, Any]) -> None:
    assert json.loads(json.dumps(result)) == result, "figures must be plain JSON"
    assert all(math.isfinite(n) and n >= 0 for n in _numbers(result))
    targets = module.targets(result)
    assert targets, "every benchmark states its targets"
    for t in targets:
        assert set(t) == {"target", "measured", "verdict"}
        assert t["verdict"] in ("met", "NOT met")
    text = module.render(result)
    assert "| --- |" in text


def _check_latency(stats: dict[str, Any]) -> None:
    assert stats["n"] > 0
    assert stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"] <= stats["max_ms"]


# -- the harness ---------------------------------------------------------------------------


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 99) == 5
    assert percentile([1, 2, 3, 4, 5], 100) == 5
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summarize_ms_converts_seconds() -> None:
    stats = summarize_ms([0.001, 0.002, 0.003])
    assert stats["n"] == 3 and stats["p50_ms"] == 2.0 and stats["max_ms"] == 3.0


def test_counting_transport_counts_by_route_with_ids_folded() -> None:
    counter: Counter = Counter()
    inner = httpx.MockTransport(lambda request: httpx.Response(204))
    with httpx.Client(transport=CountingTransport(inner, counter)) as http:
        http.get("http://x/v1/memories/mem_" + "a" * 32)
        http.get("http://x/v1/memories/mem_" + "b" * 32)
        http.post("http://x/v1/memories/search")
    assert counter == {"GET /v1/memories/{id}": 2, "POST /v1/memories/search": 1}


def test_text_generator_is_seeded() -> None:
    a, b = TextGenerator(seed=3), TextGenerator(seed=3)
    texts = a.memories(50)
    assert texts == b.memories(50)
    assert texts != TextGenerator(seed=4).memories(50)
    assert len(set(texts)) > 40
    grounded = a.query(about="Maya bought the red bike on Monday.")
    assert "bike" in grounded  # every question shape names a noun of the memory


def test_md_table_formats_cells() -> None:
    table = md_table(["a", "b"], [[1234, 0.5], [None, True]])
    assert table.splitlines() == ["| a | b |", "| --- | --- |", "| 1,234 | 0.50 |", "| — | yes |"]


# -- each benchmark at the tiny size --------------------------------------------------------


def test_requests_per_turn(ctx: Context) -> None:
    result = requests_per_turn.run(ctx)
    _check_common(requests_per_turn, result)
    rows = result["rows"]
    adapters = {r["adapter"] for r in rows}
    assert adapters == {
        "MemLayerMiddleware",
        "MemLayerChatMessageHistory",
        "MemLayerMemory",
        "MemLayerMemoryBlock",
    }
    assert {r["tool_rounds"] for r in rows} == {0, 3}
    assert any(r["economy"] for r in rows)
    for r in rows:
        assert len(r["per_turn"]) == r["turns"] == result["turns"]
        assert r["total"] == sum(r["per_turn"]) + r["flush"] == sum(r["routes"].values())
        assert r["max_per_turn"] >= r["steady_state"] >= 1
    assert "mem0's LlamaIndex memory makes 3 per turn" in requests_per_turn.render(result)


def test_mcp_tools(ctx: Context) -> None:
    result = mcp_tools.run(ctx)
    _check_common(mcp_tools, result)
    rows = {r["tool"]: r for r in result["rows"]}
    assert set(rows) == {"remember", "recall", "list_memories", "forget"}
    for name, row in rows.items():
        assert row["iterations"] >= 1
        assert row["requests_per_tool_call"] == mcp_tools.EXPECTED_REQUESTS[name]
        assert row["requests_per_bare_call"] == mcp_tools.EXPECTED_REQUESTS[name]
    assert result["start_median_s"] > 0


def test_overhead(ctx: Context) -> None:
    result = overhead.run(ctx)
    _check_common(overhead, result)
    calls = [r["call"] for r in result["rows"]]
    assert any("MemLayerRetriever" in c for c in calls)
    assert any("MemLayerMemory.get" in c for c in calls)
    assert any("MemLayerMiddleware" in c for c in calls)
    for r in result["rows"]:
        assert r["same_results"] is True
        assert r["requests_per_adapter_call"] == r["requests_per_bare_call"] == 1
        assert r["ratio"] == pytest.approx(r["adapter_median_ms"] / r["bare_median_ms"], rel=1e-3)


def test_scale_runs_on_both_backends_side_by_side(ctx: Context, both_backends: Backends) -> None:
    ctx.backends = both_backends
    result = scale.run(ctx)
    _check_common(scale, result)
    rows = result["rows"]
    assert [(r["backend"], r["memories"], r["users"]) for r in rows] == [
        ("sqlite", 100, 1),
        ("sqlite", 300, 1),
        ("sqlite", 300, 3),
        ("postgres", 100, 1),
        ("postgres", 300, 1),
        ("postgres", 300, 3),
    ]
    assert [t["target"].split(":")[0] for t in scale.targets(result)] == ["postgres"] + [
        "sqlite"
    ] * 2 + ["postgres"] * 2
    assert set(result["growth"]) == {"sqlite", "postgres"}
    for r in rows:
        assert r["db_bytes"] > 0
        _check_latency(r["recall"])
        _check_latency(r["remember_single"])
        assert r["recall"]["queries_with_results"] > 0.5
        assert r["load"]["requests"] == math.ceil(r["load"]["memories"] / 100)
        assert r["rss_mib"] > 0
    many = result["many_users"]
    assert (many["backend"], many["memories"], many["users"]) == ("postgres", 2_000, 20)
    assert many["load"]["memories"] == 2_000
    assert many["load"]["imports"] == 4  # 20 users of 100 memories, in imports of 500
    assert many["list"]["memories_per_list"] == 100  # every user holds exactly its share
    assert many["recall"]["queries_with_results"] > 0.5
    for stats in (many["recall"], many["list"], many["remember_single"]):
        _check_latency(stats)
    assert many["db_bytes"] > 0
    assert "2,000 memories over 20 users" in scale.render(result)


def test_scale_without_postgres_has_no_many_users_row(ctx: Context) -> None:
    result = scale.run(ctx)
    assert result["many_users"] is None
    assert {r["backend"] for r in result["rows"]} == {"sqlite"}
    assert "users**" not in scale.render(result)


def test_bulk(ctx: Context) -> None:
    result = bulk.run(ctx)
    _check_common(bulk, result)
    n = result["memories"]
    assert all(row[w]["stored"] == n for row in result["rounds"] for w in ("old", "new"))
    assert result["old"]["requests"] == -(-n // 100)
    assert result["new"]["requests"] == 1  # 300 short memories: one request


def test_isolation() -> None:
    result = isolation.run(Context(size="tiny", server=None))
    _check_common(isolation, result)
    assert result["attacker_statuses"]  # the attack ran
    assert set(result["p99_ratio"]) == {"remember", "recall"}


def test_concurrency_runs_on_both_backends(both_backends: Backends) -> None:
    result = concurrency.run(Context(size="tiny", server=None, backends=both_backends))
    _check_common(concurrency, result)
    assert [(r["backend"], r["workers"]) for r in result["rows"]] == [
        ("sqlite", 1),
        ("sqlite", 4),
        ("postgres", 1),
        ("postgres", 4),
    ]
    for r in result["rows"]:
        assert r["errors"] == 0
        assert set(r["by_operation"]) <= {"recall", "remember"}
        assert r["requests"] == sum(s["n"] for s in r["by_operation"].values()) > 0
        _check_latency(r["latency"])


@pytest.mark.slow  # starts memlayer serve three times (about 10 s)
def test_workers(both_backends: Backends) -> None:
    result = workers.run(Context(size="tiny", server=None, backends=both_backends))
    _check_common(workers, result)
    assert [(r["backend"], r["processes"]) for r in result["rows"]] == [
        ("sqlite", 1),
        ("sqlite", 2),
        ("postgres", 1),
        ("postgres", 2),
    ]
    assert set(result["ratio"]) == {"sqlite", "postgres"}
    for r in result["rows"]:
        assert r["errors"] == 0 and r["workers"] == result["clients"]
        assert r["requests"] == sum(s["n"] for s in r["by_operation"].values()) > 0
        _check_latency(r["latency"])


def test_load_tally_matches() -> None:
    result = load.run(Context(size="tiny", server=None))
    _check_common(load, result)
    assert result["errors"] == 0
    assert result["tally_matches"] is True
    assert (
        result["server_memories_stored"]
        == result["acknowledged_stored"] - result["acknowledged_forgotten"]
    )
    assert set(result["by_operation"]) <= {"remember", "recall", "list", "forget"}


def _locomo_file(tmp_path: Path) -> Path:
    def session(n: int, speaker_texts: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [
            {"speaker": s, "dia_id": f"D{n}:{i + 1}", "text": t}
            for i, (s, t) in enumerate(speaker_texts)
        ]

    data = [
        {
            "sample_id": "conv-a",
            "conversation": {
                "speaker_a": "Ann",
                "speaker_b": "Bo",
                "session_1_date_time": "1:56 pm on 8 May, 2023",
                "session_1": session(
                    1, [("Ann", "I adopted a puppy named Rex"), ("Bo", "Congrats on the puppy!")]
                ),
                "session_2_date_time": "10:00 am on 2 June, 2023",
                "session_2": session(
                    2,
                    [("Ann", "Rex loves the beach in Lisbon"), ("Bo", "I started pottery classes")],
                ),
            },
            "qa": [
                {
                    "question": "What is the name of Ann's puppy?",
                    "answer": "Rex",
                    "evidence": ["D1:1"],
                    "category": 4,
                },
                {
                    "question": "Where does Rex love to go?",
                    "answer": "beach",
                    "evidence": ["D2:1; D1:1"],
                    "category": 1,
                },
                {
                    "question": "When did Bo start pottery?",
                    "answer": "June",
                    "evidence": ["D2:2"],
                    "category": 2,
                },
                {
                    "question": "What is Bo's cat called?",
                    "answer": "n/a",
                    "evidence": [],
                    "category": 5,
                },
                {
                    "question": "Which city has the beach?",
                    "answer": "Lisbon",
                    "evidence": ["D9:9"],
                    "category": 4,
                },
            ],
        }
    ]
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_locomo_loads_turns_with_dates_and_splits_evidence(tmp_path: Path) -> None:
    (sample,) = locomo.load_samples(str(_locomo_file(tmp_path)))
    assert sample["turns"][0] == (
        "D1:1",
        "[8 May 2023] Ann: I adopted a puppy named Rex",
        "session_1",
    )
    assert sample["turns"][2] == (
        "D2:1",
        "[2 June 2023] Ann: Rex loves the beach in Lisbon",
        "session_2",
    )
    assert [q["category"] for q in sample["questions"]] == [4, 1, 2, 4]  # category 5 left out
    assert sample["questions"][1]["evidence"] == {"D2:1", "D1:1"}


def test_locomo(ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(locomo.DATA_ENV, str(_locomo_file(tmp_path)))
    result = locomo.run(ctx)
    _check_common(locomo, result)
    assert result["memories"] == 4
    overall = result["overall"]
    assert overall["questions"] == 4
    assert (result["evidence_ids"], result["evidence_ids_naming_no_turn"]) == (5, 1)
    assert 0 <= overall["recall@1"] <= overall["recall@5"] <= overall["recall@10"] <= 1
    assert overall["recall@10"] > 0  # "Rex" and "puppy" are findable by any ranking
    assert set(result["by_category"]) == {"1", "2", "4"}
    haystack = result["haystack"]  # the same conversation again, in the one shared scope
    assert haystack["overall"]["questions"] == 4
    assert 0 < haystack["overall"]["recall@10"] <= 1
    assert set(haystack["by_category"]) == {"1", "2", "4"}


def test_locomo_without_data_is_skipped(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(locomo.DATA_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(Skip, match="not found"):
        locomo.run(ctx)


# -- the command ------------------------------------------------------------------------------


def test_command_writes_markdown_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(locomo.DATA_ENV, str(_locomo_file(tmp_path)))
    out = tmp_path / "results"
    code = main(["--size", "tiny", "--only", "locomo,overhead", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert list(report["benchmarks"]) == ["overhead", "locomo"]  # report order, not --only order
    assert report["machine"]["logical_cpus"] >= 1
    assert report["machine"]["parallel_speedup_2_processes"] > 0
    assert sum(report["machine"]["cpu_during_run"].values()) == pytest.approx(100, abs=0.5)
    assert report["versions"]["memlayer-integrations"]
    assert all("result" in b and "targets" in b for b in report["benchmarks"].values())
    markdown = (out / "report.md").read_text(encoding="utf-8")
    for heading in (
        "## Machine",
        "## Versions",
        "## Summary",
        "## Adapter overhead",
        "## Recall quality on LoCoMo",
    ):
        assert heading in markdown


def _paraphrase_file(tmp_path: Path) -> Path:
    users = [
        {
            "user_id": f"u{n}",
            "memories": [
                {"id": f"u{n}-m1", "content": "I start every day with green tea"},
                {"id": f"u{n}-m2", "content": "I traded the sedan for an electric SUV"},
                {"id": f"u{n}-m3", "content": "Meeting with Petra about the budget"},
            ],
            "queries": [
                {"query": "what does she drink?", "relevant": [f"u{n}-m1"], "kind": "paraphrase"},
                {"query": "Petra", "relevant": [f"u{n}-m3"], "kind": "lexical"},
            ],
        }
        for n in range(3)
    ]
    path = tmp_path / "paraphrase.json"
    path.write_text(json.dumps({"users": users}), encoding="utf-8")
    return path


def test_semantic(ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(semantic.DATA_ENV, str(_paraphrase_file(tmp_path)))
    result = semantic.run(ctx)
    _check_common(semantic, result)
    assert result["users"] == 2  # tiny: the first two users
    for which in ("paraphrase_with", "paraphrase_without"):
        kinds = result[which]["by_kind"]
        assert {k: v["questions"] for k, v in kinds.items()} == {"lexical": 2, "paraphrase": 2}
        for row in kinds.values():
            assert 0 <= row["recall@1"] <= row["recall@5"] <= row["recall@10"] <= 1
    assert result["paraphrase_with"]["by_kind"]["lexical"]["recall@1"] == 1.0
    [row] = result["scale"]
    assert row["memories"] == 300
    _check_latency(row["recall"])
    _check_latency(result["remember_single_with"])
    assert "with embedder" in semantic.render(result)


def test_semantic_without_data_is_skipped(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(semantic.DATA_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(Skip):
        semantic.run(ctx)


def test_command_rejects_unknown_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--only", "nope"])
    assert "unknown benchmark" in capsys.readouterr().err


def test_every_benchmark_is_registered() -> None:
    assert list(BENCHMARKS) == [
        "requests_per_turn",
        "remembering",
        "overhead",
        "scale",
        "bulk",
        "concurrency",
        "workers",
        "load",
        "locomo",
        "isolation",
        "mcp",
        "semantic",
        "store",
    ]
    for module in BENCHMARKS.values():
        assert callable(module.run) and callable(module.targets) and callable(module.render)


def test_remembering(ctx: Context) -> None:
    from benchmarks import remembering

    result = remembering.run(ctx)
    _check_common(remembering, result)
    rows = {(r["adapter"], r["policy"]): r for r in result["rows"]}
    assert len(rows) == 2 * len(remembering.ADAPTERS)
    for (adapter, policy), r in rows.items():
        assert r["questions"] == len(remembering.FACTS) + 1  # one round, plus session 2's
        assert 0 <= r["answer_first"] <= r["questions"]
        if policy == "default":
            # Small talk and questions are not stored; a repeated statement is one memory.
            before = rows[(adapter, "as before")]
            assert 0 < r["memories"] < before["memories"]
    assert "answer first" in remembering.render(result)


def test_store(ctx: Context) -> None:
    result = store.run(ctx)
    _check_common(store, result)
    assert set(result["stores"]) >= {"in_memory", "sqlite", "memlayer_http", "memlayer_in_process"}
    for ops in result["stores"].values():
        assert set(ops) == set(store.OPERATIONS)
        for stats in ops.values():
            _check_latency(stats)
    # Counted by the server, over HTTP and in process alike.
    for name in ("memlayer_http", "memlayer_in_process"):
        assert result["requests_per_operation"][name] == dict.fromkeys(store.OPERATIONS, 1)
    assert set(result["ratios"]["memlayer_in_process/sqlite"]) == set(store.OPERATIONS)
    assert "SqliteStore (WAL)" in store.render(result)
    for name in ("memlayer_http", "memlayer_in_process"):  # a refused request, timed
        _check_latency(result["floor"][name])
    assert "refuses at authentication" in store.render(result)


def test_a_postgres_url_gets_fresh_databases_that_the_run_drops(postgres_cluster: Any) -> None:
    server = postgres_cluster.cluster.url()
    backends = for_run("postgres", server)
    assert backends.names == ("postgres",)
    url = backends.fresh("postgres")
    assert url is not None and url != server
    with psycopg.connect(url) as conn:  # the database exists and is empty
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)
    assert database_bytes(url) > 0
    backends.close()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(server) as conn:
        assert (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None
        )


def test_sqlite_alone_needs_no_postgres() -> None:
    backends = for_run("sqlite", None)
    assert backends.names == ("sqlite",) and backends.fresh("sqlite") is None
    with pytest.raises(RuntimeError, match="no PostgreSQL"):
        backends.fresh("postgres")


def test_command_rejects_unknown_backend(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--backend", "oracle"])
    assert "invalid choice" in capsys.readouterr().err


def test_without_a_url_the_run_starts_a_private_cluster_and_stops_it() -> None:
    backends = for_run("both", None)
    assert backends.names == ("sqlite", "postgres")
    try:
        url = backends.fresh("postgres")
        assert url is not None and database_bytes(url) > 0
    finally:
        backends.close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
