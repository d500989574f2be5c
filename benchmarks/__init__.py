"""Benchmarks: ``python -m benchmarks`` (or ``make bench``) prints a table; see docs/performance.md."""
