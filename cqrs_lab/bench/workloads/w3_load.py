"""W3: load an aggregate from its events (a fresh load), and from a snapshot; ms."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cqrs_lab.bench.data import event_table
from cqrs_lab.bench.domain import Ledger, PostBatch
from cqrs_lab.bench.results import SQL_STORES, STORES, Result, Size, Target, check, median, result, timed
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


def w3_load(places: Places, size: Size) -> tuple[float, float, float, float | None]:
    """W3: load an aggregate of ``size.stream`` events: ms without snapshot, with one, raw,
    and raw from the snapshot (SQL stores: the snapshot's statement and ``json.loads``).

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
        bare_fast = None
        if places.store in SQL_STORES:
            bare_fast, payloads = _timedmedian(lambda: raw.load_from_snapshot("w3"))
            tail = [p["entry"] for p in payloads[1:]]
            check(
                payloads[0].get("entries") == n - batch and tail == list(range(n - batch + 1, n + 1)),
                f"W3 (raw, snapshot) read a snapshot and {len(tail)} events, expected one at {n - batch}"
                f" and events {n - batch + 1} to {n}",
            )
            bare_fast *= 1000
        raw.close()
    return full * 1000, fast * 1000, bare * 1000, bare_fast


def bench(run: Run, store: str) -> list[Result]:
    n = run.size.stream
    places = run.places(store)
    loads = run.runs(lambda: w3_load(places, run.size))
    full, fast, bare = [x[0] for x in loads], [x[1] for x in loads], [x[2] for x in loads]
    snapshot_title = f"load an aggregate of {n:,} events, snapshot at {n - run.size.batch:,}"
    bare_fast = [x[3] for x in loads if x[3] is not None]
    raw_snapshot: list[Result] = []
    if bare_fast:
        raw_snapshot = [
            result(
                "W3", store, snapshot_title, "ms", n, fast, bare_fast, variant="snapshot raw",
                notes=[
                    "informational: raw is one SELECT of the snapshot and the events after it"
                    " (the Postgres store's), payloads decoded with json.loads"
                ],
            )
        ]  # fmt: skip
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
        *raw_snapshot,
    ]


WORKLOAD = Workload("W3", STORES, bench)
