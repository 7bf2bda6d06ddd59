"""W2: one aggregate grows by commands of several events; events/s against the raw driver."""

from __future__ import annotations

from typing import Any

from cqrs_lab.bench.domain import Ledger, PostBatch, posted
from cqrs_lab.bench.results import SQL_STORES, STORES, Result, Size, Target, check, result, timed
from cqrs_lab.bench.runner import Run
from cqrs_lab.bench.sites import Places, create_tables, fresh_site
from cqrs_lab.bench.workloads import Workload
from cqrs_lab.framework import CqrsFramework

TARGET = Target(">=", 0.7, SQL_STORES)
FLOOR_TARGET = Target(">=", 0.91, ("duckdb",))
"""Within 1.1x of the floor's time: on DuckDB a command on the cached aggregate is its INSERT."""

W2_SNAPSHOT_EVERY = 100
"""The ``snapshot_every`` of W2's informational snapshot variant."""


def w2_stream(places: Places, size: Size, side: str) -> float:
    """W2: one aggregate grows to ``size.stream`` events, ``size.batch`` per command; events/s.

    ``side`` "framework" is the default framework (its aggregate cache on);
    "nocache" is the framework with ``cache_size=0`` (every command replays the
    stream), and "snapshot" that plus ``snapshot_every=W2_SNAPSHOT_EVERY``.
    "raw" is the raw baseline's ``command`` (SELECT the stream, INSERT the rows),
    "floor" its ``floor`` (only the INSERT).
    """
    n, batch = size.stream, size.batch
    commands = n // batch
    with fresh_site(places) as site:
        if side not in ("raw", "floor"):
            store = site.event_store()
            every = W2_SNAPSHOT_EVERY if side == "snapshot" else None
            cache: dict[str, Any] = {} if side == "framework" else {"cache_size": 0}
            fw = CqrsFramework(Ledger, store, snapshot_every=every, **cache)
            command = PostBatch(n=batch)
            seconds, _ = timed(lambda: [fw.execute("w2", command) for _ in range(commands)])
            check(fw.load("w2").entries == commands * batch, "W2 ledger has the wrong number of entries")
            store.close()
        else:
            create_tables(site)
            raw = site.raw()
            prepared = [
                raw.prepare("w2", c * batch + 1, [posted(c * batch + i) for i in range(1, batch + 1)])
                for c in range(commands)
            ]
            if side == "raw":
                seconds, _ = timed(lambda: [raw.command("w2", p) for p in prepared])
            else:
                seconds, _ = timed(lambda: [raw.floor(p) for p in prepared])
            raw.close()
        count = site.count_events()
    check(count == commands * batch, f"W2 ({side}) committed {count} events, expected {commands * batch}")
    return count / seconds


def bench(run: Run, store: str) -> list[Result]:
    """W2 as specified (default settings: the aggregate cache on), the same against the raw
    floor, plus (no target) without the cache, and without it but with a snapshot every
    100 events."""
    n, batch = run.size.stream, run.size.batch
    title = f"one aggregate grows to {n:,} events, {batch} per command"
    places = run.places(store)
    sides = ("framework", "raw", "floor", "nocache", "snapshot")
    rounds = run.runs(lambda: [w2_stream(places, run.size, side) for side in sides])
    plain, raw, floor, nocache, snap = ([r[i] for r in rounds] for i in range(len(sides)))
    return [
        result("W2", store, title, "events/s", n, plain, raw, target=TARGET),
        result(
            "W2", store, title, "events/s", n, plain, floor, variant="floor", baseline_name="raw floor",
            target=FLOOR_TARGET, notes=["floor: only the INSERT of each command's rows, nothing read"],
        ),
        result(
            "W2", store, f"{title}, cache_size=0", "events/s", n, nocache, raw, variant="nocache",
            notes=["informational: the aggregate cache off, every command replays the stream"],
        ),
        result(
            "W2", store, f"{title}, cache_size=0, snapshot_every={W2_SNAPSHOT_EVERY}", "events/s", n,
            snap, raw, variant="snapshot", notes=["informational: snapshots instead of the cache"],
        ),
    ]  # fmt: skip


WORKLOAD = Workload("W2", STORES, bench)
