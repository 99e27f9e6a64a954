"""The HTTP endpoints of the contract.

FastAPI does the routing and the OpenAPI document; it does not parse bodies or query
parameters. Each endpoint hands the raw request to the :class:`Service`, which
authenticates *first* (a request without a key is a 401 whatever else is wrong with it)
and parses everything itself, so every answer, 422 included, has the contract's shape.
The ``openapi_extra`` of each route describes what is parsed by hand.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from .._models import Memory, Usage
from .._version import __version__
from .errors import ApiError, error_body
from .operations import OPERATIONS
from .schemas import (
    FILTERS_SCHEMA,
    MAX_PAGE_SIZE,
    BatchRequest,
    BatchResponse,
    DeletedResponse,
    ErrorResponse,
    HealthResponse,
    MemoriesResponse,
    PageResponse,
    RecallRequest,
    RecallResponse,
    RememberManyRequest,
    RememberRequest,
    ScopesResponse,
    UpdateRequest,
)
from .service import Incoming, Operation, Outcome, Service

__all__ = ["CALLER_THREAD", "REQUEST_MODELS", "DirectRoutes", "build_router"]

#: The ASGI scope extension an in-process transport sets when the app runs on its caller's
#: own thread (``in_process.py``): the endpoint then runs the service there, without a hop
#: to a worker thread, and the request is not one of the server loop's. No HTTP request can
#: set it: the ASGI server builds the scope.
CALLER_THREAD = "memlayer.caller_thread"

#: Request bodies parsed by hand; their schemas are added to the OpenAPI components.
REQUEST_MODELS = (RememberRequest, RememberManyRequest, RecallRequest, UpdateRequest, BatchRequest)

_ID_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "pattern": r"^[^\x00-\x1f\x7f-\x9f]+$",
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A repeated request with the same key returns the first answer and changes nothing.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[\x20-\x7e]+$"},
}
_MEMORY_ID = {
    "name": "memory_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": r"^mem_[0-9a-f]{32}$"},
}


def _query(
    name: str, required: bool = False, schema: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema or _ID_SCHEMA,
        **extra,
    }


# The filter object, JSON-encoded: described by its content, so the schema says it is JSON.
_FILTERS_QUERY = {
    "name": "filters",
    "in": "query",
    "required": False,
    "description": "the filter object, JSON-encoded",
    "content": {"application/json": {"schema": FILTERS_SCHEMA}},
}

_SCOPE_QUERY = [
    _query("user_id", required=True),
    _query("agent_id"),
    _query("session_id"),
    _query(
        "key",
        schema={"type": "array", "items": _ID_SCHEMA, "maxItems": 100},
        style="form",
        explode=True,
        description="repeatable: memories with any of these keys",
    ),
]


_AGENT_PREFIX_QUERY = _query(
    "agent_prefix",
    description="the agent of this id and every agent whose id starts with it followed by "
    "'.'; with agent_id too, both must hold",
)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    common = (400, 401, 403, 429)
    return {
        s: {"model": ErrorResponse, "description": "error"} for s in sorted({*common, *statuses})
    }


def _doc(
    body: type | None = None,
    params: tuple[dict[str, Any], ...] | list[dict[str, Any]] = (),
    idempotent: bool = False,
) -> dict[str, Any]:
    extra: dict[str, Any] = {"security": [{"ApiKeyAuth": []}]}
    parameters = [*params, *([_IDEMPOTENCY] if idempotent else [])]
    if parameters:
        extra["parameters"] = parameters
    if body is not None:
        extra["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{body.__name__}"}}
            },
        }
    return extra


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` as soon as it is known to be larger than ``limit``."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _header_values(request: Request, name: str) -> list[str]:
    """A header's values without the white space HTTP allows around them (RFC 9110 5.5);
    not every HTTP parser uvicorn may use strips it."""
    return [value.strip(" \t") for value in request.headers.getlist(name)]


def _header(request: Request, name: str) -> str | None:
    """The first of :func:`_header_values`, or ``None``."""
    values = _header_values(request, name)
    return values[0] if values else None


class _InFlight:
    """How many requests are inside an endpoint (the event loop is one thread: no lock)."""

    def __init__(self) -> None:
        self.count = 0


def build_router(service: Service) -> APIRouter:
    """The ``/v1`` endpoints, all served by ``service``.

    ``Service.execute`` blocks (SQLite), so it normally runs on a worker thread, where
    concurrent requests overlap while SQLite works. A request that is the only one in an
    endpoint, for an operation whose work the request bounds (``Operation.bounded``), runs
    it on the event loop instead: handing the work to a thread and the answer back costs two
    thread switches, about half a millisecond on a small machine, as much as a typical write
    takes. Requests arriving meanwhile wait for it to finish, as they would wait for the
    write lock or the interpreter lock anyway; an operation that grows with what is stored
    (``forget_all``, ``scopes``, a ``batch`` holding a recall or a listing) always goes to a
    thread. A request of an in-process caller that runs the app on its own thread
    (:data:`CALLER_THREAD`) runs there, whatever it is: that thread waits for it anyway.
    """
    router = APIRouter(prefix="/v1")
    in_flight = _InFlight()

    def answer(request: Request, outcome: Outcome) -> Response:
        content = outcome.body
        if outcome.error is not None:
            err = outcome.error
            content = error_body(err.code, err.message, err.field, request.state.request_id)
        media = "application/json" if content else None
        return Response(
            content, status_code=outcome.status, headers=outcome.headers, media_type=media
        )

    async def handle(request: Request, op: Operation, *, body: bool = False) -> Response:
        # The key first, before a byte of the body is read: a client without a valid key
        # is answered at once, and the connection closed, whatever it says it will send.
        api_keys = _header_values(request, "x-api-key")
        try:
            account = service.authenticate(api_keys)
        except ApiError as exc:
            refused = answer(request, Outcome(exc.status, None, exc.headers, exc))
            if body:
                refused.headers["Connection"] = "close"
            return refused
        caller_thread = CALLER_THREAD in request.scope.get("extensions", ())
        if not caller_thread:
            in_flight.count += 1
        try:
            try:
                raw = await _read_body(request, service.settings.max_body_bytes) if body else b""
            except ClientDisconnect:  # gone, or cut off by the body timeout: no one to answer
                return Response(status_code=408)
            # Read from the ASGI scope: a request's URL object, and its query parsed when
            # there is none, cost more than the rest of building this.
            raw_query = request.scope.get("query_string", b"")
            incoming = Incoming(
                method=request.method,
                path=request.scope["path"],
                raw_query=raw_query,
                query=request.query_params.multi_items() if raw_query else [],
                api_keys=api_keys,
                idempotency_key=_header(request, "idempotency-key"),
                body=raw,
                content_type=_header(request, "content-type"),
                path_params=dict(request.path_params),
            )
            # An operation that embeds (with an embedder) runs the model: never on the loop.
            embeds = op.prepare is not None and service.index is not None
            inline = caller_thread or (
                in_flight.count == 1 and not embeds and op.bounded_for(incoming)
            )
            if inline:
                outcome = service.execute(incoming, op, account)
            else:
                outcome = await run_in_threadpool(service.execute, incoming, op, account)
        finally:
            if not caller_thread:
                in_flight.count -= 1
        return answer(request, outcome)

    @router.get("/health", response_model=HealthResponse, summary="Health check (no key needed)")
    async def health() -> Response:
        return Response(
            f'{{"status":"ok","version":"{__version__}"}}', media_type="application/json"
        )

    @router.post(
        "/memories",
        summary="Remember",
        status_code=201,
        response_model=Memory,
        responses={
            200: {"model": Memory, "description": "the memory of the same key was replaced"},
            **_errors(404, 409, 413, 415, 422, 503),
        },
        openapi_extra=_doc(RememberRequest, idempotent=True),
    )
    async def remember(request: Request) -> Response:
        return await handle(request, OPERATIONS["remember"], body=True)

    @router.post(
        "/memories/batch",
        summary="Remember many",
        status_code=201,
        response_model=MemoriesResponse,
        responses=_errors(409, 413, 415, 422, 503),
        openapi_extra=_doc(RememberManyRequest, idempotent=True),
    )
    async def remember_many(request: Request) -> Response:
        return await handle(request, OPERATIONS["remember_many"], body=True)

    @router.post(
        "/memories/search",
        summary="Recall",
        response_model=RecallResponse,
        responses=_errors(409, 413, 415, 422, 503),
        openapi_extra=_doc(RecallRequest, idempotent=True),
    )
    async def recall(request: Request) -> Response:
        return await handle(request, OPERATIONS["recall"], body=True)

    @router.get(
        "/memories",
        summary="List memories",
        response_model=PageResponse,
        responses=_errors(422),
        openapi_extra=_doc(
            params=[
                *_SCOPE_QUERY,
                _AGENT_PREFIX_QUERY,
                _FILTERS_QUERY,
                _query(
                    "limit",
                    schema={
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_PAGE_SIZE,
                        "default": 50,
                    },
                ),
                _query("cursor", schema={"type": "string", "minLength": 1, "maxLength": 256}),
            ]
        ),
    )
    async def list_memories(request: Request) -> Response:
        return await handle(request, OPERATIONS["list"])

    @router.delete(
        "/memories",
        summary="Forget all",
        response_model=DeletedResponse,
        responses=_errors(409, 422),
        openapi_extra=_doc(params=_SCOPE_QUERY, idempotent=True),
    )
    async def forget_all(request: Request) -> Response:
        return await handle(request, OPERATIONS["forget_all"])

    @router.get(
        "/memories/{memory_id}",
        summary="Get a memory",
        response_model=Memory,
        responses=_errors(404, 422),
        openapi_extra=_doc(params=[_MEMORY_ID]),
    )
    async def get_memory(request: Request) -> Response:
        return await handle(request, OPERATIONS["get"])

    @router.patch(
        "/memories/{memory_id}",
        summary="Update a memory",
        response_model=Memory,
        responses=_errors(404, 409, 413, 415, 422, 503),
        openapi_extra=_doc(UpdateRequest, params=[_MEMORY_ID], idempotent=True),
    )
    async def update_memory(request: Request) -> Response:
        return await handle(request, OPERATIONS["update"], body=True)

    @router.delete(
        "/memories/{memory_id}",
        summary="Forget a memory",
        status_code=204,
        response_class=Response,
        responses=_errors(404, 409, 422),
        openapi_extra=_doc(params=[_MEMORY_ID], idempotent=True),
    )
    async def forget(request: Request) -> Response:
        return await handle(request, OPERATIONS["forget"])

    @router.get(
        "/scopes",
        summary="List scopes",
        response_model=ScopesResponse,
        responses=_errors(422),
        openapi_extra=_doc(params=[_query("user_id"), _AGENT_PREFIX_QUERY]),
    )
    async def scopes(request: Request) -> Response:
        return await handle(request, OPERATIONS["scopes"])

    @router.get(
        "/usage", summary="Usage", response_model=Usage, responses=_errors(), openapi_extra=_doc()
    )
    async def usage(request: Request) -> Response:
        return await handle(request, OPERATIONS["usage"])

    @router.post(
        "/batch",
        summary="Several operations in one request",
        response_model=BatchResponse,
        responses=_errors(404, 409, 413, 415, 422, 503),
        openapi_extra=_doc(BatchRequest, idempotent=True),
    )
    async def batch(request: Request) -> Response:
        return await handle(request, OPERATIONS["batch"], body=True)

    return router


Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoutes:
    """ASGI middleware: a request for one of ``router``'s fixed paths (no path parameter),
    by one of its methods, goes straight to its endpoint.

    Why: the endpoints parse their requests themselves (module docstring), so all FastAPI's
    routing does for them is find them, by trying every route's pattern in turn, and wrap
    them in its dependency machinery: about a quarter of the CPU time of a small request.
    What the endpoint answers is sent as it is either way. Everything else (a path with an
    id, a wrong method, an unknown path, the pages) goes on to the app's router, with its
    404 and 405 answers. Placed inside ``RequestIdMiddleware``, so every answer still gets
    its request id, and an endpoint's failure its JSON 500.
    """

    def __init__(self, app: ASGIApp, router: APIRouter) -> None:
        self.app = app
        self.routes: dict[tuple[str, str], Endpoint] = {}
        for route in router.routes:
            if not isinstance(route, APIRoute) or "{" in route.path:
                continue
            if list(inspect.signature(route.endpoint).parameters) != ["request"]:
                continue  # an endpoint that FastAPI fills in (/health takes nothing)
            for method in route.methods or ():
                self.routes[(method, route.path)] = route.endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        response = await endpoint(Request(scope, receive))
        await response(scope, receive, send)
