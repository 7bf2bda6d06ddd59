"""Workloads in child processes: a measured run whose peak RSS is its own, and W7's workers.

The parent writes one JSON task line to the child's stdin; the child prints one
JSON line back (``in_child`` reads it). ``measured`` turns a run function into
the child entry point of a workload that reports peak memory.
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cqrs_lab.bench.results import SIZES, BenchCheckError, Size, check
from cqrs_lab.bench.sites import Places, create_tables, fresh_site

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["child_command", "collect", "in_child", "main", "measured", "spawn_child"]

_STATUS = Path("/proc/self/status")


def _status_kib(key: str) -> int | None:
    if not _STATUS.exists():
        return None
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def _start_memory() -> int:
    """This process's RSS in bytes now, with the peak reset to it where Linux allows.

    Without the reset (other systems) the later peak is ``ru_maxrss``, which may
    include an earlier, higher peak.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return _peak_rss()
    return 1024 * (_status_kib("VmRSS") or 0)


def _peak_rss() -> int:
    """This process's peak RSS in bytes (``VmHWM`` on Linux, else ``ru_maxrss``)."""
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return 1024 * hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def measured(fn: Callable[[Places, Size, str, pa.Table], float]) -> Callable[[dict[str, Any]], int]:
    """The child entry point that runs ``fn`` ``task["runs"]`` times on the task's data file and
    prints the figures with the peak RSS (reset after the data is read)."""

    def run(task: dict[str, Any]) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        places = Places(**task["places"])
        size = SIZES[task["size"]]
        with fresh_site(places) as site:  # load the store's modules before measuring
            create_tables(site)
        data = pq.read_table(task["data"])
        pa.default_memory_pool().release_unused()  # what reading the file needed, not the workload
        gc.collect()
        start = _start_memory()
        runs = [fn(places, size, task["side"], data) for _ in range(task["runs"])]
        figures = {"runs": runs, "peak_rss": _peak_rss(), "start_rss": start, "data_bytes": data.nbytes}
        print(json.dumps(figures))
        return 0

    return run


def main() -> int:
    """Run one workload's task in this (child) process: task JSON on stdin, result JSON out."""
    from cqrs_lab.bench.workloads import registry

    task = json.loads(sys.stdin.readline())
    entry = registry()[task["workload"]].child
    if entry is None:
        raise BenchCheckError(f"{task['workload']} has no child process entry point")
    return entry(task)


def child_command() -> list[str]:
    return [sys.executable, "-c", "import sys; from cqrs_lab.bench.child import main; sys.exit(main())"]


def in_child(task: dict[str, Any]) -> dict[str, Any]:
    """Run ``task`` in a new child process; its JSON result."""
    done = subprocess.run(
        child_command(), input=json.dumps(task) + "\n", capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BenchCheckError(
            f"{task['workload']} ({task['places']['store']}, {task['side']}) failed in its child process:\n"
            + done.stderr[-4000:]
        )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def spawn_child(task: dict[str, Any]) -> subprocess.Popen[str]:
    """A child process running ``task``; it prints "ready", then waits for a line on stdin."""
    proc = subprocess.Popen(child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(task) + "\n")
    proc.stdin.flush()
    check(proc.stdout.readline().strip() == "ready", f"a {task['workload']} child process failed to start")
    return proc


def collect(proc: subprocess.Popen[str], what: str) -> Any:
    """The JSON a child printed last, once it has exited cleanly."""
    assert proc.stdout is not None
    out = proc.stdout.read()
    check(proc.wait() == 0, f"a {what} child process failed (see its error above)")
    return json.loads(out.strip().splitlines()[-1])
