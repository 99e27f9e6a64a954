"""The client scenarios replayed from cassettes (``cassettes/client/*.yaml``), network blocked.

Replaying pins the exact requests the clients send (method, path, query and body) and that
they read the recorded answers; a cassette that is missing, or a request it does not hold,
fails the test instead of recording. ``X-API-Key`` is filtered out of every recording, and
``tests/reliability/test_secrets.py`` scans them all for keys.

Re-record (against a fresh local server on loopback; the sync run records, the async run
then replays the new cassette)::

    MEMLAYER_RECORD=1 /work/venv/bin/python -m pytest tests/client/test_recorded.py

Recorded answers hold ids and timestamps of the recording run; the scenarios only compare
them with each other, never with fixed values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import vcr
import vcr.errors

from memlayer_integrations import AsyncMemLayerClient, MemLayerClient

from ._support import call
from .scenarios import SCENARIOS

RECORD = os.environ.get("MEMLAYER_RECORD") == "1"
CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"
CLIENT_CASSETTES = CASSETTES / "client"
# The port of the recording server is random, so the host is not matched.
MATCH_ON = ("method", "path", "query", "body")
REPLAY_URL = "http://127.0.0.1:9"  # never reached: vcrpy answers, and sockets are blocked

recorder = vcr.VCR(
    cassette_library_dir=str(CLIENT_CASSETTES),
    serializer="yaml",
    match_on=MATCH_ON,
    filter_headers=["X-API-Key"],
    decode_compressed_response=True,
    record_on_exception=False,
)


@pytest.mark.parametrize("name", SCENARIOS)
async def test_scenario_recorded(
    name: str, flavor: str, fake_key: str, request: pytest.FixtureRequest
):
    recording = RECORD and flavor == "sync"
    cassette_path = CLIENT_CASSETTES / f"{name}.yaml"
    if recording:
        base_url, key = request.getfixturevalue("base_url"), request.getfixturevalue("api_key")
        cassette_path.unlink(missing_ok=True)
        mode = "all"
    else:
        if not RECORD:
            request.getfixturevalue("no_network")
        assert cassette_path.is_file(), (
            f"missing cassette {cassette_path}; re-record (see module docstring)"
        )
        base_url, key = REPLAY_URL, fake_key
        mode = "none"

    made: list[Any] = []

    def make(api_key: str = key) -> Any:
        cls = MemLayerClient if flavor == "sync" else AsyncMemLayerClient
        made.append(cls(api_key=api_key, base_url=base_url, max_retries=0))
        return made[-1]

    with recorder.use_cassette(cassette_path.name, record_mode=mode) as cassette:
        try:
            await SCENARIOS[name](make)
        finally:
            for client in made:
                await call(client, "close")
    if recording:
        assert len(cassette) > 0
    else:
        # Every recorded exchange was asked for: the client sent exactly the recorded calls.
        assert cassette.all_played, (
            f"{name}: {cassette.play_count} of {len(cassette)} exchanges replayed"
        )


def test_every_scenario_has_a_cassette_and_no_stray_ones():
    assert {p.stem for p in CLIENT_CASSETTES.glob("*.yaml")} == set(SCENARIOS)


def test_a_request_missing_from_the_cassette_fails_instead_of_recording(
    fake_key, no_network, tmp_path
):
    before = (CLIENT_CASSETTES / "usage.yaml").read_bytes()
    with recorder.use_cassette("usage.yaml", record_mode="none"):
        client = MemLayerClient(api_key=fake_key, base_url=REPLAY_URL, max_retries=0)
        with pytest.raises(vcr.errors.CannotOverwriteExistingCassetteException):
            client.get("mem_" + "0" * 32)
        client.close()
    missing = vcr.VCR(cassette_library_dir=str(tmp_path), match_on=MATCH_ON)
    with missing.use_cassette("absent.yaml", record_mode="none"):
        client = MemLayerClient(api_key=fake_key, base_url=REPLAY_URL, max_retries=0)
        with pytest.raises(vcr.errors.CannotOverwriteExistingCassetteException):
            client.usage()
        client.close()
    assert not (tmp_path / "absent.yaml").exists()
    assert (CLIENT_CASSETTES / "usage.yaml").read_bytes() == before
