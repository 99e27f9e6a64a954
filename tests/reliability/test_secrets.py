"""Secrets: the API key never shows where it could be read back.

Not in a client's or an error's repr, str or message; not in a traceback of the package's
errors (their causes included); not in any log record, at any level, of the clients or of
the server; not in a server answer; not in the server's database (keys are stored as salted
hashes only) nor in its access log; not in a committed cassette or notebook.
"""

from __future__ import annotations

import html
import json
import logging
import re
import sqlite3
import traceback
from pathlib import Path
from urllib.parse import quote, unquote

import httpx
import pytest
from fastapi.testclient import TestClient

import memlayer_integrations
from memlayer_integrations import (
    APIConnectionError,
    APITimeoutError,
    AsyncMemLayerClient,
    AuthenticationError,
    InternalServerError,
    MemLayerClient,
    MemLayerError,
    NotFoundError,
    PermissionDeniedError,
)
from memlayer_integrations._logging import get_logger, mask_key, redact
from memlayer_integrations.server import LocalMemLayerServer, Plan, ServerSettings, create_app, keys
from tests.client._support import Script, call, error_response, usage_json

from ._faulty import HANG, FaultyServer, closed_port_url
from ._process import ServerProcess, create_key

ROOT = Path(__file__).resolve().parents[2]
KEY_SHAPED = re.compile(r"ml_live_[A-Za-z0-9]{8,}")


def leaks(key: str, text: str) -> bool:
    """The key, or enough of its random part to matter, in ``text``."""
    return key in text or key[8:] in text or key[8:24] in text


# -- the clients: reprs, errors, logs (MockTransport) -------------------------------------

LEVELS = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]


@pytest.mark.parametrize("cls", [MemLayerClient, AsyncMemLayerClient])
def test_client_repr_and_str_mask_the_key(cls, fake_key):
    client = cls(fake_key, base_url="http://memlayer.test")
    for text in (repr(client), str(client)):
        assert fake_key not in text
        assert fake_key[len("ml_live_") :] not in text
        assert fake_key[:12] + "…" in text  # enough to tell keys apart
        assert "http://memlayer.test" in text


@pytest.mark.parametrize("key", ["sk-secret-abcdef123456", "ml_live_has-a-dash-secret"])
def test_client_repr_masks_a_malformed_key_too(fake_key, key):
    text = repr(MemLayerClient(key, base_url="http://memlayer.test"))
    assert "secret" not in text


def test_repr_without_a_key():
    assert "<none>" in repr(MemLayerClient(base_url="http://memlayer.test"))


async def test_an_error_that_echoes_the_key_is_masked(make_client, fake_key):
    # A misbehaving proxy (or a future server bug) echoing the key must not leak it.
    answer = error_response(404, "not_found", f"no memory for key {fake_key}")
    client = make_client(Script(answer))
    with pytest.raises(NotFoundError) as info:
        await call(client, "get", "mem_1")
    err = info.value
    for text in (str(err), repr(err), err.message, str(err.args)):
        assert fake_key not in text
    assert fake_key[:12] + "…" in err.message


async def test_pre_send_auth_errors_do_not_contain_the_key(make_client):
    key = "ml_live_wrong-and-secret"
    with pytest.raises(AuthenticationError) as info:
        await call(make_client(Script(), api_key=key), "usage")
    assert "secret" not in str(info.value) and "secret" not in repr(info.value)


def percent_encode_all(text: str) -> str:
    return "".join(f"%{ord(c):02X}" for c in text)


def test_redact_masks_a_key_in_any_encoding(fake_key):
    spellings = [
        fake_key.replace("_", "%5F"),
        percent_encode_all(fake_key),
        percent_encode_all(fake_key).lower(),
        quote(quote(fake_key, safe=""), safe=""),  # ml%255Flive%255F...
        json.dumps(fake_key).replace("_", "\\u005f"),
        fake_key.replace("_", "&#95;"),
        fake_key[:12] + percent_encode_all(fake_key[12:]),
    ]
    for spelled in spellings:
        text = redact(f"GET /v1/usage?api_key={spelled} HTTP/1.1")
        decoded = html.unescape(unquote(unquote(text))).encode().decode("unicode_escape")
        assert not leaks(fake_key, decoded), spelled
        assert "ml_live_<redacted>" in text or fake_key[:12] + "…" in text


