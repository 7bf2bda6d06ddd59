"""W1: one one-event command on each of many new aggregates; commands/s against the raw driver."""

from __future__ import annotations

from cqrs_lab.bench.domain import Ledger, PostBatch, posted
from cqrs_lab.bench.results import SQL_STORES, STORES, Result, Size, Target, check, timed
from cqrs_lab.bench.runner import Run, rate_pair
from cqrs_lab.bench.sites import Places, create_tables, fresh_site
from cqrs_lab.bench.workloads import Workload
from cqrs_lab.framework import CqrsFramework

TARGET = Target(">=", 0.7, SQL_STORES)


def w1_commands(places: Places, size: Size, side: str) -> float:
    """One run: ``size.aggregates`` commands through the framework (``side`` "framework") or
    the raw baseline ("raw"), on a fresh site; commands/s."""
    n = size.aggregates
    ids = [f"w1-{i}" for i in range(n)]
    with fresh_site(places) as site:
        if side == "framework":
            store = site.event_store()
            fw = CqrsFramework(Ledger, store)
            command = PostBatch(n=1)
            seconds, _ = timed(lambda: [fw.execute(i, command) for i in ids])
            store.close()
        else:
            create_tables(site)
            raw = site.raw()
            prepared = [(i, raw.prepare(i, 1, [posted(1)])) for i in ids]
            seconds, _ = timed(lambda: [raw.command(i, p) for i, p in prepared])
            raw.close()
        count = site.count_events()
    check(count == n, f"W1 ({side}) committed {count} events, expected {n}")
    return n / seconds


def bench(run: Run, store: str) -> list[Result]:
    n = run.size.aggregates
    title = f"{n:,} aggregates, one command (one event) each"
    return rate_pair(run, store, "W1", title, "commands/s", n, w1_commands, TARGET)


WORKLOAD = Workload("W1", STORES, bench)
