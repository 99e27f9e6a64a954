"""WordPiece: the tokenizer of BERT's uncased models (all-MiniLM-L6-v2 among them).

An ONNX export of a BERT model takes token ids, not text. The rules are BERT's, so the ids
are the ones the model was trained on:

1. *clean*: drop NUL, U+FFFD and control characters; any whitespace becomes a space;
2. put spaces around CJK ideographs (each is a word of its own);
3. split on spaces; lowercase each word and strip its accents (NFD, marks dropped);
4. split each word before and after every punctuation character;
5. each piece is matched greedily, longest first, against the vocabulary: ``playing`` is
   ``play`` + ``##ing``; a word that cannot be matched (or has over 100 characters) is
   ``[UNK]``.

The vocabulary (``bert_uncased_vocab.txt``, 30,522 entries, Apache-2.0 like the models
trained on it) ships in this package, so nothing is fetched. Pure Python: a question of a
dozen words takes tens of microseconds, memories are cut at ``max_tokens``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

__all__ = ["VOCAB_PATH", "WordPiece"]

VOCAB_PATH = Path(__file__).with_name("bert_uncased_vocab.txt")
_MAX_WORD = 100  # BERT's limit: a longer word is [UNK]


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    # BERT counts every non-alphanumeric ASCII character as punctuation ($, ^, `...).
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def _clean(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if code == 0 or code == 0xFFFD:
            continue
        if char in " \t\n\r" or unicodedata.category(char) == "Zs":
            out.append(" ")
        elif unicodedata.category(char) in ("Cc", "Cf"):
            continue
        elif _is_cjk(code):
            out.append(f" {char} ")
        else:
            out.append(char)
    return "".join(out)


def _split_punctuation(word: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for i, char in enumerate(word):
        if _is_punctuation(char):
            if start < i:
                pieces.append(word[start:i])
            pieces.append(char)
            start = i + 1
    if start < len(word):
        pieces.append(word[start:])
    return pieces


class WordPiece:
    """Text to BERT token ids, ``[CLS]`` first and ``[SEP]`` last.

    Example:
        >>> tokenizer = WordPiece()
        >>> [tokenizer.token(i) for i in tokenizer.encode("Unaffable coffee!")]
        ['[CLS]', 'una', '##ffa', '##ble', 'coffee', '!', '[SEP]']
    """

    def __init__(self, vocab: Path = VOCAB_PATH, *, max_tokens: int = 256) -> None:
        if max_tokens < 3:
            raise ValueError(f"max_tokens must leave room for a token, got {max_tokens}")
        tokens = vocab.read_text(encoding="utf-8").splitlines()
        self._ids = {token: i for i, token in enumerate(tokens)}
        self._tokens = tokens
        self.max_tokens = max_tokens
        self.cls, self.sep, self.unk = (self._ids[t] for t in ("[CLS]", "[SEP]", "[UNK]"))
        self._word_ids = lru_cache(maxsize=65_536)(self._match)

    def token(self, token_id: int) -> str:
        """The vocabulary entry of ``token_id``."""
        return self._tokens[token_id]

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``, cut to ``max_tokens`` (``[CLS]`` and ``[SEP]`` included)."""
        ids = [self.cls]
        room = self.max_tokens - 1
        for word in _clean(text).split():
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            for piece in _split_punctuation(word):
                ids.extend(self._word_ids(piece))
                if len(ids) >= room:
                    return [*ids[:room], self.sep]
        ids.append(self.sep)
        return ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def _match(self, word: str) -> tuple[int, ...]:
        """Greedy longest-first match of one word against the vocabulary."""
        if len(word) > _MAX_WORD:
            return (self.unk,)
        ids = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                candidate = word[start:end] if start == 0 else "##" + word[start:end]
                found = self._ids.get(candidate)
                if found is not None:
                    ids.append(found)
                    break
                end -= 1
            else:
                return (self.unk,)
            start = end
        return tuple(ids)
