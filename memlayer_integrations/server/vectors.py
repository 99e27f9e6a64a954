"""Memory vectors: where they are stored, and how a scope's nearest ones are found.

Two layers, so another database can be added without touching the ranking:

* :class:`VectorStorage` is the storage interface: write a batch of vectors, say whether a
  scope changed, read a scope's vectors newer than a sequence number. :class:`TableVectors`
  implements it on the ``memory_vectors`` and ``vector_scopes`` tables (SQLite's migration
  6 in ``sqlite_schema.py``, PostgreSQL's ``postgres/schema.py``) with SQL both databases run.
* :class:`SemanticIndex` holds the embedder and, per scope (account, user, agent), the
  scope's vectors as one normalized float32 matrix in memory. A recall reads the scope's
  two counters (vectors added, vectors removed; one row) and brings the matrix up to date:
  rows added since are appended, and only when something was removed are the scope's
  sequence numbers read to drop the rows that went. Cosine is then a matrix-vector product.

Large scopes: above ``EXACT_LIMIT`` vectors, a full float32 product reads the whole matrix
(150 MB at 100k memories of 384 dimensions) for every question. The index therefore also
keeps each vector's signs as bits (48 bytes) and first ranks by Hamming distance between
sign bits, which approximates the angle; the ``PREFILTER`` nearest by bits are then scored
exactly. Only the order of memories far below the first ``PREFILTER`` can differ from an
exhaustive search.
"""

from __future__ import annotations

import dataclasses
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .embedders import Embedder, EmbedderError

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "EXACT_LIMIT",
    "PREFILTER",
    "QUERIES_KEPT",
    "EmbedderError",
    "Embeddings",
    "SQLiteVectors",
    "ScopeKey",
    "SemanticIndex",
    "TableVectors",
    "VectorStorage",
]

#: Largest scope searched by an exact product over all its vectors.
EXACT_LIMIT = 20_000
#: In a larger scope, how many nearest by sign bits are scored exactly.
PREFILTER = 2_000

#: How many recent questions' vectors are kept (a repeated question is not embedded again).
QUERIES_KEPT = 512

#: (account_id, user_id, agent_id)
ScopeKey = tuple[int, str, str]


class VectorStorage(ABC):
    """Where vectors live. Every method runs on the caller's connection and transaction."""

    @abstractmethod
    def put(
        self, conn: Any, model: str, memories: Sequence[tuple[int, ScopeKey]], vectors: Any
    ) -> None:
        """Store ``vectors[i]`` for memory ``memories[i] = (rowid, scope)``, replacing any."""

    @abstractmethod
    def has(self, conn: Any, rowid: int, model: str) -> bool:
        """Whether memory ``rowid`` has a vector of ``model``."""

    @abstractmethod
    def state(self, conn: Any, scope: ScopeKey) -> tuple[int, int]:
        """``(added, removed)``: how many vectors the scope ever gained and lost."""

    @abstractmethod
    def agents(self, conn: Any, account_id: int, user_id: str) -> list[str]:
        """The agents of the user that have vectors."""

    @abstractmethod
    def since(
        self, conn: Any, scope: ScopeKey, model: str, seq: int
    ) -> tuple[list[int], list[int], list[bytes]]:
        """``(seqs, memory rowids, float32 blobs)`` of the scope's vectors after ``seq``."""

    @abstractmethod
    def seqs(self, conn: Any, scope: ScopeKey, model: str) -> list[int]:
        """The sequence numbers of the scope's vectors."""


