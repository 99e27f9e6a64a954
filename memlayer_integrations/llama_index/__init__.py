"""LlamaIndex adapters: MemLayer long-term memory for chat engines, agents and retrievers.

Install with ``pip install 'memlayer-integrations[llama-index]'``. Not imported by the
top-level package, so the core works without LlamaIndex.

* :class:`MemLayerMemory`: the ``memory=`` of chat engines and workflow agents; a short
  in-process window plus long-term memories recalled for the current input.
* :class:`MemLayerMemoryBlock`: a long-term block for ``Memory.from_defaults(memory_blocks=[...])``.
* :class:`MemLayerChatStore`: a ``BaseChatStore`` that keeps chat histories in MemLayer.
* :class:`MemLayerRetriever`: recall as a ``BaseRetriever`` returning ``NodeWithScore``.
* :class:`MemLayerToolSpec`: ``remember``, ``recall`` and ``forget`` tools for agents.

Every adapter is bound to one ``user_id`` and ``agent_id`` at construction (a missing one
raises :class:`MemLayerScopeError`); the model never chooses whose memories it touches.
"""

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the core-only CI job
    raise ImportError(
        "memlayer_integrations.llama_index needs LlamaIndex: "
        "pip install 'memlayer-integrations[llama-index]'"
    ) from exc

from .. import MemLayerScopeError
from .chat_store import MemLayerChatStore
from .memory import MemLayerMemory
from .memory_block import MemLayerMemoryBlock
from .retriever import MemLayerRetriever
from .tool_spec import MemLayerToolSpec

__all__ = [
    "MemLayerChatStore",
    "MemLayerMemory",
    "MemLayerMemoryBlock",
    "MemLayerRetriever",
    "MemLayerScopeError",
    "MemLayerToolSpec",
]
