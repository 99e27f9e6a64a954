"""What every benchmark shares: sizes, the embedded server, request counting and statistics.

A benchmark is a module with ``NAME``, ``TITLE``, ``run(ctx) -> dict`` and
``render(result) -> str``. ``run`` returns only JSON-serializable data (the figures);
``render`` turns them into the Markdown section of the report. Keeping the two apart lets the
test suite check the figures without parsing Markdown.
"""

from __future__ import annotations

import math
import os
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

from memlayer_integrations import MemLayerClient

from ._backends import Backends

__all__ = [
    "SIZES",
    "AsyncCountingTransport",
    "Context",
    "CountingTransport",
    "Skip",
    "env_path",
    "fmt",
    "md_table",
    "percentile",
    "rss_mib",
    "summarize_ms",
    "verdict",
]


class Skip(Exception):
    """Raised by a benchmark that cannot run here (its data is missing); not a failure."""


#: The three sizes. ``tiny`` is what the test suite runs; ``quick`` is ``--quick``.
SIZES = ("tiny", "quick", "full")


@dataclass
class Context:
    """What a benchmark gets: its size, a server to talk to and a way to make sync clients.

    ``server`` is a started :class:`LocalMemLayerServer` (in this process). Every benchmark
    creates its own key (its own account), so figures never mix. ``backends`` are the
    storage backends the benchmarks that start their own servers run on (``_backends.py``).
    """

    size: str
    server: Any
    backends: Backends = field(default_factory=Backends)
    _http: list[Any] = field(default_factory=list, repr=False)

    def pick(self, tiny: Any, quick: Any, full: Any) -> Any:
        """The value for this run's size."""
        return {"tiny": tiny, "quick": quick, "full": full}[self.size]

    def new_key(self) -> str:
        return self.server.create_key(plan="unlimited")

    def client(self, key: str | None = None, *, counter: Counter | None = None) -> MemLayerClient:
        """A sync client on the embedded server, counting its requests into ``counter``."""
        transport: httpx.BaseTransport = httpx.HTTPTransport()
        if counter is not None:
            transport = CountingTransport(transport, counter)
        http = httpx.Client(transport=transport)
        self._http.append(http)
        return MemLayerClient(
            api_key=key or self.new_key(), base_url=self.server.url, http_client=http
        )

    def close(self) -> None:
        """Close the HTTP connections of every client made here."""
        for http in self._http:
            http.close()
        self._http.clear()


def _route(request: httpx.Request) -> str:
    """``POST /v1/memories/search`` style label; memory ids are folded into ``{id}``."""
    parts = request.url.path.split("/")
    parts = ["{id}" if p.startswith("mem_") else p for p in parts]
    return f"{request.method} {'/'.join(parts)}"


class CountingTransport(httpx.BaseTransport):
    """Counts every request that reaches the wire, by route, then sends it on.

    Counting here (and not in the client) counts what an adapter really costs: retries,
    pagination and batch requests included.
    """

    def __init__(self, inner: httpx.BaseTransport, counter: Counter) -> None:
        self._inner = inner
        self.counter = counter

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.counter[_route(request)] += 1
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class AsyncCountingTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`CountingTransport`."""

    def __init__(self, inner: httpx.AsyncBaseTransport, counter: Counter) -> None:
        self._inner = inner
        self.counter = counter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.counter[_route(request)] += 1
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


# -- statistics --------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """n, mean, p50, p95, p99 and max of durations given in seconds, in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "mean_ms": round(statistics.fmean(ms), 4),
        "p50_ms": round(percentile(ms, 50), 4),
        "p95_ms": round(percentile(ms, 95), 4),
        "p99_ms": round(percentile(ms, 99), 4),
        "max_ms": round(max(ms), 4),
    }


def rss_mib() -> float:
    """Resident memory of this process (client and embedded server), in MiB."""
    return round(psutil.Process().memory_info().rss / 2**20, 1)


def env_path(var: str, default: str) -> str:
    """A path from ``$var`` if set, else ``default`` (relative to the repository root)."""
    value = os.environ.get(var)
    if value:
        return value
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.normpath(os.path.join(root, default))


# -- Markdown ----------------------------------------------------------------------------


def fmt(value: Any, digits: int = 2) -> str:
    """A figure as report text: floats rounded, ``None`` as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** (-digits):
            return f"{value:.{digits}g}"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 2) -> str:
    """A Markdown table; cells go through :func:`fmt`."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(c, digits) for c in row) + " |")
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"
