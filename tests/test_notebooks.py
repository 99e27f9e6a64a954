"""The notebooks run top to bottom offline, are committed without outputs, and never show a
key in full."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

# Each notebook starts a kernel and runs a few agent turns: slow (Python 3.11 leg only in CI).
pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FULL_KEY = re.compile(r"ml_live_[A-Za-z0-9]{8,}")

#: notebook -> texts its outputs must show
EXPECTED = {
    "langchain_agent.ipynb": [
        "alice › Which plan am I on?\n      recalled: Hi! I'm on the Pro plan and I live in Oslo.\n"
        "agent › From what you told me before: you're on the Pro plan.",
        "bob › Which plan am I on?\nagent › I don't know that yet",
        "<td>note_",
        "plan='unlimited'",
        # The client's rich display: scopes, recall with reasons, usage.
        "<td>notebook_agent</td>",
        "<td>words: plan</td>",
        ">Usage</caption>",
    ],
    "llama_index_chat_engine.ipynb": [
        "alice › Which plan am I on?\n      recalled: Hi! I'm on the Pro plan and I live in Oslo.\n"
        "agent › From what you told me before: you're on the Pro plan.",
        "bob › Which plan am I on?\nagent › I don't know that yet",
        "agent › From what you told me before: you live in Oslo.",
        "plan='unlimited'",
        "<td>notebook_engine</td>",
        "<td>words: plan</td>",
        ">Usage</caption>",
    ],
}


def output_text(nb: nbformat.NotebookNode) -> str:
    parts: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.extend(str(v) for v in output.get("data", {}).values())
            parts.extend(output.get("traceback", []))
    return "\n".join(parts)


def test_every_notebook_is_checked() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A ``python3`` kernel spec that runs this interpreter, whatever else is installed."""
    spec_dir = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(str(spec_dir / "python3"))
    return KernelSpecManager(kernel_dirs=[str(spec_dir)])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_runs_top_to_bottom_offline(name: str, kernel_specs: KernelSpecManager) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=kernel_specs)
    assert km.kernel_spec is not None and km.kernel_spec.argv[0] == sys.executable
    # The notebooks go live when these are set; the test never does.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLAYER_")}
    client = NotebookClient(
        nb, km=km, timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute(env=env, cleanup_kc=True)  # cleanup_kc: shut the kernel down afterwards

    text = output_text(nb)
    for expected in EXPECTED[name]:
        assert expected in text
    assert "MemLayerClient(base_url='http://127.0.0.1:" in text
    assert re.search(r"api_key='ml_live_[A-Za-z0-9]{4}…'", text)  # only the masked key
    assert FULL_KEY.search(text) is None
