"""Recall quality on LoCoMo: does ``recall`` find the turns that answer a question?

Every dialog turn of every conversation is remembered as one memory,
``"[<session date>] <speaker>: <text>"`` with ``{"dia_id": ...}`` as metadata, in the scope of
its conversation (``user_id`` = the sample id) and with its session as ``session_id``
(``session_3``), as a chat integration stores a conversation turn by turn. Each question of categories 1-4 (category 5 is
adversarial: no turn answers it) is recalled with limit 10 through the real client, and the
returned ``dia_id``s are compared with the question's evidence.

* recall@k: the share of a question's evidence turns found in the first k results, averaged
  over questions;
* hit@5: the share of questions with at least one evidence turn in the first 5.

The benchmark only uses the public API; it measures whatever ranking the server has.
The data file is ``../shared/data/locomo-dev.json`` from the repository root, or
``$MEMLAYER_LOCOMO``.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._harness import Context, Skip, env_path, md_table, verdict

NAME = "locomo"
TITLE = "Recall quality on LoCoMo"

DATA_ENV = "MEMLAYER_LOCOMO"
DEFAULT_DATA = "../shared/data/locomo-dev.json"
AGENT = "locomo"
CATEGORIES = (1, 2, 3, 4)
CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
KS = (1, 5, 10)
BASELINE = {"recall@10": 0.61, "recall@10 with session dates": 0.64, "recall@5": 0.53}
TARGET_RECALL_AT_10 = 0.70

_DATE = re.compile(r"(\d{1,2}) (\w+),? (\d{4})")


def session_date(date_time: str) -> str:
    """``"1:56 pm on 8 May, 2023"`` -> ``"8 May 2023"``; other shapes are kept as they are."""
    m = _DATE.search(date_time)
    return f"{m.group(1)} {m.group(2)} {m.group(3)}" if m else date_time.strip()


def load_samples(path: str) -> list[dict[str, Any]]:
    """The conversations, each as {sample_id, turns: [(dia_id, content, session)], questions: [...]}."""
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    samples = []
    for sample in raw:
        conv = sample["conversation"]
        turns = []
        n = 1
        while f"session_{n}" in conv:
            date = session_date(conv.get(f"session_{n}_date_time", ""))
            for turn in conv[f"session_{n}"]:
                prefix = f"[{date}] " if date else ""
                turns.append(
                    (turn["dia_id"], f"{prefix}{turn['speaker']}: {turn['text']}", f"session_{n}")
                )
            n += 1
        questions = []
        for qa in sample["qa"]:
            evidence = {
                e.strip()
                for item in qa.get("evidence", [])
                for e in str(item).split(";")
                if e.strip()
            }
            if qa.get("category") in CATEGORIES and evidence:
                questions.append(
                    {"question": qa["question"], "category": qa["category"], "evidence": evidence}
                )
        samples.append({"sample_id": sample["sample_id"], "turns": turns, "questions": questions})
    return samples


def run(ctx: Context, *, haystack: bool = True) -> dict[str, Any]:
    """Per conversation (each its own scope), then, with ``haystack``, all of them in one."""
    path = env_path(DATA_ENV, DEFAULT_DATA)
    if not Path(path).is_file():
        raise Skip(f"LoCoMo data not found at {path} (set ${DATA_ENV})")
    samples = load_samples(path)
    max_questions = ctx.pick(20, 150, None)  # per conversation; None = all
    max_samples = ctx.pick(1, 2, None)
    samples = samples[:max_samples] if max_samples else samples

    evidence_total = evidence_unknown = 0
    for sample in samples:
        known = {dia for dia, _, _ in sample["turns"]}
        for q in _questions(sample, max_questions):
            evidence_total += len(q["evidence"])
            evidence_unknown += len(q["evidence"] - known)
    with ctx.client() as client:
        per_conversation = _Tally()
        for sample in samples:
            scope = sample["sample_id"]
            _remember(client, sample, scope, lambda session: session)
            per_conversation.ask(client, sample, scope, _questions(sample, max_questions))
        result: dict[str, Any] = {
            "data": path,
            "conversations": len(samples),
            "memories": sum(len(sample["turns"]) for sample in samples),
            **per_conversation.figures(),
            "evidence_ids": evidence_total,
            "evidence_ids_naming_no_turn": evidence_unknown,
            "recall_limit": 10,
            "baseline": BASELINE,
            "partial": bool(max_questions or max_samples),
        }
        if haystack:
            # Every conversation in one scope, each session still its own session_id.
            together = _Tally()
            for sample in samples:
                _remember(
                    client,
                    sample,
                    HAYSTACK,
                    lambda session, s=sample: f"{s['sample_id']}/{session}",
                )
            for sample in samples:
                together.ask(client, sample, HAYSTACK, _questions(sample, max_questions))
            result["haystack"] = together.figures()
    return result


#: The ``user_id`` of the haystack: every conversation's turns in this one scope.
HAYSTACK = "haystack"


def _questions(sample: dict[str, Any], most: int | None) -> list[dict[str, Any]]:
    return sample["questions"][:most] if most else sample["questions"]


def _remember(
    client: Any, sample: dict[str, Any], user_id: str, session_id: Callable[[str], str]
) -> None:
    """The sample's turns into ``user_id``'s scope, each tagged with its conversation and
    turn (``dia_id``s repeat across conversations), in batches of at most 100 per session."""
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for dia, content, session in sample["turns"]:
        metadata = {"conversation": sample["sample_id"], "dia_id": dia}
        sessions[session].append({"content": content, "metadata": metadata})
    for session, items in sessions.items():
        for i in range(0, len(items), 100):
            client.remember_many(
                items[i : i + 100], user_id=user_id, agent_id=AGENT, session_id=session_id(session)
            )


class _Tally:
    """Evidence recall of the questions asked, per category and over all of them."""

    def __init__(self) -> None:
        self.sums: dict[Any, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.counts: dict[Any, int] = defaultdict(int)
        self.timings: list[float] = []

    def ask(
        self, client: Any, sample: dict[str, Any], user_id: str, questions: list[dict[str, Any]]
    ) -> None:
        """Recall each question (limit 10) in ``user_id``'s scope; a result counts only if
        it is a turn of the question's own conversation."""
        for q in questions:
            t0 = time.perf_counter()
            results = client.recall(q["question"], user_id=user_id, limit=10)
            self.timings.append(time.perf_counter() - t0)
            ranked = [
                r.memory.metadata.get("dia_id")
                if r.memory.metadata.get("conversation") == sample["sample_id"]
                else None
                for r in results
            ]
            ev = q["evidence"]
            for group in (q["category"], "all"):
                self.counts[group] += 1
                for k in KS:
                    self.sums[group][f"recall@{k}"] += len(ev & set(ranked[:k])) / len(ev)
                self.sums[group]["hit@5"] += bool(ev & set(ranked[:5]))

    def row(self, group: Any) -> dict[str, Any]:
        n = self.counts[group]
        out: dict[str, Any] = {"questions": n}
        for metric in [f"recall@{k}" for k in KS] + ["hit@5"]:
            out[metric] = round(self.sums[group][metric] / n, 4) if n else None
        return out

    def figures(self) -> dict[str, Any]:
        timings = self.timings
        return {
            "overall": self.row("all"),
            "by_category": {
                str(c): {"name": CATEGORY_NAMES[c], **self.row(c)}
                for c in CATEGORIES
                if self.counts[c]
            },
            "ms_per_query": round(sum(timings) * 1000 / len(timings), 3) if timings else None,
        }


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    r10 = result["overall"]["recall@10"]
    scope = " (subset)" if result["partial"] else ""
    return [
        {
            "target": f"evidence recall@10 >= {TARGET_RECALL_AT_10:.2f} (plain FTS5: 0.61, 0.64 with dates)",
            "measured": f"{r10:.3f}{scope}",
            "verdict": verdict(r10 >= TARGET_RECALL_AT_10),
        }
    ]


