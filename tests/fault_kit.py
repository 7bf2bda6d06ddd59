"""What the fault tests (``tests/test_faults_*.py``) share: a small domain, rows to
import, a tmpfs of a test's own, and a process killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cqrs_lab import Event, EventEnvelope

T0 = datetime(2024, 5, 1, tzinfo=UTC)
BOX = "faults.Box"
REQUIRE_FAULTS = "CQRS_LAB_REQUIRE_FAULTS"


class Note(Event):
    event_type = "faults.Note"
    text: str


class Part(Event):
    """What the killed processes write (registered here too, so that their log decodes)."""

    event_type = "killtest.Part"
    n: int


def envelope(aggregate_id: str, sequence: int, event: Event, **fields: Any) -> EventEnvelope:
    """An envelope of the ``faults.Box`` stream ``aggregate_id``; ``fields`` override the rest."""
    values: dict[str, Any] = {
        "aggregate_type": BOX,
        "aggregate_id": aggregate_id,
        "sequence": sequence,
        "payload": event,
        "metadata": {"who": "test"},
        "recorded_at": T0,
        "event_id": f"{aggregate_id}-{sequence}",
    }
    values.update(fields)
    return EventEnvelope(**values)


def row(aggregate_id: str, sequence: Any, **fields: Any) -> dict[str, Any]:
    """A row to import: a ``faults.Note`` of the ``faults.Box`` stream ``aggregate_id``."""
    values: dict[str, Any] = {
        "aggregate_type": BOX,
        "aggregate_id": aggregate_id,
        "sequence": sequence,
        "event_type": "faults.Note",
        "event_version": "1.0",
        "payload": json.dumps({"text": f"{aggregate_id} {sequence}"}),
        "metadata": "{}",
        "recorded_at": T0,
        "event_id": f"{aggregate_id}-{sequence}",
    }
    values.update(fields)
    return values


@contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on a new temporary folder for the block, unmounted
    and removed afterwards. (Not under pytest's basetemp: another pytest session
    starting deletes old basetemps, which must not happen under a mount.)

    Mounting needs root (CI runs as root). Only when it cannot mount, and
    CQRS_LAB_REQUIRE_FAULTS is not "1", is the test skipped; ``.ci/run`` sets it.
    """
    folder = Path(tempfile.mkdtemp(prefix="cqrs-lab-tmpfs-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        if done.returncode != 0:
            reason = f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}"
            if os.environ.get(REQUIRE_FAULTS) == "1":
                pytest.fail(f"{REQUIRE_FAULTS}=1 but {reason}")
            pytest.skip(reason)
        try:
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=True)
    finally:
        folder.rmdir()


def fill(folder: Path, leave: int) -> Path:
    """Take all but ``leave`` bytes of the file system of ``folder`` with a filler file."""
    stats = os.statvfs(folder)
    filler = folder / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


def killed_after(script: str, args: list[str], lines: int) -> list[str]:
    """Run ``script`` in a new Python; SIGKILL it once it has printed ``lines`` lines
    (or after 50 s); everything it printed."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    printed = []
    deadline = time.monotonic() + 50
    while len(printed) < lines and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        printed.append(line.strip())
    process.send_signal(signal.SIGKILL)
    rest, err = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, err
    return printed + rest.split()


# The store of a killed process: argv[1] is "duckdb" (argv[2] the file) or "postgres"
# (argv[2] the DSN, argv[3] the schema).
_OPEN_STORE = """
import sys
if sys.argv[1] == "duckdb":
    from cqrs_lab.stores.duckdb import DuckDBEventStore
    store = DuckDBEventStore(sys.argv[2])
else:
    from cqrs_lab.stores.postgres import PostgresEventStore
    store = PostgresEventStore(sys.argv[2], schema=sys.argv[3])
"""

WRITER = (
    _OPEN_STORE
    + """
from cqrs_lab import Aggregate, Command, CqrsFramework, Event

class AddThree(Command):
    pass

class Part(Event):
    event_type = "killtest.Part"
    n: int

class Triple(Aggregate):
    aggregate_type = "killtest.Triple"
    def handle(self, command):
        return [Part(n=1), Part(n=2), Part(n=3)]
    def apply(self, event):
        pass

framework = CqrsFramework(Triple, store)
for i in range(1_000_000):
    [*_, last] = framework.execute(f"T-{i % 5}", AddThree())
    print(last.event_id, flush=True)  # acknowledged
"""
)
"""Commits commands of three events each, printing the last event id of each one
acknowledged, until it is killed."""

IMPORTER = (
    _OPEN_STORE
    + """
from datetime import UTC, datetime
rows = [
    {"aggregate_type": "killtest.Bulk", "aggregate_id": f"b-{i % 1000}", "sequence": i // 1000 + 1,
     "event_type": "killtest.Part", "event_version": "1.0", "payload": '{"n": 1}', "metadata": "{}",
     "recorded_at": datetime(2024, 1, 1, tzinfo=UTC), "event_id": f"bulk-{i}"}
    for i in range(100_000)
]
print("importing", flush=True)
store.import_events(rows)
print("imported", flush=True)
"""
)
"""Imports 100,000 events in one call, saying "importing" just before."""


def check_log(log: list[EventEnvelope], acknowledged: list[str]) -> None:
    """Every acknowledged event is there, every stream holds whole three-event commands
    with no gap, and positions have no gap."""
    assert set(acknowledged) <= {e.event_id for e in log}
    streams: dict[str, list[int]] = {}
    for e in log:
        streams.setdefault(f"{e.aggregate_type}/{e.aggregate_id}", []).append(e.sequence)
    for stream, sequences in streams.items():
        assert sorted(sequences) == list(range(1, len(sequences) + 1)), stream
        if stream.startswith("killtest.Triple/"):
            assert len(sequences) % 3 == 0, stream  # whole commands only
    assert [e.position for e in log] == list(range(1, len(log) + 1))
