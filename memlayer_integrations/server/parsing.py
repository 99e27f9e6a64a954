"""Turning raw request bytes and query strings into validated request models.

Bodies are parsed here rather than by FastAPI so that every failure has the contract's
shape and status: 413 too large, 415 not JSON, 400 invalid UTF-8 / invalid JSON / duplicate
keys, 422 a field that breaks a rule (named in ``error.field``). Nothing a client sends can
make the server answer 500.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any, TypeVar

import pydantic

from .errors import ApiError, field_path, validation_error
from .schemas import MEMORY_ID_RE

__all__ = ["check_memory_id", "parse_json_body", "query_to_dict", "validate"]

M = TypeVar("M", bound=pydantic.BaseModel)

_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: A ``\uD800``-``\uDFFF`` escape: the only way a surrogate gets into parsed JSON (UTF-8
#: cannot carry one, and json joins an escaped pair into one character). A body without
#: one is not walked for them (an escaped backslash before "ud8.." only costs the walk).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class _BadJSON(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _BadJSON(f"duplicate key {k!r}")
            seen.add(k)
    return out


def _pairs_and_surrogates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _BadJSON(f"duplicate key {k!r}")
        if _LONE_SURROGATE.search(k):
            raise _BadJSON("a string contains an unpaired surrogate")
        out[k] = v
    return out


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadJSON(f"number out of range: {text[:40]}")
    return value


def _constant(name: str) -> Any:
    raise _BadJSON(f"{name} is not valid JSON")


def _check_strings(value: Any) -> None:
    # json accepts "\ud800" escapes, which no UTF-8 text (nor SQLite) can hold.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                raise _BadJSON("a string contains an unpaired surrogate")
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())


def parse_json_body(raw: bytes | None, content_type: str | None, max_bytes: int) -> Any:
    """The JSON value of a request body, or the contract's 413/415/400 error."""
    if raw is None:
        raise ApiError(413, "payload_too_large", f"request body is larger than {max_bytes} bytes")
    media_type, _, params = (content_type or "").partition(";")
    if media_type.strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
    charset = re.search(r"charset\s*=\s*\"?([^\";\s]+)", params, re.I)
    if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
        raise ApiError(415, "unsupported_media_type", "the request body must be UTF-8 encoded JSON")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "request body is not valid UTF-8") from None
    if not text.strip():
        raise ApiError(400, "invalid_json", "request body is empty; send a JSON object")
    try:
        surrogates = _SURROGATE_ESCAPE.search(text) is not None
        value = json.loads(
            text,
            object_pairs_hook=_pairs_and_surrogates if surrogates else _pairs,
            parse_float=_float,
            parse_constant=_constant,
        )
        if surrogates:
            _check_strings(value)
    except RecursionError:
        raise validation_error("JSON is nested too deeply", None) from None
    except _BadJSON as exc:
        raise ApiError(400, "invalid_json", f"invalid JSON: {exc}") from None
    except ValueError as exc:  # json.JSONDecodeError, and integers too long to convert
        raise ApiError(400, "invalid_json", f"invalid JSON: {exc}") from None
    return value


def validate(model: type[M], data: Any) -> M:
    """``model`` validated from ``data``, or a 422 naming the first offending field."""
    if not isinstance(data, dict):
        raise validation_error("the request body must be a JSON object", None)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = field_path(first["loc"])
        kind = first["type"]
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing" and field is not None:
            message = "field required"
        else:
            message = first["msg"]
        raise validation_error(f"{field}: {message}" if field else message, field) from None


def query_to_dict(
    items: Sequence[tuple[str, str]], scalars: Sequence[str], repeated: dict[str, str]
) -> dict[str, Any]:
    """Query parameters -> a dict for :func:`validate`.

    ``scalars`` may appear once; ``repeated`` maps a repeatable parameter to the list field
    it fills (``key`` -> ``keys``). ``limit`` becomes an int and ``filters`` is JSON-decoded.
    Unknown parameters are ignored.
    """
    out: dict[str, Any] = {}
    for name, value in items:
        if name in repeated:
            out.setdefault(repeated[name], []).append(value)
        elif name in scalars:
            if name in out:
                raise validation_error(f"{name}: given more than once", name)
            out[name] = value
    if "limit" in out:
        if not re.fullmatch(r"[0-9]{1,9}", out["limit"]):
            raise validation_error("limit: must be an integer", "limit")
        out["limit"] = int(out["limit"])
    if "filters" in out:
        try:
            out["filters"] = parse_json_body(out["filters"].encode(), "application/json", 1 << 20)
        except ApiError as exc:
            raise validation_error(
                f"filters: must be a JSON-encoded object ({exc.message})", "filters"
            ) from None
        if not isinstance(out["filters"], dict):
            raise validation_error("filters: must be a JSON-encoded object", "filters")
    return out


def check_memory_id(memory_id: str) -> str:
    if not MEMORY_ID_RE.fullmatch(memory_id):
        raise validation_error(
            "memory_id: must be 'mem_' followed by 32 lowercase hex digits", "memory_id"
        )
    return memory_id
