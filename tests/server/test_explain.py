"""Recall with ``explain``: each result says why it came back (matched words, or the
conversation turn next to it that matched)."""

from __future__ import annotations

import httpx

from ._helpers import assert_error, remember

CONVERSATION = [
    "I started yoga last month",
    "How long should I hold the warrior pose?",
    "Between 30 and 60 seconds, breathing slowly",
    "I like green tea",
]


def _store_conversation(http: httpx.Client) -> list[dict]:
    response = http.post(
        "/memories/batch",
        json={
            "user_id": "u1",
            "agent_id": "bot",
            "session_id": "s1",
            "items": [{"content": c} for c in CONVERSATION],
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["memories"]


def _recall(http: httpx.Client, query: str, **fields) -> list[dict]:
    response = http.post("/memories/search", json={"query": query, "user_id": "u1", **fields})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_without_explain_results_carry_no_why(http):
    _store_conversation(http)
    results = _recall(http, "warrior pose")
    assert results and all(set(r) == {"memory", "score"} for r in results)


def test_matched_words_are_the_query_words_the_content_matches_stemmed(http):
    remember(http, "The user plans a trip to Oslo")
    remember(http, "The user likes tea")
    first, second = _recall(http, "which plan does the user have for Oslo?", explain=True)
    assert first["memory"]["content"] == "The user plans a trip to Oslo"
    # "plan" matches "plans" as the index stems them; stop words are never listed.
    assert first["why"] == {"matched_words": ["plan", "user", "oslo"], "neighbour_of": None}
    assert second["why"] == {"matched_words": ["user"], "neighbour_of": None}


def test_a_turn_lifted_by_its_neighbour_names_that_neighbour(http):
    memories = _store_conversation(http)
    question = memories[1]
    remember(http, "The photographer asked me to strike a pose for the family picture by the lake")
    results = _recall(http, "how long to hold the warrior pose", agent_id="bot", explain=True)
    by_content = {r["memory"]["content"]: r["why"] for r in results}
    assert results[0]["memory"]["id"] == question["id"]
    assert by_content[CONVERSATION[1]]["matched_words"] == ["long", "hold", "warrior", "pose"]
    # The answer shares no word with the question: it came back as the question's neighbour.
    assert by_content[CONVERSATION[2]] == {"matched_words": [], "neighbour_of": question["id"]}
    assert by_content[CONVERSATION[0]] == {"matched_words": [], "neighbour_of": question["id"]}
    # A memory outside any conversation matched on its own word only.
    photo = next(w for c, w in by_content.items() if c.startswith("The photographer"))
    assert photo == {"matched_words": ["pose"], "neighbour_of": None}


def test_explain_changes_neither_order_nor_scores(http):
    _store_conversation(http)
    remember(http, "A pose for the photo")
    plain = _recall(http, "hold the warrior pose", limit=10)
    explained = _recall(http, "hold the warrior pose", limit=10, explain=True)
    assert [(r["memory"], r["score"]) for r in plain] == [
        (r["memory"], r["score"]) for r in explained
    ]


def test_explain_works_inside_a_batch(http):
    _store_conversation(http)
    response = http.post(
        "/batch",
        json={
            "operations": [{"op": "recall", "query": "green tea", "user_id": "u1", "explain": True}]
        },
    )
    assert response.status_code == 200, response.text
    [hit] = response.json()["results"][0]["results"]
    assert hit["why"]["matched_words"] == ["green", "tea"]


def test_explain_must_be_a_boolean(http):
    response = http.post(
        "/memories/search", json={"query": "tea", "user_id": "u1", "explain": "yes"}
    )
    assert_error(response, 422, "validation_error", "explain")
