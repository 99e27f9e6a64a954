"""``memlayer export`` / ``memlayer import``: exact round trip, idempotent re-import, one-line
errors that name the line, and nothing half-imported."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import httpx
import pytest

from memlayer_integrations import cli
from memlayer_integrations.server import LocalMemLayerServer, Plan, transfer
from memlayer_integrations.server.db import Database
from memlayer_integrations.server.transfer import (
    VERSION,
    DumpError,
    export,
    import_dump,
)

NOW = "2026-01-01T00:00:00.000000Z"
PLANS = {"free": Plan(memories=500, requests_per_day=100), "unlimited": Plan()}


def dump_of(db_path: Path, *, with_keys: bool = True, now: str = NOW) -> bytes:
    db = Database(db_path)
    try:
        out = io.BytesIO()
        export(db, out, now=now, with_keys=with_keys)
        return out.getvalue()
    finally:
        db.close()


def load(db_path: Path, dump: bytes, progress=None):
    db = Database(db_path)
    try:
        return import_dump(db, io.BytesIO(dump), progress=progress)
    finally:
        db.close()


def records(dump: bytes) -> list[dict]:
    return [json.loads(line) for line in dump.splitlines()]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A database with two accounts, a revoked key, a suspended account, usage, and memories
    with sessions, keys, unicode metadata, a ttl, an expiry and one already expired."""
    path = tmp_path_factory.mktemp("transfer") / "source.db"
    keys: dict[str, str] = {}
    with LocalMemLayerServer(path, plans=PLANS) as server:
        keys["alice"] = server.create_key(plan="free", name="alice")
        keys["bob"] = server.create_key(plan="unlimited", name="bob")
        keys["gone"] = server.create_key(plan="free", name="gone")
        alice = httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": keys["alice"]})
        bob = httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": keys["bob"]})
        writes = [
            (alice, {"content": "Alice likes green tea", "session_id": "s1"}),
            (alice, {"content": "Ünïcode ☕ and emoji 🎉", "metadata": {"tags": ["ä", 1, 2.5]}}),
            (alice, {"content": "The flat number is 42", "key": "flat", "ttl": 86400 * 365}),
            (alice, {"content": "Meeting at noon", "expires_at": "2099-05-01T12:00:00Z"}),
            (alice, {"content": "already expired", "expires_at": "2000-01-01T00:00:00Z"}),
            (bob, {"content": "Bob's dog is called Rex", "agent_id": "other"}),
        ]
        for client, body in writes:
            response = client.post("/memories", json={"user_id": "u1", "agent_id": "bot", **body})
            assert response.status_code == 201, response.text
        alice.patch(
            f"/memories/{alice.get('/memories', params={'user_id': 'u1'}).json()['memories'][0]['id']}",
            json={"metadata": {"edited": True}},
        ).raise_for_status()
        alice.close()
        bob.close()
        db = Database(path)
        with db.write() as conn:
            from memlayer_integrations.server import keys as keys_module

            keys_module.revoke_key(conn, keys["gone"], now=NOW)
            keys_module.set_suspended(conn, keys["bob"], True)
        db.close()
    return path, keys


