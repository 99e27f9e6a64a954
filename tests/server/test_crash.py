"""A write that was acknowledged survives kill -9 of the server; the file stays intact."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def start_server(db: Path, log: Path) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLAYER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "memlayer_integrations.cli", "serve", "--db", str(db), "--port", "0"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.findall(r"listening on (http://\S+)", log.read_text(errors="replace"))
        if found and proc.poll() is None:
            url = found[-1]
            try:
                if httpx.get(url + "/v1/health").status_code == 200:
                    return proc, url
            except httpx.TransportError:
                pass
        if proc.poll() is not None:
            raise RuntimeError(log.read_text())
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def create_key(db: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "memlayer_integrations.cli", "keys", "create", "--plan", "unlimited", "--db", str(db)],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def test_acknowledged_writes_survive_sigkill(tmp_path):
    db, log = tmp_path / "crash.db", tmp_path / "server.log"
    key = create_key(db)
    proc, url = start_server(db, log)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n: int) -> None:
        with httpx.Client(base_url=url + "/v1", headers={"X-API-Key": key}, timeout=5) as http:
            i = 0
            while not stop.is_set():
                try:
                    if i % 3 == 0:
                        items = [{"content": f"w{n} batch {i} item {j}"} for j in range(5)]
                        r = http.post("/memories/batch", json={"user_id": "u", "agent_id": "a", "items": items})
                        ids = [m["id"] for m in r.json()["memories"]] if r.status_code == 201 else []
                    else:
                        r = http.post("/memories", json={"content": f"w{n} single {i}", "user_id": "u", "agent_id": "a"})
                        ids = [r.json()["id"]] if r.status_code == 201 else []
                except (httpx.TransportError, ValueError):
                    return  # the server is gone: this write was never acknowledged
                with lock:
                    acknowledged.extend(ids)
                i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    while True:
        with lock:
            if len(acknowledged) >= 250:
                break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join()

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()

    proc, url = start_server(db, log)
    try:
        stored: set[str] = set()
        cursor = None
        with httpx.Client(base_url=url + "/v1", headers={"X-API-Key": key}) as http:
            while True:
                params = {"user_id": "u", "limit": 100, **({"cursor": cursor} if cursor else {})}
                page = http.get("/memories", params=params).json()
                stored.update(m["id"] for m in page["memories"])
                cursor = page["next_cursor"]
                if not cursor:
                    break
            # The key in a query string is ignored, and must not reach the access log either.
            assert http.get("/usage", params={"api_key": key}, headers={"X-API-Key": ""}).status_code == 401
            # The full-text index is consistent with the table after the crash.
            hits = http.post("/memories/search", json={"query": "single", "user_id": "u", "limit": 100}).json()["results"]
            assert hits and all("single" in h["memory"]["content"] for h in hits)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    assert len(acknowledged) >= 250
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged writes lost"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.execute("INSERT INTO memories_fts(memories_fts) VALUES ('integrity-check')")
    server_log = log.read_text(errors="replace")
    assert "GET /v1/usage" in server_log  # the access log is on ...
    assert key not in server_log and key[8:] not in server_log  # ... and never holds the key
