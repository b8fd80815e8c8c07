"""Benchmarks of b24-dagster against the peer clients, on one emulator, in one run.

``python -m b24_dagster.bench`` (or ``python3 dev.py bench``) starts the emulator, runs each
scenario for this project and for fast_bitrix24 and b24pysdk (each client in its own process,
alternating, repeated), prints a table with medians, min and max and the ratios against the
best peer, and writes ``bench_results/latest.md``, ``latest.png`` and ``latest.json``.
"""
