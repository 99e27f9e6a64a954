"""Run in an environment with only the core installed (no extras).

The core must import without any framework, and each framework module must fail with an
ImportError that names the ``pip install`` that fixes it.
"""

import importlib
import sys

# The core, and the layer adapters share: neither may need a framework.
import memlayer_integrations
import memlayer_integrations._adapter  # noqa: F401

for framework in ("langchain_core", "langgraph", "llama_index", "fastapi", "uvicorn", "mcp"):
    if framework in sys.modules:
        raise SystemExit(f"importing the core imported {framework}")

hints = {
    "memlayer_integrations.langchain": "memlayer-integrations[langchain]",
    "memlayer_integrations.llama_index": "memlayer-integrations[llama-index]",
    "memlayer_integrations.server": "memlayer-integrations[server]",
    "memlayer_integrations.mcp": "memlayer-integrations[mcp]",
}
for module, extra in hints.items():
    try:
        importlib.import_module(module)
    except ImportError as exc:
        if extra not in str(exc):
            raise SystemExit(f"{module}: ImportError without the install hint: {exc}") from exc
    else:
        raise SystemExit(f"{module} imported without its extra installed")
print("core imports without extras; framework modules name their extra")

# The command line without the server extra: one line that names the pip install.
import contextlib  # noqa: E402
import io  # noqa: E402

from memlayer_integrations import cli  # noqa: E402

for argv in (["serve"], ["keys", "list"]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = cli.main(argv)
    said = err.getvalue()
    if status != 1 or said.count("\n") != 1 or "memlayer-integrations[server]" not in said:
        raise SystemExit(f"memlayer {' '.join(argv)} without the server extra: {status} {said!r}")
print("memlayer serve and keys name the server extra when it is missing")
