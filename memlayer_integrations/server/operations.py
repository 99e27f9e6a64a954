"""One function per endpoint: read the request from a :class:`Context`, call ``store``.

These functions are what ``/v1/batch`` runs too, so an operation behaves the same alone
and inside a batch.
"""

from __future__ import annotations

from typing import Any

from .._constants import MAX_BATCH_ITEMS
from . import store
from .errors import ApiError, validation_error
from .parsing import check_memory_id, query_to_dict, validate
from .schemas import (
    OP_MODELS,
    ForgetAllQuery,
    ListQuery,
    RecallRequest,
    RememberManyRequest,
    RememberRequest,
    ScopesQuery,
    UpdateRequest,
)
from .service import Context, Incoming, Operation, Rendered, Unfinished, memory_ids

__all__ = ["OPERATIONS"]

_SCOPE_PARAMS = ("user_id", "agent_id", "session_id")


def remember(ctx: Context) -> tuple[int, Any]:
    req = validate(RememberRequest, ctx.json())
    return store.remember(ctx.conn, ctx.account, req, ctx.now_iso, ctx.embeddings)


def remember_many(ctx: Context) -> tuple[int, Any]:
    req = validate(RememberManyRequest, ctx.json())
    memories = store.remember_many(ctx.conn, ctx.account, req, ctx.now_iso, ctx.embeddings)
    return 201, {"memories": memories}


def recall(ctx: Context) -> tuple[int, Any]:
    req = validate(RecallRequest, ctx.json())
    _refresh_vectors(ctx, req)
    with ctx.budget.guard(ctx.conn):
        return 200, {
            "results": store.recall(ctx.conn, ctx.account, req, ctx.now_iso, ctx.embeddings)
        }


def _refresh_vectors(ctx: Context, req: RecallRequest) -> None:
    """With an embedder: the scope's cached vectors brought up to date outside the request's
    budget (see ``SemanticIndex.refresh``)."""
    if ctx.embeddings is not None:
        ctx.embeddings.index.refresh(ctx.conn, ctx.account.id, req.user_id, req.agent_id)


def get(ctx: Context) -> tuple[int, Any]:
    return 200, store.get(
        ctx.conn, ctx.account, check_memory_id(ctx.incoming.path_params["memory_id"]), ctx.now_iso
    )


def update(ctx: Context) -> tuple[int, Any]:
    memory_id = check_memory_id(ctx.incoming.path_params["memory_id"])
    req = validate(UpdateRequest, ctx.json())
    return 200, store.update(ctx.conn, ctx.account, memory_id, req, ctx.now_iso, ctx.embeddings)


def forget(ctx: Context) -> tuple[int, Any]:
    store.forget(ctx.conn, ctx.account, check_memory_id(ctx.incoming.path_params["memory_id"]))
    return 204, None


def forget_all(ctx: Context) -> tuple[int, Any]:
    """One step of at most ``store.FORGET_STEP`` deletions; a full step means there may be
    more, and the service runs the next step in a transaction of its own."""
    q = validate(ForgetAllQuery, query_to_dict(ctx.incoming.query, _SCOPE_PARAMS, {"key": "keys"}))
    deleted = store.forget_step(ctx.conn, ctx.account, q)
    if deleted >= store.FORGET_STEP:
        return 200, Unfinished(ctx.carried + deleted)
    return 200, {"deleted": ctx.carried + deleted}


def list_memories(ctx: Context) -> tuple[int, Any]:
    params = query_to_dict(
        ctx.incoming.query,
        (*_SCOPE_PARAMS, "agent_prefix", "filters", "limit", "cursor"),
        {"key": "keys"},
    )
    q = validate(ListQuery, params)
    with ctx.budget.guard(ctx.conn):
        return 200, store.list_page(ctx.conn, ctx.account, q, ctx.now_iso, _page_bytes(ctx))


