"""``memlayer serve`` and the console: on by default only on loopback; ``--console`` and
``--no-console`` decide. uvicorn's run is replaced, so nothing listens for long."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from memlayer_integrations import cli


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.org", False),
    ],
)
def test_which_hosts_are_loopback(host, loopback):
    assert cli._is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], True),
        (["--host", "0.0.0.0"], False),
        (["--host", "0.0.0.0", "--console"], True),
        (["--no-console"], False),
    ],
)
def test_console_default_follows_the_host(argv, expected):
    args = cli.build_parser().parse_args(["serve", *argv])
    assert cli._console_wanted(args) is expected


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The apps ``memlayer serve`` would have run."""
    apps: list[Any] = []

    def run(self: uvicorn.Server, sockets: Any = None) -> None:
        apps.append(self.config.app)

    monkeypatch.setattr(uvicorn.Server, "run", run)
    return apps


@pytest.mark.parametrize(("flag", "status"), [([], 200), (["--no-console"], 404)])
def test_serve_mounts_the_console_as_asked(tmp_path, capsys, served, flag, status):
    code = cli.main(["serve", "--db", str(tmp_path / "m.db"), "--port", "0", *flag])
    err = capsys.readouterr().err
    assert code == 0
    assert ("/console" in err) is (status == 200)
    with TestClient(served[0]) as web:
        assert web.get("/console").status_code == status
        assert web.get("/docs").status_code == 200


def test_a_console_off_loopback_comes_with_a_warning(tmp_path, capsys, served, monkeypatch):
    # As if 127.0.0.1 were another interface: the test never listens beyond loopback.
    monkeypatch.setattr(cli, "_is_loopback", lambda host: False)
    argv = ["serve", "--db", str(tmp_path / "m.db"), "--port", "0"]
    assert cli.main(argv) == 0
    assert "/console" not in capsys.readouterr().err
    assert cli.main([*argv, "--console"]) == 0
    err = capsys.readouterr().err
    assert "/console" in err and "plain HTTP" in err
    with TestClient(served[-1]) as web:
        assert web.get("/console").status_code == 200
