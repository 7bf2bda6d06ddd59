"""W4: read the global log as envelopes; events/s against the store's paged SELECT."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cqrs_lab.bench.results import SQL_STORES, STORES, Result, Target, check, result, timed
from cqrs_lab.bench.runner import Run
from cqrs_lab.bench.sites import Places, fresh_site
from cqrs_lab.bench.workloads import Workload

if TYPE_CHECKING:
    import pyarrow as pa

TARGET = Target(">=", 0.5, SQL_STORES)


def w4_read_all(places: Places, data: pa.Table) -> tuple[float, float]:
    """W4: read the whole log (``data``) as envelopes, and with a raw paged SELECT; events/s."""
    n = int(data.num_rows)
    with fresh_site(places) as site:
        store = site.event_store()
        store.import_arrow(data)
        seconds, count = timed(lambda: sum(1 for _ in store.read_all()))
        check(count == n, f"W4 read {count} events, expected {n}")
        store.close()
        raw = site.raw()
        bare, count = timed(lambda: raw.read_all(1000))
        check(count == n, f"W4 (raw) read {count} rows, expected {n}")
        raw.close()
    return n / seconds, n / bare


def bench(run: Run, store: str) -> list[Result]:
    n = run.size.log
    places, data = run.places(store), run.table("log")
    rates = run.runs(lambda: w4_read_all(places, data))
    title = f"read the global log of {n:,} events as envelopes"
    framework, raw = [r[0] for r in rates], [r[1] for r in rates]
    return [result("W4", store, title, "events/s", n, framework, raw, target=TARGET)]


WORKLOAD = Workload("W4", STORES, bench)
