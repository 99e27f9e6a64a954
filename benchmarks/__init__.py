"""Benchmarks of the MemLayer integrations: requests per turn, adapter overhead, server scale,
concurrency, a mixed load test and recall quality on LoCoMo.

Run them all with ``python -m benchmarks`` (``--quick`` for small sizes); the report is
written to ``benchmarks/results/report.md`` and ``report.json``. Each benchmark is a module
with ``run(ctx)``, ``targets(result)`` and ``render(result)``; see ``_harness.py``.
"""
