"""Metadata filters on PostgreSQL: the rules of ``filters.py``, on ``jsonb_each``.

Metadata is stored as the JSON text the server wrote and read as ``jsonb`` here. The
contract's type rules are SQLite's: a memory without the key never matches (not even
``$ne``), a number never matches a string nor a boolean, strings compare byte by byte
(``COLLATE "C"``), numbers as numbers. Keys and values are bound parameters.
"""

from __future__ import annotations

from typing import Any

from .. import filters as sqlite_filters
from ..errors import validation_error
from ..filters import INT64, SQL_OPS, Filter

__all__ = ["compile_filters"]

_TYPE = "jsonb_typeof(j.value)"
# jsonb refuses the escape of U+0000, which JSON (and so a memory's metadata) may hold: where
# the text has one, it is read as U+FFFD (a filter never asks for U+0000 on PostgreSQL).
_METADATA = (
    "CASE WHEN strpos(m.metadata, '\\u0000') > 0"
    " THEN regexp_replace(m.metadata, ?::text, ?::text, 'g')::jsonb ELSE m.metadata::jsonb END"
)
_NUL_ESCAPE = (r"(?<!\\)((\\\\)*)\\u0000", r"\1\\ufffd")
_EXISTS = (
    f"EXISTS (SELECT 1 FROM jsonb_each({_METADATA}) AS j WHERE j.key = ?::text AND {{conditions}})"
)


def _condition(op: str, value: Any, where: str) -> tuple[str, list[Any]]:
    sql_op = SQL_OPS[op]
    if value is None or isinstance(value, bool):
        if op not in ("$eq", "$ne"):
            raise validation_error(f"{where}: {op} needs a number or a string", where)
        if value is None:
            return (f"{_TYPE} = 'null'" if op == "$eq" else f"{_TYPE} != 'null'"), []
        return f"{_TYPE} = 'boolean' AND (j.value = 'true'::jsonb) {sql_op} ?::boolean", [value]
    if isinstance(value, str):
        text = "(j.value #>> '{}') COLLATE \"C\""
        return f"{_TYPE} = 'string' AND {text} {sql_op} ?::text", [value]
    if isinstance(value, (int, float)):
        if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
            raise validation_error(f"{where}: number out of range", where)
        number = "(j.value #>> '{}')::numeric"
        return f"{_TYPE} = 'number' AND {number} {sql_op} ?::numeric", [value]
    raise validation_error(f"{where}: a filter value is a string, number, boolean or null", where)


def compile_filters(filters: dict[str, Any] | None, prefix: str = "filters") -> Filter | None:
    """The SQL for ``filters`` (``None`` when there is nothing to filter on), or a 422."""
    return sqlite_filters.compile_filters(filters, prefix, _condition, _EXISTS, _NUL_ESCAPE)
