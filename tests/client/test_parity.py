"""``MemLayerClient`` and ``AsyncMemLayerClient`` keep the same methods and signatures, and
every ``Op`` takes the same arguments as the client method it batches: a parameter added to
one and forgotten in the other fails here, not in a user's code."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from memlayer_integrations import AsyncMemLayerClient, MemLayerClient, Op

#: Names only the async client has: ``aclose`` is an alias of its (awaitable) ``close``.
ASYNC_ONLY = {"aclose"}
#: Op name -> client method, where they differ.
OP_METHOD = {"list": "list_memories", "scopes": "list_scopes"}
#: Parameters of a client method that its Op does not take (a batch has one timeout; progress
#: reports the several requests of a large remember_many), and the other way round: Op.list
#: reads one page (limit, cursor), list_memories pages for you.
CLIENT_ONLY = {"timeout", "page_size", "progress"}
OP_ONLY = {"list": {"limit", "cursor"}}


def public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def params(
    fn: Any, drop: set[str] | frozenset[str] = frozenset()
) -> list[tuple[str, Any, Any, Any]]:
    """(name, kind, default, annotation) of each parameter but ``self`` and ``drop``."""
    return [
        (p.name, p.kind, p.default, p.annotation)
        for p in inspect.signature(fn).parameters.values()
        if p.name != "self" and p.name not in drop
    ]


def test_both_clients_have_the_same_public_names() -> None:
    assert public(AsyncMemLayerClient) - ASYNC_ONLY == public(MemLayerClient)


@pytest.mark.parametrize("name", sorted(public(MemLayerClient)))
def test_each_method_has_the_same_signature(name: str) -> None:
    sync, async_ = getattr(MemLayerClient, name), getattr(AsyncMemLayerClient, name)
    if isinstance(sync, property):
        assert isinstance(async_, property)
        return
    assert params(sync) == params(async_)
    returns = inspect.signature(sync).return_annotation
    areturns = inspect.signature(async_).return_annotation
    # Only an iterator differs: list_memories pages lazily in both, async-ly in one.
    assert areturns == returns.replace("Iterator[", "AsyncIterator[")
    if name == "list_memories":
        assert inspect.isasyncgenfunction(async_)
    else:
        assert inspect.iscoroutinefunction(async_), f"{name} is not awaitable"


def test_both_clients_are_context_managers() -> None:
    assert hasattr(MemLayerClient, "__enter__") and hasattr(MemLayerClient, "__exit__")
    assert hasattr(AsyncMemLayerClient, "__aenter__") and hasattr(AsyncMemLayerClient, "__aexit__")


OPS = sorted(name for name in vars(Op) if not name.startswith("_"))


@pytest.mark.parametrize("name", OPS)
def test_each_op_takes_the_arguments_of_its_client_method(name: str) -> None:
    method = getattr(MemLayerClient, OP_METHOD.get(name, name))
    assert params(getattr(Op, name), OP_ONLY.get(name, set())) == params(method, CLIENT_ONLY)


def test_every_operation_of_the_client_has_an_op() -> None:
    batchable = {OP_METHOD.get(name, name) for name in OPS}
    not_batchable = {"batch", "close", "rate_limit"}
    assert public(MemLayerClient) - not_batchable == batchable
