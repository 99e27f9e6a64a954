"""How memories, recall results, usage and scopes show in a notebook (``_repr_html_``):
readable tables, every user-supplied text escaped, scores as comparable numbers, and the
plain-text repr unchanged."""

from __future__ import annotations

from datetime import datetime, timezone
from html.parser import HTMLParser

import pytest
from pydantic import BaseModel

from memlayer_integrations import Memory, RecalledMemory, Scope, Usage
from memlayer_integrations._models import MemoryList, RecallResults, ScopeList
from memlayer_integrations._operations import parse_memories, parse_recalled, parse_scopes

HOSTILE = '<script>alert("x")</script> & <b>bold</b>'
T0 = datetime(2026, 11, 27, 18, 40, 0, 123456, tzinfo=timezone.utc)


class _Cells(HTMLParser):
    """The text of each table cell (and the tags seen), as a browser would read them."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: set[str] = set()
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.add(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def cells(html: str) -> _Cells:
    parser = _Cells()
    parser.feed(html)
    return parser


def memory(n: int = 1, content: str = "likes tea", **fields: object) -> Memory:
    values: dict[str, object] = {
        "id": f"mem_{n:032x}",
        "content": content,
        "user_id": "u1",
        "agent_id": "bot",
        "created_at": T0,
        "updated_at": T0,
        **fields,
    }
    return Memory.model_validate(values)


def test_a_memory_is_a_field_table_with_its_text_escaped():
    m = memory(content=HOSTILE, metadata={"note": "<i>x</i>"}, session_id="s1", key=None)
    html = m._repr_html_()
    table = cells(html)
    assert {"script", "i"}.isdisjoint(table.tags) and "<script>" not in html
    fields = {row[0]: row[1] for row in table.rows[1:]}
    assert fields["content"] == HOSTILE
    assert fields["metadata"] == '{"note": "<i>x</i>"}'
    assert fields["key"] == "—" and fields["session_id"] == "s1"
    assert fields["created_at"] == "2026-11-27T18:40:00+00:00"


def test_recall_results_show_rank_and_scores_with_three_decimals():
    results = parse_recalled(
        {
            "results": [
                {"memory": memory(1, "likes tea").model_dump(mode="json"), "score": 7.41},
                {"memory": memory(2, HOSTILE).model_dump(mode="json"), "score": 0.0512345},
                {"memory": memory(3).model_dump(mode="json"), "score": 1e-6},
            ]
        }
    )
    assert isinstance(results, RecallResults) and isinstance(results, list)
    table = cells(results._repr_html_())
    header, first, second, third = table.rows
    assert header[:3] == ["#", "score", "content"] and "why" not in header
    assert first[:3] == ["1", "7.410", "likes tea"]
    assert second[:3] == ["2", "0.051", HOSTILE]
    assert third[:2] == ["3", "<0.001"]
    assert "script" not in table.tags


def test_recall_results_show_why_when_the_server_said():
    why = {"matched_words": ["tea"], "neighbour_of": None}
    lent = {"matched_words": [], "neighbour_of": "mem_" + "a" * 32, "similarity": 0.8312}
    results = parse_recalled(
        {
            "results": [
                {"memory": memory(1).model_dump(mode="json"), "score": 2.0, "why": why},
                {"memory": memory(2).model_dump(mode="json"), "score": 1.0, "why": lent},
            ]
        }
    )
    header, first, second = cells(results._repr_html_()).rows
    assert header[-1] == "why"
    assert first[-1] == "words: tea"
    assert second[-1] == "next turn to mem_" + "a" * 32 + "; similarity 0.831"


def test_one_recalled_memory_is_a_one_row_table():
    hit = RecalledMemory(memory=memory(), score=3.14159)
    assert cells(hit._repr_html_()).rows[1][:2] == ["1", "3.142"]


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ((500, 100), ["12 / 500", "31 / 100"]),
        ((None, None), ["12 (no limit)", "31 (no limit)"]),
    ],
)
def test_usage_shows_counts_against_the_plan(limits, expected):
    usage = Usage(
        plan="free",
        memories_stored=12,
        memories_limit=limits[0],
        requests_today=31,
        requests_limit=limits[1],
        resets_at=datetime(2026, 11, 28, tzinfo=timezone.utc),
    )
    rows = {row[0]: row[1] for row in cells(usage._repr_html_()).rows[1:]}
    assert rows["plan"] == "free"
    assert [rows["memories"], rows["requests today"]] == expected
    assert rows["resets at"] == "2026-11-28T00:00:00+00:00"


def test_scopes_are_a_table_of_counts():
    scopes = parse_scopes(
        {
            "scopes": [
                {"user_id": "u1", "agent_id": HOSTILE, "memories": 3},
                {"user_id": "u2", "agent_id": "bot", "memories": 1},
            ]
        }
    )
    assert isinstance(scopes, ScopeList)
    table = cells(scopes._repr_html_())
    assert table.rows == [
        ["user_id", "agent_id", "memories"],
        ["u1", HOSTILE, "3"],
        ["u2", "bot", "1"],
    ]
    assert cells(Scope(user_id="u", agent_id="a", memories=2)._repr_html_()).rows[1] == [
        "u",
        "a",
        "2",
    ]


def test_lists_of_memories_are_one_table():
    memories = parse_memories(
        {
            "memories": [
                memory(1).model_dump(mode="json"),
                memory(2, HOSTILE).model_dump(mode="json"),
            ]
        }
    )
    assert isinstance(memories, MemoryList)
    table = cells(memories._repr_html_())
    assert [row[0] for row in table.rows] == ["content", "likes tea", HOSTILE]
    assert "2 memories" in memories._repr_html_()


def test_plain_reprs_and_list_behaviour_are_unchanged():
    m = memory()
    assert repr(m) == BaseModel.__repr__(m)
    hit = RecalledMemory(memory=m, score=1.0)
    results = RecallResults([hit])
    assert repr(results) == repr([hit]) and results == [hit]
    assert repr(MemoryList([m])) == repr([m])
