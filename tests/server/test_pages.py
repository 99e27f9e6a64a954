"""The pages for people: /docs and /console are served from package files (no CDN), the
console only where it is switched on, and neither is part of the API's OpenAPI document."""

from __future__ import annotations

import re

import httpx
import pytest

from memlayer_integrations.server import LocalMemLayerServer, ServerSettings
from memlayer_integrations.server.console import CONSOLE_PATH, DOCS_PATH

from ._helpers import assert_error

_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)


@pytest.fixture
def web(base_url: str) -> httpx.Client:
    with httpx.Client(base_url=base_url) as client:
        yield client


def test_docs_load_swagger_from_this_server(web):
    page = web.get(DOCS_PATH)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert not _EXTERNAL.search(page.text), "the docs page must not load anything from elsewhere"
    assets = re.findall(r"""(?:src|href)=["'](/docs/static/[^"']+)""", page.text)
    assert {a.rsplit("/", 1)[1] for a in assets} == {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "favicon-32x32.png",
    }
    for asset in assets:
        answer = web.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 100, asset
    assert (
        web.get(DOCS_PATH + "/static/swagger-ui-bundle.js")
        .text.lstrip()
        .startswith(("/*", "!", "("))
    )


def test_console_page_and_assets_are_served_with_a_strict_policy(web):
    page = web.get(CONSOLE_PATH)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    assert not _EXTERNAL.search(page.text)
    assert "<script>" not in page.text, "no inline script: the policy would block it"
    for name, kind in (("console.js", "javascript"), ("console.css", "css")):
        answer = web.get(f"{CONSOLE_PATH}/static/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
        assert not re.search(r"https?://", answer.text), name


@pytest.mark.parametrize(
    "path", ["/console/static/../app.py", "/console/static/index.htm", "/docs/static/index.html"]
)
def test_only_the_shipped_files_are_served(web, path):
    assert_error(web.get(path), 404, "not_found")


def test_pages_are_not_in_the_openapi_document(web):
    paths = web.get("/openapi.json").json()["paths"]
    assert all(p.startswith("/v1/") for p in paths)


def test_the_console_can_be_switched_off(tmp_path):
    settings = ServerSettings(db_path=tmp_path / "m.db", console=False)
    with LocalMemLayerServer(settings=settings) as server, httpx.Client() as web:
        assert_error(web.get(server.url + CONSOLE_PATH), 404, "not_found")
        assert web.get(server.url + DOCS_PATH).status_code == 200
