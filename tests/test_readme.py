"""The README's Python blocks and the public classes' docstring examples run as written.

The README's blocks run top to bottom in one fresh interpreter (its first block starts the
embedded server and sets the environment, as a reader's session would). Docstring examples
run statement by statement with the names they assume (``server``, ``key``, ``model``,
``llm``, ``client``) bound to the local server and the demo's scripted models. Only that
they run is checked, not what they print: what they do is tested elsewhere. Blocks that are
not Python (bash, json) are not run.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memlayer_integrations import MemLayerClient
from memlayer_integrations.server import LocalMemLayerServer

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PUBLIC_MODULES = (
    "memlayer_integrations",
    "memlayer_integrations.langchain",
    "memlayer_integrations.llama_index",
    "memlayer_integrations.server",
)
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """Each fenced ``python`` block of a Markdown text, with the line it starts on."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _FENCE.finditer(text)]


# Runs the blocks in one namespace; a failure names the block's line in README.md.
_RUNNER = """
import json, sys, traceback
blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
for line, source in blocks:
    try:
        exec(compile(source, f"README.md (block at line {line})", "exec"), namespace)
    except BaseException:
        print(f"README.md block at line {line} failed:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
print(f"ran {len(blocks)} blocks")
"""


def test_python_blocks_find_only_python() -> None:
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert python_blocks(text) == [(2, "x = 1\n"), (8, "y = 2\n")]


def test_every_readme_python_block_runs_top_to_bottom(tmp_path: Path) -> None:
    import json

    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLAYER_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(blocks),
        capture_output=True,
        text=True,
        cwd=tmp_path,  # anything a block writes lands here
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"ran {len(blocks)} blocks" in proc.stdout


# -- docstring examples ----------------------------------------------------------------


def example_statements(doc: str) -> list[str]:
    """The ``>>>`` statements of a docstring (with their ``...`` lines), skipping the ones
    marked ``# doctest: +SKIP``."""
    statements: list[list[str]] = []
    for raw in textwrap.dedent(doc).splitlines():
        line = raw.strip()
        if line.startswith(">>> "):
            statements.append([line[4:]])
        elif line == "...":
            statements[-1].append("")
        elif line.startswith("... ") and statements:
            statements[-1].append(line[4:])
    texts = ["\n".join(lines) for lines in statements]
    return [t for t in texts if "doctest: +SKIP" not in t]


def _public_examples() -> Iterator[tuple[str, Any, list[str]]]:
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                statements = example_statements(inspect.getdoc(obj) or "")
                if statements:
                    yield f"{module_name}.{name}", module, statements


EXAMPLES = list(_public_examples())


def test_example_statements_are_extracted() -> None:
    doc = """Example:
        >>> x = 1
        >>> with open(x) as f:
        ...     f.read()
        >>> skip()  # doctest: +SKIP
    """
    assert example_statements(doc) == ["x = 1", "with open(x) as f:\n    f.read()"]


def test_the_public_classes_have_examples() -> None:
    names = {name.rsplit(".", 1)[1] for name, _, _ in EXAMPLES}
    assert {"MemLayerClient", "MemLayerMiddleware", "MemLayerMemory", "MemLayerToolSpec"} <= names


@pytest.fixture
def example_namespace(
    local_server: LocalMemLayerServer, api_key: str, tmp_path: Path, monkeypatch
) -> Iterator[dict[str, Any]]:
    from memlayer_integrations.demo import ScriptedChatModel, ScriptedLLM

    monkeypatch.chdir(tmp_path)  # anything an example writes lands here
    with MemLayerClient(api_key=api_key, base_url=local_server.url) as client:
        yield {
            "server": local_server,
            "key": api_key,
            "url": local_server.url,
            "client": client,
            "model": ScriptedChatModel(),
            "llm": ScriptedLLM(),
        }


@pytest.mark.parametrize(
    ("where", "module", "statements"), EXAMPLES, ids=[name for name, _, _ in EXAMPLES]
)
def test_docstring_example_runs(
    where: str, module: Any, statements: list[str], example_namespace: dict[str, Any]
) -> None:
    namespace = {**vars(module), **example_namespace}
    for source in statements:
        code = compile(source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if inspect.iscoroutine(result):  # an example with a top-level ``await``
            asyncio.run(result)
