"""Load: many concurrent async clients remember, recall, list and forget across many users
and three accounts for a few seconds (and on until the small plan's limits are reached),
against ``memlayer serve`` in its own process.

Nothing is retried, so every failure shows. The only errors allowed are the documented quota
answers, and only on the account whose plan is small enough to reach them (429
``daily_quota_exceeded``, 403 ``memory_limit_reached``). Afterwards every user's memories
are exactly the ones acknowledged as stored and not acknowledged as forgotten: none lost,
none doubled, none in the wrong scope. Latencies are recorded (``record_property``), never
asserted; ``python -m benchmarks load`` reports p50/p99 at a bigger size.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest

from memlayer_integrations import (
    AsyncMemLayerClient,
    MemLayerError,
    Memory,
    MemoryLimitError,
    RateLimitError,
)
from memlayer_integrations.server import keys

from ._process import ServerProcess, create_key

SECONDS = 5.0
MAX_OPS = 8_000  # a bound on the count too, whatever the speed of the machine
WORKERS = 24
USERS = [f"user_{i:02d}" for i in range(40)]
WORDS = [
    "tea",
    "coffee",
    "oslo",
    "lisbon",
    "plan",
    "pro",
    "team",
    "invoice",
    "refund",
    "puppy",
    "beach",
    "pottery",
]
MIX = {"remember": 0.35, "recall": 0.35, "list": 0.15, "forget": 0.15}
LIMITS = {
    "daily_quota_exceeded",
    "memory_limit_reached",
}  # what the small plan answers once used up


@dataclass
class Account:
    name: str
    key: str
    small: bool  # on a plan whose limits the load reaches
    live: dict[str, dict[str, str]] = field(
        default_factory=lambda: defaultdict(dict)
    )  # user -> id -> content
    sent: dict[str, set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )  # user -> every content sent to remember, recorded before the request goes out
    forgotten: set[str] = field(default_factory=set)


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    quota: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


async def worker(
    url: str, accounts: list[Account], tally: Tally, seed: int, deadline: float, budget: list[int]
) -> None:
    rng = random.Random(seed)
    clients = {
        a.name: AsyncMemLayerClient(api_key=a.key, base_url=url, max_retries=0, timeout=30.0)
        for a in accounts
    }
    try:
        # Past the deadline too, until the small plan's limits are reached: that they are
        # must not depend on how fast this machine is (MAX_OPS still bounds the run).
        while budget[0] > 0 and (time.perf_counter() < deadline or not set(tally.quota) >= LIMITS):
            budget[0] -= 1
            account, user = rng.choice(accounts), rng.choice(USERS)
            op = rng.choices(list(MIX), list(MIX.values()))[0]
            if op == "forget" and not account.live[user]:
                op = "remember"
            client, started = clients[account.name], time.perf_counter()
            try:
                await step(client, account, user, op, rng, tally)
            except (RateLimitError, MemoryLimitError) as exc:
                documented = isinstance(exc, MemoryLimitError) or exc.is_daily_quota
                if not (account.small and documented):
                    tally.errors.append(f"{account.name} {op}: {exc!r}")
                tally.quota[exc.code] += 1
            except MemLayerError as exc:
                tally.errors.append(f"{account.name} {op}: {exc!r}")
            tally.latencies[op].append(time.perf_counter() - started)
    finally:
        for client in clients.values():
            await client.close()


async def step(
    client: AsyncMemLayerClient,
    account: Account,
    user: str,
    op: str,
    rng: random.Random,
    tally: Tally,
) -> None:
    if op == "remember":
        content = (
            f"{rng.choice(WORDS)} {rng.choice(WORDS)} {account.name} {user} {uuid.uuid4().hex}"
        )
        # Recorded before it is sent: the server commits the memory before its answer comes
        # back, and a concurrent recall or list of this user may see it in between.
        account.sent[user].add(content)
        memory = await client.remember(content, user_id=user, agent_id="bot")
        if (memory.user_id, memory.content) != (user, content):
            tally.errors.append(f"remember answered {memory!r}")
        account.live[user][memory.id] = content
    elif op == "forget":
        memory_id = rng.choice(sorted(account.live[user]))
        content = account.live[user].pop(memory_id)  # no other worker forgets it meanwhile
        try:
            await client.forget(memory_id)
        except BaseException:
            account.live[user][memory_id] = content  # not acknowledged: still there
            raise
        account.forgotten.add(memory_id)
    else:
        if op == "recall":
            found = [
                hit.memory for hit in await client.recall(rng.choice(WORDS), user_id=user, limit=20)
            ]
        else:
            found = []
            async for memory in client.list_memories(user_id=user, page_size=20):
                found.append(memory)
                if len(found) == 20:
                    break
        tally.errors.extend(
            f"{op} for {account.name}/{user} returned a memory this account never sent for "
            f"this user: {m.id} of {m.user_id!r}: {m.content!r}"
            for m in foreign(found, account, user)
        )


def foreign(found: list[Memory], account: Account, user: str) -> list[Memory]:
    """The memories in ``found`` that are not this account's for ``user``.

    Every content the load writes names its account and user and ends in a fresh uuid, so a
    memory belongs to (account, user) exactly when its content is one this account sent for
    that user, including writes whose answer has not come back yet.
    """
    return [m for m in found if m.user_id != user or m.content not in account.sent[user]]


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {"n": len(ms), "p50_ms": round(cuts[49], 2), "p99_ms": round(cuts[98], 2)}


def test_a_memory_of_another_account_or_user_counts_as_foreign():
    a, b = Account("a", "key-a", small=False), Account("b", "key-b", small=False)
    now = datetime.now(timezone.utc)

    def memory(content: str, user: str) -> Memory:
        return Memory(
            id=f"mem_{uuid.uuid4().hex}",
            content=content,
            user_id=user,
            agent_id="bot",
            created_at=now,
            updated_at=now,
        )

    a.sent["user_01"].add("tea oslo a user_01 1")  # sent, its answer not back yet
    b.sent["user_01"].add("tea oslo b user_01 2")
    a.sent["user_02"].add("tea oslo a user_02 3")
    in_flight = memory("tea oslo a user_01 1", "user_01")
    other_account = memory("tea oslo b user_01 2", "user_01")
    other_user = memory("tea oslo a user_02 3", "user_02")
    found = [in_flight, other_account, other_user]
    assert foreign(found, a, "user_01") == [other_account, other_user]


@pytest.mark.slow
def test_mixed_load_loses_and_doubles_nothing(tmp_path, record_property):
    db = tmp_path / "load.db"
    accounts = [
        Account("a", create_key(db), small=False),
        Account("b", create_key(db), small=False),
        Account("c", create_key(db, "small", memories=10, requests_per_day=150), small=True),
    ]
    tally = Tally()
    with ServerProcess(db, tmp_path / "server.log") as server:

        async def load() -> None:
            deadline, budget = time.perf_counter() + SECONDS, [MAX_OPS]
            await asyncio.gather(
                *(worker(server.url, accounts, tally, n, deadline, budget) for n in range(WORKERS))
            )

        asyncio.run(load())

    latency = {op: percentiles(ts) for op, ts in sorted(tally.latencies.items())}
    record_property("load_latency", latency)
    record_property("load_quota_answers", dict(tally.quota))
    assert not tally.errors, tally.errors[:10]
    assert sum(v["n"] for v in latency.values()) >= 100 and set(latency) == set(MIX)
    assert (
        set(tally.quota) == LIMITS
    )  # the small plan's limits were reached, and nothing else refused
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        for account in accounts:
            stored, memory_count = read_back(conn, account.key)
            # Exactly what was acknowledged: none lost, none doubled, none in another scope.
            assert stored == {user: dict(account.live[user]) for user in USERS}
            assert memory_count == sum(len(m) for m in stored.values())  # the plan's counter agrees
    finally:
        conn.close()


def read_back(conn: sqlite3.Connection, key: str) -> tuple[dict[str, dict[str, str]], int]:
    """An account's memories (user -> id -> content) and its stored count, from the file."""
    account = keys.authenticate(conn, key)
    assert account is not None
    out: dict[str, dict[str, str]] = {user: {} for user in USERS}
    for row in conn.execute(
        "SELECT id, user_id, agent_id, content FROM memories WHERE account_id = ?", (account.id,)
    ):
        assert row["agent_id"] == "bot"
        out[row["user_id"]][row["id"]] = row["content"]
    return out, conn.execute(
        "SELECT memory_count FROM accounts WHERE id = ?", (account.id,)
    ).fetchone()[0]
