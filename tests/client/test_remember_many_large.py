"""``remember_many`` over more items than one request holds: as few requests as the body
limit allows, items kept in order, and progress reported only when asked."""

from __future__ import annotations

import builtins
import json
from typing import Any

import pytest

from memlayer_integrations import MemoryLimitError
from memlayer_integrations._constants import (
    BULK_ITEMS_PER_REQUEST,
    MAX_BATCH_ITEMS,
    MAX_BODY_BYTES,
)
from memlayer_integrations._operations import remember_many_requests
from memlayer_integrations._progress import Progress

from ._support import call


def _items(n: int, size: int = 10) -> list[dict[str, Any]]:
    return [{"content": f"{i:06d} " + "x" * size, "metadata": {"i": i}} for i in range(n)]


def _sent_items(requests) -> list[dict[str, Any]]:
    items = []
    for r in requests:
        if r.path == "/memories/batch":
            items += r.body["items"]
        else:
            for op in r.body["operations"]:
                assert op["op"] == "remember_many"
                items += op["items"]
    return items


def test_up_to_a_hundred_items_are_one_remember_many_request_as_before():
    [request] = remember_many_requests(_items(MAX_BATCH_ITEMS), "u1", "bot", "s1")
    assert request.path == "/memories/batch" and request.count == MAX_BATCH_ITEMS
    assert request.body["session_id"] == "s1" and len(request.body["items"]) == MAX_BATCH_ITEMS


def test_a_thousand_short_items_are_one_batch_request():
    [request] = remember_many_requests(_items(BULK_ITEMS_PER_REQUEST), "u1", "bot", None)
    assert request.path == "/batch" and request.count == BULK_ITEMS_PER_REQUEST
    assert [len(op["items"]) for op in request.body["operations"]] == [MAX_BATCH_ITEMS] * 10
    assert len(json.dumps(request.body, ensure_ascii=False).encode()) <= MAX_BODY_BYTES


def test_larger_inputs_take_a_request_per_thousand_items():
    requests = remember_many_requests(_items(10_001), "u1", "bot", None)
    assert [r.count for r in requests] == [1_000] * 10 + [1]
    assert [r.count for r in remember_many_requests(_items(150), "u1", "bot", None)] == [150]


def test_a_hundred_full_operations_fit_one_request_when_allowed():
    [request] = remember_many_requests(_items(10_000), "u1", "bot", None, max_items=10_000)
    assert len(request.body["operations"]) == MAX_BATCH_ITEMS
    assert len(json.dumps(request.body, ensure_ascii=False).encode()) <= MAX_BODY_BYTES


@pytest.mark.parametrize(("n", "size", "max_bytes"), [(250, 400, 20_000), (1_000, 30, 9_000)])
def test_bodies_stay_under_the_limit_and_items_keep_their_order(n, size, max_bytes):
    items = _items(n, size)
    requests = remember_many_requests(items, "u1", "bot", "s1", max_bytes=max_bytes)
    assert len(requests) > 1
    for r in requests:
        assert len(json.dumps(r.body, ensure_ascii=False).encode()) <= max_bytes
        assert all(op["session_id"] == "s1" for op in r.body["operations"])
    assert _sent_items(requests) == items
    assert sum(r.count for r in requests) == n


def test_a_bad_item_fails_before_any_request_is_planned():
    items: list[Any] = [*_items(150), 42]
    with pytest.raises(TypeError, match="str or a mapping"):
        remember_many_requests(items, "u1", "bot", None)


def _progress_log() -> tuple[list[tuple[int, int]], Any]:
    seen: list[tuple[int, int]] = []
    return seen, lambda done, total: seen.append((done, total))


