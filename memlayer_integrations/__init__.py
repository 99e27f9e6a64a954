"""Long-term memory for LangChain and LlamaIndex agents, backed by MemLayer.

The core (this package) needs only httpx and pydantic: the clients, the error tree and the
models. Framework adapters live in subpackages that import their framework on demand:

* ``memlayer_integrations.langchain`` (extra ``langchain``)
* ``memlayer_integrations.llama_index`` (extra ``llama-index``)
* ``memlayer_integrations.server``, the local MemLayer server (extra ``server``)
* ``memlayer_integrations.mcp``, an MCP server with memory tools (extra ``mcp``)
"""

from ._client import AsyncMemLayerClient, MemLayerClient
from ._constants import DEFAULT_BASE_URL
from ._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    MemLayerError,
    MemLayerScopeError,
    MemoryLimitError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestBudgetError,
    UnprocessableEntityError,
)
from ._models import Memory, RateLimitInfo, RecalledMemory, Scope, Usage
from ._operations import Op
from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncMemLayerClient",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "MemLayerClient",
    "MemLayerError",
    "MemLayerScopeError",
    "Memory",
    "MemoryLimitError",
    "NotFoundError",
    "Op",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitInfo",
    "RecalledMemory",
    "RequestBudgetError",
    "Scope",
    "UnprocessableEntityError",
    "Usage",
    "__version__",
]
