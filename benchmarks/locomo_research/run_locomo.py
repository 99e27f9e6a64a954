"""Reproduce the LoCoMo evidence-recall numbers and the 100k-memory latency of ``ranking.py``.

Protocol: every dialog turn is one memory "[8 May 2023] Caroline: text" (plus
" [image: <blip_caption>]" when the turn shared a photo), ``dia_id`` in metadata, scoped to
its conversation (user_id = sample_id), stored in conversation order. Every question of
categories 1-4 that lists evidence is recalled with limit 10; evidence recall@k is the share
of its evidence dia_ids in the top k, hit@5 whether any is in the top 5.

Usage:
    python benchmarks/locomo_research/run_locomo.py            # variants table
    python benchmarks/locomo_research/run_locomo.py --latency  # + 100k-memory p50
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ranking  # noqa: E402

DATA = Path(os.environ.get("LOCOMO_DATA", "/work/shared/data/locomo-dev.json"))


def session_date(raw: str) -> str:
    """'1:56 pm on 8 May, 2023' -> '8 May 2023'."""
    m = re.search(r"(\d{1,2}) (\w+),? (\d{4})", raw)
    return f"{m.group(1)} {m.group(2)} {m.group(3)}" if m else raw


def load(dates=True, captions=True):
    """Return (memories [(user_id, dia_id, content)], questions [(user_id, q, evidence, cat)])."""
    data = json.loads(DATA.read_text())
    memories, questions = [], []
    for sample in data:
        conv, uid = sample["conversation"], sample["sample_id"]
        n = 1
        while f"session_{n}" in conv:
            date = session_date(conv[f"session_{n}_date_time"])
            for turn in conv[f"session_{n}"]:
                text = f"{turn['speaker']}: {turn['text']}"
                if captions and turn.get("blip_caption"):
                    text += f" [image: {turn['blip_caption']}]"
                if dates:
                    text = f"[{date}] {text}"
                memories.append((uid, turn["dia_id"], text))
            n += 1
        for qa in sample["qa"]:
            evidence = {e.strip() for item in qa["evidence"] for e in item.split(";") if e.strip()}
            if qa["category"] in (1, 2, 3, 4) and evidence:
                questions.append((uid, qa["question"], evidence, qa["category"]))
    return memories, questions


def build_db(memories, tokenize="porter unicode61 remove_diacritics 2"):
    db = sqlite3.connect(":memory:")
    db.executescript(
        "CREATE TABLE memories (rowid INTEGER PRIMARY KEY, user_id TEXT NOT NULL, "
        "agent_id TEXT, session_id TEXT, content TEXT NOT NULL, dia TEXT);"
        "CREATE INDEX memories_stream ON memories(user_id, agent_id, session_id, rowid);"
    )
    db.execute(ranking.FTS_TABLE_SQL.replace("porter unicode61 remove_diacritics 2", tokenize))
    db.executemany("INSERT INTO memories(user_id, dia, content) VALUES (?, ?, ?)", memories)
    db.execute("INSERT INTO memories_fts(memories_fts) VALUES ('rebuild')")
    return db


# --- query builders for the variants -------------------------------------------------
def q_plain(text):
    """Baseline: every word, quoted, OR-ed (no stop words removed)."""
    words = list(dict.fromkeys(re.findall(r"[^\W_]+", text.lower())))
    return " OR ".join(f'"{w}"' for w in words) or None


def q_prefix(text, min_len=5):
    terms = ranking.query_terms(text)
    return " OR ".join(f'"{t}"' + ("*" if len(t) >= min_len else "") for t in terms) or None


def probe(db, budget=ranking.POSTINGS_BUDGET):
    return lambda term: db.execute(ranking.PROBE_SQL, (f'"{term}"', budget + 1)).fetchone()[0]


def budgeted(db, budget=ranking.POSTINGS_BUDGET):
    return lambda text: ranking.build_match_query(text, probe(db, budget), budget)


def recall(db, user_id, text, limit, build=None, neighbours=True,
           weight=ranking.NEIGHBOUR_WEIGHT, candidates=ranking.CANDIDATES, lenders=ranking.LENDERS):
    """The full recall path as the server would run it; returns rowids best first."""
    match = (build or budgeted(db))(text)
    if match is None:
        return []
    n = candidates if neighbours else limit
    scores = dict(db.execute(ranking.CANDIDATES_SQL, (match, user_id, n)).fetchall())
    if not neighbours or not scores:
        return [r for r, _ in ranking.rank(scores)][:limit]
    top = list(scores)[:lenders]
    sql = ranking.NEIGHBOURS_SQL.format(ids=",".join("?" * len(top)))
    nb = {r: (p, x) for r, p, x in db.execute(sql, top)}
    return [r for r, _ in ranking.smooth_with_neighbours(scores, nb, weight)][:limit]


def evaluate(db, questions, **kw):
    dia = dict(db.execute("SELECT rowid, dia FROM memories"))
    acc = defaultdict(lambda: defaultdict(float))
    t0 = time.perf_counter()
    for uid, q, ev, cat in questions:
        got = [dia[r] for r in recall(db, uid, q, 10, **kw)]
        for key in (cat, "all"):
            a = acc[key]
            a["n"] += 1
            for k in (1, 5, 10):
                a[k] += len(ev & set(got[:k])) / len(ev)
            a["h5"] += bool(ev & set(got[:5]))
    ms = (time.perf_counter() - t0) * 1000 / len(questions)
    return acc, ms


def row(label, acc, ms):
    a = acc["all"]
    cats = " ".join(f"{acc[c][10] / acc[c]['n']:.3f}" for c in (1, 2, 3, 4))
    return (f"| {label:<44} | {a[1] / a['n']:.3f} | {a[5] / a['n']:.3f} | {a[10] / a['n']:.3f} "
            f"| {a['h5'] / a['n']:.3f} | {cats} | {ms:.2f} |")


def per_category(acc):
    print("| category | n | @1 | @5 | @10 | hit@5 |\n|---|---|---|---|---|---|")
    for key in (1, 2, 3, 4, "all"):
        a = acc[key]
        print(f"| {key} | {int(a['n'])} | {a[1] / a['n']:.3f} | {a[5] / a['n']:.3f} "
              f"| {a[10] / a['n']:.3f} | {a['h5'] / a['n']:.3f} |")


def variants():
    print("| variant | @1 | @5 | @10 | hit@5 | @10 by cat 1 2 3 4 | ms/q |")
    print("|---|---|---|---|---|---|---|")
    plain = dict(build=q_plain, neighbours=False)
    stop = dict(neighbours=False)
    for dates, captions in ((False, False), (True, False), (True, True)):
        mems, qs = load(dates, captions)
        tag = f"{'date' if dates else 'nodate'}{'+caption' if captions else ''}"
        db = build_db(mems)
        print(row(f"porter, all words OR ({tag})", *evaluate(db, qs, **plain)))
        print(row(f"porter, stop words removed ({tag})", *evaluate(db, qs, **stop)))
    print(row("unicode61 (no stemming), stop words", *evaluate(build_db(mems, "unicode61"), qs, **stop)))
    print(row("porter, stop words, prefix* on words >= 5", *evaluate(db, qs, build=q_prefix, neighbours=False)))
    for w in (0.3, 0.5, 0.7):
        print(row(f"porter, stop words, neighbour smoothing {w}", *evaluate(db, qs, weight=w)))
    print(row("  same, 100 candidates, only the best 30 lend", *evaluate(db, qs, candidates=100, lenders=30)))
    print(row("  same, no postings budget (plain OR)", *evaluate(db, qs, build=ranking.build_match_query)))
    for budget in (110, 55, 28):
        print(row(f"  same, budget {budget} (~{budget * 100_000 // len(mems)} at 100k)",
                  *evaluate(db, qs, build=budgeted(db, budget))))
    acc, ms = evaluate(db, qs)
    print("\nRecommended (porter, stop words, budget 2000, 200 candidates all lending, weight 0.5):")
    per_category(acc)
    print(f"ms/query {ms:.2f}")
    mems, qs = load(True, False)
    print("\nSame, without captions:")
    per_category(evaluate(build_db(mems), qs)[0])


def latency(total=100_000):
    mems, qs = load(True, True)
    rng = random.Random(7)
    dates = sorted({m[2][1:m[2].index("]")] for m in mems})
    synth, i = [], 0
    while len(synth) < total:
        _, dia, text = mems[i % len(mems)]
        body = text[text.index("]") + 2:]
        synth.append(("one_user", f"{dia}#{i}", f"[{rng.choice(dates)}] {body}"))
        i += 1
    t0 = time.perf_counter()
    db = build_db(synth)
    print(f"\n100k memories, one user: index built in {time.perf_counter() - t0:.1f}s")
    questions = [q for _, q, _, _ in qs]
    for label, kw in (("plain OR, bm25 only", dict(build=ranking.build_match_query, neighbours=False)),
                      ("budget 2000, bm25 only", dict(neighbours=False)),
                      ("budget 2000 + neighbour smoothing (recommended)", dict()),
                      ("budget 1000 + neighbour smoothing", dict(build=budgeted(db, 1000))),
                      ("budget 1000, 100 candidates, 30 lenders", dict(build=budgeted(db, 1000), candidates=100, lenders=30))):
        times = []
        for q in questions:
            t = time.perf_counter()
            recall(db, "one_user", q, 10, **kw)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(f"{label}: p50 {statistics.median(times):.2f} ms, p90 {times[int(.9 * len(times))]:.2f} ms, "
              f"p99 {times[int(.99 * len(times))]:.2f} ms, max {times[-1]:.2f} ms ({len(times)} queries)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", action="store_true")
    args = parser.parse_args()
    variants()
    if args.latency:
        latency()