async def test_many_memories_are_stored_in_order_in_few_requests(make_live):
    client = make_live()
    seen, progress = _progress_log()
    before = (await call(client, "usage")).requests_today
    items = [f"fact number {i}" for i in range(1_234)]
    stored = await call(
        client, "remember_many", items, user_id="u1", agent_id="bot", progress=progress
    )
    assert [m.content for m in stored] == items
    # Two writes (1,000 and 234) and this usage request.
    assert (await call(client, "usage")).requests_today == before + 3
    assert seen == [(1_000, 1_234), (1_234, 1_234)]
    listed = [m.id async for m in _aiter(client.list_memories(user_id="u1", page_size=100))]
    assert listed == [m.id for m in stored]


async def _aiter(iterator: Any):
    if hasattr(iterator, "__aiter__"):
        async for item in iterator:
            yield item
    else:
        for item in iterator:
            yield item


async def test_progress_is_reported_after_each_request(make_live):
    client = make_live()
    seen, progress = _progress_log()
    items = ["y" * 20_000 + f" {i}" for i in range(150)]  # about 3 MB: several requests
    stored = await call(
        client, "remember_many", items, user_id="u1", agent_id="bot", progress=progress
    )
    assert len(stored) == 150 and len(seen) >= 3
    assert [total for _, total in seen] == [150] * len(seen)
    dones = [done for done, _ in seen]
    assert dones == sorted(dones) and dones[-1] == 150


async def test_a_failing_request_keeps_what_earlier_requests_stored(make_live, local_server):
    client = make_live(api_key=local_server.create_key(plan="free"))
    seen, progress = _progress_log()
    items = ["z" * 20_000 + f" {i}" for i in range(600)]  # past the free plan's 500
    with pytest.raises(MemoryLimitError):
        await call(client, "remember_many", items, user_id="u1", agent_id="bot", progress=progress)
    stored = (await call(client, "usage")).memories_stored
    assert seen and seen[-1][0] == stored and 0 < stored < 500


async def test_a_wrong_progress_argument_is_refused_before_sending(make_live):
    client = make_live()
    with pytest.raises(TypeError, match="progress must be"):
        await call(client, "remember_many", ["a"], user_id="u1", agent_id="bot", progress="yes")
    assert (await call(client, "usage")).memories_stored == 0


def test_progress_prints_nothing_unless_asked(capsys):
    with Progress(None, 10, "remember_many") as bar:
        bar.advance(10)
    with Progress(False, 10, "remember_many") as bar:
        bar.advance(10)
    assert capsys.readouterr() == ("", "")


def test_progress_true_draws_a_tqdm_bar_on_stderr(capsys):
    with Progress(True, 300, "remember_many") as bar:
        bar.advance(100)
        bar.advance(200)
    out, err = capsys.readouterr()
    assert out == "" and "remember_many" in err and "300/300" in err


def test_progress_true_without_tqdm_prints_plain_lines(capsys, monkeypatch):
    real_import = builtins.__import__

    def no_tqdm(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "tqdm" or name.startswith("tqdm."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    with Progress(True, 300, "remember_many") as bar:
        bar.advance(100)
        bar.advance(200)
    assert capsys.readouterr().err == "remember_many: 100/300\nremember_many: 300/300\n"


def test_progress_update_to_learns_the_total_as_a_done_total_callback(capsys, monkeypatch):
    # memlayer reindex hands bar.update_to to work that counts its total itself.
    real_import = builtins.__import__

    def no_tqdm(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "tqdm" or name.startswith("tqdm."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    with Progress(True, 0, "embedding") as bar:
        for done in (0, 64, 100):
            bar.update_to(done, 100)
    assert bar.total == 100 and bar.done == 100
    assert capsys.readouterr().err == "embedding: 0/100\nembedding: 64/100\nembedding: 100/100\n"
    seen: list[tuple[int, int]] = []
    with Progress(lambda d, t: seen.append((d, t)), 0, "x") as cb:
        cb.update_to(3, 5)
    assert seen == [(3, 5)]


def test_progress_update_to_moves_a_tqdm_bar_to_the_total_it_learns(capsys):
    with Progress(True, 0, "embedding") as bar:
        bar.update_to(0, 300)
        bar.update_to(300, 300)
    assert "300/300" in capsys.readouterr().err
