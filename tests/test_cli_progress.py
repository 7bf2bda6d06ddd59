"""The progress bars of the cqrs-lab command say how far they have to go."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cqrs_lab import cli
from cqrs_lab.cli import main


def test_replay_progress_bar_has_the_log_size_as_its_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bars: list[tuple[int | None, int]] = []

    @contextlib.contextmanager
    def recording(total: int | None, unit: str, desc: str) -> Iterator[Callable[[int], None]]:
        done = [0]
        yield lambda n: done.__setitem__(0, done[0] + n)
        bars.append((total, done[0]))

    db = str(tmp_path / "demo.duckdb")
    assert main(["demo", "--db", db]) == 0
    monkeypatch.setattr(cli, "_progress", recording)
    query = "cqrs_lab.examples.bank_account:BankAccountQuery"
    assert main(["replay", "--db", db, "--query", query]) == 0
    assert "replayed 4 events" in capsys.readouterr().out
    assert bars == [(4, 4)]  # a total, and the bar ends at it
