"""Crash and durability: kill -9 the server during concurrent writes, restart it, repeat.

Every write the server acknowledged must be there afterwards, exactly as acknowledged; a
forget it acknowledged must stay forgotten; a write that was in flight at the kill may or
may not have happened, but only once. The counters must agree with the rows (the stored
memory count with the memories, the day's request count with the requests acknowledged and
sent), and the file must pass ``PRAGMA integrity_check`` and the full-text index's own
check after every kill.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from memlayer_integrations.server.backend import open_backend

from ._process import ServerProcess, create_key

pytestmark = pytest.mark.slow

ROUNDS = 3
WRITERS = 6
ACKS_PER_ROUND = 150  # acknowledged writes before each kill
GONE = None  # the state of a forgotten memory


@dataclass
class Ledger:
    """What the server acknowledged, and what was in flight when it died (shared by writers)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    present: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # id -> the memory as acknowledged
    forgotten: set[str] = field(default_factory=set)
    uncertain: dict[str, list[str | None]] = field(
        default_factory=dict
    )  # id -> contents it may have (None: gone)
    maybe_created: list[str] = field(
        default_factory=list
    )  # contents of creates in flight at a kill
    acked_requests: int = 0
    sent_requests: int = 0
    acked_writes: int = 0
    unexpected: list[str] = field(default_factory=list)

    def own(self, user: str) -> dict[str, dict[str, Any]]:
        """The user's memories whose state is known (in-flight ones are never touched again)."""
        with self.lock:
            return {
                i: m
                for i, m in self.present.items()
                if m["user_id"] == user and i not in self.uncertain
            }


def writer_thread(url: str, key: str, writer: int, rnd: int, ledger: Ledger) -> threading.Thread:
    def run() -> None:
        try:
            write_until_killed(url, key, writer, rnd, ledger)
        except BaseException as exc:  # a writer that breaks fails the test, not just its thread
            with ledger.lock:
                ledger.unexpected.append(f"writer {writer}: {exc!r}")

    return threading.Thread(target=run, name=f"writer-{writer}")


def write_until_killed(url: str, key: str, writer: int, rnd: int, ledger: Ledger) -> None:
    """One client's stream of writes on its own user; returns when the server is gone."""
    user, rng = f"user_{writer}", random.Random(writer * 100 + rnd)
    slots: dict[str, str] = {}  # this round's named memories: key -> id
    with httpx.Client(base_url=url + "/v1", headers={"X-API-Key": key}, timeout=10) as http:
        i = 0
        while True:
            i += 1
            tag = f"w{writer} r{rnd} i{i}"
            mine = ledger.own(user)
            op = i % 6 if mine else i % 3
            # If the answer never comes: the ids whose content is then in doubt (with the contents
            # they may have), and the contents of memories that may or may not have been created.
            doubt: dict[str, list[str | None]] = {}
            maybe: list[str] = []
            target = rng.choice(sorted(mine)) if mine else ""
            if op == 0:
                items = [
                    {"content": f"{tag} batch item {j}", "metadata": {"w": writer, "i": i, "j": j}}
                    for j in range(3)
                ]
                method, path, body = (
                    "POST",
                    "/memories/batch",
                    {"user_id": user, "agent_id": "bot", "items": items},
                )
                maybe = [item["content"] for item in items]
            elif op in (1, 2):
                body = {
                    "content": f"{tag} single",
                    "user_id": user,
                    "agent_id": "bot",
                    "session_id": f"s{rnd}",
                    "metadata": {"w": writer, "i": i},
                }
                method, path, maybe = "POST", "/memories", [body["content"]]
            elif op == 3:
                method, path, body = (
                    "PATCH",
                    f"/memories/{target}",
                    {"content": f"{tag} updated", "metadata": {"u": i}},
                )
                doubt = {target: [mine[target]["content"], body["content"]]}
            elif op == 4:
                method, path, body = "DELETE", f"/memories/{target}", None
                doubt = {target: [mine[target]["content"], GONE]}
            else:  # remember by key: replaces the slot's memory after the first time
                slot = f"{user}-r{rnd}-slot{i % 4}"  # per round: a slot in doubt is never reused
                body = {"content": f"{tag} keyed", "user_id": user, "agent_id": "bot", "key": slot}
                method, path = "POST", "/memories"
                if slot in slots:
                    doubt = {slots[slot]: [mine[slots[slot]]["content"], body["content"]]}
                else:
                    maybe = [body["content"]]
            with ledger.lock:
                ledger.sent_requests += 1
            try:
                response = http.request(method, path, json=body)
            except httpx.TransportError:
                with (
                    ledger.lock
                ):  # the server died under this write: it may or may not have happened
                    ledger.uncertain.update(doubt)
                    ledger.maybe_created.extend(maybe)
                return
            with ledger.lock:
                ledger.acked_requests += 1
                if response.status_code not in (200, 201, 204):
                    ledger.unexpected.append(
                        f"{method} {path}: {response.status_code} {response.text[:200]}"
                    )
                    return
                ledger.acked_writes += 1
                if method == "DELETE":
                    del ledger.present[target]
                    ledger.forgotten.add(target)
                    slots = {k: v for k, v in slots.items() if v != target}
                elif path == "/memories/batch":
                    ledger.present.update((m["id"], m) for m in response.json()["memories"])
                else:
                    memory = response.json()
                    ledger.present[memory["id"]] = memory
                    if memory["key"]:
                        slots[memory["key"]] = memory["id"]