def _page_bytes(ctx: Context) -> int:
    """A list page's byte size: at most half the answer cap, so a page always fits."""
    return min(store.PAGE_BYTES, ctx.settings.max_response_bytes // 2)


def scopes(ctx: Context) -> tuple[int, Any]:
    params = query_to_dict(ctx.incoming.query, ("user_id", "agent_prefix"), {})
    q = validate(ScopesQuery, params)
    return 200, {"scopes": store.scopes(ctx.conn, ctx.account, q.user_id, q.agent_prefix)}


def usage(ctx: Context) -> tuple[int, Any]:
    return 200, store.usage(ctx.conn, ctx.account, ctx.requests_today, ctx.now)


def _run_op(ctx: Context, name: str, req: Any) -> Any:
    conn, account, vectors = ctx.conn, ctx.account, ctx.embeddings
    if name == "remember":
        return {"memory": store.remember(conn, account, req, ctx.now_iso, vectors)[1]}
    if name == "remember_many":
        return {"memories": store.remember_many(conn, account, req, ctx.now_iso, vectors)}
    if name == "scopes":
        return {"scopes": store.scopes(conn, account, req.user_id, req.agent_prefix)}
    if name == "recall":
        _refresh_vectors(ctx, req)
        with ctx.budget.guard(conn):
            results = store.recall(conn, account, req, ctx.now_iso, vectors, ctx.narrowed)
        if req.refresh_ttl:
            store.touch(conn, [r["memory"] for r in results], ctx.now)
        return {"results": results}
    if name == "get":
        memory = store.get(conn, account, req.memory_id, ctx.now_iso)
        if req.refresh_ttl:
            store.touch(conn, [memory], ctx.now)
        return {"memory": memory}
    if name == "update":
        return {"memory": store.update(conn, account, req.memory_id, req, ctx.now_iso, vectors)}
    if name == "forget":
        return {"deleted": store.forget(conn, account, req.memory_id)}
    if name == "forget_all":
        return {"deleted": store.forget_all(conn, account, req)}
    if name == "list":
        with ctx.budget.guard(conn):
            page = store.list_page(conn, account, req, ctx.now_iso, _page_bytes(ctx), ctx.narrowed)
        if req.refresh_ttl:
            store.touch(conn, page["memories"], ctx.now)
        return page
    return {"usage": store.usage(conn, account, ctx.requests_today, ctx.now)}


def batch(ctx: Context) -> tuple[int, Any]:
    """Run the operations in order on the caller's transaction; the first failure fails all."""
    body = ctx.json()
    if not isinstance(body, dict):
        raise validation_error("the request body must be a JSON object", None)
    unknown = sorted(set(body) - {"operations"})
    if unknown:
        raise validation_error(f"{unknown[0]}: unknown field", unknown[0])
    operations = body.get("operations")
    if not isinstance(operations, list) or not 1 <= len(operations) <= MAX_BATCH_ITEMS:
        raise validation_error(
            f"operations: a list of 1 to {MAX_BATCH_ITEMS} operations", "operations"
        )
    parts: list[bytes] = []
    results: list[Any] = []
    writes = False
    ctx.budget.charge(len(b'{"results":[]}'))
    for i, raw in enumerate(operations):
        try:
            if not isinstance(raw, dict):
                raise validation_error("an operation is a JSON object", None)
            name = raw.get("op")
            if not isinstance(name, str) or name not in OP_MODELS:
                raise validation_error(f"op: one of {', '.join(OP_MODELS)}", "op")
            result = _run_op(ctx, name, validate(OP_MODELS[name], raw))
            if name in WRITE_OPS:
                ctx.narrowed.clear()  # the scopes the reads narrowed to may have changed
                writes = True
            # Rendered one by one: past the byte cap, the batch stops here.
            parts.append(ctx.budget.render(result))
            ctx.budget.charge(1)  # the comma
            results.append(result)
        except ApiError as exc:
            raise exc.prefixed(f"operations[{i}]") from None
    # The memories shown, for an answer kept for replays: only a batch that writes keeps it.
    ids = {i for result in results for i in memory_ids(result)} if writes else set()
    return 200, Rendered(b'{"results":[' + b",".join(parts) + b"]}", ids)


#: The operations of a batch that write; a batch of none of them is a read.
WRITE_OPS = frozenset({"remember", "remember_many", "update", "forget", "forget_all"})

#: Batch operations whose work the operation itself bounds (see ``Operation.bounded``): a
#: write of at most 100 items, one memory, or a list of given keys (at most 100).
_BOUNDED_OPS = frozenset({"remember", "remember_many", "get", "update", "forget", "usage"})


def _operations(incoming: Incoming) -> list[Any] | None:
    """The ``operations`` list of a batch body, or ``None`` if the body is not one."""
    try:
        body = incoming.json(len(incoming.body or b""))
    except ApiError:
        return None
    operations = body.get("operations") if isinstance(body, dict) else None
    return operations if isinstance(operations, list) else None


def batch_bounded(incoming: Incoming) -> bool:
    """Whether every operation of a batch is bounded by what it says: then the batch is
    too (at most 100 operations). The store's gets, puts and deletes are such batches."""
    operations = _operations(incoming)
    if operations is None or len(operations) > MAX_BATCH_ITEMS:
        return False
    for raw in operations:
        if not isinstance(raw, dict):
            return False
        name = raw.get("op")
        keyed_list = name == "list" and isinstance(raw.get("keys"), list) and raw["keys"]
        if name not in _BOUNDED_OPS and not keyed_list:
            return False
    return True


def batch_has_write(incoming: Incoming) -> bool:
    """Whether a batch holds a write operation (anything unreadable counts as one: the
    write path reports the error as it would anyway). Only such a batch keeps its answer
    for replays; a batch of reads is never kept, as the contract says."""
    operations = _operations(incoming)
    if operations is None:
        return True
    names = [raw.get("op") if isinstance(raw, dict) else None for raw in operations]
    return any(not isinstance(n, str) or n not in OP_MODELS or n in WRITE_OPS for n in names)


def batch_writes(incoming: Incoming) -> bool:
    """Whether a batch writes: a write operation, or a read that restarts expiry clocks
    (``refresh_ttl``), which then runs in the write transaction too."""
    operations = _operations(incoming) or []
    refreshes = any(
        isinstance(raw, dict) and raw.get("refresh_ttl") not in (None, False) for raw in operations
    )
    return refreshes or batch_has_write(incoming)


# -- what each operation embeds before its transaction (see Service._embed) ------------


def _body(incoming: Incoming) -> Any:
    return incoming.json(len(incoming.body or b""))


def _texts(op: str, raw: Any) -> tuple[list[str], list[str]]:
    """``(documents, queries)`` one operation of a valid body will embed."""
    if op in ("remember", "update") and isinstance(raw.get("content"), str):
        return [raw["content"]], []
    if op == "remember_many":
        items = raw.get("items") if isinstance(raw.get("items"), list) else []
        return [
            i["content"] for i in items if isinstance(i, dict) and isinstance(i.get("content"), str)
        ], []
    if op == "recall" and isinstance(raw.get("query"), str):
        return [], [raw["query"]]
    return [], []


def _prepare(op: str) -> Any:
    def prepare(incoming: Incoming, embeddings: Any) -> None:
        raw = _body(incoming)
        if isinstance(raw, dict):
            documents, queries = _texts(op, raw)
            embeddings.prepare(documents, queries)

    return prepare


def _prepare_batch(incoming: Incoming, embeddings: Any) -> None:
    raw = _body(incoming)
    operations = raw.get("operations") if isinstance(raw, dict) else None
    if not isinstance(operations, list) or len(operations) > MAX_BATCH_ITEMS:
        return
    documents: list[str] = []
    queries: list[str] = []
    for item in operations:
        if isinstance(item, dict) and isinstance(item.get("op"), str):
            more_documents, more_queries = _texts(item["op"], item)
            documents += more_documents
            queries += more_queries
    embeddings.prepare(documents, queries)


OPERATIONS: dict[str, Operation] = {
    "remember": Operation(remember, writes=True, prepare=_prepare("remember")),
    "remember_many": Operation(remember_many, writes=True, prepare=_prepare("remember_many")),
    # A recall or a list may use its whole budget: on a thread, never on the event loop.
    "recall": Operation(recall, writes=False, bounded=False, prepare=_prepare("recall")),
    "get": Operation(get, writes=False),
    "update": Operation(update, writes=True, prepare=_prepare("update")),
    "forget": Operation(forget, writes=True),
    "forget_all": Operation(forget_all, writes=True, bounded=False),
    "list": Operation(list_memories, writes=False, bounded=False),
    "scopes": Operation(scopes, writes=False, bounded=False),
    "usage": Operation(usage, writes=False),
    "batch": Operation(
        batch,
        writes=True,
        bounded=False,
        writes_if=batch_writes,
        bounded_if=batch_bounded,
        keeps_answer_if=batch_has_write,
        prepare=_prepare_batch,
    ),
}
