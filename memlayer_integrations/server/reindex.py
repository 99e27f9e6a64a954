"""``memlayer reindex``: embed the memories that have no vector of the server's embedder.

Needed once for a database written before the server had an embedder (or with another
embedder): new memories are embedded as they are written. It runs next to a serving server
on the same file: memories are read in batches, embedded outside any transaction, and a
vector is written only if its memory still holds the text that was embedded (a memory
changed meanwhile is embedded by the server when it is written, or by the next reindex).
"""

from __future__ import annotations

from collections.abc import Callable

from .backend import Backend
from .embedders import Embedder
from .search import query_terms
from .vectors import TableVectors

__all__ = ["BATCH", "missing", "reindex"]

#: Memories embedded per batch (one read, one model call per ``Embedder.batch_size``, one write).
BATCH = 256

_MISSING = (
    "SELECT m.rowid FROM memories AS m WHERE NOT EXISTS"
    " (SELECT 1 FROM memory_vectors AS v WHERE v.memory_rowid = m.rowid AND v.model = ?)"
    " ORDER BY m.rowid"
)


def missing(db: Backend, model: str) -> list[int]:
    """Rowids of the memories without a vector of ``model`` (and with a word to embed)."""
    with db.read() as conn:
        rows = conn.execute(_MISSING, (model,)).fetchall()
        ids = [r[0] for r in rows]
        texts = _contents(conn, ids)
    return [rowid for rowid in ids if query_terms(texts.get(rowid, ""))]


def _contents(conn: object, rowids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for i in range(0, len(rowids), 500):
        chunk = rowids[i : i + 500]
        sql = f"SELECT rowid, content FROM memories WHERE rowid IN ({','.join('?' * len(chunk))})"
        out.update({r[0]: r[1] for r in conn.execute(sql, chunk)})  # type: ignore[attr-defined]
    return out


def reindex(
    db: Backend,
    embedder: Embedder,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch: int = BATCH,
) -> int:
    """Embed every memory that lacks a vector of ``embedder``; return how many were written.

    ``progress(done, total)`` is called after each batch.
    """
    storage = TableVectors()
    todo = missing(db, embedder.name)
    written = done = 0
    if progress is not None:
        progress(0, len(todo))
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        with db.read() as conn:
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT rowid, account_id, user_id, agent_id, content FROM memories"
                f" WHERE rowid IN ({marks}) ORDER BY rowid",
                chunk,
            ).fetchall()
        vectors = embedder.embed_documents([r["content"] for r in rows]) if rows else None
        with db.write() as conn:
            # As a request's writes do: a scope's vectors then gain sequence numbers in the
            # order they commit, however many processes write (vectors.py caches by them).
            # Accounts in order, so two such writers never wait for each other in a cycle.
            for account_id in sorted({r["account_id"] for r in rows}):
                db.lock_account(conn, account_id)
            current = _contents(conn, [r["rowid"] for r in rows])
            keep = [i for i, r in enumerate(rows) if current.get(r["rowid"]) == r["content"]]
            if keep and vectors is not None:
                storage.put(
                    conn,
                    embedder.name,
                    [
                        (
                            rows[i]["rowid"],
                            (rows[i]["account_id"], rows[i]["user_id"], rows[i]["agent_id"]),
                        )
                        for i in keep
                    ],
                    vectors[keep],
                )
        written += len(keep)
        done += len(chunk)
        if progress is not None:
            progress(done, len(todo))
    return written
