"""Scripted chat models for ``memlayer demo`` and the notebooks, and what lets you watch them.

The models need no network and no API key, and they always answer the same way, so the
demo runs anywhere. They are not canned: each reads the block of recalled memories that
the MemLayer adapters put into its input (``- [mem_…] text`` lines) and answers a question
from the clause of a memory that shares the most words with it. A memory that did not
reach the model cannot show up in its answer, so the answer proves the recall.

* :class:`ScriptedChatModel`: a LangChain ``BaseChatModel`` (works in ``create_agent``; it
  calls the ``save_note`` tool for statements when the tool is bound).
* :class:`ScriptedLLM`: a LlamaIndex ``CustomLLM`` (works in chat engines).
* :class:`LangChainContextRecorder` and :class:`LlamaIndexContextRecorder`: keep the
  memories found in each model input, whatever the model (scripted or real).
* :func:`save_note`: a tool that keeps a note in the agent's LangGraph store.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from langchain.tools import ToolRuntime
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMChatStartEvent
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from pydantic import Field, PrivateAttr

from .._adapter.turn_memory import MEMORY_CLOSE, MEMORY_HEADER, MEMORY_NOTE, MEMORY_OPEN
from ..langchain import memlayer_namespace
from ..langchain._scope import resolve_scope

__all__ = [
    "ACKNOWLEDGEMENT",
    "ANSWER_PREFIX",
    "LangChainContextRecorder",
    "LlamaIndexContextRecorder",
    "ScriptedChatModel",
    "ScriptedLLM",
    "memories_in",
    "save_note",
    "scripted_reply",
]

#: The reply to a statement: short, and sharing no word with the demo's questions.
ACKNOWLEDGEMENT = "Thanks, noted."
#: How an answer from memory starts; the ":" ends a clause, so a recalled earlier answer
#: yields the same answer again.
ANSWER_PREFIX = "From what you told me before: "

# One recalled memory, as render_memories writes it.
_ENTRY = re.compile(r"^- \[mem_[0-9a-f]{32}\] (.+)$", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9']+")
_CLAUSE = re.compile(r"\s*(?:[.!?;:,]+|\band\b|\bbut\b)\s*")
# Words that say nothing about which fact a question is after.
_FILLER = set(
    [
        "a",
        "about",
        "again",
        "am",
        "an",
        "any",
        "are",
        "be",
        "can",
        "did",
        "do",
        "does",
        "i",
        "i'm",
        "in",
        "is",
        "it",
        "me",
        "my",
        "mine",
        "of",
        "on",
        "remind",
        "tell",
        "the",
        "to",
        "was",
        "what",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "you",
        "your",
        "how",
        "when",
    ]
)
_SECOND_PERSON = {
    "i'm": "you're",
    "i've": "you've",
    "i'd": "you'd",
    "i'll": "you'll",
    "i": "you",
    "am": "are",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
}


def memories_in(texts: Iterable[str]) -> list[str]:
    """The recalled memories in a model input (its messages' texts), in order, once each."""
    found: list[str] = []
    for text in texts:
        for content in _ENTRY.findall(text):
            if content not in found:
                found.append(content)
    return found


def _without_memories(text: str) -> str:
    frame = {MEMORY_HEADER, MEMORY_NOTE, MEMORY_OPEN, MEMORY_CLOSE}
    lines = [line for line in text.splitlines() if line not in frame and not _ENTRY.match(line)]
    return "\n".join(lines).strip()


def _words(text: str) -> set[str]:
    # "plans" and "plan" are one word here, as they are for the server's stemmer.
    return {w.rstrip("s") if len(w) > 3 else w for w in _WORD.findall(text.lower())}


def _second_person(clause: str) -> str:
    # Idempotent: a clause already in the second person (an earlier answer) stays as it is.
    return " ".join(_SECOND_PERSON.get(w.lower(), w) for w in clause.split())


def scripted_reply(message: str, memories: Sequence[str]) -> str:
    """What the scripted models say to ``message``, knowing only ``memories``.

    A statement is acknowledged. A question is answered with the clause of a memory (a
    fact, not an earlier question) that shares the most words with it, turned to the second
    person: "I'm on the Pro plan and I live in Oslo" answers "Which plan am I on?" with
    "From what you told me before: you're on the Pro plan." The best-ranked memory wins a
    tie. With no such clause the model says it does not know.
    """
    if not message.rstrip().endswith("?"):
        return ACKNOWLEDGEMENT
    wanted = _words(message) - _FILLER
    best, best_overlap = None, 0
    for memory in memories:
        if memory.rstrip().endswith("?"):
            continue
        for clause in filter(None, _CLAUSE.split(memory)):
            overlap = len(wanted & _words(clause))
            if overlap > best_overlap:
                best, best_overlap = clause, overlap
    if best is None:
        return "I don't know that yet: nothing you told me before says so."
    return f"{ANSWER_PREFIX}{_second_person(best)}."


# -- LangChain ---------------------------------------------------------------------------


class ScriptedChatModel(BaseChatModel):
    """A deterministic LangChain chat model that answers from the memories in its input.

    Statements are saved with the ``save_note`` tool when it is bound (then acknowledged),
    questions are answered by :func:`scripted_reply` from the memory block in the system
    message.

    Example:
        >>> from langchain_core.messages import HumanMessage, SystemMessage
        >>> model = ScriptedChatModel()
        >>> block = "- [mem_" + "0" * 32 + "] I live in Oslo"
        >>> model.invoke([SystemMessage(block), HumanMessage("Where do I live?")]).text
        'From what you told me before: you live in Oslo.'
    """

    tool_names: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "memlayer-scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        names = [getattr(t, "name", None) or getattr(t, "__name__", "") for t in tools]
        return self.model_copy(update={"tool_names": names})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._respond(messages))])

    def _respond(self, messages: list[BaseMessage]) -> AIMessage:
        if messages and isinstance(messages[-1], ToolMessage):
            return AIMessage(content=ACKNOWLEDGEMENT)
        said = next((str(m.text) for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        if "save_note" in self.tool_names and not said.rstrip().endswith("?"):
            call_id = "call_" + hashlib.sha256(said.encode()).hexdigest()[:12]
            return AIMessage(
                content="",
                tool_calls=[{"name": "save_note", "args": {"note": said}, "id": call_id}],
            )
        return AIMessage(content=scripted_reply(said, memories_in(str(m.text) for m in messages)))


class LangChainContextRecorder(BaseCallbackHandler):
    """A callback that keeps the recalled memories found in every chat model input.

    Pass it in the run's config (``{"callbacks": [recorder]}``); :meth:`take` returns what
    the model was shown since the last call.
    """

    def __init__(self) -> None:
        self._seen: list[str] = []

    def on_chat_model_start(
        self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        for prompt in messages:
            self._seen += [
                m for m in memories_in(str(x.text) for x in prompt) if m not in self._seen
            ]

    def take(self) -> list[str]:
        seen, self._seen = self._seen, []
        return seen


@tool
def save_note(note: str, runtime: ToolRuntime) -> str:
    """Save a fact the user told you, so you can look it up in later conversations."""
    scope = resolve_scope(
        user_id=None,
        agent_id="notes",
        config=runtime.config,
        context=runtime.context,
        adapter="save_note",
    )
    if runtime.store is None:
        raise RuntimeError(
            "save_note needs an agent with a store: create_agent(..., store=MemLayerStore())"
        )
    key = "note_" + hashlib.sha256(note.encode()).hexdigest()[:12]
    runtime.store.put(memlayer_namespace(scope.user_id, "notes"), key, {"note": note})
    return f"saved as {key}"


# -- LlamaIndex --------------------------------------------------------------------------


def _message_text(message: ChatMessage) -> str:
    return message.content or ""


class ScriptedLLM(CustomLLM):
    """A deterministic LlamaIndex LLM that answers from the memories in its input.

    The memories may sit in front of the latest user message (``MemLayerMemory``'s default),
    in the system message, or in a memory block; the question is the latest user message
    without them.

    Example:
        >>> from llama_index.core.llms import ChatMessage
        >>> block = "- [mem_" + "0" * 32 + "] I'm on the Pro plan"
        >>> ScriptedLLM().chat([ChatMessage(role="user", content=block + "\\nWhich plan am I on?")]).message.content
        "From what you told me before: you're on the Pro plan."
    """

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="memlayer-scripted", is_chat_model=True)

    @classmethod
    def class_name(cls) -> str:
        return "ScriptedLLM"

    def _reply(self, messages: Sequence[ChatMessage]) -> str:
        said = next(
            (_message_text(m) for m in reversed(messages) if m.role == MessageRole.USER), ""
        )
        return scripted_reply(
            _without_memories(said), memories_in(_message_text(m) for m in messages)
        )

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=self._reply(messages))
        )

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(
            text=self._reply([ChatMessage(role=MessageRole.USER, content=prompt)])
        )

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        text = self.complete(prompt, formatted=formatted, **kwargs).text
        yield CompletionResponse(text=text, delta=text)


class LlamaIndexContextRecorder(BaseEventHandler):
    """An instrumentation handler that keeps the recalled memories in every LLM chat input.

    It listens on LlamaIndex's root dispatcher between :meth:`attach` and :meth:`detach`
    (or within ``with LlamaIndexContextRecorder() as recorder:``); :meth:`take` returns what
    the LLM was shown since the last call.
    """

    _seen: list[str] = PrivateAttr(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "LlamaIndexContextRecorder"

    def handle(self, event: Any, **kwargs: Any) -> None:
        if isinstance(event, LLMChatStartEvent):
            found = memories_in(_message_text(m) for m in event.messages)
            self._seen += [m for m in found if m not in self._seen]

    def take(self) -> list[str]:
        seen, self._seen = self._seen, []
        return seen

    def attach(self) -> LlamaIndexContextRecorder:
        get_dispatcher().add_event_handler(self)
        return self

    def detach(self) -> None:
        root = get_dispatcher()
        root.event_handlers = [h for h in root.event_handlers if h is not self]

    def __enter__(self) -> LlamaIndexContextRecorder:
        return self.attach()

    def __exit__(self, *exc_info: Any) -> None:
        self.detach()
