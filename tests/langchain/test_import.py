"""The subpackage stays optional: the core never imports it, and without LangChain it
fails with the install hint."""

from __future__ import annotations

import subprocess
import sys

import memlayer_integrations.langchain as lc

HIDE = "import sys; sys.modules['langchain_core'] = None; "


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_missing_langchain_names_the_extra() -> None:
    done = _run(HIDE + "import memlayer_integrations.langchain")
    assert done.returncode != 0
    assert "ImportError" in done.stderr and "memlayer-integrations[langchain]" in done.stderr


def test_core_does_not_import_langchain() -> None:
    done = _run(
        "import sys, memlayer_integrations; print('langchain_core' in sys.modules, 'langgraph' in sys.modules)"
    )
    assert done.stdout.split() == ["False", "False"]


def test_public_names() -> None:
    assert sorted(lc.__all__) == sorted(
        [
            "MemLayerMiddleware",
            "MemLayerStore",
            "memlayer_namespace",
            "MemLayerRetriever",
            "MemLayerToolkit",
            "MemLayerChatMessageHistory",
            "MemLayerScopeError",
        ]
    )
    assert all(hasattr(lc, name) for name in lc.__all__)
