"""W3: load an aggregate from its events (a fresh load), and from a snapshot; ms."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cqrs_lab.bench.data import event_table
from cqrs_lab.bench.domain import Ledger, PostBatch
from cqrs_lab.bench.results import STORES, Result, Size, Target, check, median, result, timed
from cqrs_lab.bench.runner import Run
from cqrs_lab.bench.sites import Places, fresh_site
from cqrs_lab.bench.workloads import Workload
from cqrs_lab.framework import CqrsFramework

T = TypeVar("T")
TARGET = Target("<=", 2.0)
SNAPSHOT_TARGET = Target(">=", 20.0)

W3_LOADS = 21
"""Timed loads per variant in one W3 run (loads only read, so they do not interfere).

Enough that the median is a load on warm statements: psycopg prepares a
statement on the server from its sixth use, and each run has a fresh schema."""


def _timedmedian(fn: Callable[[], T]) -> tuple[float, T]:
    """The median of ``W3_LOADS`` timings of ``fn()``, and its last value."""
    timings = [timed(fn) for _ in range(W3_LOADS)]
    return median([t[0] for t in timings]), timings[-1][1]


def w3_load(places: Places, size: Size) -> tuple[float, float, float]:
    """W3: load an aggregate of ``size.stream`` events: ms without snapshot, with one, raw.

    Each figure is the median of ``W3_LOADS`` loads (one load takes milliseconds).
    """
    n, batch = size.stream, size.batch
    with fresh_site(places) as site:
        store = site.event_store()
        store.import_arrow(event_table(n - 2 * batch, ["w3"]))
        # cache_size=0: every load reads the store, as a fresh process would.
        snapshots = CqrsFramework(Ledger, store, snapshot_every=n - batch, cache_size=0)
        snapshots.execute("w3", PostBatch(n=batch))
        snapshots.execute("w3", PostBatch(n=batch))
        snapshot = store.load_snapshot(Ledger.aggregate_type, "w3")
        check(snapshot is not None and snapshot.version == n - batch, "W3 snapshot is missing")
        plain = CqrsFramework(Ledger, store, cache_size=0)
        full, ledger = _timedmedian(lambda: plain.load("w3"))
        check(ledger.entries == n, f"W3 loaded {ledger.entries} entries, expected {n}")
        fast, ledger = _timedmedian(lambda: snapshots.load("w3"))
        check(ledger.entries == n, f"W3 (snapshot) loaded {ledger.entries} entries, expected {n}")
        store.close()
        raw = site.raw()
        bare, payloads = _timedmedian(lambda: raw.load("w3"))
        check(len(payloads) == n, f"W3 (raw) loaded {len(payloads)} rows, expected {n}")
        raw.close()
    return full * 1000, fast * 1000, bare * 1000


def bench(run: Run, store: str) -> list[Result]:
    n = run.size.stream
    places = run.places(store)
    loads = run.runs(lambda: w3_load(places, run.size))
    full, fast, bare = ([x[i] for x in loads] for i in range(3))
    snapshot_title = f"load an aggregate of {n:,} events, snapshot at {n - run.size.batch:,}"
    return [
        result(
            "W3", store, f"load an aggregate of {n:,} events, no snapshot", "ms", n, full, bare, target=TARGET
        ),
        result(
            "W3",
            store,
            snapshot_title,
            "ms",
            n,
            fast,
            full,
            variant="snapshot",
            baseline_name="framework, no snapshot",
            ratio=median(full) / median(fast),
            ratio_meaning="speed-up over no snapshot",
            target=SNAPSHOT_TARGET,
        ),
    ]


WORKLOAD = Workload("W3", STORES, bench)
