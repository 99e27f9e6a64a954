"""Fixtures of the reliability tests (issue #8), one module per property so that a failure
names the property that broke: faults, crash durability, load, OpenAPI fuzzing, tenancy,
bad input, secrets, authentication.

The client fixtures (both client flavours around a scripted transport, recorded retry
sleeps, a made-up key, a blocked network) and the raw-HTTP server fixtures are the client
and server tests' own, imported here rather than defined twice. The local server, ``api_key``
and ``base_url`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memlayer_integrations.server import LocalMemLayerServer
from tests.client.conftest import fake_key, flavor, make_client, no_network, sleeps  # noqa: F401
from tests.server.conftest import anon, http  # noqa: F401


@pytest.fixture(scope="session")
def local_server(backend_server: LocalMemLayerServer) -> LocalMemLayerServer:
    """The session server, on SQLite and on PostgreSQL (``tests/_backends.py``)."""
    return backend_server


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every reliability test is ``slow``: CI runs them once, in the Python 3.11 leg, and the
    version matrix (``.ci/matrix``) skips them with ``-m "not slow"``."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)
