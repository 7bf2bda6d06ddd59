"""The workloads of ``cqrs-lab bench``, one module each, found by their file names.

A workload is a module ``w<N>_<what>.py`` in this package that defines
``WORKLOAD = Workload("W<N>", ...)``: which stores it runs on, the function that
runs it on one store and returns its result rows (``bench``), and, if it runs
in a child process, that process's entry point (``child``). Adding a module is
all it takes: ``cqrs-lab bench --workloads`` offers it, the runner plans it and
the report prints its rows, in number order. Read ``w1_commands.py`` first: a
run on a fresh site, checked, timed against its raw baseline.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from cqrs_lab.errors import ConfigurationError

if TYPE_CHECKING:
    from cqrs_lab.bench.results import Result
    from cqrs_lab.bench.runner import Run

__all__ = ["Workload", "registry"]

_MODULE = re.compile(r"w(\d+)_\w+")


@dataclass(frozen=True)
class Workload:
    """One workload: ``bench(run, store)`` gives its result rows on ``store``."""

    id: str
    stores: tuple[str, ...]
    bench: Callable[[Run, str], list[Result]]
    child: Callable[[dict[str, Any]], int] | None = None
    """Entry point in a child process: reads its task, prints one JSON line, returns the exit code."""


@cache
def registry() -> dict[str, Workload]:
    """Every workload of this package by id, in number order (W1, W2, ..., W10)."""
    found: list[tuple[int, Workload]] = []
    for info in pkgutil.iter_modules(__path__):
        match = _MODULE.fullmatch(info.name)
        if match is None:
            continue
        workload = importlib.import_module(f"{__name__}.{info.name}").WORKLOAD
        if workload.id != f"W{match.group(1)}":
            raise ConfigurationError(
                f"{info.name}.py defines {workload.id}; its file name says W{match.group(1)}"
            )
        found.append((int(match.group(1)), workload))
    return {w.id: w for _, w in sorted(found, key=lambda pair: pair[0])}
