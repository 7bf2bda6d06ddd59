"""W8: the events DataFrame of the global log (DuckDB); ms against DuckDB's ``.df()``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cqrs_lab.bench.child import measured
from cqrs_lab.bench.report import mb
from cqrs_lab.bench.results import STORES, Result, Size, Target, check, result, timed
from cqrs_lab.bench.runner import Run
from cqrs_lab.bench.sites import Places, fresh_site
from cqrs_lab.bench.workloads import Workload

if TYPE_CHECKING:
    import pyarrow as pa

TARGET = Target("<=", 2.0, STORES)


def w8_frame(places: Places, size: Size, side: str, data: pa.Table) -> float:
    """W8: the events DataFrame of ``size.log`` events; ms."""
    n = int(data.num_rows)
    with fresh_site(places) as site:
        store = site.event_store()
        store.import_arrow(data)
        if side == "framework":
            from cqrs_lab.notebook import events_frame

            seconds, frame = timed(lambda: events_frame(store))
            store.close()
        else:
            store.close()
            raw = site.raw()
            seconds, frame = timed(raw.frame)
            raw.close()
    check(len(frame) == n, f"W8 ({side}) frame has {len(frame)} rows, expected {n}")
    return seconds * 1000


def bench(run: Run, store: str) -> list[Result]:
    n = run.size.log
    fw = run.child("W8", store, "framework", "log")
    raw = run.child("W8", store, "raw", "log")
    title = f"events DataFrame of {n:,} events"
    rss = {"peak_rss": fw["peak_rss"], "baseline_peak_rss": raw["peak_rss"]}
    notes = [f"raw peak RSS {mb(raw['peak_rss'])}"]
    return [result("W8", store, title, "ms", n, fw["runs"], raw["runs"], target=TARGET, notes=notes, **rss)]


WORKLOAD = Workload("W8", ("duckdb",), bench, measured(w8_frame))
