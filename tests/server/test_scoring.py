"""Per-scope BM25: the scores are BM25 over the index tokenizer's tokens, whatever state
the process's chunk cache is in."""

from __future__ import annotations

import math
import random

import pytest

from memlayer_integrations.server import scoring
from memlayer_integrations.server.scoring import K1, B, ScopeStats, Scorer, stems, tokens

WORDS = ["Tea", "tea,", "teas", "(tea)", "cake", "Cakes!", "café", "latte", "café-latte", "x"]
STATS = ScopeStats(size=50, avg_length=30.0)


def _reference(terms: list[str], frequencies: list[int], text: str) -> float:
    """BM25 as the module docstring writes it, counting each stem in the text's tokens."""
    found = tokens(text)
    score = 0.0
    for stem, df in zip(stems(terms), frequencies, strict=True):
        if not stem or df <= 0:
            continue
        tf = sum(
            1 for i in range(len(found) - len(stem) + 1) if tuple(found[i : i + len(stem)]) == stem
        )
        if tf:
            idf = math.log(1 + (STATS.size - df + 0.5) / (df + 0.5))
            norm = K1 * (1 - B + B * len(text) / STATS.avg_length)
            score += idf * tf * (K1 + 1) / (tf + norm)
    return score


def _texts(seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(0, 8))) for _ in range(60)]


@pytest.mark.parametrize(
    ("terms", "frequencies"),
    [
        (["tea"], [10]),
        (["tea", "cake"], [10, 3]),
        (["cake", "nothing"], [3, 0]),
        (["café-latte", "tea"], [2, 9]),
    ],
)
def test_scores_are_bm25_over_the_tokens(terms, frequencies):
    texts = _texts(len(terms))
    scores = Scorer(terms, frequencies, STATS).raw_all([(t, len(t)) for t in texts])
    assert scores == pytest.approx([_reference(terms, frequencies, t) for t in texts], abs=1e-12)
    assert any(scores) and not all(scores)


def test_a_cache_that_starts_again_midway_scores_the_same(monkeypatch):
    texts = _texts(7) + [f"word{i} tea" for i in range(40)]
    memories = [(t, len(t)) for t in texts]
    expected = Scorer(["tea", "cake"], [10, 3], STATS).raw_all(memories)
    monkeypatch.setattr(scoring, "_CHUNKS_KEPT", 5)
    monkeypatch.setattr(scoring, "_cache", scoring._Chunks())
    for start in range(0, len(memories), 7):
        part = memories[start : start + 7]
        assert Scorer(["tea", "cake"], [10, 3], STATS).raw_all(part) == expected[start : start + 7]
    assert tokens("Tea, (tea) cakes") == ["tea", "tea", "cake"]


@pytest.mark.parametrize("seed", range(4))
def test_memories_scored_together_score_as_each_on_its_own(seed):
    # raw_all cuts every text in one call; Scorer._raw_each cuts each text on its own (the
    # way a phrase is scored): the same floats, bit for bit, whatever the spacing, for
    # empty texts, repeated texts of other lengths and a text holding raw_all's separator.
    rng = random.Random(seed)
    spaces = [" ", "  ", "\t", "\n", " \u3000 "]
    texts = [
        rng.choice(["", " "])
        + "".join(w + rng.choice(spaces) for w in rng.choices(WORDS, k=rng.randint(0, 9)))
        for _ in range(80)
    ]
    memories = [(t, len(t) + rng.randint(0, 3)) for t in texts + texts[:10]]
    scorer = Scorer(["tea", "cake", "latte"], [10, 3, 7], STATS)
    expected = scorer._raw_each(memories)
    assert scorer.raw_all(memories) == expected
    assert sum(1 for score in expected if score) > 20
    apart = [*memories[:5], (f"tea{scoring._SEPARATOR}tea cake", 12), *memories[5:]]
    assert scorer.raw_all(apart) == scorer._raw_each(apart)
    assert scorer.raw_all([]) == []