def check_file(db: str | Path) -> None:
    """The database is sound after a kill: SQLite's own checks (the file, the full-text
    index), then on either backend the counters kept by triggers against the rows."""
    if isinstance(db, Path):
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.execute(
                "INSERT INTO memories_fts(memories_fts) VALUES ('integrity-check')"
            )  # raises if out of step
        finally:
            conn.close()
    database = open_backend(db)
    try:
        with database.read() as conn:
            check_counters(conn)
    finally:
        database.close()


def check_counters(conn: Any) -> None:
    """The counters kept by triggers agree with the rows."""
    # The stored count of every account is the number of its memories.
    counts = conn.execute(
        "SELECT a.id, a.memory_count, (SELECT count(*) FROM memories m WHERE m.account_id = a.id) FROM accounts a"
    ).fetchall()
    assert counts and all(stored == actual for _, stored, actual in counts), counts
    # So is the stored size of every scope.
    sizes = {
        tuple(row)
        for row in conn.execute(
            "SELECT account_id, user_id, agent_id, memories FROM scope_sizes WHERE memories > 0"
        )
    }
    actual = {
        tuple(row)
        for row in conn.execute(
            "SELECT account_id, user_id, agent_id, count(*) FROM memories GROUP BY 1, 2, 3"
        )
    }
    assert sizes == actual


def requests_counted(db: str | Path) -> int:
    database = open_backend(db)
    try:
        with database.read() as conn:
            sql = "SELECT coalesce(sum(requests), 0) FROM request_counts"
            return int(conn.execute(sql).fetchone()[0])
    finally:
        database.close()


def stored_memories(url: str, key: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=url + "/v1", headers={"X-API-Key": key}) as http:
        for writer in range(WRITERS):
            cursor = None
            while True:
                params = {
                    "user_id": f"user_{writer}",
                    "limit": 100,
                    **({"cursor": cursor} if cursor else {}),
                }
                page = http.get("/memories", params=params).json()
                for memory in page["memories"]:
                    assert memory["id"] not in found, "a memory listed twice"
                    found[memory["id"]] = memory
                cursor = page["next_cursor"]
                if not cursor:
                    break
    return found


def test_acknowledged_writes_survive_repeated_sigkill(tmp_path, db_location):
    db, log = db_location, tmp_path / "server.log"
    # A plan with limits far away, so the quota and memory counters are kept and checked.
    key = create_key(db, "big", memories=1_000_000, requests_per_day=1_000_000)
    ledger = Ledger()
    for rnd in range(ROUNDS):
        server = ServerProcess(db, log)
        start = ledger.acked_writes
        writers = [writer_thread(server.url, key, n, rnd, ledger) for n in range(WRITERS)]
        for t in writers:
            t.start()
        deadline = time.monotonic() + 60
        while (
            ledger.acked_writes - start < ACKS_PER_ROUND
            and time.monotonic() < deadline
            and not ledger.unexpected
        ):
            time.sleep(0.005)
        server.kill()  # mid-stream: the writers are still sending
        for t in writers:
            t.join(30)
        assert not ledger.unexpected, ledger.unexpected
        assert ledger.acked_writes - start >= ACKS_PER_ROUND
        check_file(db)
        # Every acknowledged request was counted, and nothing was counted that was not sent.
        assert ledger.acked_requests <= requests_counted(db) <= ledger.sent_requests

    with ServerProcess(db, log) as server:
        stored = stored_memories(server.url, key)
        with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as http:
            usage = http.get("/usage").json()
            hits = http.post(
                "/memories/search", json={"query": "batch", "user_id": "user_0", "limit": 100}
            ).json()["results"]
    check_file(db)

    # Every acknowledged write is there, byte for byte as acknowledged; every forget stuck.
    for memory_id, memory in ledger.present.items():
        if memory_id not in ledger.uncertain:
            assert stored.get(memory_id) == memory
    assert not ledger.forgotten & set(stored)
    # A write in flight at a kill happened at most once, and left one of its possible states.
    for memory_id, contents in ledger.uncertain.items():
        assert (stored[memory_id]["content"] if memory_id in stored else GONE) in contents
    unknown = sorted(
        stored[i]["content"] for i in set(stored) - set(ledger.present) - set(ledger.uncertain)
    )
    maybe = list(ledger.maybe_created)
    for content in unknown:
        assert content in maybe, f"a memory nobody wrote: {content!r}"
        maybe.remove(content)  # ... and never twice
    assert usage["memories_stored"] == len(stored)
    # The full-text index agrees with the table after the crashes.
    assert hits and all(
        "batch" in h["memory"]["content"] and h["memory"]["id"] in stored for h in hits
    )
    assert len(ledger.present) > ROUNDS * ACKS_PER_ROUND // 2 and ledger.forgotten
