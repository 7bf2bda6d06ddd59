"""W5: bulk import of an event table; events/s and memory, in a child process (peak RSS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cqrs_lab.bench.child import measured
from cqrs_lab.bench.report import mb
from cqrs_lab.bench.results import SQL_STORES, Result, Size, Target, check, result, timed
from cqrs_lab.bench.runner import Run
from cqrs_lab.bench.sites import Places, create_tables, fresh_site
from cqrs_lab.bench.workloads import Workload

if TYPE_CHECKING:
    import pyarrow as pa

TARGET = Target(">=", 0.8, SQL_STORES)
MEMORY_TARGET = Target("<=", 2.0, SQL_STORES)


def w5_import(places: Places, size: Size, side: str, data: pa.Table) -> float:
    """W5: bulk import of ``size.bulk`` events; events/s."""
    n = int(data.num_rows)
    with fresh_site(places) as site:
        if side == "framework":
            store = site.event_store()
            seconds, imported = timed(lambda: store.import_arrow(data))
            store.close()
        else:
            create_tables(site)
            raw = site.raw()
            seconds, imported = timed(lambda: raw.bulk(data))
            raw.close()
        count = site.count_events()
    check(imported == n and count == n, f"W5 ({side}) imported {imported}, stored {count}, expected {n}")
    return n / seconds


def bench(run: Run, store: str) -> list[Result]:
    n = run.size.bulk
    fw = run.child("W5", store, "framework", "bulk")
    raw = run.child("W5", store, "raw", "bulk")
    # The table itself, plus everything the import needed above it.
    size = fw["data_bytes"]
    used, raw_used = (size + r["peak_rss"] - r["start_rss"] for r in (fw, raw))
    rss = {"peak_rss": fw["peak_rss"], "baseline_peak_rss": raw["peak_rss"]}
    mib = 1024 * 1024
    return [
        result(
            "W5",
            store,
            f"bulk import of {n:,} events",
            "events/s",
            n,
            fw["runs"],
            raw["runs"],
            extra={"arrow_bytes": size},
            target=TARGET,
            notes=[f"raw peak RSS {mb(raw['peak_rss'])}", f"Arrow size {mb(size)}"],
            **rss,
        ),
        result(
            "W5",
            store,
            f"bulk import of {n:,} events: memory (Arrow table + peak RSS growth during import)",
            "MB",
            n,
            [used / mib],
            [size / mib],
            variant="memory",
            baseline_name="Arrow table size",
            ratio=used / size,
            ratio_meaning="memory used ÷ Arrow size",
            extra={"arrow_bytes": size, "start_rss": fw["start_rss"], "raw_used_bytes": raw_used},
            target=MEMORY_TARGET,
            notes=[f"raw baseline: {mb(raw_used)}"],
            **rss,
        ),
    ]


WORKLOAD = Workload("W5", SQL_STORES, bench, measured(w5_import))
