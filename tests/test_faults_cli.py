"""The ``cqrs-lab`` command under bad input and faults: one line on stderr, exit status 2,
never a traceback; arguments are checked before anything runs; every option has help."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cqrs_lab.cli import build_parser, main
from cqrs_lab.stores.duckdb import DuckDBEventStore
from tests.fault_kit import fill, tmpfs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def db(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A demo database with 4 events."""
    monkeypatch.delenv("CQRS_LAB_POSTGRES_DSN", raising=False)
    path = tmp_path / "bank.duckdb"
    assert main(["demo", "--db", str(path)]) == 0
    capsys.readouterr()
    return str(path)


def fails(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    """Run ``argv``: exit status 2 and one line on stderr naming ``needles``."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"cqrs-lab {argv[0]}: error: "), lines[0]
    assert "Traceback" not in captured.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- export targets ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["out.jsonl", "out.csv", "out.parquet"])
def test_export_onto_a_directory_is_one_line(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    target = tmp_path / name
    target.mkdir()
    fails(capsys, ["export", str(target), "--db", db], str(target), "folder")


@pytest.fixture
def scratch_fs() -> Iterator[Path]:
    """A 1 MB tmpfs of the test's own."""
    with tmpfs("1m") as folder:
        yield folder


@pytest.mark.parametrize("name", ["out.jsonl", "out.csv", "out.parquet"])
def test_export_onto_a_read_only_file_system_is_one_line_and_changes_nothing(
    db: str, scratch_fs: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    (scratch_fs / "old.jsonl").write_text("old contents\n")
    subprocess.run(["mount", "-o", "remount,ro", str(scratch_fs)], check=True)
    fails(capsys, ["export", str(scratch_fs / name), "--db", db], str(scratch_fs / name), "Read-only")
    fails(capsys, ["export", str(scratch_fs / "old.jsonl"), "--db", db], "old.jsonl", "Read-only")
    assert sorted(p.name for p in scratch_fs.iterdir()) == ["old.jsonl"]
    assert (scratch_fs / "old.jsonl").read_text() == "old contents\n"


@pytest.mark.parametrize("name", ["out.jsonl", "out.csv", "out.parquet"])
def test_export_onto_a_full_disk_keeps_the_old_file_and_leaves_no_partial_one(
    db: str, scratch_fs: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    target = scratch_fs / name
    target.write_text("old contents\n")
    fill(scratch_fs, leave=0)
    fails(capsys, ["export", str(target), "--db", db], str(target), "No space left")
    assert sorted(p.name for p in scratch_fs.iterdir()) == sorted(["filler", name])
    assert target.read_text() == "old contents\n"
    (scratch_fs / "filler").unlink()
    assert main(["export", str(target), "--db", db]) == 0
    assert "exported 4 events" in capsys.readouterr().out


# -- events ----------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", ["-5", "-1"])
def test_a_negative_limit_is_refused(db: str, capsys: pytest.CaptureFixture[str], limit: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["events", "--db", db, "--limit", limit])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "--limit" in err and "0 or more" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_negative_after_is_refused(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["events", "--db", db, "--after", "-3"])
    assert caught.value.code == 2
    assert "--after" in capsys.readouterr().err


def test_limit_counts_what_is_left(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--db", db, "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "... 1 more" in out
    assert main(["events", "--db", db, "--limit", "4"]) == 0
    assert "more" not in capsys.readouterr().out


# -- replay ------------------------------------------------------------------------------------
BROKEN_QUERY = """
from cqrs_lab import Query

class Broken(Query):
    query_type = "faults.Broken"

    def update(self, envelope):
        raise ValueError("no such account " + envelope.aggregate_id)

not_a_function = 42
"""


@pytest.fixture
def broken_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "faults_cli_views.py").write_text(BROKEN_QUERY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "faults_cli_views"


def test_replay_whose_query_update_raises_is_one_line(
    db: str, broken_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fails(
        capsys,
        ["replay", "--db", db, "--query", f"{broken_module}:Broken"],
        "Broken.update",
        "no such account ACC-001",
        "position 1",
    )


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("cqrs_lab.examples.bank_account:BankAccountQuery", "not a function"),
        ("{module}:not_a_function", "not a function"),
        ("cqrs_lab.examples.bank_account", "module:name"),
    ],
)
def test_a_view_id_that_is_not_a_function_is_refused_before_replaying(
    db: str, broken_module: str, capsys: pytest.CaptureFixture[str], spec: str, needle: str
) -> None:
    fails(
        capsys,
        [
            "replay",
            "--db",
            db,
            "--query",
            "cqrs_lab.examples.bank_account:BankAccountQuery",
            "--view-id",
            spec.replace("{module}", broken_module),
        ],
        "--view-id",
        needle,
    )
    with DuckDBEventStore(db, read_only=True) as store:
        assert store.sql("SELECT count(*) FROM queries").fetchall() == [(1,)]  # the demo's view, untouched


# -- sample --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("option", "value"), [("--accounts", "0"), ("--commands", "0"), ("--accounts", "-2")]
)
def test_sample_counts_must_be_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["sample", str(tmp_path), option, value])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "1 or more" in err
    assert len(err.strip().splitlines()) == 1


def test_sample_into_a_missing_folder_says_it_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "out"
    fails(capsys, ["sample", str(missing)], str(missing), "does not exist")
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    fails(capsys, ["sample", str(afile)], str(afile), "not a folder")


# -- import -------------------------------------------------------------------------------------
def test_import_of_a_mixed_type_jsonl_is_one_line_naming_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = {
        "aggregate_type": "BankAccount",
        "aggregate_id": "A-1",
        "sequence": 1,
        "event_type": "BankAccountOpened",
        "event_version": "1.0",
        "payload": {"account_id": "A-1"},
        "metadata": {},
        "recorded_at": "2024-01-01T00:00:00+00:00",
        "event_id": "e1",
    }
    source = tmp_path / "mixed.jsonl"
    source.write_text(
        json.dumps(good) + "\n" + json.dumps({**good, "aggregate_id": 7, "event_id": "e2"}) + "\n"
    )
    fails(capsys, ["import", str(source), "--db", str(tmp_path / "x.duckdb")], "line 2", "'aggregate_id'")


def test_an_unexpected_failure_is_still_one_line(
    db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import cqrs_lab.cli as cli

    def boom(args: argparse.Namespace) -> int:
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(cli, "_events", boom)
    fails(capsys, ["events", "--db", db], "RuntimeError", "something nobody foresaw")


# -- help -------------------------------------------------------------------------------------------
def test_every_option_of_every_command_has_help() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if not action.help
    ]
    assert missing == []


def test_the_console_script_prints_no_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cqrs_lab.cli", "events", "--db", "/nonexistent/x.duckdb"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
