"""``python -m benchmarks``: run every benchmark and write the report.

Usage::

    python -m benchmarks                 # full size, about 4 minutes on 2 cores
    python -m benchmarks --quick         # tiny sizes, well under a minute
    python -m benchmarks --only scale,locomo --out /tmp/bench
    python -m benchmarks --only scale,concurrency --backend postgres

The benchmarks that start their own servers (scale, concurrency, workers) run on SQLite and
PostgreSQL side by side when a PostgreSQL is at hand (``--backend auto``): the server of
``--postgres-url`` / ``$MEMLAYER_BENCH_POSTGRES_URL``, else a private cluster started for the
run (PostgreSQL's binaries installed); see ``_backends.py``.

Writes ``report.md`` and ``report.json`` to ``benchmarks/results/`` (or ``--out``). Exits 1
if a benchmark failed (its traceback is in the report; the others still run).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from ._backends import POSTGRES_URL_ENV, for_run
from ._harness import SIZES
from ._runner import BENCHMARKS, run_all

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (same as --size quick)")
    parser.add_argument(
        "--size", choices=SIZES, default=None, help="tiny is what the test suite runs"
    )
    parser.add_argument(
        "--only", default=None, help="comma-separated benchmarks to run: " + ",".join(BENCHMARKS)
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="directory for report.md and report.json"
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "sqlite", "postgres", "both"),
        default="auto",
        help="storage backend(s) of scale, concurrency and workers (auto: both if PostgreSQL is at hand)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_URL_ENV) or None,
        help=f"a PostgreSQL server to create the benchmark databases on (default ${POSTGRES_URL_ENV}; "
        "else a private cluster is started)",
    )
    args = parser.parse_args(argv)

    size = args.size or ("quick" if args.quick else "full")
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    if only:
        unknown = sorted(set(only) - set(BENCHMARKS))
        if unknown:
            parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    given = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python -m benchmarks", *([shlex.join(given)] if given else [])])
    report, md_path, json_path = run_all(
        size=size,
        only=only,
        out_dir=args.out,
        command=command,
        echo=True,
        backends=for_run(args.backend, args.postgres_url),
    )
    print(f"wrote {md_path} and {json_path} in {report['duration_s']:.1f} s")
    return 1 if any("error" in b for b in report["benchmarks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
