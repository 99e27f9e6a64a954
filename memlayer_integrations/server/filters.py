"""Metadata filters -> a parameterized SQL condition.

Every filter key and value is a bound parameter: keys are matched against ``json_each``'s
``key`` column instead of being spliced into a JSON path, so no key (quotes, dots, ``$``)
can change the query. Type rules of the contract: a memory without the key never matches,
not even ``$ne``, and a number never matches a string (nor a boolean).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import validation_error

__all__ = [
    "MAX_FILTER_KEYS",
    "Filter",
    "agent_prefix_condition",
    "agent_prefix_params",
    "compile_filters",
    "scope_condition",
]

MAX_FILTER_KEYS = 64
_SQL_OPS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Filter:
    """A condition on the memories table (aliased ``m``) and its parameters."""

    sql: str
    params: list[Any] = field(default_factory=list)


def _condition(op: str, value: Any, where: str) -> tuple[str, list[Any]]:
    sql_op = _SQL_OPS[op]
    if value is None or isinstance(value, bool):
        if op not in ("$eq", "$ne"):
            raise validation_error(f"{where}: {op} needs a number or a string", where)
        if value is None:
            return ("j.type = 'null'" if op == "$eq" else "j.type != 'null'"), []
        return f"j.type IN ('true', 'false') AND (j.type = 'true') {sql_op} ?", [int(value)]
    if isinstance(value, str):
        return f"j.type = 'text' AND j.value {sql_op} ?", [value]
    if isinstance(value, (int, float)):
        if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
            raise validation_error(f"{where}: number out of range", where)
        return f"j.type IN ('integer', 'real') AND j.value {sql_op} ?", [value]
    raise validation_error(f"{where}: a filter value is a string, number, boolean or null", where)


def compile_filters(filters: dict[str, Any] | None, prefix: str = "filters") -> Filter | None:
    """The SQL for ``filters`` (``None`` when there is nothing to filter on), or a 422."""
    if not filters:
        return None
    if len(filters) > MAX_FILTER_KEYS:
        raise validation_error(f"{prefix}: at most {MAX_FILTER_KEYS} keys", prefix)
    parts: list[str] = []
    params: list[Any] = []
    for key, spec in filters.items():
        where = f"{prefix}.{key}"
        ops = spec if isinstance(spec, dict) else {"$eq": spec}
        if not ops:
            raise validation_error(
                f"{where}: an operator object needs at least one operator", where
            )
        conditions = []
        key_params: list[Any] = [key]
        for op, value in ops.items():
            if op not in _SQL_OPS:
                raise validation_error(
                    f"{where}: unknown operator {op!r} (use {' '.join(_SQL_OPS)})", f"{where}.{op}"
                )
            sql, values = _condition(
                op, value, f"{where}.{op}" if isinstance(spec, dict) else where
            )
            conditions.append(f"({sql})")
            key_params.extend(values)
        parts.append(
            f"EXISTS (SELECT 1 FROM json_each(m.metadata) AS j WHERE j.key = ? AND {' AND '.join(conditions)})"
        )
        params.extend(key_params)
    return Filter(" AND ".join(parts), params)


def agent_prefix_condition(column: str) -> str:
    """SQL: ``column`` is the agent ``P`` or starts with ``P.`` (parameters:
    :func:`agent_prefix_params`). A range, not LIKE, so an index on the column serves it
    and no character of ``P`` is a wildcard: every id from ``P`` up to ``P/`` (``'/'`` is
    the character after ``'.'``) is ``P`` or continues it with a character up to ``'.'``;
    the ``substr`` keeps those that continue with ``'.'``."""
    return f"({column} >= ? AND {column} < ? AND ({column} = ? OR substr({column}, ?, 1) = '.'))"


def agent_prefix_params(prefix: str) -> list[Any]:
    return [prefix, prefix + "/", prefix, len(prefix) + 1]


def scope_condition(
    account_id: int,
    user_id: str,
    agent_id: str | None = None,
    session_id: str | None = None,
    keys: Sequence[str] | None = None,
    filters: Filter | None = None,
    live_at: str | None = None,
    agent_prefix: str | None = None,
) -> Filter:
    """The memories (``memories AS m``) of one account's user, narrowed by whatever is given:
    one agent, an agent and those below it (``agent_prefix``), one session, some keys,
    compiled metadata ``filters``, not expired at ``live_at``."""
    sql = "m.account_id = ? AND m.user_id = ?"
    params: list[Any] = [account_id, user_id]
    if agent_id is not None:
        sql += " AND m.agent_id = ?"
        params.append(agent_id)
    if agent_prefix is not None:
        sql += " AND " + agent_prefix_condition("m.agent_id")
        params.extend(agent_prefix_params(agent_prefix))
    if session_id is not None:
        sql += " AND m.session_id = ?"
        params.append(session_id)
    if keys:
        sql += f" AND m.key IN ({', '.join('?' * len(keys))})"
        params.extend(keys)
    if filters is not None:
        sql += " AND " + filters.sql
        params.extend(filters.params)
    if live_at is not None:
        sql += " AND (m.expires_at IS NULL OR m.expires_at > ?)"
        params.append(live_at)
    return Filter(sql, params)
