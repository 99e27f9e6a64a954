"""What the chat adapters remember: memories stored, and whether recall puts the answer first.

A scripted conversation of several sessions (statements, questions, small talk, repeated
statements and corrections) runs through each chat adapter, with a deterministic model that
answers from the memories in its input. Each session is a new thread (LangChain) or a new
memory (LlamaIndex), so what a later session knows comes from MemLayer only.

For every question asked in a later session, the memory shown to the model first is
compared with the statement that answers it (the newest one, after a correction). Memories
stored are counted on the server at the end and given per 100 turns. Each adapter runs with
its defaults and "as before": ``write_policy="everything"`` with every item sent with
``deduplicate: false`` (by a transport that rewrites the request bodies), which is what the
adapters stored before the write policy and the server's deduplication existed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from memlayer_integrations import MemLayerClient

from ._harness import Context, md_table, verdict

NAME = "remembering"
TITLE = "What the chat adapters remember"

USER, AGENT = "ada", "assistant"

#: (topic, statement, question)
FACTS = [
    ("plan", "Hi! I'm on the Pro plan.", "Which plan am I on?"),
    ("city", "I live in Oslo with my partner.", "Where do I live?"),
    ("pet", "My cat is called Whiskers.", "What is my cat called?"),
    ("drink", "My favourite drink is cardamom tea.", "What is my favourite drink?"),
    ("job", "I work as a nurse at the children's hospital.", "What do I work as?"),
    ("sister", "My sister Ingrid is an airline pilot.", "What does my sister Ingrid do?"),
    ("car", "I drive an old blue Volvo.", "What car do I drive?"),
    ("hobby", "On weekends I go bouldering.", "What do I do on weekends?"),
    ("language", "I'm learning Japanese for a trip next spring.", "Which language am I learning?"),
    ("allergy", "I'm allergic to peanuts.", "What am I allergic to?"),
]
#: topic -> a later statement that replaces the first one
CORRECTIONS = {
    "drink": "These days my favourite drink is black coffee.",
    "car": "I sold the Volvo; now I drive a red electric Kia.",
}
SMALL_TALK = ["Hello!", "Thanks, that's helpful.", "OK, great.", "Good morning!", "Bye for now!"]

#: A turn: what the user says, and for a question in a later session the answering statement.
Turn = tuple[str, str | None]


def script(rounds: int) -> list[list[Turn]]:
    """Sessions: two of statements (and a question about the first session), one of
    corrections and repeats, then ``rounds`` sessions of questions about every topic."""
    first, second = FACTS[:5], FACTS[5:]
    sessions: list[list[Turn]] = [
        [(SMALL_TALK[0], None)] + [(s, None) for _, s, _ in first] + [(SMALL_TALK[1], None)],
        [(SMALL_TALK[3], None)]
        + [(s, None) for _, s, _ in second]
        + [(first[0][2], first[0][1]), (SMALL_TALK[2], None)],
        [(SMALL_TALK[0], None)]
        + [(text, None) for text in CORRECTIONS.values()]
        + [(FACTS[1][1], None), (SMALL_TALK[4], None)],  # a statement said again
    ]
    answer = {topic: CORRECTIONS.get(topic, statement) for topic, statement, _ in FACTS}
    for r in range(rounds):
        turns: list[Turn] = [(SMALL_TALK[r % len(SMALL_TALK)], None)]
        order = FACTS[r % 2 :: 2] + FACTS[1 - r % 2 :: 2]
        turns += [(question, answer[topic]) for topic, _, question in order]
        turns.append((SMALL_TALK[(r + 1) % len(SMALL_TALK)], None))
        sessions.append(turns)
    return sessions


def _middleware_session(client: Any, policy: dict[str, Any]) -> Callable[[int], Any]:
    from langchain.agents import create_agent

    from memlayer_integrations.demo._scripted import LangChainContextRecorder, ScriptedChatModel
    from memlayer_integrations.langchain import MemLayerMiddleware

    middleware = MemLayerMiddleware(user_id=USER, agent_id=AGENT, client=client, **policy)
    agent = create_agent(ScriptedChatModel(), tools=[], middleware=[middleware])
    recorder = LangChainContextRecorder()

    def start(session: int) -> Any:
        config = {"configurable": {"thread_id": f"s{session}"}, "callbacks": [recorder]}
        messages: list[Any] = []

        def say(text: str) -> list[str]:
            messages.append(("user", text))
            state = agent.invoke({"messages": list(messages)}, config)
            messages[:] = state["messages"]
            return recorder.take()

        return say

    return start


def _llama_session(client: Any, policy: dict[str, Any]) -> Callable[[int], Any]:
    from llama_index.core.chat_engine import SimpleChatEngine

    from memlayer_integrations.demo._scripted import LlamaIndexContextRecorder, ScriptedLLM
    from memlayer_integrations.llama_index import MemLayerMemory

    recorder = LlamaIndexContextRecorder()

    def start(session: int) -> Any:
        memory = MemLayerMemory(
            user_id=USER, agent_id=AGENT, session_id=f"s{session}", client=client, **policy
        )
        engine = SimpleChatEngine.from_defaults(llm=ScriptedLLM(), memory=memory)

        def say(text: str) -> list[str]:
            recorder.attach()
            try:
                engine.chat(text)
            finally:
                recorder.detach()
            return recorder.take()

        return say

    return start


ADAPTERS: dict[str, Callable[[Any, dict[str, Any]], Callable[[int], Any]]] = {
    "MemLayerMiddleware in create_agent": _middleware_session,
    "MemLayerMemory in SimpleChatEngine": _llama_session,
}
POLICIES = {"default": {}, "as before": {"write_policy": "everything"}}


class _NoDedup(httpx.BaseTransport):
    """Sends every memory item with ``deduplicate: false``: storage as it was before."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith(("/memories/batch", "/batch")):
            body = json.loads(request.read())
            for op in body.get("operations", [body]):
                for item in op.get("items", []):
                    item["deduplicate"] = False
            request = httpx.Request(
                request.method,
                request.url,
                headers={k: v for k, v in request.headers.items() if k != "content-length"},
                json=body,
            )
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def _measure(ctx: Context, adapter: str, policy: str, sessions: list[list[Turn]]) -> dict[str, Any]:
    client = ctx.client()
    if policy == "as before":
        http = httpx.Client(transport=_NoDedup())
        ctx._http.append(http)
        client = MemLayerClient(api_key=ctx.new_key(), base_url=ctx.server.url, http_client=http)
    start = ADAPTERS[adapter](client, POLICIES[policy])
    turns = asked = first = 0
    misses: list[str] = []
    for number, session in enumerate(sessions):
        say = start(number)
        for text, expected in session:
            shown = say(text)
            turns += 1
            if expected is not None:
                asked += 1
                if shown[:1] == [expected]:
                    first += 1
                elif len(misses) < 5:
                    misses.append(f"{text!r} -> {shown[0] if shown else None!r}")
    stored = len(list(client.list_memories(user_id=USER, agent_id=AGENT)))
    return {
        "adapter": adapter,
        "policy": policy,
        "turns": turns,
        "memories": stored,
        "memories_per_100_turns": round(100 * stored / turns, 1),
        "questions": asked,
        "answer_first": first,
        "answer_first_share": round(first / asked, 3) if asked else 0.0,
        "misses": misses,
    }


