"""``memlayer serve`` in a process of its own, to kill with SIGKILL, restart, and read the
access log of.

The in-process ``LocalMemLayerServer`` cannot be killed without killing the test with it,
and it keeps uvicorn's access log off; the crash, load and access-log tests need the real
command instead.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import httpx

from memlayer_integrations.server import keys
from memlayer_integrations.server.db import Database
from memlayer_integrations.server.settings import Plan
from memlayer_integrations.server.store import iso

_START_TIMEOUT = 30.0


def create_key(
    db: Path,
    plan: str = "unlimited",
    *,
    memories: int | None = None,
    requests_per_day: int | None = None,
) -> str:
    """A key of a new account in ``db`` (the server need not run), with the limits given."""
    database = Database(db)
    try:
        with database.write() as conn:
            key, _ = keys.create_key(
                conn,
                plan_name=plan,
                plan=Plan(memories, requests_per_day),
                name=None,
                now=iso(datetime.now(timezone.utc)),
            )
    finally:
        database.close()
    return key


class ServerProcess:
    """``python -m memlayer_integrations.cli serve`` on a free loopback port (and ``args``).

    Its output (the access log included) is appended to ``log``. :meth:`kill` is kill -9;
    :meth:`stop` is Ctrl-C (a clean shutdown).
    """

    def __init__(self, db: str | Path, log: Path, args: Sequence[str] = ()) -> None:
        self.db, self.log = db, log
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLAYER_")}
        offset = log.stat().st_size if log.exists() else 0
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "memlayer_integrations.cli",
                "serve",
                "--db",
                str(db),
                "--port",
                "0",
                *args,
            ],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.url = self._wait_for_url(offset)

    def _wait_for_url(self, offset: int) -> str:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"memlayer serve exited:\n{self.log.read_text(errors='replace')[offset:]}"
                )
            with self.log.open("rb") as f:
                f.seek(offset)
                found = re.findall(r"listening on (http://\S+)", f.read().decode(errors="replace"))
            if found:
                try:
                    if httpx.get(found[-1] + "/v1/health").status_code == 200:
                        return found[-1]
                except httpx.TransportError:
                    pass
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError("memlayer serve did not start")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