def _table(figures: dict[str, Any]) -> str:
    metrics = ["recall@1", "recall@5", "recall@10", "hit@5"]
    rows = [
        [f"{c} {v['name']}", v["questions"], *[v[m] for m in metrics]]
        for c, v in figures["by_category"].items()
    ]
    overall = figures["overall"]
    rows.append(["all (1-4)", overall["questions"], *[overall[m] for m in metrics]])
    return md_table(["category", "questions", *metrics], rows, digits=3)


def render(result: dict[str, Any]) -> str:
    b = result["baseline"]
    subset = " This run used a subset of the questions." if result["partial"] else ""
    lines = [
        f"{result['conversations']} conversations, {result['memories']:,} turns remembered as "
        f"`[<session date>] <speaker>: <text>`, one scope per conversation and one `session_id` per "
        "session; each question recalled "
        f"with limit {result['recall_limit']} through the client against the embedded server, "
        f"{result['ms_per_query']} ms per query.{subset} {result['evidence_ids_naming_no_turn']} of "
        f"{result['evidence_ids']:,} evidence ids name no turn of their conversation (slips in the "
        "data set) and count as misses.",
        "",
        _table(result),
        "",
        f"Baseline, plain SQLite FTS5 (porter) over the same turns: recall@5 {b['recall@5']}, "
        f"recall@10 {b['recall@10']} ({b['recall@10 with session dates']} with session dates).",
    ]
    if "haystack" in result:
        hay = result["haystack"]
        lines += [
            "",
            f"Haystack: the same {result['memories']:,} turns again, every conversation in one "
            "scope (each session its own `session_id`), the same questions; a result counts only "
            f"if it is a turn of the question's own conversation. {hay['ms_per_query']} ms per "
            "query.",
            "",
            _table(hay),
        ]
    return "\n".join(lines)
