"""Fill a server's database with many users' memories through ``memlayer import``'s code.

Through HTTP, a million memories take too long on a small machine (a ``remember_many``
request of 100 is a few hundred milliseconds of server work), so ``scale``'s many-users row
loads them the way an operator moving a server would: as a dump (``docs/export-format.md``)
given to :func:`~memlayer_integrations.server.transfer.import_dump`, the code behind
``memlayer import``. Every memory goes through the server's own write path for imports:
the dump's checks, the full-text column written beside it, the counting triggers.

The texts are seeded (``_text.py``). Generating a million distinct sentences costs half a
minute of this process's time, and the index only cares about word statistics, so a pool of
at most :data:`POOL` sentences is dealt out to the users in turn (each user's memories are
consecutive sentences of the pool, so a user never holds one twice).

The dump is imported in parts of about :data:`PART` memories, each its own transaction (an
import is all or nothing). On PostgreSQL, before schema migration 3, the counters were kept
by row-level triggers: every memory of a transaction added a version of the same counter
rows, which the next update had to step over, so a transaction's cost grew with the square
of its memories (20,000 memories at about 340/s in one part, 1,100/s in parts of 2,000).
Counted once per statement now, an import's time grows with its size (``memlayer import``
of 5k/10k/20k memories into one scope: 5.6/11.4/22.5 s); the parts are kept, so a large
scope is still not one long transaction.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from memlayer_integrations.server.backend import open_backend
from memlayer_integrations.server.store import iso
from memlayer_integrations.server.transfer import FORMAT, VERSION, import_dump

from ._text import TextGenerator

__all__ = ["PART", "POOL", "account_of_only_key", "load", "texts_of"]

#: Most distinct sentences generated; users beyond it get the pool's sentences again.
POOL = 50_000
#: About how many memories one import (one transaction) holds.
PART = 500

_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def texts_of(gen: TextGenerator, users: int, per_user: int) -> list[list[str]]:
    """Each user's memory texts: ``per_user`` consecutive sentences of a seeded pool."""
    pool = gen.memories(min(users * per_user, max(POOL, per_user)))
    out = []
    for u in range(users):
        start = (u * per_user) % (len(pool) - per_user + 1)
        out.append(pool[start : start + per_user])
    return out


def account_of_only_key(db: str) -> int:
    """The account of the one API key a fresh server database holds."""
    backend = open_backend(db)
    try:
        with backend.read() as conn:
            [row] = conn.execute("SELECT DISTINCT account_id FROM api_keys").fetchall()
            return int(row[0])
    finally:
        backend.close()


def _dump(
    account: int, agent: str, users: list[str], texts: list[list[str]], first: int
) -> Iterator[bytes]:
    """A dump of these users' memories: the header, then one line per memory."""
    count = sum(len(t) for t in texts)
    header = {"format": FORMAT, "version": VERSION, "with_keys": False}
    yield json.dumps({**header, "counts": {"memories": count}}).encode()
    n = first
    for user, own in zip(users, texts, strict=True):
        for text in own:
            # Distinct, increasing times, as a server that stored them one by one wrote them.
            moment = iso(_EPOCH + timedelta(milliseconds=n))
            n += 1
            record = {
                "type": "memory",
                "id": "mem_" + uuid.uuid4().hex,
                "account": account,
                "user_id": user,
                "agent_id": agent,
                "session_id": None,
                "key": None,
                "content": text,
                "metadata": {},
                "created_at": moment,
                "updated_at": moment,
                "expires_at": None,
                "ttl": None,
            }
            yield json.dumps(record, separators=(",", ":")).encode()


def load(
    db: str, account: int, agent: str, users: list[str], texts: list[list[str]]
) -> dict[str, Any]:
    """Import every user's ``texts`` into ``db`` for ``account``; time it."""
    # On PostgreSQL a user with more than PART memories is imported in several parts (not
    # one long transaction; see the module docstring); SQLite imports a scope of 20,000
    # twice as fast in one part as in 40.
    cut = PART if db.startswith(("postgres://", "postgresql://")) else None
    pieces = [
        (user, own[at : at + (cut or len(own))])
        for user, own in zip(users, texts, strict=True)
        for at in range(0, len(own), cut or max(1, len(own)))
    ]
    per_piece = max(1, max(len(t) for _, t in pieces))
    pieces_per_part = max(1, PART // per_piece)
    backend = open_backend(db)
    stored = parts = 0
    start = time.perf_counter()
    try:
        for at in range(0, len(pieces), pieces_per_part):
            part = pieces[at : at + pieces_per_part]
            part_users = [user for user, _ in part]
            part_texts = [own for _, own in part]
            report = import_dump(backend, _dump(account, agent, part_users, part_texts, stored))
            stored += report.added["memories"]
            parts += 1
    finally:
        backend.close()
    elapsed = time.perf_counter() - start
    expected = sum(len(t) for t in texts)
    if stored != expected:
        raise RuntimeError(f"the import stored {stored} memories of {expected}")
    return {
        "memories": stored,
        "imports": parts,
        "seconds": round(elapsed, 1),
        "memories_per_s": round(stored / elapsed, 1) if elapsed else None,
    }
