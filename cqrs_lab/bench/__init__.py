"""The benchmark suite behind ``cqrs-lab bench``.

Each workload (W1-W8; W9-W11 measure live reading, workers and asyncio on
PostgreSQL) runs against the chosen stores and, where it has one, against a
*raw baseline*: the least work a correct implementation must do,
written straight against the driver with the rows already serialized, on the
tables the store itself created (so the comparison is apples to apples). Each
figure is the median of ``--repeat`` runs after one warm-up run; every run gets
a fresh DuckDB file or Postgres schema, and checks its own outcome (row counts,
loaded state), raising ``BenchCheckError`` when it is wrong. W9 (commit-to-delivery
latency of a subscriber in another process), W10 (projection workers in 1 or 2
processes) and W11 (the asyncio framework) have no raw baseline: W9 compares
NOTIFY with polling alone, W10 two workers with one, W11 the asyncio framework
with 50 tasks to the sync one with 4 threads.

The modules, in reading order:

- ``domain``: the benchmark domain (a ``Ledger`` that posts numbered entries);
- ``data``: event tables to import, rows serialized as the framework writes them;
- ``results``: sizes, targets, the ``Result`` row, checks and timing;
- ``baselines``: the raw baselines, one class per store;
- ``sites``: a fresh database per run, with the store and raw access to its tables;
- ``workloads``: one module per workload (``workloads/w1_commands.py`` is W1);
- ``runner`` (and ``child`` for runs in a child process): plans and runs the cells;
- ``report``: the Markdown table and JSON; ``cli``: the command line.

To add a workload, add one module ``workloads/w<N>_<what>.py`` defining
``WORKLOAD = Workload("W<N>", stores, bench)`` (see ``workloads/__init__.py``);
nothing else needs to change.
"""

from __future__ import annotations

from cqrs_lab.bench.cli import add_arguments, main, run_from_args
from cqrs_lab.bench.domain import Ledger, LedgerTotals, PostBatch, Posted
from cqrs_lab.bench.report import format_table
from cqrs_lab.bench.results import SIZES, STORES, BenchCheckError, Result, Size
from cqrs_lab.bench.runner import plan, run_bench
from cqrs_lab.bench.workloads import registry

__all__ = [
    "SIZES",
    "STORES",
    "WORKLOADS",
    "BenchCheckError",
    "Ledger",
    "LedgerTotals",
    "PostBatch",
    "Posted",
    "Result",
    "Size",
    "add_arguments",
    "format_table",
    "main",
    "plan",
    "run_bench",
    "run_from_args",
]

WORKLOADS = tuple(registry())
"""Every workload id, in number order."""