def test_redact_and_mask_key():
    assert mask_key(None) == "<none>"
    assert mask_key("sk-whatever") == "<redacted>"
    assert mask_key("ml_live_abcdefghij") == "ml_live_abcd…"
    text = redact("first ml_live_AAAAbbbbCCCC then ml_live_ZZZZyyyy1234.")
    assert text == "first ml_live_AAAA… then ml_live_ZZZZ…."


@pytest.mark.parametrize("level", LEVELS, ids=logging.getLevelName)
@pytest.mark.parametrize(
    "name", ["memlayer_integrations", "memlayer_integrations.client", "memlayer_integrations.x"]
)
def test_every_package_logger_masks_keys_at_every_level(caplog, fake_key, level, name):
    caplog.set_level(logging.DEBUG)
    log = get_logger(name)

    class Shows:
        def __str__(self) -> str:
            return f"an object holding {fake_key}"

    log.log(level, "key in the args: %s", fake_key)
    log.log(level, "key in a mapping: %(key)s", {"key": fake_key})
    log.log(level, f"key in the message itself: {fake_key}")
    log.log(level, Shows())
    records = [r for r in caplog.records if r.name == name]
    assert len(records) == 4
    for record in records:
        assert fake_key not in record.getMessage()
        assert fake_key[:12] + "…" in record.getMessage()
    assert fake_key not in caplog.text


async def test_no_log_record_of_a_retried_failing_call_contains_the_key(
    make_client, sleeps, caplog, fake_key
):
    caplog.set_level(logging.DEBUG)
    script = Script(
        httpx.ConnectError(f"refused (key {fake_key})"),  # even an httpx message that held it
        error_response(503, "internal_error", f"down for {fake_key}"),
        httpx.Response(200, json=usage_json()),
        error_response(500, "internal_error"),
    )
    client = make_client(script, max_retries=2)
    await call(client, "usage")
    with pytest.raises(InternalServerError) as info:
        await call(client, "usage")
    ours = [r for r in caplog.records if r.name.startswith("memlayer_integrations")]
    assert any(r.levelno == logging.DEBUG for r in ours)  # the attempts were logged ...
    assert any(
        r.levelno == logging.INFO and "retrying" in r.getMessage() for r in ours
    )  # ... and the retries
    for record in caplog.records:  # ours and httpx's alike
        assert fake_key not in record.getMessage()
    assert fake_key not in caplog.text
    assert fake_key not in str(info.value) and fake_key not in repr(info.value)


def test_every_package_module_takes_its_logger_from_get_logger():
    # Logger filters do not reach child loggers: a module that called logging.getLogger
    # directly would log without the redacting filter.
    root = Path(memlayer_integrations.__file__).parent
    direct = re.compile(r"getLogger\((__name__|[\"']memlayer_integrations)")
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "_logging.py" and direct.search(path.read_text())
    ]
    assert offenders == []


# -- the clients: tracebacks of real failures ---------------------------------------------


def formatted(exc: BaseException) -> str:
    """The traceback a user would see or log, causes and contexts included."""
    return "".join(traceback.format_exception(exc))


