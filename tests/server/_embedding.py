"""A deterministic stand-in embedder for the semantic-recall tests.

Words are mapped to a handful of *concepts* (tea, coffee and "drink" share one; "sedan",
"SUV" and "car" another), so two texts without a common word can still be close, as with a
real model; other words land on hashed dimensions. Digits are invisible to it, like the
numbers a small model barely tells apart. The end-to-end tests use a real model instead.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np

from memlayer_integrations.server.embedders import Embedder

CONCEPTS = {
    "drink": ("drink", "tea", "coffee", "beverage", "espresso", "water", "juice"),
    "car": ("car", "sedan", "suv", "vehicle", "drive", "electric"),
    "pet": ("pet", "dog", "cat", "puppy", "kitten", "animal"),
    "work": ("job", "work", "office", "manager", "career", "engineer"),
}
_CONCEPT_OF = {word: i for i, words in enumerate(CONCEPTS.values()) for word in words}
DIM = 64


class ConceptEmbedder(Embedder):
    """See the module docstring. ``calls`` counts the texts embedded, per kind."""

    def __init__(self, name: str = "concepts-v1") -> None:
        self._name = name
        self.calls = {"documents": 0, "queries": 0}
        self.fail = False

    @property
    def name(self) -> str:
        return self._name

    def _embed(self, texts: list[str], *, query: bool) -> Any:
        if self.fail:
            from memlayer_integrations.server.embedders import EmbedderError

            raise EmbedderError("stand-in embedder told to fail")
        self.calls["queries" if query else "documents"] += len(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row, DIM - 1] = 0.05  # every text a little alike, as with real models
            for word in re.findall(r"[a-z]+", text.lower()):
                if word in _CONCEPT_OF:
                    out[row, _CONCEPT_OF[word]] += 1.0
                else:
                    h = int(hashlib.sha1(word.encode()).hexdigest(), 16)
                    out[row, len(CONCEPTS) + h % (DIM - len(CONCEPTS) - 1)] += 0.3
        return out
