"""The local MemLayer server: the wire contract on FastAPI and SQLite (or PostgreSQL, with
the ``postgres`` extra: ``backend.py``).

Needs the ``server`` extra (FastAPI and uvicorn). Run it with ``memlayer serve``, or embed it::

    from memlayer_integrations.server import LocalMemLayerServer

    with LocalMemLayerServer() as server:
        key = server.create_key(plan="unlimited", name="demo")
        print(server.url)
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the core-only CI job
    raise ImportError(
        "the local MemLayer server needs FastAPI and uvicorn: pip install 'memlayer-integrations[server]'"
    ) from exc

from .app import create_app, render_openapi
from .local import LocalMemLayerServer
from .settings import DEFAULT_PLANS, Plan, ServerSettings

__all__ = [
    "DEFAULT_PLANS",
    "LocalMemLayerServer",
    "Plan",
    "ServerSettings",
    "create_app",
    "render_openapi",
]
