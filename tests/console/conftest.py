"""Fixtures for the console's browser tests: Debian's Chromium driven by Playwright, headless.

The browser is the system's (``apt-get install chromium``; ``.ci/run`` installs it), never
one Playwright downloads. ``MEMLAYER_CHROMIUM`` may name another binary. The pages are
served by the session's embedded server (``local_server``), which has the console on.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from memlayer_integrations import MemLayerClient
from memlayer_integrations.server import LocalMemLayerServer

#: Longest wait for any one page event; the machine may be busy, the page is local.
TIMEOUT_MS = 15_000
_CANDIDATES = ("chromium", "chromium-browser", "/usr/lib/chromium/chromium")


def chromium_path() -> str:
    """The system Chromium to drive, or a clear failure that says how to install it."""
    configured = os.environ.get("MEMLAYER_CHROMIUM")
    for candidate in ([configured] if configured else []) + list(_CANDIDATES):
        found = shutil.which(candidate)
        if found:
            return found
    pytest.fail(
        "no Chromium found for the console tests: apt-get install -y chromium "
        "(or set MEMLAYER_CHROMIUM to a Chromium binary)"
    )


# Module scope, not session: the sync API keeps an event loop marked as running on this
# thread while Playwright is started, which would break the async tests that run later.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser, local_server: LocalMemLayerServer) -> Iterator[Page]:
    """A fresh tab (its own session storage) on the console; dialogs are answered by the test."""
    context = browser.new_context(
        base_url=local_server.url, viewport={"width": 1200, "height": 760}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    # A script error or a request the page's Content-Security-Policy blocks fails the test
    # (refused requests, 401s included, are logged by the browser too: those are expected).
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    yield page
    context.close()
    assert problems == [], problems


@pytest.fixture
def shots(tmp_path: Path, page: Page) -> Any:
    """``shots(name)`` saves a PNG of the page under the test's temporary directory."""

    def take(name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def account(local_server: LocalMemLayerServer) -> Iterator[tuple[str, MemLayerClient]]:
    """A fresh free-plan account: its key and a client to set up and check its memories."""
    key = local_server.create_key(plan="free", name="console-test")
    with MemLayerClient(api_key=key, base_url=local_server.url) as client:
        yield key, client
