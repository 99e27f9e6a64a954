"""The API key never shows: not in a client's or an error's repr/str, not in any log record."""

from __future__ import annotations

import logging
import pathlib
import re

import httpx
import pytest

import memlayer_integrations
from memlayer_integrations import (
    AsyncMemLayerClient,
    AuthenticationError,
    InternalServerError,
    MemLayerClient,
    NotFoundError,
)
from memlayer_integrations._logging import get_logger, mask_key, redact

from ._support import Script, call, error_response, usage_json

LEVELS = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]


@pytest.mark.parametrize("cls", [MemLayerClient, AsyncMemLayerClient])
def test_client_repr_and_str_mask_the_key(cls, fake_key):
    client = cls(fake_key, base_url="http://memlayer.test")
    for text in (repr(client), str(client)):
        assert fake_key not in text
        assert fake_key[len("ml_live_"):] not in text
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


def test_redact_and_mask_key():
    assert mask_key(None) == "<none>"
    assert mask_key("sk-whatever") == "<redacted>"
    assert mask_key("ml_live_abcdefghij") == "ml_live_abcd…"
    text = redact("first ml_live_AAAAbbbbCCCC then ml_live_ZZZZyyyy1234.")
    assert text == "first ml_live_AAAA… then ml_live_ZZZZ…."


@pytest.mark.parametrize("level", LEVELS, ids=logging.getLevelName)
@pytest.mark.parametrize("name", ["memlayer_integrations", "memlayer_integrations.client", "memlayer_integrations.x"])
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


async def test_no_log_record_of_a_retried_failing_call_contains_the_key(make_client, sleeps, caplog, fake_key):
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
    assert any(r.levelno == logging.INFO and "retrying" in r.getMessage() for r in ours)  # ... and the retries
    for record in caplog.records:  # ours and httpx's alike
        assert fake_key not in record.getMessage()
    assert fake_key not in caplog.text
    assert fake_key not in str(info.value) and fake_key not in repr(info.value)


def test_every_package_module_takes_its_logger_from_get_logger():
    # Logger filters do not reach child loggers: a module that called logging.getLogger
    # directly would log without the redacting filter.
    root = pathlib.Path(memlayer_integrations.__file__).parent
    direct = re.compile(r"getLogger\((__name__|[\"']memlayer_integrations)")
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "_logging.py" and direct.search(path.read_text())
    ]
    assert offenders == []
