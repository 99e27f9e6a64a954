"""The layer every framework adapter builds on: what a new adapter imports besides the
public package (``memlayer_integrations``). Internal: names here may change between
releases; adapters in this repository are its only users. CONTRIBUTING.md says how to write
an adapter with it.

Layers, each importing only those below it (``tests/test_layers.py`` and
``[tool.importlinter]`` check the arrows)::

    apps        memlayer_integrations.cli, memlayer_integrations.demo
    adapters    memlayer_integrations.langchain, .llama_index, .mcp (its ``command`` is an app)
    this layer  memlayer_integrations._adapter       (no framework imports)
    core        memlayer_integrations (clients, errors, models, Op)
    server      memlayer_integrations.server         (core models and constants only)

What is here, by module:

* :mod:`.clients`: :class:`ClientPair` (the sync and async client of one adapter, built
  from each other so both reach the same account) and :func:`require_scope` (a scope given
  at construction is checked at construction).
* :mod:`.turn_memory`: :func:`render_memories` (the block of recalled memories put in front
  of the model), :class:`WriteBuffer` (economy mode: a turn's writes travel with the next
  recall), :func:`recall_carrying` / :func:`arecall_carrying` and :func:`send_pending` /
  :func:`asend_pending` (pending, flush, close), the write policy (:func:`worth_remembering`:
  statements are stored, questions and small talk are not) and the ``<memories>`` framing.
* :mod:`.message_parts`: a chat message too long for one memory, split over several and
  joined back exactly.
* :mod:`.room`: ``make_room``, forgetting a scope's oldest memories when the plan is full.
* :mod:`.extraction`: optional fact extraction from a finished turn.
* :mod:`.policy`: the rules every adapter applies alike: :func:`clip_query`,
  :func:`check_owner` before a model-driven forget, :func:`message_placeholder` for chat
  messages without text, and :func:`renamed_argument` for deprecated argument names.
* The wire limits adapters respect (``MAX_CONTENT_CHARS``, ``MAX_QUERY_CHARS``,
  ``MAX_BATCH_ITEMS``, ``DEFAULT_RECALL_LIMIT``), the environment variables every client
  reads (``API_KEY_ENV``, ``BASE_URL_ENV``) and :func:`get_logger`.
"""

from .._constants import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_RECALL_LIMIT,
    MAX_BATCH_ITEMS,
    MAX_CONTENT_CHARS,
    MAX_QUERY_CHARS,
    MEMORY_ID_PATTERN,
    MEMORY_ID_RULE,
)
from .._exceptions import TRANSIENT_ERRORS
from .._logging import get_logger
from .._operations import MemoryItem
from .clients import ClientPair, require_scope
from .policy import (
    check_owner,
    clip_query,
    message_placeholder,
    renamed_argument,
    renamed_attribute,
    warn_renamed,
)
from .turn_memory import (
    MEMORY_CLOSE,
    MEMORY_HEADER,
    MEMORY_NOTE,
    MEMORY_OPEN,
    WriteBuffer,
    WritePolicy,
    arecall_carrying,
    asend_pending,
    check_write_policy,
    recall_carrying,
    render_memories,
    send_pending,
    worth_remembering,
)

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_RECALL_LIMIT",
    "MAX_BATCH_ITEMS",
    "MAX_CONTENT_CHARS",
    "MAX_QUERY_CHARS",
    "MEMORY_CLOSE",
    "MEMORY_HEADER",
    "MEMORY_ID_PATTERN",
    "MEMORY_ID_RULE",
    "MEMORY_NOTE",
    "MEMORY_OPEN",
    "TRANSIENT_ERRORS",
    "ClientPair",
    "MemoryItem",
    "WriteBuffer",
    "WritePolicy",
    "arecall_carrying",
    "asend_pending",
    "check_owner",
    "check_write_policy",
    "clip_query",
    "get_logger",
    "message_placeholder",
    "recall_carrying",
    "renamed_argument",
    "renamed_attribute",
    "render_memories",
    "require_scope",
    "send_pending",
    "warn_renamed",
    "worth_remembering",
]
