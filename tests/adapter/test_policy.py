"""The adapter policy (CONTRIBUTING.md), applied alike by every adapter: one name for the
result count (``k``, former names still work with a warning), the same query clipping, the
same ownership check before a forget, the same placeholder for a message without text."""

from __future__ import annotations

import doctest
import warnings
from datetime import datetime, timezone
from typing import Any

import pytest

from memlayer_integrations import Memory, NotFoundError
from memlayer_integrations._adapter import (
    MAX_QUERY_CHARS,
    check_owner,
    clip_query,
    message_placeholder,
    renamed_argument,
)
from memlayer_integrations.langchain import MemLayerMiddleware, MemLayerToolkit
from memlayer_integrations.langchain import MemLayerRetriever as LangChainRetriever
from memlayer_integrations.llama_index import (
    MemLayerMemory,
    MemLayerMemoryBlock,
    MemLayerToolSpec,
)
from memlayer_integrations.llama_index import MemLayerRetriever as LlamaIndexRetriever

#: Never reached: building an adapter sends nothing.
REACH = {"api_key": "ml_live_0", "base_url": "http://127.0.0.1:9"}
SCOPE = {"user_id": "alice", "agent_id": "bot"}

#: adapter -> (its former name for k, how to build it with extra keyword arguments)
RENAMED: dict[str, tuple[str, Any]] = {
    "MemLayerMiddleware": ("recall_limit", lambda **kw: MemLayerMiddleware(**REACH, **kw)),
    "MemLayerToolkit": ("recall_k", lambda **kw: MemLayerToolkit(**REACH, **kw)),
    "MemLayerMemory": ("recall_limit", lambda **kw: MemLayerMemory(**SCOPE, **REACH, **kw)),
    "MemLayerMemoryBlock": (
        "recall_limit",
        lambda **kw: MemLayerMemoryBlock(**SCOPE, **REACH, **kw),
    ),
    "MemLayerToolSpec": ("recall_limit", lambda **kw: MemLayerToolSpec(**SCOPE, **REACH, **kw)),
    "llama_index.MemLayerRetriever": (
        "limit",
        lambda **kw: LlamaIndexRetriever(**SCOPE, **REACH, **kw),
    ),
}


@pytest.mark.parametrize("adapter", sorted(RENAMED))
def test_k_is_the_result_count_of_every_adapter(adapter: str) -> None:
    _, build = RENAMED[adapter]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the current name warns about nothing
        assert build(k=7).k == 7


@pytest.mark.parametrize("adapter", sorted(RENAMED))
def test_the_former_name_still_works_and_warns(adapter: str) -> None:
    old, build = RENAMED[adapter]
    with pytest.warns(DeprecationWarning, match=f"{old}=.*deprecated.*use k="):
        built = build(**{old: 3})
    assert built.k == 3
    with pytest.warns(DeprecationWarning, match=f"{old}=.*deprecated"):
        assert getattr(built, old) == 3  # read under the former name too


def test_the_langchain_retriever_already_used_k() -> None:
    assert LangChainRetriever(user_id="alice", k=2, **REACH).k == 2


def test_a_bad_k_is_refused_under_either_name() -> None:
    with pytest.raises(ValueError, match="k must be between 1 and 100"):
        MemLayerMiddleware(k=0, **REACH)
    with pytest.raises(ValueError), pytest.warns(DeprecationWarning):
        MemLayerMemory(**SCOPE, **REACH, recall_limit=101)


def test_renamed_argument_refuses_both_names() -> None:
    with pytest.raises(TypeError, match="both recall_limit= and k="):
        renamed_argument({"recall_limit": 1, "k": 2}, "recall_limit", "k", owner="X")
    values = {"k": 2}
    renamed_argument(values, "recall_limit", "k", owner="X")
    assert values == {"k": 2}


def test_clip_query_strips_and_cuts() -> None:
    assert clip_query("  tea \n") == "tea"
    assert clip_query(" " + "x" * (MAX_QUERY_CHARS + 10)) == "x" * MAX_QUERY_CHARS
    assert clip_query("   ") == ""


def memory(user_id: str, agent_id: str) -> Memory:
    now = datetime.now(timezone.utc)
    return Memory(
        id="mem_" + "1" * 32,
        content="likes tea",
        user_id=user_id,
        agent_id=agent_id,
        created_at=now,
        updated_at=now,
    )


def test_check_owner_compares_the_user_and_a_bound_agent() -> None:
    check_owner(memory("alice", "bot"), user_id="alice", agent_id="bot")
    check_owner(memory("alice", "other_bot"), user_id="alice", agent_id=None)  # all agents
    for user_id, agent_id in (("bob", "bot"), ("alice", "other_bot")):
        with pytest.raises(NotFoundError) as caught:
            check_owner(memory(user_id, agent_id), user_id="alice", agent_id="bot")
        # Reads as an unknown id: nothing about the memory's owner is told.
        assert caught.value.status_code == 404 and user_id not in str(caught.value)


def test_one_placeholder_for_a_message_without_text() -> None:
    assert message_placeholder("assistant") == "[assistant message]"


def test_a_memory_saved_under_the_former_name_restores() -> None:
    saved = MemLayerMemory(**SCOPE, **REACH, k=3).to_dict()
    saved["recall_limit"] = saved.pop("k")  # as saved before the rename
    with pytest.warns(DeprecationWarning, match="recall_limit"):
        restored = MemLayerMemory.from_dict(saved, **REACH)
    assert restored.k == 3


def test_the_policy_modules_examples_run() -> None:
    from memlayer_integrations._adapter import policy

    assert doctest.testmod(policy).failed == 0
