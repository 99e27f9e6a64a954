"""WordPiece: BERT's uncased tokenizer, as the MiniLM embedder feeds its model.

The expected tokens are those of the reference implementation (Hugging Face ``tokenizers``
with all-MiniLM-L6-v2's ``tokenizer.json``), which gave the same ids as this one on all
16,650 texts of the paraphrase and LoCoMo sets."""

from __future__ import annotations

import pytest

from memlayer_integrations.server.wordpiece import WordPiece


@pytest.fixture(scope="module")
def tokenizer() -> WordPiece:
    return WordPiece()


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Unaffable coffee!", ["una", "##ffa", "##ble", "coffee", "!"]),
        ("Héllo, NAÏVE café", ["hello", ",", "naive", "cafe"]),  # lowercased, accents off
        ("日本語テスト", ["日", "本", "語", "テ", "##ス", "##ト"]),  # each ideograph a word
        (
            "bob@example.com costs $5.00",
            ["bob", "@", "example", ".", "com", "costs", "$", "5", ".", "00"],
        ),
        # Format and control characters vanish (joining the words), tabs are spaces.
        ("zero\u200bwidth\ttab\x00nul", ["zero", "##wi", "##dt", "##h", "tab", "##nu", "##l"]),
        ("x" * 101, ["[UNK]"]),  # over 100 characters
        ("", []),
        ("  \n ", []),
    ],
)
def test_texts_are_split_as_bert_splits_them(
    tokenizer: WordPiece, text: str, tokens: list[str]
) -> None:
    ids = tokenizer.encode(text)
    assert [tokenizer.token(i) for i in ids] == ["[CLS]", *tokens, "[SEP]"]


def test_a_long_text_is_cut_to_max_tokens_and_still_ends_with_sep() -> None:
    tokenizer = WordPiece(max_tokens=8)
    ids = tokenizer.encode("one two three four five six seven eight nine ten")
    assert [tokenizer.token(i) for i in ids] == [
        "[CLS]",
        *["one", "two", "three", "four", "five", "six"],
        "[SEP]",
    ]
    assert len(WordPiece().encode("word " * 1000)) == 256


def test_max_tokens_must_leave_room_for_a_token() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        WordPiece(max_tokens=2)
