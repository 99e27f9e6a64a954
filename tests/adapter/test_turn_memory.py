"""``WriteBuffer``: economy-mode writes are grouped by scope, taken whole, and never lost."""

from __future__ import annotations

import logging

import pytest

from memlayer_integrations import MemLayerError, Op
from memlayer_integrations._adapter.turn_memory import WriteBuffer, _flush_at_exit, send_pending


def contents(op: dict) -> list[str]:
    return [item["content"] for item in op["items"]]


def test_take_groups_by_scope_as_remember_many_ops():
    buffer = WriteBuffer()
    buffer.add(["likes tea"], user_id="u1", agent_id="bot")
    buffer.add([{"content": "lives in Oslo", "metadata": {"k": 1}}], user_id="u2", agent_id="bot")
    buffer.add(["drinks it black"], user_id="u1", agent_id="bot")
    assert len(buffer) == 3

    ops = buffer.take()
    assert ops == [
        Op.remember_many(["likes tea", "drinks it black"], user_id="u1", agent_id="bot"),
        Op.remember_many(
            [{"content": "lives in Oslo", "metadata": {"k": 1}}], user_id="u2", agent_id="bot"
        ),
    ]
    assert len(buffer) == 0
    assert buffer.take() == []


def test_add_refuses_malformed_items_and_keeps_nothing():
    buffer = WriteBuffer()
    with pytest.raises(TypeError):
        buffer.add(["fine", {"text": "wrong field"}], user_id="u1", agent_id="bot")
    assert len(buffer) == 0


def test_restore_puts_failed_writes_back_ahead_of_newer_ones():
    buffer = WriteBuffer()
    buffer.add(["first", "second"], user_id="u1", agent_id="bot")
    buffer.add(["other scope"], user_id="u9", agent_id="bot")
    taken = buffer.take()
    buffer.add(["third"], user_id="u1", agent_id="bot")  # written while the request was out

    buffer.restore(taken)  # ... and the request failed

    by_scope = {(op["user_id"], op["agent_id"]): contents(op) for op in buffer.take()}
    assert by_scope == {("u1", "bot"): ["first", "second", "third"], ("u9", "bot"): ["other scope"]}


def test_flush_sends_everything_once():
    sent: list[list[dict]] = []
    buffer = WriteBuffer(flush=sent.append)
    buffer.add(["a", "b"], user_id="u1", agent_id="bot")
    buffer.flush()
    buffer.flush()  # nothing left: no empty request
    assert len(sent) == 1 and [contents(op) for op in sent[0]] == [["a", "b"]]
    assert len(buffer) == 0


def test_a_failed_flush_keeps_the_writes_and_raises():
    def failing(ops: list[dict]) -> None:
        raise MemLayerError("down")

    buffer = WriteBuffer(flush=failing)
    buffer.add(["keep me"], user_id="u1", agent_id="bot")
    with pytest.raises(MemLayerError):
        buffer.flush()
    assert len(buffer) == 1
    assert contents(buffer.take()[0]) == ["keep me"]


def test_flush_without_a_callable_is_an_error():
    buffer = WriteBuffer()
    buffer.add(["x"], user_id="u1", agent_id="bot")
    with pytest.raises(RuntimeError, match="flush"):
        buffer.flush()
    assert len(buffer) == 1


def test_exit_hook_flushes_what_is_left():
    sent: list[list[dict]] = []
    buffer = WriteBuffer(flush=sent.append)
    buffer.add(["left over"], user_id="u1", agent_id="bot")
    _flush_at_exit(lambda: buffer)
    assert [contents(op) for op in sent[0]] == [["left over"]]


def test_exit_hook_logs_a_failure_instead_of_raising(caplog):
    def failing(ops: list[dict]) -> None:
        raise MemLayerError("service unreachable")

    buffer = WriteBuffer(flush=failing)
    buffer.add(["a", "b"], user_id="u1", agent_id="bot")
    with caplog.at_level(logging.ERROR, logger="memlayer_integrations"):
        _flush_at_exit(lambda: buffer)
    assert (
        "could not flush 2 pending memories" in caplog.text and "service unreachable" in caplog.text
    )
    buffer.take()  # leave nothing for the real exit hook


def test_exit_hook_ignores_a_collected_buffer():
    _flush_at_exit(lambda: None)  # the weak reference died: nothing to do, nothing raised


def test_the_exit_hook_does_not_keep_a_buffer_alive():
    import gc
    import weakref

    buffer = WriteBuffer(flush=lambda ops: None)
    ref = weakref.ref(buffer)
    del buffer
    gc.collect()
    assert ref() is None


def test_take_is_bounded_so_a_batch_with_a_recall_always_fits():
    from memlayer_integrations._constants import MAX_BATCH_ITEMS

    buffer = WriteBuffer()
    buffer.add([f"m{i}" for i in range(250)], user_id="u1", agent_id="bot")
    first = buffer.take()
    assert sum(len(op["items"]) for op in first) == MAX_BATCH_ITEMS - 1
    assert [i["content"] for i in first[0]["items"]][:2] == ["m0", "m1"]  # oldest first
    assert len(buffer) == 250 - (MAX_BATCH_ITEMS - 1)


def test_take_respects_the_character_budget_but_always_takes_one():
    buffer = WriteBuffer()
    buffer.add(["x" * 300, "y" * 300, "z"], user_id="u1", agent_id="bot")
    assert [i["content"][0] for i in buffer.take(max_chars=500)[0]["items"]] == ["x"]
    assert [i["content"][0] for i in buffer.take(max_chars=10)[0]["items"]] == ["y"]


def test_flush_sends_in_bounded_requests_and_requeues_only_the_failed_one():
    sent: list[int] = []

    def send(ops):
        n = sum(len(op["items"]) for op in ops)
        if len(sent) == 1:
            raise RuntimeError("boom")
        sent.append(n)

    buffer = WriteBuffer(flush=send)
    buffer.add([f"m{i}" for i in range(250)], user_id="u1", agent_id="bot")
    with pytest.raises(RuntimeError):
        buffer.flush()
    assert sent == [100]
    assert len(buffer) == 150  # the first 100 are stored, not queued again


async def test_aflush_sends_in_bounded_requests_and_requeues_only_the_failed_one():
    sent: list[int] = []

    async def send(ops):
        n = sum(len(op["items"]) for op in ops)
        if len(sent) == 2:
            raise RuntimeError("boom")
        sent.append(n)

    buffer = WriteBuffer()
    buffer.add([f"m{i}" for i in range(250)], user_id="u1", agent_id="bot")
    with pytest.raises(RuntimeError):
        await buffer.aflush(send)
    assert sent == [100, 100] and len(buffer) == 50
    sent.clear()
    await buffer.aflush(send)
    assert sent == [50] and len(buffer) == 0


def test_send_pending_stores_more_than_one_batch_worth():
    stored: list[int] = []

    class Client:
        def remember_many(self, items, *, user_id, agent_id):
            stored.append(len(items))

    buffer = WriteBuffer()
    buffer.add([f"m{i}" for i in range(250)], user_id="u1", agent_id="bot")
    send_pending(Client(), buffer)
    assert sum(stored) == 250 and len(buffer) == 0
