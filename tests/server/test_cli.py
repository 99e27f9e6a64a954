"""The ``memlayer`` command: keys create/list/revoke/suspend/unsuspend, openapi, demo."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from memlayer_integrations import __version__, cli
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
    assert run(capsys, "keys", "create", "--db", str(tmp_path / "k.db"))[0] == 0
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


def _bad_inputs(tmp: Path) -> list[tuple[list[str], int, str]]:
    """(argv, exit status, what the one line of stderr says) for every kind of bad input."""
    not_a_db = tmp / "notes.txt"
    not_a_db.write_text("not a database")
    missing = str(tmp / "typo" / "x.db")
    return [
        (["serve", "--port", "99999"], 2, "'99999' is not a port (0 to 65535"),
        (["serve", "--port", "http"], 2, "'http' is not a port"),
        (["serve", "--port", "8²"], 2, "'8²' is not a port"),
        (["serve", "--workers", "0"], 2, "'0' is not a number of workers (1 to 64)"),
        (["export", "--db", missing], 1, f"no database at {missing}"),
        (["export", "--db", str(not_a_db)], 1, "as a MemLayer database: file is not a database"),
        (["import", "--db", str(tmp)], 1, "is a directory"),
        (["keys", "create", "--request-limit", "²"], 2, "a whole number, or 'none'"),
        (["serve", "--db", str(not_a_db)], 1, "as a MemLayer database: file is not a database"),
        (["serve", "--db", str(tmp)], 1, "is a directory; --db takes a database file"),
        (
            ["serve", "--host", "no.such.host.invalid", "--port", "0", "--db", str(tmp / "s.db")],
            1,
            "cannot listen on no.such.host.invalid:0",
        ),
        (["keys", "list", "--db", str(tmp)], 1, "is a directory"),
        (["keys", "list", "--db", missing], 1, f"no database at {missing}"),
        (["keys", "revoke", "--db", missing, "key_1"], 1, "no database at"),
        (["keys", "suspend", "--db", missing, "key_1"], 1, "no database at"),
        (["keys", "unsuspend", "--db", missing, "key_1"], 1, "no database at"),
        (["keys", "create", "--db", str(not_a_db)], 1, "file is not a database"),
        (["keys", "create", "--plan", "team"], 2, "unknown plan 'team'"),
        (["keys", "create", "--memory-limit", "lots"], 2, "a whole number, or 'none'"),
        (["keys", "revoke", "--db", str(tmp / "k.db"), "key_0000"], 1, "no such key"),
        (["openapi", "-o", str(tmp / "no" / "dir" / "openapi.json")], 1, "cannot write"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
        (["serve", "--unknown"], 2, "unrecognized arguments: --unknown"),
    ]


def test_every_bad_input_is_one_line_on_stderr_and_a_failure(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEMLAYER_DB", str(tmp_path / "k.db"))
    assert cli.main(["keys", "create", "--db", str(tmp_path / "k.db")]) == 0
    capsys.readouterr()
    for argv, status, says in _bad_inputs(tmp_path):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        out, err = capsys.readouterr()
        assert (code, out) == (status, ""), argv
        assert err.endswith("\n") and err.count("\n") == 1, (argv, err)
        assert err.startswith("memlayer") and says in err, (argv, err)
        assert "Traceback" not in err
    assert not (tmp_path / "typo").exists()  # reading commands created nothing


def test_a_missing_server_extra_names_the_pip_install() -> None:
    code = (
        "import sys\nsys.modules['uvicorn'] = None\nsys.modules['fastapi'] = None\n"
        "from memlayer_integrations import cli\nsys.exit(cli.main(['serve', '--port', '0']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (
        'memlayer serve: the local server needs the server extra: pip install "memlayer-integrations[server]" '
        '(from a clone of the repository: pip install ".[server]")\n'
    )


def test_version_and_every_command_has_a_description(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert (
        exc.value.code == 0 and capsys.readouterr().out == f"memlayer-integrations {__version__}\n"
    )

    def commands(parser, path=()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield (*path, name), sub
                    yield from commands(sub, (*path, name))

    found = dict(commands(cli.build_parser()))
    assert ("keys", "unsuspend") in found and ("serve",) in found
    for path, parser in found.items():
        if path != ("demo",):  # the demo has its own parser (memlayer demo --help)
            assert parser.description, path
    keys_help = found[("keys",)].format_help()
    for action in ("create", "list", "revoke", "suspend", "unsuspend"):
        assert action in keys_help


def test_serve_on_a_database_without_keys_says_how_to_create_one(tmp_path) -> None:
    db = tmp_path / "fresh.db"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memlayer_integrations.cli",
            "serve",
            "--port",
            "0",
            "--db",
            str(db),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stderr.readline(), proc.stderr.readline()]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert lines[0].startswith("MemLayer server listening on http://127.0.0.1:")
    assert (
        lines[1]
        == f"this database has no API keys yet; create one with: memlayer keys create --db {db}\n"
    )


def test_a_port_in_use_is_one_line(tmp_path, capsys) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, out, err = run(capsys, "serve", "--port", port, "--db", str(tmp_path / "s.db"))
    assert (code, out) == (1, "")
    assert err.startswith(f"memlayer serve: cannot listen on 127.0.0.1:{port}: ")
    assert err.count("\n") == 1


def test_workers_get_the_protocol_limits_serve_gives_one_process() -> None:
    # --workers names the protocol class by import string; its limits must be serve's.
    from memlayer_integrations.server import ServerSettings
    from memlayer_integrations.server.protocol import GuardedHttpToolsProtocol, guarded_protocol

    made = guarded_protocol(ServerSettings(db_path="unused.db", embedder=None))
    for name in ("header_timeout", "body_timeout", "max_header_bytes", "max_headers"):
        assert getattr(GuardedHttpToolsProtocol, name) == getattr(made, name), name
