"""The pages the server shows a person: the console at ``/console`` and the API docs at ``/docs``.

Both are served from files inside installed packages, so a browser fetches nothing from a
CDN. The console (``static/``: plain HTML, CSS and JavaScript, no build step) signs in with
an API key and then only calls the public ``/v1`` API with it, so it sees exactly what
that key can see. The pages themselves are not secret and need no key; they hold none.

``/docs`` is Swagger UI from the ``swagger-ui-bundle`` package (part of the ``server``
extra) instead of FastAPI's default, which loads Swagger's JavaScript from a CDN.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response

__all__ = ["CONSOLE_PATH", "DOCS_PATH", "mount_pages"]

CONSOLE_PATH = "/console"
DOCS_PATH = "/docs"

_STATIC = Path(str(resources.files(__name__).joinpath("static")))
_MEDIA = {".html": "text/html; charset=utf-8", ".css": "text/css", ".js": "text/javascript"}
_SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}

# The console runs only its own files and talks only to this origin; it cannot be framed.
_CONSOLE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
        " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def _swagger_dir() -> Path:
    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - the server extra installs it
        raise ImportError(
            "the /docs page needs swagger-ui-bundle: pip install 'memlayer-integrations[server]'"
        ) from exc
    return Path(swagger_ui_path)


def _console_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    files = {p.name: p for p in _STATIC.iterdir() if p.suffix in _MEDIA}

    @router.get(CONSOLE_PATH)
    async def console() -> Response:
        return FileResponse(
            files["index.html"], media_type=_MEDIA[".html"], headers=_CONSOLE_HEADERS
        )

    @router.get(CONSOLE_PATH + "/static/{name}")
    async def console_file(name: str) -> Response:
        path = files.get(name)  # only the files shipped, never a path built from the request
        if path is None:
            raise HTTPException(404)
        return FileResponse(path, media_type=_MEDIA[path.suffix], headers=_CONSOLE_HEADERS)

    return router


def _docs_router(openapi_url: str, title: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    swagger = _swagger_dir()

    @router.get(DOCS_PATH)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - API docs",
            swagger_js_url=f"{DOCS_PATH}/static/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_PATH}/static/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_PATH}/static/favicon-32x32.png",
        )

    @router.get(DOCS_PATH + "/static/{name}")
    async def docs_file(name: str) -> Response:
        if name not in _SWAGGER_FILES:
            raise HTTPException(404)
        return FileResponse(swagger / name, media_type=_SWAGGER_FILES[name])

    return router


def mount_pages(app: FastAPI, *, console: bool) -> None:
    """Add ``/docs`` (always) and ``/console`` (when ``console``) to ``app``.

    Build the app with ``docs_url=None`` so FastAPI's CDN-backed page is not there too.
    """
    app.include_router(_docs_router(app.openapi_url or "/openapi.json", app.title))
    if console:
        app.include_router(_console_router())
