"""What every workload shares: sizes, targets, the result row, checks and timing."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cqrs_lab.errors import CqrsLabError

__all__ = [
    "SIZES",
    "SQL_STORES",
    "STORES",
    "BenchCheckError",
    "Result",
    "Size",
    "Target",
    "check",
    "interleaved",
    "median",
    "result",
    "timed",
]

STORES = ("memory", "duckdb", "postgres")
SQL_STORES = ("duckdb", "postgres")
T = TypeVar("T")
P = TypeVar("P")


class BenchCheckError(CqrsLabError):
    """A benchmark run did not do what it claims (wrong row count, wrong state)."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise BenchCheckError(f"benchmark sanity check failed: {what}")


@dataclass(frozen=True, slots=True)
class Size:
    """How much work each workload does."""

    name: str
    aggregates: int
    """W1: aggregates, one one-event command each."""
    stream: int
    """W2, W3: events in the one aggregate."""
    batch: int
    """W2: events per command."""
    log: int
    """W4, W6, W8: events in the global log."""
    bulk: int
    """W5: events imported."""
    shared: int
    """W7: aggregates shared by the worker processes."""
    workers: int
    """W7: worker processes."""
    worker_commands: int
    """W7: commands per worker."""
    live_commits: int
    """W9: commits a subscriber in another process receives."""


SIZES: dict[str, Size] = {
    "small": Size("small", 40, 100, 10, 2_000, 20_000, 50, 4, 10, 50),
    "default": Size("default", 2_000, 5_000, 10, 100_000, 1_000_000, 50, 4, 250, 1_000),
    "large": Size("large", 10_000, 10_000, 10, 500_000, 5_000_000, 50, 4, 1_000, 1_000),
}


@dataclass(frozen=True, slots=True)
class Target:
    """``ratio`` must be at least (``>=``) or at most (``<=``) ``value`` on ``stores``."""

    op: str
    value: float
    stores: tuple[str, ...] = STORES

    def met(self, ratio: float) -> bool:
        return ratio >= self.value if self.op == ">=" else ratio <= self.value

    def __str__(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {self.value:g}"


@dataclass(slots=True)
class Result:
    """One row of the results table: one workload (variant) on one store."""

    workload: str
    variant: str
    store: str
    title: str
    unit: str
    count: int
    """Commands or events per run (checked against the store after each run)."""
    framework: float
    runs: list[float]
    baseline: float | None = None
    baseline_name: str = ""
    baseline_runs: list[float] = field(default_factory=list)
    ratio: float | None = None
    ratio_meaning: str = ""
    target: str = ""
    met: bool | None = None
    peak_rss: int | None = None
    """Bytes: the framework run's peak RSS (of its own child process)."""
    baseline_peak_rss: int | None = None
    extra: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    """Wall time of the whole cell (warm-up, runs, setup and checks)."""
    notes: list[str] = field(default_factory=list)
    """What the report prints beside the figures (set by the workload)."""

    def judge(self, target: Target | None) -> Result:
        if target is not None and self.ratio is not None and self.store in target.stores:
            self.target = str(target)
            self.met = target.met(self.ratio)
        return self


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def result(
    workload: str,
    store: str,
    title: str,
    unit: str,
    count: int,
    runs: list[float],
    baseline_runs: list[float] | None = None,
    *,
    target: Target | None = None,
    **fields: Any,
) -> Result:
    """A result from its runs (and its baseline's): medians, and framework ÷ baseline as the ratio."""
    row = Result(workload, fields.pop("variant", ""), store, title, unit, count, median(runs), runs, **fields)
    if baseline_runs is not None:
        row.baseline = median(baseline_runs)
        row.baseline_runs = baseline_runs
        row.baseline_name = row.baseline_name or "raw"
        if row.ratio is None:
            row.ratio = row.framework / row.baseline
            kind = "time" if unit == "ms" else "rate"
            row.ratio_meaning = f"framework ÷ {row.baseline_name} ({kind})"
    return row.judge(target)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds ``fn()`` takes, and its value; garbage is collected first, so a run does not
    pay for a full collection of what earlier runs left behind."""
    gc.collect()
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def interleaved(parts: Sequence[P], sides: Mapping[str, Callable[[P], object]]) -> dict[str, float]:
    """Seconds each side takes to do every part, the sides taking turns part by part, so a
    change in the machine's load (it may be shared) hits every side alike. Which side goes
    first rotates from part to part: work a side leaves to the system (the disk writing back
    what a commit flushed) falls on whoever comes next. Garbage is collected once, first,
    and what exists then is frozen (``gc.freeze``), so a collection during the run only
    visits what the run made and falls on the sides alike."""
    seconds = dict.fromkeys(sides, 0.0)
    order = list(sides.items())
    gc.collect()
    gc.freeze()
    try:
        for turn, part in enumerate(parts):
            for name, fn in order[turn % len(order) :] + order[: turn % len(order)]:
                start = time.perf_counter()
                fn(part)
                seconds[name] += time.perf_counter() - start
    finally:
        gc.unfreeze()
    return seconds
