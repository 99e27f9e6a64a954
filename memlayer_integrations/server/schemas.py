"""Request and response bodies of the wire contract, as pydantic models.

Request models are strict (a number is not a string, ``true`` is not ``1``) and forbid
unknown fields, so a typo such as ``metdata`` is a 422 naming the field rather than a
silently dropped value. The response objects themselves (``Memory``, ``RecalledMemory``,
``Usage``, ``Scope``) are the package's own models from ``_models``; the server and the
clients share one definition.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .._constants import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_RECALL_LIMIT,
    MAX_BATCH_ITEMS,
    MAX_CONTENT_CHARS,
    MAX_TTL_SECONDS,
)
from .._models import Memory, Scope, Usage
from .._models import RecalledMemory as _RecalledMemory
from .filters import MAX_FILTER_KEYS

MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 8
MAX_QUERY_CHARS = 4096
MAX_OFFSET = 10_000
MAX_RECALL_LIMIT = 100
MAX_PAGE_SIZE = 100
MEMORY_ID_RE = re.compile(r"mem_[0-9a-f]{32}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# White space as Python's str.isspace() defines it. Spelled out because ``\s`` means slightly
# different characters in JSON Schema's (ECMA-262) regexes, and the OpenAPI document must say
# exactly what the server checks: "not only white space" is "not ^[<these>]*$".
_SPACE_CLASS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_NOT_BLANK_RE = re.compile(f"[^{_SPACE_CLASS}]")
_NOT_BLANK_SCHEMA = {"not": {"pattern": f"^[{_SPACE_CLASS}]*$"}}


def _error(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _no_control(value: str) -> str:
    if _CONTROL_RE.search(value):
        raise _error("control_character", "must not contain control characters")
    return value


def _not_blank(value: str) -> str:
    if not _NOT_BLANK_RE.search(value):
        raise _error("blank", "must not be empty or only white space")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than ``limit`` levels in ``value``.

    Walked with an explicit stack, not recursion: JSON a few hundred levels deep parses
    fine but would exhaust Python's recursion limit here, a 500 from client input.
    """
    if not isinstance(value, (dict, list)):
        return False
    stack = [(value, 1)]  # only objects and arrays are stacked, each with its depth
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


class EncodedMetadata(dict):  # type: ignore[type-arg]
    """A validated metadata object that keeps the compact JSON it was measured by.

    Checking the size needs the encoding the ``metadata`` column stores
    (``store.dump_metadata``), so it is kept rather than made again for every item of a
    batch. Nothing changes the object after validation: it is only stored and answered.
    """

    __slots__ = ("encoded",)

    encoded: str


#: ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` without building an
#: encoder for every metadata object of a batch (a third of its validation time).
_encode_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if _deeper_than(value, MAX_METADATA_DEPTH):
        raise _error("too_deep", f"must not be nested more than {MAX_METADATA_DEPTH} levels deep")
    encoded = _encode_compact(value)
    size = len(encoded.encode())
    if size > MAX_METADATA_BYTES:
        raise _error(
            "too_large", f"must be at most {MAX_METADATA_BYTES} bytes serialized, got {size}"
        )
    checked = EncodedMetadata(value)
    checked.encoded = encoded
    return checked


def _check_memory_id(value: str) -> str:
    if not MEMORY_ID_RE.fullmatch(value):
        raise _error("memory_id", "must be 'mem_' followed by 32 lowercase hex digits")
    return value


Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256),
    AfterValidator(_no_control),
    Field(json_schema_extra={"pattern": r"^[^\x00-\x1f\x7f-\x9f]+$"}),
]
Content = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_CONTENT_CHARS),
    AfterValidator(_not_blank),
    Field(json_schema_extra=_NOT_BLANK_SCHEMA),
]
QueryText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS),
    AfterValidator(_not_blank),
    Field(json_schema_extra=_NOT_BLANK_SCHEMA),
]
Metadata = Annotated[
    dict[str, Any],
    AfterValidator(_check_metadata),
    Field(
        description=f"a JSON object, at most {MAX_METADATA_BYTES} bytes serialized, nesting depth at most {MAX_METADATA_DEPTH}"
    ),
]
MemoryId = Annotated[
    str,
    AfterValidator(_check_memory_id),
    Field(json_schema_extra={"pattern": r"^mem_[0-9a-f]{32}$"}),
]


