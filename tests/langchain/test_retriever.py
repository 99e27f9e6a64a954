"""MemLayerRetriever: the langchain-tests standard suite, then what MemLayer adds."""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from memlayer_integrations import AuthenticationError, MemLayerClient
from memlayer_integrations.langchain import MemLayerRetriever, MemLayerScopeError

FACTS = [f"alice drinks tea number {i}" for i in range(5)]


def _seed(base_url: str, api_key: str) -> None:
    with MemLayerClient(api_key=api_key, base_url=base_url) as client:
        client.remember_many(
            [{"content": f, "metadata": {"n": i}} for i, f in enumerate(FACTS)],
            user_id="alice",
            agent_id="bot",
            session_id="s1",
        )


class TestMemLayerRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _server(self, base_url: str, api_key: str) -> None:
        _seed(base_url, api_key)
        self._params = {"user_id": "alice", "api_key": api_key, "base_url": base_url}

    @property
    def retriever_constructor(self) -> type[MemLayerRetriever]:
        return MemLayerRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return self._params

    @property
    def retriever_query_example(self) -> str:
        return "what does alice drink"


def test_documents_carry_the_memory(base_url: str, api_key: str) -> None:
    _seed(base_url, api_key)
    retriever = MemLayerRetriever(
        user_id="alice", agent_id="bot", k=2, api_key=api_key, base_url=base_url
    )
    docs = retriever.invoke("tea number 3")
    assert docs[0].page_content == FACTS[3]
    meta = docs[0].metadata
    assert meta["id"].startswith("mem_") and docs[0].id == meta["id"]
    assert meta["score"] > 0 and meta["n"] == 3
    assert (meta["user_id"], meta["agent_id"], meta["session_id"]) == ("alice", "bot", "s1")
    assert meta["created_at"].endswith("+00:00")


async def test_scope_from_configurable_and_async(base_url: str, api_key: str) -> None:
    _seed(base_url, api_key)
    retriever = MemLayerRetriever(api_key=api_key, base_url=base_url)
    docs = await retriever.ainvoke("tea", {"configurable": {"user_id": "alice"}}, k=3)
    assert len(docs) == 3
    assert await retriever.ainvoke("tea", {"configurable": {"user_id": "bob"}}) == []
    with pytest.raises(MemLayerScopeError):
        retriever.invoke("tea")


def test_authentication_error_propagates(base_url: str) -> None:
    retriever = MemLayerRetriever(user_id="alice", api_key="ml_live_" + "0" * 32, base_url=base_url)
    with pytest.raises(AuthenticationError):
        retriever.invoke("tea")
