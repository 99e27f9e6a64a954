"""HTML tables for Jupyter: how memories, recall results, usage and scopes show in a notebook.

Jupyter shows an object's ``_repr_html_`` when it has one; the models in ``_models.py``
delegate to the functions here, and keep their plain-text ``__repr__`` for everything else.
Every value that came from a user or the server passes through :func:`html.escape`: a
memory's content is arbitrary text, and a notebook renders HTML.

Scores are printed with a fixed three decimals and right-aligned, so a column of them reads
as numbers to compare, not as float reprs of varying length.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import Memory, RecalledMemory, Scope, Usage

__all__ = [
    "memories_table",
    "memory_table",
    "recall_table",
    "recalled_table",
    "scopes_table",
    "score_text",
    "usage_table",
]

_STYLE = "border-collapse:collapse;text-align:left"
_NUMBER = "text-align:right;font-variant-numeric:tabular-nums"


def _text(value: Any) -> str:
    """A cell's text, escaped: ``None`` as an em dash, times to the second, JSON for the rest."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return escape(value.isoformat(timespec="seconds"))
    if isinstance(value, (dict, list)):
        return escape(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return escape(str(value))


def score_text(score: float) -> str:
    """A score as people compare them: three decimals, so a column lines up; a score that
    would round to zero (a word in nearly every memory) reads ``<0.001``, not ``0.000``."""
    return "<0.001" if score < 0.0005 else f"{score:.3f}"


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], caption: str, numeric: set[int]
) -> str:
    """A ``<table>`` of already-escaped cells; columns in ``numeric`` are right-aligned."""
    head = "".join(
        f'<th style="{_NUMBER if i in numeric else ""}">{escape(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td style="{_NUMBER}">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<table class="memlayer" style="{_STYLE}"><caption style="text-align:left">'
        f"{escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def memory_table(memory: Memory) -> str:
    """One memory, field by field."""
    fields = [
        ("content", memory.content),
        ("user_id", memory.user_id),
        ("agent_id", memory.agent_id),
        ("session_id", memory.session_id),
        ("key", memory.key),
        ("metadata", memory.metadata),
        ("created_at", memory.created_at),
        ("updated_at", memory.updated_at),
        ("id", memory.id),
    ]
    rows = [(f"<b>{escape(name)}</b>", _text(value)) for name, value in fields]
    return _table(("field", "value"), rows, "Memory", set())


def memories_table(memories: Sequence[Memory]) -> str:
    """Several memories, one a row, in the order given."""
    rows = [
        (
            _text(m.content),
            _text(m.user_id),
            _text(m.agent_id),
            _text(m.session_id),
            _text(m.key),
            _text(m.metadata),
            _text(m.updated_at),
        )
        for m in memories
    ]
    headers = ("content", "user_id", "agent_id", "session_id", "key", "metadata", "updated_at")
    return _table(headers, rows, _count(len(memories), "memory", "memories"), set())


def _why(result: RecalledMemory) -> str:
    why = getattr(result, "why", None)
    if not isinstance(why, dict):
        return "—"
    parts = []
    if why.get("matched_words"):
        parts.append("words: " + ", ".join(str(w) for w in why["matched_words"]))
    if why.get("neighbour_of"):
        parts.append(f"next turn to {why['neighbour_of']}")
    # Reasons a newer server adds (a vector similarity, say) are shown as they come.
    for field, value in why.items():
        if field in ("matched_words", "neighbour_of") or value is None:
            continue
        shown = score_text(value) if isinstance(value, (int, float)) else json.dumps(value)
        parts.append(f"{field.replace('_', ' ')} {shown}")
    return escape("; ".join(parts)) or "—"


def recall_table(results: Sequence[RecalledMemory]) -> str:
    """Recall results best first, with rank and score; a ``why`` column when the server said."""
    explained = any(getattr(r, "why", None) is not None for r in results)
    headers = ["#", "score", "content", "agent_id", "session_id", "metadata"]
    if explained:
        headers.append("why")
    rows = []
    for rank, r in enumerate(results, 1):
        row = [
            str(rank),
            score_text(r.score),
            _text(r.memory.content),
            _text(r.memory.agent_id),
            _text(r.memory.session_id),
            _text(r.memory.metadata),
        ]
        if explained:
            row.append(_why(r))
        rows.append(row)
    return _table(headers, rows, _count(len(results), "result", "results"), {0, 1})


def recalled_table(result: RecalledMemory) -> str:
    """One recall result, as a one-row :func:`recall_table`."""
    return recall_table([result])


def _limit(count: int, limit: int | None) -> str:
    return f"{count} / {limit}" if limit is not None else f"{count} (no limit)"


def usage_table(usage: Usage) -> str:
    """Where the account stands against its plan."""
    rows = [
        ("plan", _text(usage.plan)),
        ("memories", escape(_limit(usage.memories_stored, usage.memories_limit))),
        ("requests today", escape(_limit(usage.requests_today, usage.requests_limit))),
        ("resets at", _text(usage.resets_at)),
    ]
    return _table(("", "value"), [(f"<b>{escape(k)}</b>", v) for k, v in rows], "Usage", set())


def scopes_table(scopes: Sequence[Scope]) -> str:
    """The (user, agent) pairs and how many memories each holds."""
    rows = [(_text(s.user_id), _text(s.agent_id), str(s.memories)) for s in scopes]
    return _table(
        ("user_id", "agent_id", "memories"), rows, _count(len(scopes), "scope", "scopes"), {2}
    )
