"""W1: one one-event command on each of many new aggregates, then one more on each (warm).

The first pass is measured against the raw baseline (SELECT the stream, INSERT
the row); the second, on aggregates the framework has cached, against the raw
floor (only the INSERT): what the engine itself needs for one command.
"""

from __future__ import annotations

from cqrs_lab.bench.domain import Ledger, PostBatch, posted
from cqrs_lab.bench.results import SQL_STORES, STORES, Result, Size, Target, check, result, timed
from cqrs_lab.bench.runner import Run
from cqrs_lab.bench.sites import Places, create_tables, fresh_site
from cqrs_lab.bench.workloads import Workload
from cqrs_lab.framework import CqrsFramework

TARGET = Target(">=", 0.7, SQL_STORES)
FLOOR_TARGET = Target(">=", 0.91, ("duckdb",))
"""Within 1.1x of the floor's time: on DuckDB a command on a cached aggregate is its INSERT."""


def w1_commands(places: Places, size: Size, side: str) -> tuple[float, float]:
    """One run on a fresh site: ``size.aggregates`` commands on new aggregates, then one more
    on each; both rates in commands/s. ``side`` "framework" runs them through the framework,
    "raw" the raw baseline (its ``command`` first, its ``floor`` second)."""
    n = size.aggregates
    ids = [f"w1-{i}" for i in range(n)]
    with fresh_site(places) as site:
        if side == "framework":
            store = site.event_store()
            fw = CqrsFramework(Ledger, store)
            command = PostBatch(n=1)
            first, _ = timed(lambda: [fw.execute(i, command) for i in ids])
            second, _ = timed(lambda: [fw.execute(i, command) for i in ids])
            store.close()
        else:
            create_tables(site)
            raw = site.raw()
            news = [(i, raw.prepare(i, 1, [posted(1)])) for i in ids]
            warm = [raw.prepare(i, 2, [posted(2)]) for i in ids]
            first, _ = timed(lambda: [raw.command(i, p) for i, p in news])
            second, _ = timed(lambda: [raw.floor(p) for p in warm])
            raw.close()
        count = site.count_events()
    check(count == 2 * n, f"W1 ({side}) committed {count} events, expected {2 * n}")
    return n / first, n / second


def bench(run: Run, store: str) -> list[Result]:
    n = run.size.aggregates
    places = run.places(store)
    rounds = run.runs(
        lambda: (w1_commands(places, run.size, "framework"), w1_commands(places, run.size, "raw"))
    )
    title = f"{n:,} aggregates, one command (one event) each"
    warm = f"{title}, then one more on each (the aggregate cached)"
    return [
        result("W1", store, title, "commands/s", n, [r[0][0] for r in rounds], [r[1][0] for r in rounds],
               target=TARGET),
        result("W1", store, warm, "commands/s", n, [r[0][1] for r in rounds], [r[1][1] for r in rounds],
               variant="warm", baseline_name="raw floor", target=FLOOR_TARGET,
               notes=["floor: only the INSERT of the command's row, nothing read"]),
    ]  # fmt: skip


WORKLOAD = Workload("W1", STORES, bench)
