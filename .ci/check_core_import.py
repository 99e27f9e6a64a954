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
