"""Defaults shared by the clients, the adapters and the local server.

Kept free of any framework import so that ``import memlayer_integrations`` stays cheap.
"""

from __future__ import annotations

import re

import httpx

DEFAULT_BASE_URL = "https://memlayer.online"
API_PREFIX = "/v1"

API_KEY_ENV = "MEMLAYER_API_KEY"
BASE_URL_ENV = "MEMLAYER_BASE_URL"

API_KEY_HEADER = "X-API-Key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REQUEST_ID_HEADER = "X-Request-Id"

KEY_PREFIX = "ml_live_"
# The service's own rule: the prefix, then a random string of letters and digits.
KEY_PATTERN = re.compile(r"ml_live_[A-Za-z0-9]+")
WRONG_KEY_FORMAT_MESSAGE = "wrong key format"
INVALID_KEY_MESSAGE = "invalid or missing API key"

# A memory API answers in milliseconds; a request still waiting after 10 s is better retried
# (or surfaced) than left to stall the agent turn that made it.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_MAX_RETRIES = 2
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
# A Retry-After longer than this is not slept on: the error is raised with ``retry_after``
# so the caller decides (the daily quota resets hours away).
MAX_RETRY_AFTER = 60.0

DEFAULT_RECALL_LIMIT = 5
DEFAULT_PAGE_SIZE = 50
MAX_BATCH_ITEMS = 100
# The contract's largest request body (413 above it).
MAX_BODY_BYTES = 1024 * 1024
# Most memories one request of a large remember_many carries: ten times fewer requests than
# batches of 100, while each stays a few seconds of server work on a slow machine (well
# inside DEFAULT_TIMEOUT; 10,000 in one request took longer than that on 2 busy cores, and
# the retry cost a second request) and a progress bar still moves.
BULK_ITEMS_PER_REQUEST = 1000
MAX_CONTENT_CHARS = 32_768
# The contract's longest recall query. Adapters cut the text they recall with (a user's
# message, a model's question) to it, so a long message still recalls instead of failing.
MAX_QUERY_CHARS = 4096
# The longest ``ttl`` a memory may have: ten years, in seconds.
MAX_TTL_SECONDS = 10 * 365 * 24 * 3600
