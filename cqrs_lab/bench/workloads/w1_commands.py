"""W1: one one-event command on each of many new aggregates, then one more on each (warm).

The first pass is measured against the raw baseline (SELECT the stream, INSERT
the row); the second, on aggregates the framework has cached, against the raw
floor (only the INSERT): what the engine itself needs for one command. The
framework and the baseline run on databases of their own, taking turns every
``CHUNK`` commands.
"""

from __future__ import annotations

from collections.abc import Sequence

from cqrs_lab.bench.domain import Ledger, PostBatch, posted
from cqrs_lab.bench.results import SQL_STORES, STORES, Result, Size, Target, check, interleaved, result
from cqrs_lab.bench.runner import Run
from cqrs_lab.bench.sites import Places, create_tables, fresh_site
from cqrs_lab.bench.workloads import Workload
from cqrs_lab.framework import CqrsFramework

TARGET = Target(">=", 0.7, SQL_STORES)
FLOOR_TARGET = Target(">=", 0.91, ("duckdb",))
"""Within 1.1x of the floor's time: on DuckDB a command on a cached aggregate is its INSERT."""
CHUNK = 50


def w1_commands(places: Places, size: Size) -> dict[str, tuple[float, float]]:
    """One run on fresh sites: ``size.aggregates`` commands on new aggregates, then one more on
    each; both rates in commands/s, for the framework (its cache holds every aggregate) and
    for the raw baseline (its ``command`` first, its ``floor`` second)."""
    n = size.aggregates
    ids = [f"w1-{i}" for i in range(n)]
    chunks = [ids[i : i + CHUNK] for i in range(0, n, CHUNK)]
    command = PostBatch(n=1)
    with fresh_site(places) as site, fresh_site(places) as raw_site:
        store = site.event_store()
        fw = CqrsFramework(Ledger, store, cache_size=max(n, 256))
        create_tables(raw_site)
        raw = raw_site.raw()
        new = {i: raw.prepare(i, 1, [posted(1)]) for i in ids}
        warm = {i: raw.prepare(i, 2, [posted(2)]) for i in ids}

        def execute(part: Sequence[str]) -> None:
            for i in part:
                fw.execute(i, command)

        def first(part: Sequence[str]) -> None:
            for i in part:
                raw.command(i, new[i])

        def second(part: Sequence[str]) -> None:
            for i in part:
                raw.floor(warm[i])

        news = interleaved(chunks, {"framework": execute, "raw": first})
        cached = interleaved(chunks, {"framework": execute, "raw": second})
        store.close()
        raw.close()
        counts = {"framework": site.count_events(), "raw": raw_site.count_events()}
    for side, count in counts.items():
        check(count == 2 * n, f"W1 ({side}) committed {count} events, expected {2 * n}")
    return {side: (n / news[side], n / cached[side]) for side in news}


def bench(run: Run, store: str) -> list[Result]:
    n = run.size.aggregates
    places = run.places(store)
    rounds = run.runs(lambda: w1_commands(places, run.size))
    title = f"{n:,} aggregates, one command (one event) each"
    warm = f"{title}, then one more on each (the aggregate cached)"
    fw, raw = ([r[side] for r in rounds] for side in ("framework", "raw"))
    return [
        result("W1", store, title, "commands/s", n, [f[0] for f in fw], [r[0] for r in raw], target=TARGET),
        result(
            "W1", store, warm, "commands/s", n, [f[1] for f in fw], [r[1] for r in raw], variant="warm",
            baseline_name="raw floor", target=FLOOR_TARGET,
            notes=["floor: only the INSERT of the command's row, nothing read"],
        ),
    ]  # fmt: skip


WORKLOAD = Workload("W1", STORES, bench)
