"""Optional fact extraction: a finished turn becomes zero or more short facts to store.

Off by default: without it the chat adapters store text exactly as it was said. With
``extract=`` an adapter hands each finished turn to the framework's own chat model (or to a
callable) and stores the facts it returns, instead of the turn's messages or beside them,
in the same write request as before: extraction costs a model call, never a MemLayer
request. The framework-specific calls live in the adapters; this module holds what they
share: the prompt, the transcript it is shown, and how the answer is read.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = [
    "EXTRACTION_PROMPT",
    "Extractor",
    "Turn",
    "acall_extractor",
    "call_extractor",
    "fact_items",
    "parse_facts",
    "transcript",
]

#: A finished turn: ``(role, text)`` pairs, role ``"user"`` or ``"assistant"``.
Turn = Sequence[tuple[str, str]]
#: A callable extractor: the turn in, the facts out (or an awaitable of them).
Extractor = Callable[[Turn], "Sequence[str] | Awaitable[Sequence[str]]"]

EXTRACTION_PROMPT = (
    "You extract facts worth remembering about the user from one conversation turn.\n"
    "Write each fact on its own line, as a short sentence in the user's own words, first "
    'person ("I live in Oslo"). Only facts the user stated about themselves, their '
    "preferences, plans and circumstances; a correction replaces the earlier fact. No "
    "questions, greetings, or what the assistant said. If there is nothing to remember, "
    "answer NONE."
)

_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")
#: Longest fact kept; an extractor that returns a paragraph has misunderstood the task.
MAX_FACT_CHARS = 1000


def transcript(turn: Turn) -> str:
    """The turn as the model reads it: ``user: ...`` / ``assistant: ...`` lines."""
    return "\n".join(f"{role}: {text}" for role, text in turn if text.strip())


def parse_facts(answer: str) -> list[str]:
    """The facts in a model's answer: one per line, bullets and numbering removed,
    ``NONE`` and blank lines dropped, repeats once."""
    facts: list[str] = []
    for line in answer.splitlines():
        fact = _BULLET.sub("", line).strip()
        if not fact or fact.strip(".").upper() == "NONE" or len(fact) > MAX_FACT_CHARS:
            continue
        if fact not in facts:
            facts.append(fact)
    return facts


def _checked(facts: Any) -> list[str]:
    if (
        isinstance(facts, str)
        or not isinstance(facts, Sequence)
        or not all(isinstance(f, str) for f in facts)
    ):
        raise TypeError(f"an extractor returns a sequence of fact strings, not {facts!r:.80}")
    return [f.strip() for f in facts if f.strip()]


def call_extractor(extract: Extractor, turn: Turn) -> list[str]:
    """Run a callable extractor from sync code (an async one is refused: use the async API)."""
    facts = extract(turn)
    if inspect.isawaitable(facts):
        if hasattr(facts, "close"):
            facts.close()  # never awaited: close the coroutine so no warning is left behind
        raise TypeError("this extractor is async; call the adapter's async methods")
    return _checked(facts)


async def acall_extractor(extract: Extractor, turn: Turn) -> list[str]:
    """Run a callable extractor, sync or async, from async code."""
    facts = extract(turn)
    if inspect.isawaitable(facts):
        facts = await facts
    return _checked(facts)


def fact_items(
    facts: Sequence[str], session_id: str | None, **metadata: Any
) -> list[dict[str, Any]]:
    """Memory items for extracted ``facts``: metadata says where they came from, and they
    rank as the user's own words (no ``role: assistant``)."""
    items: list[dict[str, Any]] = []
    for fact in facts:
        item: dict[str, Any] = {"content": fact, "metadata": {"source": "extracted", **metadata}}
        if session_id is not None:
            item["session_id"] = session_id
        items.append(item)
    return items
