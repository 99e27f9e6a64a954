"""The ``memlayer`` command: keys create/list/revoke/suspend/unsuspend, openapi, demo."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from memlayer_integrations import cli
from memlayer_integrations._constants import KEY_PATTERN
from memlayer_integrations.server import LocalMemLayerServer


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_create_prints_only_the_key(tmp_path, capsys):
    db = str(tmp_path / "k.db")
    code, out, err = run(capsys, "keys", "create", "--db", db, "--name", "laptop")
    assert code == 0
    key = out.strip()
    assert out == key + "\n" and KEY_PATTERN.fullmatch(key)
    assert key not in err and "key_" in err


def test_keys_lifecycle_by_id_and_by_key(tmp_path, capsys):
    db = tmp_path / "k.db"
    _, key, _ = run(
        capsys, "keys", "create", "--db", str(db), "--plan", "unlimited", "--name", "ci"
    )
    key = key.strip()
    code, out, _ = run(capsys, "keys", "list", "--db", str(db))
    assert code == 0 and key not in out and key[:12] + "…" in out
    line = out.splitlines()[1].split()
    key_id = line[0]
    assert key_id.startswith("key_") and line[2:5] == ["ci", "unlimited", "active"]

    with LocalMemLayerServer(db) as server:

        def status() -> int:
            return httpx.get(server.url + "/v1/usage", headers={"X-API-Key": key}).status_code

        assert status() == 200
        assert run(capsys, "keys", "suspend", "--db", str(db), key_id)[0] == 0
        assert status() == 403
        assert "suspended" in run(capsys, "keys", "list", "--db", str(db))[1]
        assert run(capsys, "keys", "unsuspend", "--db", str(db), key)[0] == 0
        assert status() == 200
        assert run(capsys, "keys", "revoke", "--db", str(db), key)[0] == 0
        assert status() == 401
    assert "revoked" in run(capsys, "keys", "list", "--db", str(db))[1]


def test_unknown_key_is_an_error(tmp_path, capsys):
    code, _, err = run(capsys, "keys", "revoke", "--db", str(tmp_path / "k.db"), "key_0000")
    assert code == 1 and "no such key" in err


def test_custom_plan_limits(tmp_path, capsys):
    db = tmp_path / "k.db"
    assert run(capsys, "keys", "create", "--db", str(db), "--plan", "team")[0] == 2
    code, out, _ = run(
        capsys,
        "keys",
        "create",
        "--db",
        str(db),
        "--plan",
        "team",
        "--memory-limit",
        "none",
        "--request-limit",
        "3",
    )
    assert code == 0
    with LocalMemLayerServer(db) as server:
        usage = httpx.get(server.url + "/v1/usage", headers={"X-API-Key": out.strip()}).json()
    assert (usage["plan"], usage["memories_limit"], usage["requests_limit"]) == ("team", None, 3)


def test_db_from_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEMLAYER_DB", str(tmp_path / "env.db"))
    assert run(capsys, "keys", "create")[0] == 0
    assert (tmp_path / "env.db").exists()


def test_help_documents_the_default_db_and_imports_no_server(tmp_path):
    code = (
        "import sys\nfrom memlayer_integrations import cli\n"
        "try:\n    cli.main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED' if 'fastapi' in sys.modules or 'uvicorn' in sys.modules else 'LAZY')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "$MEMLAYER_DB" in out and "~/.memlayer/memlayer.db" in out
    assert out.strip().endswith("LAZY")


def test_no_command_prints_help(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "serve" in err


def test_demo_slot_fails_clearly_when_missing(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "memlayer_integrations.demo", None)  # makes the import fail
    code, _, err = run(capsys, "demo")
    assert code == 1 and "memlayer_integrations.demo" in err


def test_demo_slot_runs_the_demo_main(capsys, monkeypatch):
    import types

    fake = types.ModuleType("memlayer_integrations.demo")
    fake.main = lambda argv: print("demo ran with", argv) or 0
    monkeypatch.setitem(sys.modules, "memlayer_integrations.demo", fake)
    assert run(capsys, "demo")[:2] == (0, "demo ran with []\n")
    assert run(capsys, "demo", "--db", "x.db", "--help")[:2] == (
        0,
        "demo ran with ['--db', 'x.db', '--help']\n",
    )


def test_bad_limit_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["keys", "create", "--memory-limit", "lots"])
    assert exc.value.code == 2
