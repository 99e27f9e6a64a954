"""A LangChain retriever over a user's MemLayer memories."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, ensure_config
from pydantic import ConfigDict, Field, PrivateAttr

from .. import AsyncMemLayerClient, MemLayerClient, RecalledMemory
from .._adapter import ClientPair, clip_query
from ._scope import resolve_scope

__all__ = ["MemLayerRetriever"]

# The config of the current invoke, so the scope can come from config["configurable"]
# (BaseRetriever hands ``_get_relevant_documents`` no config).
_RUN_CONFIG: ContextVar[RunnableConfig | None] = ContextVar(
    "memlayer_retriever_config", default=None
)


def _document(hit: RecalledMemory) -> Document:
    m = hit.memory
    return Document(
        page_content=m.content,
        id=m.id,
        metadata={
            **m.metadata,
            "id": m.id,
            "score": hit.score,
            **m.provenance(),
        },
    )


class MemLayerRetriever(BaseRetriever):
    """Retrieves the memories most relevant to a query, best first, as ``Document``\\ s.

    Each document's ``page_content`` is the memory's content; its ``metadata`` holds the
    memory's own metadata, then ``id``, ``score``, ``user_id``, ``agent_id``, ``session_id``,
    ``key``, ``created_at`` and ``updated_at`` (these win over metadata keys of the same name).

    Args:
        user_id: whose memories; or per run from the context / ``configurable``.
        agent_id: narrow to one agent; ``None`` (and nothing in the run) searches all of the
            user's agents.
        k: how many documents (1-100); ``invoke(query, k=3)`` overrides it for one call.
        filters: MemLayer metadata filters applied to every search.
        session_id: narrow to one session.
        client, async_client, api_key, base_url: how to reach MemLayer.

    Example:
        >>> retriever = MemLayerRetriever(user_id="alice", k=3, api_key=key, base_url=server.url)
        >>> docs = retriever.invoke("what does alice drink?")
        >>> docs = retriever.invoke("drinks", k=1)
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    user_id: str | None = None
    agent_id: str | None = None
    k: int = Field(default=4, ge=1, le=100)
    filters: dict[str, Any] | None = None
    session_id: str | None = None
    client: MemLayerClient | None = Field(default=None, exclude=True)
    async_client: AsyncMemLayerClient | None = Field(default=None, exclude=True)
    api_key: Any | None = Field(default=None, exclude=True, repr=False)
    base_url: str | None = None

    _clients: ClientPair = PrivateAttr()

    def model_post_init(self, __context: Any) -> None:
        self._clients = ClientPair(self.client, self.async_client, self.api_key, self.base_url)

    def invoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        token = _RUN_CONFIG.set(ensure_config(config))
        try:
            return super().invoke(input, config, **kwargs)
        finally:
            _RUN_CONFIG.reset(token)

    async def ainvoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        token = _RUN_CONFIG.set(ensure_config(config))
        try:
            return await super().ainvoke(input, config, **kwargs)
        finally:
            _RUN_CONFIG.reset(token)

    def _recall_args(self, k: int | None) -> dict[str, Any]:
        scope = resolve_scope(
            user_id=self.user_id,
            agent_id=self.agent_id,
            config=_RUN_CONFIG.get(),
            require_agent=False,
            adapter="MemLayerRetriever",
        )
        limit = self.k if k is None else k
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            raise ValueError(f"k must be an integer between 1 and 100, got {limit!r}")
        return {
            "user_id": scope.user_id,
            "agent_id": scope.agent_id,
            "limit": limit,
            "filters": self.filters,
            "session_id": self.session_id,
        }

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        if not query.strip():
            return []
        hits = self._clients.sync.recall(clip_query(query), **self._recall_args(k))
        return [_document(h) for h in hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        if not query.strip():
            return []
        hits = await self._clients.async_.recall(clip_query(query), **self._recall_args(k))
        return [_document(h) for h in hits]
