"""``MemLayerRetriever``: MemLayer recall as a LlamaIndex ``BaseRetriever``.

Use it wherever LlamaIndex takes a retriever (``ContextChatEngine``, query engines,
``RetrieverTool``): each recalled memory becomes a ``NodeWithScore`` whose node id is the
memory id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from .. import AsyncMemLayerClient, MemLayerClient, RecalledMemory
from .._adapter import (
    DEFAULT_RECALL_LIMIT,
    ClientPair,
    clip_query,
    renamed_attribute,
    require_scope,
    warn_renamed,
)

__all__ = ["MemLayerRetriever"]

# Identifiers are for the application, not for the model or the embedder.
_HIDDEN_KEYS = [
    "memory_id",
    "user_id",
    "agent_id",
    "session_id",
    "key",
    "updated_at",
    "memory_metadata",
]


def to_node(hit: RecalledMemory) -> NodeWithScore:
    """One recalled memory as a scored ``TextNode`` (id, scope and times in its metadata)."""
    m = hit.memory
    node = TextNode(
        id_=m.id,
        text=m.content,
        metadata={
            "memory_id": m.id,
            **m.provenance(),
            "memory_metadata": dict(m.metadata),
        },
        excluded_llm_metadata_keys=list(_HIDDEN_KEYS),
        excluded_embed_metadata_keys=[*_HIDDEN_KEYS, "created_at"],
    )
    return NodeWithScore(node=node, score=hit.score)


class MemLayerRetriever(BaseRetriever):
    """Retrieves a user's long-term memories relevant to a query, best first.

    Args:
        user_id: whose memories to search (required).
        agent_id: which agent's memories (required); pass ``all_agents=True`` to search every
            agent of the user instead.
        session_id: only memories of this session, if given.
        k: how many memories to return (1 to 100). ``limit=``, its former name, still works
            and warns.
        filters: a metadata filter, as in the wire contract (``{"topic": "billing"}``).
        all_agents: search all of the user's agents, not only ``agent_id``.
        client, async_client, api_key, base_url: how to reach MemLayer (see
            :class:`~memlayer_integrations.llama_index.MemLayerMemory`).

    Each node's text is the memory's content; its metadata holds ``memory_id``,
    ``user_id``, ``agent_id``, ``session_id``, ``key``, ``created_at``, ``updated_at`` and
    the memory's own metadata under ``memory_metadata``. Only ``created_at`` is shown to
    the model.

    Example:
        >>> retriever = MemLayerRetriever(user_id="user_123", agent_id="support_bot",
        ...                               api_key=key, base_url=server.url)
        >>> [n.node.text for n in retriever.retrieve("where does the user live?")]
        ['User lives in Oslo']
    """

    limit = renamed_attribute("limit", "k")

    def __init__(
        self,
        user_id: str,
        agent_id: str,
        *,
        session_id: str | None = None,
        k: int = DEFAULT_RECALL_LIMIT,
        filters: Mapping[str, Any] | None = None,
        all_agents: bool = False,
        client: MemLayerClient | None = None,
        async_client: AsyncMemLayerClient | None = None,
        api_key: Any = None,
        base_url: str | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
        limit: int | None = None,
    ) -> None:
        require_scope(type(self).__name__, user_id=user_id, agent_id=agent_id)
        if limit is not None:
            warn_renamed(type(self).__name__, "limit", "k")
            k = limit
        if not 1 <= k <= 100:
            raise ValueError(f"k must be between 1 and 100, got {k}")
        self.user_id = user_id
        self.agent_id = agent_id
        self.session_id = session_id
        self.k = k
        self.filters = dict(filters) if filters is not None else None
        self.all_agents = all_agents
        self._clients = ClientPair(client, async_client, api_key, base_url)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _recall_kwargs(self) -> dict[str, Any]:
        return dict(
            user_id=self.user_id,
            agent_id=None if self.all_agents else self.agent_id,
            session_id=self.session_id,
            filters=self.filters,
            limit=self.k,
        )

    @staticmethod
    def _query(query_bundle: QueryBundle) -> str | None:
        return clip_query(query_bundle.query_str) or None

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query = self._query(query_bundle)
        if query is None:
            return []
        return [to_node(h) for h in self._clients.sync.recall(query, **self._recall_kwargs())]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query = self._query(query_bundle)
        if query is None:
            return []
        return [
            to_node(h) for h in await self._clients.async_.recall(query, **self._recall_kwargs())
        ]
