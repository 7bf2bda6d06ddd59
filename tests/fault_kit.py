"""What the fault tests (``tests/test_faults_*.py``) share: a small domain, rows to
import, a tmpfs of a test's own, and a process killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder`` for the block, unmounted afterwards.

    Mounting needs root (CI runs as root). Only when it cannot mount, and
    CQRS_LAB_REQUIRE_FAULTS is not "1", is the test skipped; ``.ci/run`` sets it.
    """
    folder.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}"
        if os.environ.get(REQUIRE_FAULTS) == "1":
            pytest.fail(f"{REQUIRE_FAULTS}=1 but {reason}")
        pytest.skip(reason)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


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