def test_export_import_export_is_byte_identical_and_the_same_keys_work(source, tmp_path):
    path, keys = source
    first = dump_of(path)
    header, *rest = records(first)
    assert header == {
        "format": "memlayer-export",
        "version": VERSION,
        "with_keys": True,
        "counts": {"accounts": 3, "keys": 3, "usage": 2, "memories": 5},
    }
    assert [r["type"] for r in rest] == ["account"] * 3 + ["key"] * 3 + ["usage"] * 2 + [
        "memory"
    ] * 5
    assert "already expired" not in first.decode()
    assert not any(k.encode() in first for k in keys.values())  # hashes only

    report = load(tmp_path / "copy.db", first)
    assert report.added == {"accounts": 3, "keys": 3, "usage": 2, "memories": 5}
    assert dump_of(tmp_path / "copy.db") == first

    with LocalMemLayerServer(tmp_path / "copy.db", plans=PLANS) as copy:
        alice = httpx.Client(base_url=copy.url + "/v1", headers={"X-API-Key": keys["alice"]})
        usage = alice.get("/usage").json()
        assert usage["memories_stored"] == 4 and usage["plan"] == "free"
        assert usage["requests_today"] >= 1
        listed = alice.get("/memories", params={"user_id": "u1"}).json()["memories"]
        assert [m["content"] for m in listed] == [
            r["content"] for r in rest if r["type"] == "memory" and r["account"] == 1
        ]
        assert listed[0]["metadata"] == {"edited": True}
        hits = alice.post("/memories/search", json={"query": "green tea", "user_id": "u1"}).json()
        assert hits["results"][0]["memory"]["content"] == "Alice likes green tea"
        assert (
            httpx.get(copy.url + "/v1/usage", headers={"X-API-Key": keys["bob"]}).status_code == 403
        )
        assert (
            httpx.get(copy.url + "/v1/usage", headers={"X-API-Key": keys["gone"]}).status_code
            == 401
        )
        alice.close()


def test_importing_twice_changes_nothing_and_says_so(source, tmp_path):
    dump = dump_of(source[0])
    load(tmp_path / "b.db", dump)
    again = load(tmp_path / "b.db", dump)
    assert not again.changed_anything
    assert again.unchanged == {"accounts": 3, "keys": 3, "usage": 2, "memories": 5}
    assert again.summary().startswith("nothing changed: all 13 records")
    assert dump_of(tmp_path / "b.db") == dump


def test_a_dump_without_keys_needs_the_accounts_and_restores_into_its_own_database(
    source, tmp_path
):
    path = source[0]
    dump = dump_of(path, with_keys=False)
    assert json.loads(dump.splitlines()[0])["counts"] == {"memories": 5}
    assert {r["type"] for r in records(dump)[1:]} == {"memory"}
    with pytest.raises(DumpError, match=r"line 2: memory mem_\w+ belongs to account 1, which"):
        load(tmp_path / "empty.db", dump)
    assert dump_of(tmp_path / "empty.db") == dump_of(tmp_path / "never-written.db")
    assert not load(path, dump).changed_anything


def _corrupt(dump: bytes, line: int, new: bytes | None) -> bytes:
    lines = dump.splitlines(keepends=True)
    if new is None:
        del lines[line - 1]
    else:
        lines[line - 1] = new
    return b"".join(lines)


