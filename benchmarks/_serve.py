"""A local server in a child process, for the load benchmarks.

The concurrency and load figures are about the server, so the server gets its own process
(and its own interpreter lock) and the load generator another, as with ``memlayer serve``
in production. The child starts :class:`LocalMemLayerServer` on a temporary database (or the PostgreSQL
database given),
creates the keys asked for, writes ``{"url": ..., "keys": [...], "db_path": ...}`` as one line to its
stdout (a pipe to the parent, never a log) and serves until its stdin is closed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

_ROOT = Path(__file__).resolve().parent.parent
_START_TIMEOUT_S = 60.0


@dataclass
class ChildServer:
    url: str
    keys: list[str]
    pid: int
    db_path: str

    def rss_mib(self) -> float:
        return round(psutil.Process(self.pid).memory_info().rss / 2**20, 1)


@contextlib.contextmanager
def child_server(
    keys: int = 1,
    plans: tuple[str, ...] = (),
    db: str | None = None,
    embedder: str | None = None,
) -> Iterator[ChildServer]:
    """Start a server process, yield its address and keys, stop it on exit.

    ``keys`` unlimited keys, then one key on each of ``plans``; ``db`` is a PostgreSQL URL
    or a SQLite file, or ``None`` for a temporary SQLite file; ``embedder`` a spec for
    ``LocalMemLayerServer(embedder=...)``, loaded in the child."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks._serve",
            str(keys),
            *plans,
            *(["--db", db] if db else []),
            *(["--embedder", embedder] if embedder else []),
        ],
        cwd=_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], _START_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"the server process did not start (exit code {proc.poll()})")
        info = json.loads(line)
        yield ChildServer(url=info["url"], keys=info["keys"], pid=proc.pid, db_path=info["db_path"])
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _main() -> None:
    from memlayer_integrations.server import LocalMemLayerServer

    args = sys.argv[1:]
    options: dict[str, str | None] = {"--db": None, "--embedder": None}
    for name in options:
        if name in args:
            at = args.index(name)
            options[name], args = args[at + 1], args[:at] + args[at + 2 :]
    n = int(args[0]) if args else 1
    with LocalMemLayerServer(db_path=options["--db"], embedder=options["--embedder"]) as server:
        keys = [server.create_key(plan="unlimited") for _ in range(n)]
        keys += [server.create_key(plan=plan) for plan in args[1:]]
        info = {"url": server.url, "keys": keys, "db_path": str(server.settings.db_path)}
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
        sys.stdin.read()  # serve until the parent closes our stdin


if __name__ == "__main__":
    _main()
