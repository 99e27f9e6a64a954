"""Run benchmarks one after another, each against a fresh embedded server, and report."""

from __future__ import annotations

import gc
import time
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from . import (
    bulk,
    concurrency,
    isolation,
    load,
    locomo,
    mcp_tools,
    overhead,
    remembering,
    requests_per_turn,
    scale,
    semantic,
    store,
    workers,
)
from ._backends import Backends
from ._harness import Context, Skip
from ._report import cpu_shares, machine_info, versions, write_report

#: In report order. Each module has NAME, TITLE, run(ctx), targets(result), render(result).
BENCHMARKS = {
    m.NAME: m
    for m in (
        requests_per_turn,
        remembering,
        overhead,
        scale,
        bulk,
        concurrency,
        workers,
        load,
        locomo,
        isolation,
        mcp_tools,
        semantic,
        store,
    )
}


def run_one(
    name: str, size: str, echo: bool = False, backends: Backends | None = None
) -> dict[str, Any]:
    """Run one benchmark on a fresh server; a failure is recorded, not raised."""
    from memlayer_integrations.server import LocalMemLayerServer

    module = BENCHMARKS[name]
    entry: dict[str, Any] = {"title": module.TITLE}
    start = time.perf_counter()
    gc.collect()
    try:
        with LocalMemLayerServer(db_path=None) as server:
            ctx = Context(size=size, server=server, backends=backends or Backends())
            try:
                result = module.run(ctx)
            finally:
                ctx.close()
        entry["result"] = result
        entry["targets"] = module.targets(result)
    except Skip as exc:
        entry["skipped"] = str(exc)
    except Exception:  # recorded in the report, and the run exits 1
        entry["error"] = traceback.format_exc()
    entry["duration_s"] = round(time.perf_counter() - start, 2)
    if echo:
        state = "failed" if "error" in entry else "skipped" if "skipped" in entry else "done"
        print(f"  {name}: {state} in {entry['duration_s']:.1f} s", flush=True)
        if "error" in entry:
            print(entry["error"], flush=True)
    return entry


def run_all(
    *,
    size: str,
    only: Sequence[str] | None = None,
    out_dir: Path,
    command: str = "python -m benchmarks",
    echo: bool = False,
    backends: Backends | None = None,
) -> tuple[dict[str, Any], Path, Path]:
    """Run the benchmarks (all, or ``only``) and write the report; return it and its paths.

    ``backends`` (SQLite alone by default) are closed at the end: their databases dropped."""
    backends = backends or Backends()
    started = datetime.now(timezone.utc)
    start = time.perf_counter()
    cpu_start = psutil.cpu_times()
    report: dict[str, Any] = {
        "command": command,
        "size": size,
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": versions(),
        "backends": list(backends.names),
        "benchmarks": {},
    }
    try:
        for name in BENCHMARKS:
            if only and name not in only:
                continue
            if echo:
                print(f"running {name} ({size})", flush=True)
            report["benchmarks"][name] = run_one(name, size, echo=echo, backends=backends)
    finally:
        backends.close()
    report["duration_s"] = round(time.perf_counter() - start, 1)
    report["machine"]["cpu_during_run"] = cpu_shares(cpu_start, psutil.cpu_times())
    md_path, json_path = write_report(report, BENCHMARKS, out_dir)
    return report, md_path, json_path
