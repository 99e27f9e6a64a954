"""Scope binding, construction without I/O, and the optional-dependency contract."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import httpx
import pytest

from memlayer_integrations.llama_index import (
    MemLayerChatStore,
    MemLayerMemory,
    MemLayerMemoryBlock,
    MemLayerRetriever,
    MemLayerScopeError,
    MemLayerToolSpec,
)

from ._support import mock_clients

KEYWORD_BUILT = [MemLayerMemory, MemLayerChatStore, MemLayerMemoryBlock]
POSITIONAL_BUILT = [MemLayerRetriever, MemLayerToolSpec]


@pytest.mark.parametrize("missing", ["user_id", "agent_id"])
@pytest.mark.parametrize("cls", KEYWORD_BUILT + POSITIONAL_BUILT)
@pytest.mark.parametrize("value", [None, "", "  "])
def test_missing_scope_fails_at_construction(cls: type, missing: str, value, api_key: str) -> None:
    scope = {"user_id": "u1", "agent_id": "bot", missing: value}
    with pytest.raises(MemLayerScopeError, match=missing):
        if cls in KEYWORD_BUILT:
            cls(**scope, api_key=api_key, base_url="http://memlayer.test")
        else:
            cls(
                scope["user_id"],
                scope["agent_id"],
                api_key=api_key,
                base_url="http://memlayer.test",
            )


@pytest.mark.parametrize("cls", KEYWORD_BUILT + POSITIONAL_BUILT)
def test_constructors_do_no_io(cls: type, api_key: str) -> None:
    seen: list[httpx.Request] = []
    sync, async_ = mock_clients(lambda r: seen.append(r) or httpx.Response(500), api_key)
    if cls in KEYWORD_BUILT:
        cls(user_id="u1", agent_id="bot", client=sync, async_client=async_)
    else:
        cls("u1", "bot", client=sync, async_client=async_)
    cls_kwargs = {"user_id": "u1", "agent_id": "bot"} if cls in KEYWORD_BUILT else {}
    args = () if cls in KEYWORD_BUILT else ("u1", "bot")
    cls(*args, **cls_kwargs)  # no key anywhere: still fine until the first call
    assert seen == []


def test_clients_and_key_are_exclusive(api_key: str) -> None:
    sync, _ = mock_clients(lambda r: httpx.Response(500), api_key)
    with pytest.raises(TypeError):
        MemLayerMemory(user_id="u1", agent_id="bot", client=sync, api_key=api_key)


def test_all_is_exactly_the_adapters() -> None:
    import memlayer_integrations.llama_index as package

    def is_public(name: str, value: object) -> bool:
        if name.startswith("_"):
            return False
        if isinstance(value, type):
            return True
        # Functions of the adapters (stop_on_denied), not the modules imported alongside.
        module = getattr(value, "__module__", "") or ""
        return inspect.isfunction(value) and module.startswith(package.__name__)

    public = {n for n, v in vars(package).items() if is_public(n, v)}
    assert "stop_on_denied" in public
    assert set(package.__all__) == public and len(package.__all__) == len(set(package.__all__))


def test_core_does_not_import_llama_index() -> None:
    code = "import sys, memlayer_integrations; print(any(m.startswith('llama_index') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_llama_index_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name.startswith("memlayer_integrations.llama_index"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "llama_index.core", None)
    with pytest.raises(ImportError, match=r"memlayer-integrations\[llama-index\]"):
        importlib.import_module("memlayer_integrations.llama_index")
