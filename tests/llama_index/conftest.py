"""The request log of the LlamaIndex adapter tests: ``clients`` (``tests/conftest.py``) are
real clients of the session's local server whose requests are recorded here."""

from __future__ import annotations

import pytest

from ._support import Recorder


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def request_log(recorder: Recorder) -> Recorder:
    return recorder
