"""Recall in a small scope (``scan.py``) answers exactly as recall through the index does.

Random scopes just below and above the scan limit and just below the every-match limit,
and random questions of every kind (one word, several, stop words only, unknown words,
quotes and FTS5 operators as text, words the tokenizer cuts in two or drops, stemmed
forms), with session, metadata, expiry and agent-prefix conditions, are recalled all
three ways (the scope read whole, every match read at once, the index): the same
memories, in the same order, with the same scores bit for bit, and the same explanations.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks._text import TextGenerator
from memlayer_integrations.server import search as search_module
from memlayer_integrations.server.budget import PROGRESS_INTERVAL, Budget
from memlayer_integrations.server.db import migrate
from memlayer_integrations.server.errors import ApiError
from memlayer_integrations.server.explain import explain
from memlayer_integrations.server.filters import compile_filters
from memlayer_integrations.server.scan import MATCHES_LIMIT, SCAN_LIMIT
from memlayer_integrations.server.search import POSTINGS_BUDGET
from memlayer_integrations.server.sqlite_text import FtsIndex

NOW = "2026-06-01T00:00:00.000000Z"
# Words that stem alike, words cut in two ("a\u19b0b": the tokenizer's Unicode has no
# \u19b0) or dropped altogether ("\u19b0"), accents folded, digits, stop words.
TRICKY = [
    "plan",
    "plans",
    "planning",
    "café",
    "cafe",
    "CAFÉ",
    "tea\u19b0time",
    "tea",
    "time",
    "\u19b0",
    "\u19b1\u19b2",
    "3",
    "42",
    "x",
    "the",
    "who",
    "is",
    "he",
    "naïve",
    "𞤀𞤁",
]


def _memories(rng: random.Random, gen: TextGenerator, n: int) -> list[str]:
    texts = []
    for _ in range(n - n // 20):
        words = gen.memory().split()
        for _ in range(rng.randrange(4)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(TRICKY))
        texts.append(" ".join(words) if rng.random() > 0.05 else gen.memory())
    # Equal texts tie: the oldest goes first either way.
    return texts + texts[: n // 20]


def _fill(conn: sqlite3.Connection, seed: int, size: int) -> None:
    """User ``u`` of account 1: ``size`` memories over agents ``a``, ``a.b``, ``c``; another
    user and another account with the same words, which must change nothing."""
    rng = random.Random(seed)
    gen = TextGenerator(seed=seed)
    rows = []
    for account, user, n in ((1, "u", size), (1, "v", 50), (2, "u", 50)):
        texts = _memories(rng, gen, n)
        for text in texts:
            agent = rng.choice(["a", "a", "a.b", "c"])
            session = rng.choice([None, "s1", "s2", "s3"])
            expires = rng.choice([None] * 8 + ["2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"])
            meta = json.dumps({"kind": rng.choice("xyz"), "n": rng.randrange(10)})
            rows.append((account, user, agent, session, text, meta, expires))
    conn.executemany(
        "INSERT INTO memories (id, account_id, user_id, agent_id, session_id, content,"
        " metadata, expires_at, created_at, updated_at)"
        " VALUES ('m' || (SELECT count(*) FROM memories), ?, ?, ?, ?, ?, ?, ?, 't', 't')",
        rows,
    )


def _queries(rng: random.Random, gen: TextGenerator, corpus: list[str], n: int) -> list[str]:
    queries = gen.queries(n, corpus)
    for i in range(0, n, 3):  # tricky words, alone and mixed in
        words = [rng.choice(TRICKY) for _ in range(rng.randrange(1, 4))]
        queries[i] = " ".join(words) if i % 2 else queries[i] + " " + " ".join(words)
    fixed = ["who is he", "the", "zzzunknown", "zzz qqq", "?!", "\u19b0", "plans 3"]
    quoted = ['"tea time" AND NOT plan*', "NEAR(café, tea) OR 42", "tea\u19b0time-plans"]
    return [*queries, *fixed, *quoted]


def _requests(rng: random.Random) -> Iterator[dict[str, Any]]:
    """Scopes and conditions of a recall: the user, one agent, an agent prefix; a session,
    metadata filters, expiry."""
    while True:
        scope: dict[str, Any] = rng.choice(
            [
                {"agent_id": None},
                {"agent_id": "a"},
                {"agent_id": "c"},
                {"agent_id": None, "agent_prefix": "a"},
                {"agent_id": "nobody"},
            ]
        )
        filters = rng.choice([None, None, {"kind": "x"}, {"n": {"$gte": 5}}])
        yield {
            "user_id": rng.choice(["u", "u", "u", "u", "nobody"]),
            **scope,
            "session_id": rng.choice([None, None, "s1"]),
            "filters": compile_filters(filters),
            "now": rng.choice([NOW, None]),
            "limit": rng.choice([1, 5, 10, 50]),
            "offset": rng.choice([0, 0, 3]),
        }


def _answer(conn: sqlite3.Connection, query: str, request: dict[str, Any]) -> list[Any]:
    hits = search_module.search(conn, 1, query, **request)
    reasons = explain(conn, query, [row for row, _ in hits])
    # The score's bits, not a rounded float: repr round-trips a float exactly.
    return [(dict(row), repr(score), why) for (row, score), why in zip(hits, reasons, strict=True)]


#: How a recall may run: (scans_up_to, reads_matches_up_to) of the index.
PATHS = {
    "scan": (POSTINGS_BUDGET, 0),
    "every match": (0, POSTINGS_BUDGET),
    "index": (0, 0),
}


def _answers(conn, monkeypatch, query, request) -> dict[str, list[Any]]:
    answers = {}
    for path, (scan, matches) in PATHS.items():
        monkeypatch.setattr(FtsIndex, "scans_up_to", scan)
        monkeypatch.setattr(FtsIndex, "reads_matches_up_to", matches)
        answers[path] = _answer(conn, query, request)
    return answers


@pytest.mark.parametrize("size", [SCAN_LIMIT - 1, SCAN_LIMIT + 1, MATCHES_LIMIT - 1])
def test_a_scanned_scope_answers_as_the_index_does(size, monkeypatch):
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    migrate(conn)
    _fill(conn, seed=size, size=size)
    rng = random.Random(size)
    corpus = [r[0] for r in conn.execute("SELECT content FROM memories WHERE user_id = 'u'")]
    requests = _requests(rng)
    answered = 0
    for query in _queries(rng, TextGenerator(seed=size + 1), corpus, 300):
        request = next(requests)
        answers = _answers(conn, monkeypatch, query, request)
        assert answers["scan"] == answers["index"], (query, request)
        assert answers["every match"] == answers["index"], (query, request)
        answered += bool(answers["index"])
    assert answered > 120  # many questions find something: the comparison compares answers


def test_each_way_runs_up_to_its_limit():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    migrate(conn)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    request = {
        "user_id": "u",
        "agent_id": "a",
        "session_id": None,
        "filters": None,
        "limit": 10,
        "offset": 0,
    }
    insert = (
        "INSERT INTO memories (id, account_id, user_id, agent_id, content, created_at,"
        " updated_at) VALUES ('m' || (SELECT count(*) FROM memories), 1, 'u', 'a', ?, 't', 't')"
    )

    def recall_statements(size: int) -> list[str]:
        stored = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
        conn.executemany(insert, [(f"tea number {i}",) for i in range(size - stored)])
        statements.clear()
        assert len(search_module.search(conn, 1, "tea time", **request)) == 10
        # (Statements FTS5 runs on its own tables are traced as "-- ...": not ours.)
        ours = [s for s in statements if not s.startswith("--")]
        return [s for s in ours if "FROM memories" in s or "memories_fts" in s]

    # The scope read whole: one statement, then the page's rows.
    scan = recall_statements(SCAN_LIMIT)
    assert not any("memories_fts" in s for s in scan) and len(scan) == 2
    # Every match read at once: one full-text statement, no count.
    matches = recall_statements(SCAN_LIMIT + 1)
    assert sum("memories_fts" in s for s in matches) == 1 and len(matches) == 2
    assert len(recall_statements(MATCHES_LIMIT)) == 2
    # Past it, one statement counting every word (one count each), then the candidates.
    (counts,) = [s for s in recall_statements(MATCHES_LIMIT + 1) if "count(*)" in s]
    assert counts.count("count(*)") == 2
    assert MATCHES_LIMIT <= POSTINGS_BUDGET  # no word is ever too common to read its matches


@pytest.mark.parametrize("path", ["scan", "every match"])
def test_the_query_budget_bounds_a_small_scopes_recall(path, monkeypatch):
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    migrate(conn)
    _fill(conn, seed=1, size=SCAN_LIMIT)
    scan, matches = PATHS[path]
    monkeypatch.setattr(FtsIndex, "scans_up_to", scan)
    monkeypatch.setattr(FtsIndex, "reads_matches_up_to", matches)
    request = {
        "user_id": "u",
        "agent_id": None,
        "session_id": None,
        "filters": compile_filters({"kind": "x", "n": {"$gte": 0}}),
        "limit": 10,
        "offset": 0,
    }
    query = " ".join(TRICKY[:8])
    tight = Budget(seconds=3600.0, max_response_bytes=1 << 20, max_steps=2 * PROGRESS_INTERVAL)
    with pytest.raises(ApiError) as refused, tight.guard(conn):
        search_module.search(conn, 1, query, **request)
    assert refused.value.code == "query_too_expensive"
    ample = Budget(seconds=3600.0, max_response_bytes=1 << 20, max_steps=10_000_000)
    with ample.guard(conn):
        assert search_module.search(conn, 1, query, **request)
