"""LangChain and LangGraph adapters for MemLayer.

Install with ``pip install 'memlayer-integrations[langchain]'``. The top-level package never
imports this module, so the core keeps working without LangChain installed.

* :class:`MemLayerMiddleware`: long-term memory for ``create_agent`` (recall at the start
  of a turn, remember at its end).
* :class:`MemLayerStore`: a LangGraph ``BaseStore`` (``create_agent(..., store=...)``).
* :class:`MemLayerRetriever`: a ``BaseRetriever`` over a user's memories.
* :class:`MemLayerToolkit`: ``remember`` / ``recall`` / ``forget`` tools for the model.
* :class:`MemLayerChatMessageHistory`: a ``BaseChatMessageHistory`` for
  ``RunnableWithMessageHistory``.
"""

from __future__ import annotations

try:
    import langchain.agents.middleware  # noqa: F401
    import langchain_core  # noqa: F401
    import langgraph.store.base  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by .ci/check_core_import.py
    raise ImportError(
        "memlayer_integrations.langchain needs LangChain, LangGraph and langchain-core: "
        "pip install 'memlayer-integrations[langchain]'"
    ) from exc

from ._scope import MemLayerScopeError
from .chat_history import MemLayerChatMessageHistory
from .middleware import MemLayerMiddleware
from .retriever import MemLayerRetriever
from .store import MemLayerStore, memlayer_namespace
from .tools import MemLayerToolkit

__all__ = [
    "MemLayerChatMessageHistory",
    "MemLayerMiddleware",
    "MemLayerRetriever",
    "MemLayerScopeError",
    "MemLayerStore",
    "MemLayerToolkit",
    "memlayer_namespace",
]
