"""The request log of the LangChain adapter tests: ``clients`` (``tests/conftest.py``) are
real clients of the session's local server whose requests are counted here."""

from __future__ import annotations

import pytest

from ._support import Counter


@pytest.fixture
def counter() -> Counter:
    return Counter()


@pytest.fixture
def request_log(counter: Counter) -> Counter:
    return counter
