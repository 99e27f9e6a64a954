"""File modes: what the server writes to disk is readable by its owner only.

The database holds every account's memories: the file and SQLite's ``-wal`` and ``-shm``
beside it are 0600, and directories the server creates for it are 0700, whatever the umask
lets through. A database found with wider permissions is narrowed when the server opens it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memlayer_integrations.server import LocalMemLayerServer


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default, which would give 0644 files and 0755 dirs
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def use(server: LocalMemLayerServer) -> None:
    key = server.create_key()
    answer = httpx.post(
        server.url + "/v1/memories",
        json={"content": "private", "user_id": "u", "agent_id": "a"},
        headers={"X-API-Key": key},
    )
    assert answer.status_code == 201


def test_database_files_are_0600_and_created_directories_0700(tmp_path, permissive_umask):
    db = tmp_path / "new" / "nested" / "memlayer.db"
    with LocalMemLayerServer(db) as server:
        use(server)
        files = [db, db.with_name("memlayer.db-wal"), db.with_name("memlayer.db-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    assert mode(tmp_path / "new") == 0o700
    assert mode(tmp_path / "new" / "nested") == 0o700


def test_a_database_with_wider_permissions_is_narrowed_on_open(tmp_path, permissive_umask):
    db = tmp_path / "old.db"
    with LocalMemLayerServer(db) as server:
        use(server)
    for file in tmp_path.iterdir():
        os.chmod(file, 0o644)
    before = mode(tmp_path)
    with LocalMemLayerServer(db) as server:
        use(server)
        assert {f.name: mode(f) for f in tmp_path.iterdir()} == {
            f.name: 0o600 for f in tmp_path.iterdir()
        }
    assert mode(tmp_path) == before  # a directory the server did not create keeps its mode
