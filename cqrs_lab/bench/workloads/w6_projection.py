"""W6: rebuild a projection over the global log with checkpoints; events/s and peak RSS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cqrs_lab.bench.child import measured
from cqrs_lab.bench.data import log_ids
from cqrs_lab.bench.domain import LedgerTotals
from cqrs_lab.bench.results import STORES, Result, Size, check, result, timed
from cqrs_lab.bench.runner import Run
from cqrs_lab.bench.sites import Places, fresh_site
from cqrs_lab.bench.workloads import Workload
from cqrs_lab.projections import Projection

if TYPE_CHECKING:
    import pyarrow as pa


def w6_projection(places: Places, size: Size, side: str, data: pa.Table) -> float:
    """W6: rebuild a projection over ``size.log`` events with checkpoints; events/s."""
    n = int(data.num_rows)
    with fresh_site(places) as site:
        store = site.event_store()
        store.import_arrow(data)
        views = site.query_store(store)
        projection = Projection("bench_totals", store, views, [LedgerTotals])
        seconds, count = timed(projection.rebuild)
        check(count == n, f"W6 applied {count} events, expected {n}")
        check(projection.position == n, f"W6 checkpoint is {projection.position}, expected {n}")
        total = sum(views.load(LedgerTotals, i).payload.entries for i in log_ids(n))
        check(total == n, f"W6 views count {total} entries, expected {n}")
        views.close()
        store.close()
    return n / seconds


def bench(run: Run, store: str) -> list[Result]:
    n = run.size.log
    fw = run.child("W6", store, "framework", "log")
    title = f"rebuild a projection over {n:,} events with checkpoints"
    extra = {"start_rss": fw["start_rss"]}
    return [result("W6", store, title, "events/s", n, fw["runs"], peak_rss=fw["peak_rss"], extra=extra)]


WORKLOAD = Workload("W6", STORES, bench, measured(w6_projection))
