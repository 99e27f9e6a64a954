"""The one error type of the server and the contract's error body.

Handlers raise :class:`ApiError`; the app turns it (and every other failure) into
``{"error": {"code", "message", "field"}, "request_id"}`` with the right status.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

__all__ = [
    "ApiError",
    "error_body",
    "field_path",
    "json_bytes",
    "new_request_id",
    "validation_error",
]


class ApiError(Exception):
    """An error answer: HTTP ``status``, contract ``code``, ``message`` and the offending ``field``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def prefixed(self, prefix: str) -> ApiError:
        """The same error, its field moved under ``prefix`` (``operations[2]``, say)."""
        field = f"{prefix}.{self.field}" if self.field else prefix
        return ApiError(self.status, self.code, f"{prefix}: {self.message}", field, self.headers)


def validation_error(message: str, field: str | None) -> ApiError:
    return ApiError(422, "validation_error", message, field)


def json_bytes(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def error_body(code: str, message: str, field: str | None, request_id: str) -> bytes:
    return json_bytes(
        {"error": {"code": code, "message": message, "field": field}, "request_id": request_id}
    )


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


def field_path(loc: Sequence[str | int]) -> str | None:
    """``("items", 3, "metadata")`` -> ``"items[3].metadata"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or None