class TableVectors(VectorStorage):
    """:class:`VectorStorage` as a float32 blob per memory (``memory_vectors``), on either
    backend (no vector extension needed: the ranking is numpy's)."""

    def put(
        self, conn: Any, model: str, memories: Sequence[tuple[int, ScopeKey]], vectors: Any
    ) -> None:
        matrix = np.asarray(vectors, dtype=np.float32)
        conn.executemany(
            "DELETE FROM memory_vectors WHERE memory_rowid = ?", [(r,) for r, _ in memories]
        )
        conn.executemany(
            "INSERT INTO memory_vectors (memory_rowid, account_id, user_id, agent_id, model, vector)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (rowid, *scope, model, matrix[i].tobytes())
                for i, (rowid, scope) in enumerate(memories)
            ],
        )

    def has(self, conn: Any, rowid: int, model: str) -> bool:
        sql = "SELECT 1 FROM memory_vectors WHERE memory_rowid = ? AND model = ?"
        return conn.execute(sql, (rowid, model)).fetchone() is not None

    def state(self, conn: Any, scope: ScopeKey) -> tuple[int, int]:
        row = conn.execute(
            "SELECT added, removed FROM vector_scopes WHERE account_id = ? AND user_id = ? AND agent_id = ?",
            scope,
        ).fetchone()
        return (0, 0) if row is None else (row[0], row[1])

    def agents(self, conn: Any, account_id: int, user_id: str) -> list[str]:
        return [
            r[0]
            for r in conn.execute(
                "SELECT agent_id FROM vector_scopes WHERE account_id = ? AND user_id = ? AND added > removed",
                (account_id, user_id),
            )
        ]

    def since(
        self, conn: Any, scope: ScopeKey, model: str, seq: int
    ) -> tuple[list[int], list[int], list[bytes]]:
        rows = conn.execute(
            "SELECT seq, memory_rowid, vector FROM memory_vectors WHERE account_id = ? AND user_id = ?"
            " AND agent_id = ? AND seq > ? AND model = ? ORDER BY seq",
            (*scope, seq, model),
        ).fetchall()
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    def seqs(self, conn: Any, scope: ScopeKey, model: str) -> list[int]:
        return [
            r[0]
            for r in conn.execute(
                "SELECT seq FROM memory_vectors WHERE account_id = ? AND user_id = ? AND agent_id = ?"
                " AND model = ?",
                (*scope, model),
            )
        ]


#: The former name of :class:`TableVectors`.
SQLiteVectors = TableVectors


@dataclass
class _Scope:
    """One scope's vectors in memory, in ``seq`` order; rows past ``size`` are spare room."""

    state: tuple[int, int]
    seqs: Any  # int64[size]
    rowids: Any  # int64[size]
    matrix: Any  # float32[capacity, dim]
    bits: Any  # uint64[words, capacity]: sign bits, for large scopes (a row per word)
    size: int

    @property
    def last_seq(self) -> int:
        return int(self.seqs[self.size - 1]) if self.size else 0


