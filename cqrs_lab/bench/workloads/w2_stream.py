"""W2: one aggregate grows by commands of several events; events/s against the raw driver.

Five sides, each on a database of its own, take turns every ``CHUNK`` commands:
the default framework (its aggregate cache on), the raw baseline (SELECT the
stream, INSERT the rows), the raw floor (only the INSERT), and, for information,
the framework without the cache and without it but with snapshots.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from cqrs_lab.bench.domain import Ledger, PostBatch, posted
from cqrs_lab.bench.results import SQL_STORES, STORES, Result, Size, Target, check, interleaved, result
from cqrs_lab.bench.runner import Run
from cqrs_lab.bench.sites import Places, create_tables, fresh_site
from cqrs_lab.bench.workloads import Workload
from cqrs_lab.framework import CqrsFramework

TARGET = Target(">=", 0.7, SQL_STORES)
FLOOR_TARGET = Target(">=", 0.91, ("duckdb",))
"""Within 1.1x of the floor's time: on DuckDB a command on the cached aggregate is its INSERT."""
W2_SNAPSHOT_EVERY = 100
"""The ``snapshot_every`` of W2's informational snapshot variant."""
CHUNK = 10
FRAMEWORKS: dict[str, dict[str, Any]] = {
    "framework": {},
    "nocache": {"cache_size": 0},
    "snapshot": {"cache_size": 0, "snapshot_every": W2_SNAPSHOT_EVERY},
}
RAW = ("raw", "floor")


def w2_stream(places: Places, size: Size) -> dict[str, float]:
    """One run: on each side, one aggregate grows to ``size.stream`` events, ``size.batch`` per
    command; events/s per side."""
    n, batch = size.stream, size.batch
    commands = n // batch
    chunks = [range(c, min(c + CHUNK, commands)) for c in range(0, commands, CHUNK)]
    command = PostBatch(n=batch)
    with ExitStack() as stack:
        sites = {side: stack.enter_context(fresh_site(places)) for side in (*FRAMEWORKS, *RAW)}
        stores = {side: sites[side].event_store() for side in FRAMEWORKS}
        frameworks = {side: CqrsFramework(Ledger, stores[side], **FRAMEWORKS[side]) for side in FRAMEWORKS}
        for side in RAW:
            create_tables(sites[side])
        raw, floor = (sites[side].raw() for side in RAW)
        prepared = [
            raw.prepare("w2", c * batch + 1, [posted(c * batch + i) for i in range(1, batch + 1)])
            for c in range(commands)
        ]

        def framework(side: str) -> Any:
            fw = frameworks[side]
            return lambda part: [fw.execute("w2", command) for _ in part]

        seconds = interleaved(
            chunks,
            {
                **{side: framework(side) for side in FRAMEWORKS},
                "raw": lambda part: [raw.command("w2", prepared[c]) for c in part],
                "floor": lambda part: [floor.floor(prepared[c]) for c in part],
            },
        )
        for side, fw in frameworks.items():
            entries = fw.load("w2").entries
            check(entries == commands * batch, f"W2 ({side}) ledger has {entries} entries")
            stores[side].close()
        raw.close()
        floor.close()
        counts = {side: site.count_events() for side, site in sites.items()}
    for side, count in counts.items():
        check(count == commands * batch, f"W2 ({side}) committed {count} events, expected {commands * batch}")
    return {side: commands * batch / s for side, s in seconds.items()}


def bench(run: Run, store: str) -> list[Result]:
    """W2 as specified (default settings: the aggregate cache on), the same against the raw
    floor, plus (no target) without the cache, and without it but with a snapshot every
    100 events."""
    n, batch = run.size.stream, run.size.batch
    title = f"one aggregate grows to {n:,} events, {batch} per command"
    places = run.places(store)
    rounds = run.runs(lambda: w2_stream(places, run.size))
    plain, raw, floor, nocache, snap = (
        [r[side] for r in rounds] for side in ("framework", "raw", "floor", "nocache", "snapshot")
    )
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