def parse_iso(text: str) -> datetime:
    """``datetime.fromisoformat`` that also reads a trailing ``Z`` on Python 3.10 (3.11 and
    later read it themselves)."""
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def _check_expires_at(value: str) -> str:
    """The moment in UTC, written as ``created_at`` is (so text order is time order). One
    already past is accepted: the memory is stored and never returned."""
    try:
        moment = parse_iso(value)
    except ValueError:
        raise _error("datetime", "must be an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise _error("timezone", "must say its time zone (Z or +hh:mm)")
    try:
        utc = moment.astimezone(timezone.utc)
    except OverflowError:  # within a day of year 1 or 9999: the nearest representable
        utc = (datetime.max if moment.year > 1 else datetime.min).replace(tzinfo=timezone.utc)
    # Not strftime: "%Y" drops the leading zeros of years before 1000 on some platforms.
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S.%f}Z"


Ttl = Annotated[
    float,
    Field(
        gt=0,
        le=MAX_TTL_SECONDS,
        description="seconds from now until the memory expires; it is never returned after",
    ),
]
ExpiresAt = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_check_expires_at),
    Field(
        description="when the memory expires (ISO 8601 with a time zone)",
        json_schema_extra={"format": "date-time"},
    ),
]
Deduplicate = Annotated[
    bool,
    Field(
        description="remembering a content already stored in (user_id, agent_id) refreshes that "
        "memory instead of adding one; false always adds"
    ),
]
RefreshTtl = Annotated[
    bool,
    Field(description="restart the expiry clock (ttl) of every memory returned; batch only"),
]

KeyList = Annotated[list[Identifier], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]

_SCALAR_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]
}
_ORDERED_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "number"}]
}  # what $gt ... $lte compare
FILTERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Match metadata, top-level keys only: a value (equality) or an object of operators "
    "($eq $ne $gt $gte $lt $lte), all of which must hold.",
    "maxProperties": MAX_FILTER_KEYS,
    "additionalProperties": {
        "anyOf": [
            _SCALAR_SCHEMA,
            {
                "type": "object",
                "minProperties": 1,
                "properties": {
                    **{op: _SCALAR_SCHEMA for op in ("$eq", "$ne")},
                    **{op: _ORDERED_SCHEMA for op in ("$gt", "$gte", "$lt", "$lte")},
                },
                "additionalProperties": False,
            },
        ]
    },
}
Filters = Annotated[dict[str, Any], WithJsonSchema(FILTERS_SCHEMA)]


def _integral(value: Any) -> Any:
    # JSON has one number type: 5.0 is the integer 5, and JSON Schema's "integer" says so too.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


RecallLimit = Annotated[int, Field(ge=1, le=MAX_RECALL_LIMIT), BeforeValidator(_integral)]
PageLimit = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE), BeforeValidator(_integral)]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET), BeforeValidator(_integral)]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _Expiring(_Request):
    """``ttl`` or ``expires_at`` (never both), and whether the same text refreshes a memory."""

    # The schema says what the validator below checks: not both.
    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "required": ["ttl", "expires_at"],
                "properties": {"ttl": {"type": "number"}, "expires_at": {"type": "string"}},
            }
        }
    )

    ttl: Ttl | None = None
    expires_at: ExpiresAt | None = None
    deduplicate: Deduplicate = True

    @model_validator(mode="after")
    def _one_expiry(self) -> _Expiring:
        if self.ttl is not None and self.expires_at is not None:
            raise _error("conflict", "give ttl or expires_at, not both")
        return self


class RememberRequest(_Expiring):
    content: Content
    user_id: Identifier
    agent_id: Identifier
    session_id: Identifier | None = None
    metadata: Metadata | None = None
    key: Identifier | None = Field(
        None, description="replaces the memory of this key in (user_id, agent_id)"
    )


class RememberItem(_Expiring):
    content: Content
    metadata: Metadata | None = None
    key: Identifier | None = None
    session_id: Identifier | None = Field(None, description="overrides the request's session_id")


class RememberManyRequest(_Request):
    user_id: Identifier
    agent_id: Identifier
    session_id: Identifier | None = None
    items: Annotated[list[RememberItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


#: An agent and the agents below it: ``a.b`` covers ``a.b`` and ``a.b.c``, not ``a.bc``.
AgentPrefix = Annotated[
    Identifier,
    Field(
        description="the agent of this id and every agent whose id starts with it followed "
        "by '.'; with agent_id too, both must hold"
    ),
]


class RecallRequest(_Request):
    query: QueryText
    user_id: Identifier
    agent_id: Identifier | None = Field(None, description="null searches all of the user's agents")
    agent_prefix: AgentPrefix | None = None
    session_id: Identifier | None = None
    filters: Filters | None = None
    limit: RecallLimit = DEFAULT_RECALL_LIMIT
    offset: Offset = 0
    explain: bool = Field(False, description="add to each result why it matched (`why`)")


class UpdateRequest(_Request):
    # The schema says what the validator below checks: content, metadata or both.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["content"], "properties": {"content": {"type": "string"}}},
                {"required": ["metadata"], "properties": {"metadata": {"type": "object"}}},
            ]
        }
    )

    content: Content | None = None
    metadata: Metadata | None = Field(None, description="replaces the whole metadata object")

    @model_validator(mode="after")
    def _something(self) -> UpdateRequest:
        if self.content is None and self.metadata is None:
            raise _error("missing", "give content, metadata or both")
        return self