@pytest.fixture
async def failures(flavor, base_url, local_server, sleeps):
    """One of each error a client raises against real servers (and the keys they were made with)."""
    made = []

    def client(key: str, url: str, **kwargs) -> object:
        cls = MemLayerClient if flavor == "sync" else AsyncMemLayerClient
        made.append(cls(api_key=key, base_url=url, max_retries=1, **kwargs))
        return made[-1]

    async def catch(c, method: str, *args, **kwargs) -> MemLayerError:
        with pytest.raises(MemLayerError) as info:
            await call(c, method, *args, **kwargs)
        return info.value

    suspended, revoked, live = (local_server.create_key() for _ in range(3))
    local_server.suspend_key(suspended)
    local_server.revoke_key(revoked)
    unknown = "ml_live_" + "Q7" * 20
    with FaultyServer((HANG,)) as hung:
        caught = [
            (unknown, await catch(client(unknown, base_url), "usage")),
            (revoked, await catch(client(revoked, base_url), "usage")),
            (suspended, await catch(client(suspended, base_url), "usage")),
            (live, await catch(client(live, base_url), "get", "mem_" + "0" * 32)),
            (live, await catch(client(live, base_url), "remember", " ", user_id="u", agent_id="a")),
            (live, await catch(client(live, closed_port_url()), "usage")),
            (
                live,
                await catch(
                    client(live, hung.url, timeout=0.2), "remember", "x", user_id="u", agent_id="a"
                ),
            ),
            (
                "ml_live_hushhush-with-a-dash",
                await catch(client("ml_live_hushhush-with-a-dash", base_url), "usage"),
            ),
        ]
    yield caught
    for c in made:
        await call(c, "close")


async def test_no_traceback_of_a_package_error_holds_the_key(failures):
    kinds = {type(exc) for _, exc in failures}
    assert {
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        APIConnectionError,
        APITimeoutError,
    } <= kinds
    for key, exc in failures:
        for text in (formatted(exc), str(exc), repr(exc), str(exc.args)):
            assert not leaks(key, text), text


def reachable_requests(exc: BaseException) -> list[httpx.Request]:
    """Every httpx request an error tracker could record from ``exc``: on the exceptions of
    its chain (``request``, ``response.request``) and in the locals of their frames."""
    found: list[httpx.Request] = []
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        found += [v for v in vars(current).values() if isinstance(v, httpx.Request)]
        response = getattr(current, "response", None)
        if isinstance(response, httpx.Response):
            found.append(response.request)
        tb = current.__traceback__
        while tb is not None:
            found += [v for v in tb.tb_frame.f_locals.values() if isinstance(v, httpx.Request)]
            tb = tb.tb_next
        pending += [current.__cause__, current.__context__]
    return found


async def test_no_request_reachable_from_a_package_error_holds_the_key(failures):
    connection_errors = [(k, e) for k, e in failures if isinstance(e, APIConnectionError)]
    assert {type(e) for _, e in connection_errors} == {APIConnectionError, APITimeoutError}
    for key, exc in connection_errors:
        requests = reachable_requests(exc)
        assert requests  # httpx keeps the request it failed on ...
        for request in requests:  # ... with the key masked
            assert not leaks(key, repr(request.headers.raw))
            assert request.headers["X-API-Key"] == key[:12] + "..."


async def test_no_log_record_holds_the_key_on_a_live_run(flavor, base_url, api_key, caplog):
    caplog.set_level(logging.DEBUG)
    cls = MemLayerClient if flavor == "sync" else AsyncMemLayerClient
    client = cls(api_key=api_key, base_url=base_url)
    await call(client, "remember", "logged?", user_id="u1", agent_id="bot")
    await call(client, "recall", "logged", user_id="u1")
    await call(client, "close")
    assert caplog.records  # httpx and the client did log
    for record in caplog.records:
        assert api_key not in record.getMessage()
    assert api_key not in caplog.text


# -- the server: answers, logs, database, access log ---------------------------------------


def test_key_is_never_echoed(base_url, api_key):
    with httpx.Client(base_url=base_url + "/v1", headers={"X-API-Key": api_key}) as http:
        responses = [
            http.get("/usage"),
            http.post(
                "/memories", json={"content": api_key, "user_id": "u", "agent_id": "a", "bogus": 1}
            ),
            http.get("/nowhere"),
        ]
    for r in responses:
        assert api_key not in r.text
        assert all(api_key not in v for v in r.headers.values())