def run(ctx: Context) -> dict[str, Any]:
    sessions = script(ctx.pick(1, 2, 4))
    rows = [_measure(ctx, adapter, policy, sessions) for adapter in ADAPTERS for policy in POLICIES]
    return {"sessions": len(sessions), "rows": rows}


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for adapter in ADAPTERS:
        rows = {r["policy"]: r for r in result["rows"] if r["adapter"] == adapter}
        default, everything = rows["default"], rows["as before"]
        out.append(
            {
                "target": f"{adapter}: the answering statement first for >= 90% of questions",
                "measured": f"{default['answer_first']} of {default['questions']} "
                f"({100 * default['answer_first_share']:.0f}%)",
                "verdict": verdict(default["answer_first_share"] >= 0.9),
            }
        )
        out.append(
            {
                "target": f"{adapter}: at most half the memories stored before",
                "measured": f"{default['memories_per_100_turns']:g} vs "
                f"{everything['memories_per_100_turns']:g} per 100 turns",
                "verdict": verdict(default["memories"] * 2 <= everything["memories"]),
            }
        )
    return out


def render(result: dict[str, Any]) -> str:
    table = md_table(
        ["adapter", "write policy", "turns", "memories", "per 100 turns", "answer first"],
        [
            [
                r["adapter"],
                r["policy"],
                r["turns"],
                r["memories"],
                r["memories_per_100_turns"],
                f"{r['answer_first']} / {r['questions']}",
            ]
            for r in result["rows"]
        ],
    )
    misses = [f"- {r['adapter']} ({r['policy']}): {m}" for r in result["rows"] for m in r["misses"]]
    return "\n".join(
        [
            f"A scripted conversation of {result['sessions']} sessions (statements, small talk, "
            "a repeated statement, two corrections, then rounds of questions about every fact), "
            "each session a new thread or memory. 'Answer first': the first memory shown to the "
            "model for a question in a later session is the statement that answers it.",
            "",
            table,
            *(
                ["", "Questions whose answer was not first (up to 5 each):", "", *misses]
                if misses
                else []
            ),
        ]
    )