def _edit(dump: bytes, line: int, **changes) -> bytes:
    record = json.loads(dump.splitlines()[line - 1])
    record.update(changes)
    for name, value in changes.items():
        if value is ...:
            del record[name]
    return _corrupt(dump, line, json.dumps(record).encode() + b"\n")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: _corrupt(d, 9, b'{"type": "memory", \n'), r"^line 9: not a JSON object"),
        (lambda d: _corrupt(d, 9, b"\xff\xfe\n"), r"^line 9: not UTF-8 text"),
        (lambda d: _corrupt(d, 9, b"[1, 2]\n"), r"^line 9: not a JSON object"),
        (lambda d: _edit(d, 10, metadata={"x": float("inf")}), r"^line 10: .*Infinity is out of"),
        (lambda d: d.replace(b'"tags":["\xc3\xa4",1,2.5]', b'"tags":[1e999]'), r"1e999 is out of"),
        (lambda d: _corrupt(d, 9, b"\n"), r"^line 9: an empty line"),
        (lambda d: _edit(d, 9, type="note"), r'^line 9: "type" must be one of'),
        (lambda d: _edit(d, 10, content=...), r"^line 10: memory: missing content"),
        (lambda d: _edit(d, 10, colour="red"), r"^line 10: memory: unknown colour"),
        (lambda d: _edit(d, 10, content=""), r"^line 10: memory: 'content' must be a non-empty"),
        (lambda d: _edit(d, 10, metadata=[1]), r"^line 10: memory: 'metadata' must be a JSON"),
        (lambda d: _edit(d, 10, created_at="yesterday"), r"'created_at' must be an ISO 8601"),
        (lambda d: _edit(d, 10, ttl="1h"), r"'ttl' must be a number of seconds"),
        (lambda d: _edit(d, 2, suspended=1), r"^line 2: account: 'suspended' must be true"),
        (lambda d: _edit(d, 5, hash="XYZ"), r"^line 5: key: 'hash' must be lowercase hex"),
        (lambda d: _edit(d, 8, day="30/11/2026"), r"^line 8: usage: 'day' must be a day"),
        (lambda d: _edit(d, 10, account=99), r"^line 10: memory mem_\w+ belongs to account 99"),
        (lambda d: _corrupt(d, 13, None), r"ends early: its header announces 5 memories \(4 read"),
        (lambda d: d + d.splitlines(keepends=True)[-1], r"^line 15: more memories than"),
        (lambda d: _edit(d, 1, version=VERSION + 1), r"^line 1: format version 2 is newer"),
        (lambda d: _edit(d, 1, format="csv"), r"^line 1: not a MemLayer dump"),
        (lambda d: b"", r"^line 1: the dump is empty"),
    ],
)
def test_a_bad_dump_is_refused_by_line_and_nothing_is_imported(source, tmp_path, damage, message):
    bad = damage(dump_of(source[0]))
    target = tmp_path / "target.db"
    with pytest.raises(DumpError, match=message):
        load(target, bad)
    assert dump_of(target) == dump_of(tmp_path / "never-written.db")


def test_a_record_that_differs_from_the_database_is_a_conflict_never_overwritten(source, tmp_path):
    dump = dump_of(source[0])
    target = tmp_path / "b.db"
    load(target, dump)
    changed = _edit(dump, 10, content="something else")
    with pytest.raises(DumpError, match=r"^line 10: memory mem_\w+ is already in this database"):
        load(target, changed)
    other_id = _edit(dump, 12, id="mem_" + "0" * 32)  # the memory holding key "flat"
    with pytest.raises(DumpError, match=r"^line 12: .* its key 'flat' is already held by"):
        load(target, other_id)
    with pytest.raises(DumpError, match=r"^line 2: account 1 is already in this database"):
        load(target, _edit(dump, 2, plan="unlimited"))
    assert dump_of(target) == dump


def _with_header_count(dump: bytes, extra: bytes) -> bytes:
    """``dump`` with ``extra`` memory lines appended and the header's count raised."""
    lines = dump.splitlines(keepends=True)
    header = json.loads(lines[0])
    header["counts"]["memories"] += extra.count(b"\n")
    return json.dumps(header).encode() + b"\n" + b"".join(lines[1:]) + extra


@pytest.mark.parametrize("batch", [1, 2, 500])
def test_memories_imported_in_batches_round_trip_exactly(source, tmp_path, monkeypatch, batch):
    monkeypatch.setattr(transfer.store, "BATCH", batch)
    dump = dump_of(source[0])
    target = tmp_path / "b.db"
    assert load(target, dump).added["memories"] == 5
    assert dump_of(target) == dump
    again = load(target, dump)
    assert again.unchanged["memories"] == 5 and not again.changed_anything