def test_no_server_log_record_holds_the_key_at_any_level(tmp_path, caplog):
    app = create_app(ServerSettings(db_path=tmp_path / "s.db"))
    caplog.set_level(logging.DEBUG)  # every logger, the server's and its frameworks'
    with TestClient(app, raise_server_exceptions=False) as client:
        with app.state.db.write() as conn:
            key, _ = keys.create_key(conn, plan_name="unlimited", plan=Plan(), name=None, now="t")
        headers = {"X-API-Key": key}
        client.post(
            "/v1/memories",
            json={"content": f"a note about {key}", "user_id": "u", "agent_id": "a"},
            headers=headers,
        )
        client.get("/v1/usage", params={"api_key": key})
        client.get("/v1/usage", headers={"X-API-Key": key + "x"})
        client.get("/v1/memories/mem_" + "0" * 32, headers=headers)

        def broken(*args, **kwargs):
            raise RuntimeError("boom")

        app.state.service.execute = broken  # an unexpected failure is logged, with its traceback
        assert client.get("/v1/usage", headers=headers).status_code == 500
    # The records of the server side: not those of the test's own HTTP client, which logs the
    # URLs it was told to send (the key in a query string among them).
    server_side = [r for r in caplog.records if not r.name.startswith("httpx")]
    assert any(
        r.levelno == logging.ERROR and r.name.startswith("memlayer_integrations")
        for r in server_side
    )
    for record in server_side:
        assert not leaks(key, record.getMessage())
        assert not leaks(key, logging.Formatter().format(record))  # the traceback too


def test_keys_are_stored_only_as_salted_hashes(tmp_path):
    with LocalMemLayerServer(tmp_path / "k.db") as server:
        keys = [server.create_key(name=f"k{i}") for i in range(3)]
        for key in keys:
            assert (
                httpx.get(server.url + "/v1/usage", headers={"X-API-Key": key}).status_code == 200
            )
        while_running = b"".join(
            p.read_bytes() for p in tmp_path.iterdir() if p.is_file()
        )  # the WAL too
    raw = while_running + b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for key in keys:
        assert key.encode() not in raw
        assert key[8:].encode() not in raw  # not even the random part
        assert key[: 8 + 16].encode() not in raw
    rows = sqlite3.connect(tmp_path / "k.db").execute("SELECT salt, hash FROM api_keys").fetchall()
    assert len({salt for salt, _ in rows}) == 3 and all(len(h) == 32 for _, h in rows)


@pytest.mark.slow
@pytest.mark.parametrize("args", [(), ("--workers", "2")], ids=["one process", "workers"])
def test_the_access_log_never_holds_the_key(tmp_path, args):
    db, log = tmp_path / "a.db", tmp_path / "server.log"
    key = create_key(db)
    with (
        ServerProcess(db, log, args) as server,
        httpx.Client(base_url=server.url + "/v1") as http,
    ):
        assert http.get("/usage", headers={"X-API-Key": key}).status_code == 200
        # A key in a query string is not read, and must not reach the log either.
        assert http.get("/usage", params={"api_key": key}).status_code == 401
        assert http.get(f"/memories/{key}", headers={"X-API-Key": key}).status_code == 422
        assert http.get("/nowhere", params={"key": key}).status_code == 404
        # Nor when the URL spells it percent-encoded, once or twice.
        for spelled in (quote(key, safe=""), percent_encode_all(key), quote(quote(key, safe=""))):
            assert http.get(f"/usage?api_key={spelled}").status_code == 401
    text = log.read_text(errors="replace")
    assert "GET /v1/usage" in text and "GET /v1/nowhere" in text  # the access log is on ...
    assert not leaks(key, unquote(unquote(text)))  # ... and never holds the key


# -- committed files: cassettes and notebooks ---------------------------------------------


def test_no_cassette_holds_a_key():
    files = [p for p in (ROOT / "cassettes").rglob("*") if p.is_file()]
    assert files, "no cassettes found"
    leaked = [
        str(p.relative_to(ROOT)) for p in files if KEY_SHAPED.search(p.read_text(errors="replace"))
    ]
    assert leaked == []


def test_cassettes_keep_no_api_key_header():
    files = list((ROOT / "cassettes" / "client").glob("*.yaml"))
    assert files
    for path in files:
        assert "x-api-key" not in path.read_text().lower(), path.name


def test_no_committed_notebook_holds_a_key():
    notebooks = list((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    leaked = [p.name for p in notebooks if KEY_SHAPED.search(p.read_text(encoding="utf-8"))]
    assert leaked == []
