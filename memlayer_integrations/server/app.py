"""``create_app(settings)``: a fresh FastAPI app for the MemLayer wire contract.

Everything the app needs hangs off the app itself (``app.state.db``, ``app.state.service``),
so two apps built in one process share nothing. The database is opened by the app's
lifespan (or on first use), not by :func:`create_app`, so building an app only to read its
OpenAPI document touches no file.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._constants import API_KEY_HEADER, REQUEST_ID_HEADER
from .._logging import get_logger
from .._version import __version__
from .backend import open_backend
from .console import mount_pages
from .errors import ApiError, error_body, new_request_id
from .routes import REQUEST_MODELS, DirectRoutes, build_router
from .service import Service
from .settings import ServerSettings

__all__ = ["create_app", "render_openapi"]

log = get_logger("memlayer_integrations.server")

_STATUS_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


class RequestIdMiddleware:
    """Gives every response an ``X-Request-Id``, and turns an unexpected failure into a JSON 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The request itself (its headers hold the key) is deliberately not logged.
            log.exception(
                "internal error handling %s %s (%s)",
                scope.get("method"),
                scope.get("path"),
                request_id,
            )
            if started:
                raise
            response = _error(500, "internal_error", "internal server error", None, request_id)
            await response(scope, receive, send_with_id)


def _error(
    status: int,
    code: str,
    message: str,
    field: str | None,
    request_id: str,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        error_body(code, message, field, request_id),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", None) or new_request_id()


async def _api_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):
        raise exc
    return _error(exc.status, exc.code, exc.message, exc.field, _request_id(request), exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    code = _STATUS_CODES.get(
        exc.status_code, "internal_error" if exc.status_code >= 500 else "bad_request"
    )
    message = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
    return _error(
        exc.status_code, code, message, None, _request_id(request), dict(exc.headers or {})
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    # Endpoints parse their own input; this only guards against a route declaring parameters.
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    loc = [
        p
        for p in (errors[0]["loc"] if errors else ())
        if p not in ("body", "query", "path", "header")
    ]
    field = ".".join(str(p) for p in loc) or None
    return _error(
        422,
        "validation_error",
        errors[0]["msg"] if errors else "invalid request",
        field,
        _request_id(request),
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    _, defs = models_json_schema(
        [(m, "validation") for m in REQUEST_MODELS], ref_template="#/components/schemas/{model}"
    )
    components.setdefault("schemas", {}).update(defs.get("$defs", {}))
    components["securitySchemes"] = {
        "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
    }
    app.openapi_schema = schema
    return schema


def render_openapi(app: FastAPI | None = None) -> str:
    """The OpenAPI document as checked in at ``docs/openapi.json`` (``memlayer openapi`` writes it)."""
    app = app or create_app(ServerSettings(db_path="unused.db", embedder=None))
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


def _semantic_index(settings: ServerSettings) -> Any:
    """The :class:`~.vectors.SemanticIndex` for ``settings.embedder``, or ``None`` without one.

    Imported only then: a server without an embedder never imports numpy or a model.
    """
    if settings.embedder is None or settings.embedder == "":
        return None
    from .embedders import load_embedder
    from .vectors import SemanticIndex

    embedder = load_embedder(settings.embedder)
    return None if embedder is None else SemanticIndex(embedder)


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build a MemLayer server app on ``settings`` (defaults: ``ServerSettings()``).

    Example:
        >>> import uvicorn
        >>> app = create_app(ServerSettings(db_path="memlayer.db"))
        >>> uvicorn.run(app, port=8377)  # doctest: +SKIP
    """
    settings = settings or ServerSettings()
    db = open_backend(settings.db_path, settings.synchronous)
    index = _semantic_index(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(db.open)
        try:
            yield
        finally:
            db.close()
            if index is not None:
                index.close()

    app = FastAPI(
        title="MemLayer",
        version=__version__,
        description="Long-term memory for agents. The wire contract: docs/wire-contract.md.",
        lifespan=lifespan,
        redoc_url=None,
        docs_url=None,  # served from package files by mount_pages, not from a CDN
        # "/v1/memories/" is no endpoint: a 404 in the contract's shape, not a redirect
        # (an empty 307 outside the contract) to one.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.index = index
    app.state.service = Service(settings, db, index)
    router = build_router(app.state.service)
    app.include_router(router)
    mount_pages(app, console=settings.console)
    app.add_middleware(DirectRoutes, router=router)  # inside RequestIdMiddleware, added next
    app.add_middleware(RequestIdMiddleware)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