def test_a_memory_repeated_within_a_batch_is_skipped_or_a_conflict(source, tmp_path):
    dump = dump_of(source[0])
    last = dump.splitlines(keepends=True)[-1]
    report = load(tmp_path / "same.db", _with_header_count(dump, last))
    assert (report.added["memories"], report.unchanged["memories"]) == (5, 1)
    differs = json.dumps({**json.loads(last), "content": "changed"}).encode() + b"\n"
    with pytest.raises(DumpError, match=r"^line 15: memory mem_\w+ is already in this database"):
        load(tmp_path / "other.db", _with_header_count(dump, differs))
    assert dump_of(tmp_path / "other.db") == dump_of(tmp_path / "never-written.db")
    keyed = json.loads(dump.splitlines()[11])  # the memory holding key "flat"
    taken = json.dumps({**keyed, "id": "mem_" + "1" * 32}).encode() + b"\n"
    with pytest.raises(DumpError, match=r"^line 15: .* its key 'flat' is already held by"):
        load(tmp_path / "key.db", _with_header_count(dump, taken))


def test_a_conflict_on_an_earlier_line_is_reported_before_a_later_bad_line(source, tmp_path):
    dump = dump_of(source[0])
    target = tmp_path / "b.db"
    load(target, dump)
    both = _corrupt(_edit(dump, 10, content="something else"), 13, b"not json\n")
    with pytest.raises(DumpError, match=r"^line 10: memory mem_\w+ is already in this database"):
        load(target, both)
    assert dump_of(target) == dump


def test_a_lower_request_count_never_lowers_the_database_s(source, tmp_path):
    dump = dump_of(source[0])
    target = tmp_path / "b.db"
    load(target, _edit(dump, 8, requests=10**6))
    report = load(target, dump)
    assert not report.changed_anything
    assert records(dump_of(target))[7]["requests"] == 10**6


def test_large_dumps_report_progress_every_step(tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "PROGRESS_STEP", 10)  # 25 memories are a "large" dump
    path = tmp_path / "big.db"
    with LocalMemLayerServer(path, plans=PLANS) as server:
        key = server.create_key(plan="unlimited")
        with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as http:
            items = [{"content": f"memory number {i}"} for i in range(25)]
            body = {"user_id": "u", "agent_id": "a", "items": items}
            assert http.post("/memories/batch", json=body).status_code == 201
    seen: list[tuple[int, int]] = []
    db = Database(path)
    out = io.BytesIO()
    export(db, out, now=NOW, with_keys=True, progress=lambda d, t: seen.append((d, t)))
    db.close()
    total = 25 + 3  # memories, one account, one key, one usage day
    assert seen == [(10, total), (20, total), (total, total)]
    seen.clear()
    load(tmp_path / "copy.db", out.getvalue(), progress=lambda d, t: seen.append((d, t)))
    assert seen == [(10, total), (20, total), (total, total)]
    seen.clear()
    monkeypatch.setattr(transfer, "PROGRESS_STEP", total + 1)  # a smaller dump reports nothing
    load(tmp_path / "again.db", out.getvalue(), progress=lambda d, t: seen.append((d, t)))
    assert seen == []


def test_the_commands_round_trip_through_stdout_and_stdin(source, tmp_path, monkeypatch, capsys):
    path, _ = source
    assert cli.main(["export", "--db", str(path), "--with-keys"]) == 0
    captured = capsys.readouterr()
    dump = captured.out.encode()
    assert dump.startswith(b'{"format":"memlayer-export"')
    assert "exported accounts: 3, keys: 3, usage: 2, memories: 5" in captured.err

    target = tmp_path / "b.db"
    for expected in ("imported accounts: 3, keys: 3, usage: 2, memories: 5", "nothing changed"):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(dump)))
        assert cli.main(["import", "--db", str(target)]) == 0
        err = capsys.readouterr().err
        assert expected in err
    assert "memlayer reindex" not in err  # nothing was added the second time

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"not json\n")))
    assert cli.main(["import", "--db", str(tmp_path / "c.db")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("memlayer import: line 1: not a JSON object")
    assert err.rstrip().endswith("nothing was imported") and err.count("\n") == 1

    assert cli.main(["export", "--db", str(tmp_path / "missing.db")]) == 1
    assert "no database at" in capsys.readouterr().err