def _sign_bits(matrix: Any) -> Any:
    """Each row's signs packed into 64-bit words (the dimension padded to a multiple of 64):
    ``uint64[rows, words]``."""
    dim = matrix.shape[1]
    padded = np.zeros((matrix.shape[0], -(-dim // 64) * 64), dtype=bool)
    padded[:, :dim] = matrix > 0
    return np.packbits(padded, axis=1).view(np.uint64)


class Embeddings:
    """Texts embedded before a request's transaction, looked up by text when it runs.

    Embedding takes milliseconds to seconds; done inside the write transaction it would
    hold every other writer back, so ``Service`` embeds what a request will need first.
    A text that was not prepared is embedded on the spot.

    A question for a model run in this process (:attr:`Embedder.local`) is only *started*
    here, on the index's worker thread: the model releases the GIL, so the question is
    embedded while the request counts itself and searches the words, and :meth:`query`
    waits for it only when recall ranks by meaning (see :meth:`SemanticIndex.start_query`).
    """

    def __init__(self, index: SemanticIndex) -> None:
        self.index = index
        self._documents: dict[str, Any] = {}
        self._queries: dict[str, Future[Any]] = {}

    def prepare(self, documents: Iterable[str] = (), queries: Iterable[str] = ()) -> Embeddings:
        todo = list(dict.fromkeys(t for t in documents if t not in self._documents))
        if todo:
            self._documents.update(
                zip(todo, self.index.embedder.embed_documents(todo), strict=True)
            )
        for text in queries:
            if text not in self._queries:
                self._queries[text] = self.index.start_query(text)
        return self

    def documents(self, texts: Sequence[str]) -> Any:
        self.prepare(documents=texts)
        return np.stack([self._documents[t] for t in texts])

    def query(self, text: str) -> Any:
        """The question's vector (waiting for it if it is being embedded); a failed
        embedding raises its :class:`EmbedderError` here."""
        return self.query_future(text).result()

    def query_future(self, text: str) -> Future[Any]:
        """The question's vector as a future (see :meth:`SemanticIndex.start_nearest`)."""
        self.prepare(queries=[text])
        return self._queries[text]


class SemanticIndex:
    """An embedder, the storage of its vectors, and each scope's matrix cached in memory.

    Example:
        >>> index = SemanticIndex(load_embedder("minilm"))
        >>> with db.read() as conn:
        ...     index.nearest(conn, 1, "alice", None, index.embedder.embed_query("tea?"), 10)
    """

    def __init__(self, embedder: Embedder, storage: VectorStorage | None = None) -> None:
        self.embedder = embedder
        self.storage = storage or TableVectors()
        self._scopes: dict[ScopeKey, _Scope] = {}
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, Any] = OrderedDict()  # question -> vector, newest last
        self._recent_lock = threading.Lock()  # not ``_lock``: a scope's first load takes seconds
        self._worker: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def model(self) -> str:
        return self.embedder.name

    def embeddings(self) -> Embeddings:
        return Embeddings(self)

    def put(self, conn: Any, memories: Sequence[tuple[int, ScopeKey]], vectors: Any) -> None:
        """Store the vectors of freshly written memories (in the caller's transaction)."""
        if memories:
            self.storage.put(conn, self.model, memories, vectors)

    def has_vector(self, conn: Any, rowid: int) -> bool:
        """Whether memory ``rowid`` has a vector of this index's model."""
        return self.storage.has(conn, rowid, self.model)

    def start_query(self, text: str) -> Future[Any]:
        """The vector of question ``text``, as a future.

        The last ``QUERIES_KEPT`` questions' vectors are kept (an agent often asks the same
        question again: a retry, a tool round, two adapters on one turn). A local model
        embeds on the index's worker thread and the future is returned at once; any other
        embedder (an endpoint) is called here, so that its failure is known before the
        request is counted (``Service`` answers 503 and counts nothing).
        """
        done: Future[Any] = Future()
        with self._recent_lock:
            vector = self._recent.get(text)
            if vector is not None:
                self._recent.move_to_end(text)
                done.set_result(vector)
                return done
            if self.embedder.local and not self._closed:
                if self._worker is None:
                    self._worker = ThreadPoolExecutor(1, thread_name_prefix="memlayer-embed")
                return self._worker.submit(self._embed_query, text)
        done.set_result(self._embed_query(text))
        return done

    def _embed_query(self, text: str) -> Any:
        vector = self.embedder.embed_query(text)
        with self._recent_lock:
            self._recent[text] = vector
            while len(self._recent) > QUERIES_KEPT:
                self._recent.popitem(last=False)
        return vector

    def start_nearest(
        self,
        conn: Any,
        account_id: int,
        user_id: str,
        agent_id: str | None,
        query: Future[Any],
        k: int,
    ) -> Future[list[tuple[int, float]]]:
        """:meth:`nearest` for the vector ``query`` will hold, as a future.

        The scope's matrices are brought up to ``conn``'s snapshot here (one read of its
        counters); the scan itself (at 100k vectors, 1.5 to 3.5 ms of CPU) runs on the
        index's worker thread right after the question's embedding, which was queued there
        first, so both are done while the caller searches the words. numpy releases the GIL
        while it scans. Without a worker (an endpoint embedder, or after :meth:`close`) the
        scan runs here. A failure (:class:`EmbedderError`) is raised by the future's
        ``result``.
        """
        scopes = [
            self._snapshot(scope) for scope in self._scopes_of(conn, account_id, user_id, agent_id)
        ]

        def scan() -> list[tuple[int, float]]:
            return _scan(scopes, np.asarray(query.result(), dtype=np.float32), k, None)

        with self._recent_lock:
            worker = self._worker if self.embedder.local and not self._closed else None
            if worker is not None:
                return worker.submit(scan)
        done: Future[list[tuple[int, float]]] = Future()
        try:
            done.set_result(scan())
        except EmbedderError as exc:
            done.set_exception(exc)
        return done

    def close(self) -> None:
        """Stop the worker thread and release the embedder (a question asked after this is
        embedded on the caller's thread)."""
        with self._recent_lock:
            worker, self._worker, self._closed = self._worker, None, True
        if worker is not None:
            worker.shutdown(wait=True)
        self.embedder.close()

    def forget_cache(self) -> None:
        """Drop every cached matrix (they are rebuilt from storage on the next recall)."""
        with self._lock:
            self._scopes.clear()

    # -- the cache -----------------------------------------------------------------

    def _current(self, conn: Any, key: ScopeKey) -> _Scope | None:
        """The scope's matrix as of ``conn``'s snapshot (updated in place), or ``None``."""
        state = self.storage.state(conn, key)
        if state[0] == state[1]:
            return None
        with self._lock:
            scope = self._scopes.get(key)
            if scope is not None and scope.state == state:
                return scope
            if scope is not None and scope.state[1] != state[1]:
                keep = np.isin(scope.seqs[: scope.size], self.storage.seqs(conn, key, self.model))
                scope = self._compact(scope, keep)
            seqs, rowids, blobs = self.storage.since(
                conn, key, self.model, scope.last_seq if scope else 0
            )
            scope = self._append(scope, state, seqs, rowids, blobs)
            self._scopes[key] = scope
            return scope if scope.size else None

    def _snapshot(self, scope: _Scope) -> _Scope:
        """A copy of ``scope`` that later appends leave alone: they write only rows past its
        ``size`` or into new arrays, and a removal builds a new scope (:meth:`_compact`)."""
        with self._lock:
            return dataclasses.replace(scope)

    def _scopes_of(
        self, conn: Any, account_id: int, user_id: str, agent_id: str | None
    ) -> list[_Scope]:
        """The cached matrices of a scope (each of the user's agents when ``agent_id`` is
        ``None``), brought up to ``conn``'s snapshot; empty ones left out."""
        agents = (
            [agent_id] if agent_id is not None else self.storage.agents(conn, account_id, user_id)
        )
        return [
            scope
            for agent in agents
            if (scope := self._current(conn, (account_id, user_id, agent))) is not None
        ]

    @staticmethod
    def _compact(scope: _Scope, keep: Any) -> _Scope:
        matrix = scope.matrix[: scope.size][keep]
        return _Scope(
            scope.state,
            scope.seqs[: scope.size][keep],
            scope.rowids[: scope.size][keep],
            matrix,
            np.ascontiguousarray(_sign_bits(matrix).T),
            int(matrix.shape[0]),
        )

    @staticmethod
    def _append(
        scope: _Scope | None,
        state: tuple[int, int],
        seqs: list[int],
        rowids: list[int],
        blobs: list[bytes],
    ) -> _Scope:
        new = (
            np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)
            if blobs
            else None
        )
        if scope is None:
            dim = 0 if new is None else new.shape[1]
            scope = _Scope(
                state,
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
                np.zeros((0, dim), np.float32),
                np.zeros((-(-dim // 64), 0), np.uint64),
                0,
            )
        scope.state = state
        if new is None:
            return scope
        if new.shape[1] != scope.matrix.shape[1] and scope.size:
            raise EmbedderError("vectors of one model with two dimensions; run memlayer reindex")
        end = scope.size + len(blobs)
        if end > scope.matrix.shape[0]:  # grow by doubling, so appends cost O(1) on average
            capacity = max(end, 2 * scope.matrix.shape[0], 64)
            matrix = np.zeros((capacity, new.shape[1]), np.float32)
            bits = np.zeros((-(-new.shape[1] // 64), capacity), np.uint64)
            if scope.size:  # (an empty scope may have been made before any vector: 0 wide)
                matrix[: scope.size] = scope.matrix[: scope.size]
                bits[:, : scope.size] = scope.bits[:, : scope.size]
            scope.matrix, scope.bits = matrix, bits
        scope.matrix[scope.size : end] = new
        scope.bits[:, scope.size : end] = _sign_bits(new).T
        scope.seqs = np.concatenate([scope.seqs[: scope.size], np.asarray(seqs, np.int64)])
        scope.rowids = np.concatenate([scope.rowids[: scope.size], np.asarray(rowids, np.int64)])
        scope.size = end
        return scope

    def refresh(self, conn: Any, account_id: int, user_id: str, agent_id: str | None) -> None:
        """Bring the cached matrices of a scope up to ``conn``'s snapshot.

        A recall calls it before its work is budgeted: filling the cache of a large scope
        (100k vectors: seconds) is done once for every later recall, not by one of them.
        """
        self._scopes_of(conn, account_id, user_id, agent_id)

    # -- search --------------------------------------------------------------------

    def nearest(
        self,
        conn: Any,
        account_id: int,
        user_id: str,
        agent_id: str | None,
        query: Any,
        k: int,
        allowed: Sequence[int] | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` memories of the scope closest to ``query``: ``(rowid, cosine)``, best first.

        ``agent_id=None`` searches every agent of the user. ``allowed``: only these rowids
        (the memories that meet a session or metadata condition).
        """
        wanted = None if allowed is None else np.asarray(sorted(allowed), dtype=np.int64)
        scopes = self._scopes_of(conn, account_id, user_id, agent_id)
        return _scan(scopes, np.asarray(query, dtype=np.float32), k, wanted)


def _scan(scopes: Sequence[_Scope], q: Any, k: int, wanted: Any) -> list[tuple[int, float]]:
    """The ``k`` best ``(rowid, cosine)`` of all ``scopes``, best first."""
    found: list[tuple[int, float]] = []
    for scope in scopes:
        found += _top(scope, q, k, wanted)
    found.sort(key=lambda hit: (-hit[1], hit[0]))
    return found[:k]


def _hamming(bits: Any, q: Any) -> Any:
    """Differing sign bits between ``q`` and each column of ``bits`` (``uint64[words, n]``).

    One word of every vector at a time: each pass reads one contiguous row of ``bits``, and
    the counts are added as they come (at 100k vectors, 0.8 ms against 2 ms for the XOR and
    count of a row-per-vector matrix and a sum over its words)."""
    words = _sign_bits(q[None, :])[0]
    total = np.bitwise_count(bits[0] ^ words[0]).astype(np.int32)
    for word in range(1, bits.shape[0]):
        total += np.bitwise_count(bits[word] ^ words[word])
    return total


def _top(scope: _Scope, q: Any, k: int, wanted: Any) -> list[tuple[int, float]]:
    rows = scope.rowids[: scope.size]
    if q.shape[0] != scope.matrix.shape[1]:
        raise EmbedderError(
            f"the query has {q.shape[0]} dimensions, the stored vectors {scope.matrix.shape[1]}"
        )
    if wanted is not None:
        index: npt.NDArray[Any] = np.nonzero(np.isin(rows, wanted, assume_unique=True))[0]
        if index.size == 0:
            return []
    elif scope.size > EXACT_LIMIT:
        distance = _hamming(scope.bits[:, : scope.size], q)
        index = np.argpartition(distance, PREFILTER)[:PREFILTER]
    else:
        index = np.arange(scope.size)
    if index.size > EXACT_LIMIT:  # a filter kept most of a large scope: prefilter it too
        index = index[np.argpartition(_hamming(scope.bits[:, index], q), PREFILTER)[:PREFILTER]]
    rows_scored = scope.matrix[index] if index.size != scope.size else scope.matrix[: scope.size]
    # einsum, not ``@``: a matrix-vector product through BLAS starts BLAS's own threads,
    # which fight the server's threads on a busy machine (10k rows: 24 ms against 1.4 ms).
    sims = np.einsum("ij,j->i", rows_scored, q)
    best = np.argpartition(-sims, k)[:k] if sims.shape[0] > k else np.arange(sims.shape[0])
    return [(int(rows[index[i]]), float(sims[i])) for i in best]
