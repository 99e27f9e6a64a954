"""The MCP subpackage stays optional: the core and ``memlayer --help`` never import the SDK,
and without it the subpackage and ``memlayer mcp`` name the extra that fixes it."""

from __future__ import annotations

import subprocess
import sys

import memlayer_integrations.mcp as mcp_package

HIDE = "import sys; sys.modules['mcp'] = None; "


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_missing_sdk_names_the_extra() -> None:
    done = _run(HIDE + "import memlayer_integrations.mcp")
    assert done.returncode != 0
    assert "ImportError" in done.stderr and "memlayer-integrations[mcp]" in done.stderr


def test_memlayer_mcp_without_the_sdk_names_the_extra() -> None:
    done = _run(
        HIDE + "from memlayer_integrations.cli import main; "
        "raise SystemExit(main(['mcp', '--user-id', 'a', '--agent-id', 'b']))"
    )
    assert done.returncode == 1
    assert "memlayer-integrations[mcp]" in done.stderr


def test_core_and_cli_parser_do_not_import_the_sdk() -> None:
    done = _run(
        "import sys, memlayer_integrations; from memlayer_integrations.cli import build_parser; "
        "build_parser(); print('mcp' in sys.modules)"
    )
    assert done.stdout.split() == ["False"]


def test_public_names() -> None:
    assert sorted(mcp_package.__all__) == [
        "DEFAULT_CALL_TIMEOUT",
        "MemLayerMCPTools",
        "create_server",
    ]
    for name in mcp_package.__all__:
        assert getattr(mcp_package, name) is not None