class ForgetAllQuery(_Request):
    user_id: Identifier
    agent_id: Identifier | None = None
    session_id: Identifier | None = None
    keys: KeyList | None = None


class ListQuery(ForgetAllQuery):
    agent_prefix: AgentPrefix | None = None
    filters: Filters | None = None
    limit: PageLimit = DEFAULT_PAGE_SIZE
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None


class ScopesQuery(_Request):
    user_id: Identifier | None = None
    agent_prefix: AgentPrefix | None = None


# -- /v1/batch operations: the op name plus the fields of the single endpoint -----------------


class RememberOp(RememberRequest):
    op: Literal["remember"]


class RememberManyOp(RememberManyRequest):
    op: Literal["remember_many"]


class RecallOp(RecallRequest):
    op: Literal["recall"]
    refresh_ttl: RefreshTtl = False


class GetOp(_Request):
    op: Literal["get"]
    memory_id: MemoryId
    refresh_ttl: RefreshTtl = False


class UpdateOp(UpdateRequest):
    op: Literal["update"]
    memory_id: MemoryId


class ForgetOp(_Request):
    op: Literal["forget"]
    memory_id: MemoryId


class ForgetAllOp(ForgetAllQuery):
    op: Literal["forget_all"]


class ListOp(ListQuery):
    op: Literal["list"]
    refresh_ttl: RefreshTtl = False


class UsageOp(_Request):
    op: Literal["usage"]


class ScopesOp(ScopesQuery):
    op: Literal["scopes"]


OP_MODELS: dict[str, type[_Request]] = {
    "remember": RememberOp,
    "remember_many": RememberManyOp,
    "recall": RecallOp,
    "get": GetOp,
    "update": UpdateOp,
    "forget": ForgetOp,
    "forget_all": ForgetAllOp,
    "list": ListOp,
    "usage": UsageOp,
    "scopes": ScopesOp,
}
AnyOp = Annotated[
    RememberOp
    | RememberManyOp
    | RecallOp
    | GetOp
    | UpdateOp
    | ForgetOp
    | ForgetAllOp
    | ListOp
    | UsageOp
    | ScopesOp,
    Field(discriminator="op"),
]


class BatchRequest(_Request):
    """Only describes the body in the OpenAPI schema; each operation is validated on its own."""

    operations: Annotated[list[AnyOp], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


# -- responses --------------------------------------------------------------------------------


class HealthResponse(BaseModel):
    status: Literal["ok"]
    version: str


class MemoryResult(BaseModel):
    memory: Memory


class MemoriesResponse(BaseModel):
    memories: list[Memory]


class PageResponse(BaseModel):
    memories: list[Memory]
    next_cursor: str | None


class MatchReason(BaseModel):
    matched_words: list[str] = Field(description="the query's words the content matches")
    neighbour_of: str | None = Field(
        description="the matching memory next to this one in its conversation, if any"
    )


class RecalledMemory(_RecalledMemory):
    """A recall result as the server sends it: ``why`` only when the request asked (explain).

    The clients' ``RecalledMemory`` keeps ``why`` as an extra field when it is sent.
    """

    why: MatchReason | None = Field(None, description="only when the request has explain: true")


class RecallResponse(BaseModel):
    results: list[RecalledMemory]


class DeletedResponse(BaseModel):
    deleted: int


class ScopesResponse(BaseModel):
    scopes: list[Scope]


class UsageResult(BaseModel):
    usage: Usage


class BatchResponse(BaseModel):
    results: list[
        MemoryResult
        | MemoriesResponse
        | PageResponse
        | RecallResponse
        | DeletedResponse
        | UsageResult
        | ScopesResponse
    ]


class ErrorDetail(BaseModel):
    code: str = Field(
        description="bad_request, invalid_json, invalid_api_key, wrong_key_format, account_suspended, "
        "memory_limit_reached, not_found, method_not_allowed, request_timeout, "
        "idempotency_key_reused, idempotent_answer_gone, conflict, payload_too_large, "
        "unsupported_media_type, validation_error, query_too_expensive, response_too_large, "
        "daily_quota_exceeded, rate_limited, headers_too_large, internal_error, "
        "embedder_unavailable"
    )
    message: str
    field: str | None = Field(description="the offending request field, e.g. items[3].metadata")


class ErrorResponse(BaseModel):
    error: ErrorDetail
    request_id: str
