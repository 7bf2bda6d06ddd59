"""The ``cqrs-lab`` command: every subcommand works, fails clearly, and is documented."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from cqrs_lab.cli import build_parser, main
from cqrs_lab.stores.arrow import read_events_file

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "bank_account_events.parquet"


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(action.choices)


def test_every_cli_command_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = _subcommands()
    assert {"demo", "events", "import", "export", "replay", "bench", "sample"} <= set(commands)
    undocumented = [c for c in commands if not re.search(rf"cqrs-lab {c}\b", readme)]
    assert undocumented == []


def test_demo_runs_on_a_new_duckdb_file_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "demo.duckdb"
    assert main(["demo", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert f"store: {db}" in out
    assert "funds not available" in out
    assert db.is_file()
    assert main(["events", "--db", str(db)]) == 0
    assert "CustomerWroteCheck" in capsys.readouterr().out
    assert main(["demo", "--db", str(db)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_demo_console_script_without_arguments_uses_duckdb() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cqrs_lab.cli", "demo"], capture_output=True, text=True, check=True
    )
    assert "demo.duckdb" in out.stdout
    assert "balance=Decimal('629.50')" in out.stdout


def test_import_events_export_and_replay_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "bank.duckdb")
    assert main(["import", str(SAMPLE), "--db", db]) == 0
    assert "imported 101574 events" in capsys.readouterr().out

    assert main(["events", "--db", db, "--aggregate-id", "ACC-00007", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"BankAccount\s+ACC-00007\s", out)) == 3
    assert "more (use --limit 0" in out

    assert (
        main(["events", "--db", db, "--type", "CustomerWroteCheck", "--after", "101000", "--limit", "0"]) == 0
    )
    out = capsys.readouterr().out
    assert "CustomerWroteCheck" in out
    assert "CustomerDeposited" not in out

    for name in ("out.jsonl", "out.csv", "out.parquet"):
        target = tmp_path / name
        assert main(["export", str(target), "--db", db]) == 0
        assert read_events_file(target).equals(read_events_file(SAMPLE))

    assert (
        main(
            [
                "replay",
                "--db",
                db,
                "--query",
                "cqrs_lab.examples.bank_account:BankAccountQuery",
                "--name",
                "accounts",
            ]
        )
        == 0
    )
    assert "replayed 101574 events" in capsys.readouterr().out

    from cqrs_lab.examples.bank_account import BankAccountQuery
    from cqrs_lab.stores.duckdb import DuckDBEventStore, DuckDBQueryStore

    with DuckDBEventStore(db) as events, DuckDBQueryStore(events) as queries:
        table = events.export_arrow()
        last = table.filter(pa.compute.equal(table["aggregate_id"], "ACC-00007")).to_pylist()[-1]
        view = queries.load(BankAccountQuery, "ACC-00007")
        assert str(view.payload.balance) in last["payload"]
        assert queries.load_checkpoint("accounts") == 101_574


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["events", "--db", "/nonexistent/x.duckdb"], "no DuckDB database"),
        (["import", "/nonexistent/events.parquet", "--db", "{tmp}/x.duckdb"], "no such file"),
        (["import", "{tmp}/events.txt", "--db", "{tmp}/x.duckdb"], "cannot tell the format"),
        (["import", "{tmp}/bad.parquet", "--db", "{tmp}/x.duckdb"], "cannot read"),
        (["export", "{tmp}/nofolder/out.parquet", "--db", "{tmp}/db.duckdb"], "does not exist"),
        (["replay", "--db", "{tmp}/db.duckdb", "--query", "nonexistent.module:Q"], "cannot import"),
        (
            ["replay", "--db", "{tmp}/db.duckdb", "--query", "cqrs_lab.examples.bank_account:BankAccount"],
            "not a Query class",
        ),
        (["events"], "--db PATH"),
    ],
)
def test_bad_paths_and_files_give_clear_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("CQRS_LAB_POSTGRES_DSN", raising=False)
    (tmp_path / "events.txt").write_text("x")
    (tmp_path / "bad.parquet").write_text("not parquet")
    assert main(["demo", "--db", str(tmp_path / "db.duckdb")]) == 0
    capsys.readouterr()
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_sample_writes_the_generator_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", str(tmp_path), "--accounts", "20", "--commands", "300"]) == 0
    table = read_events_file(tmp_path / "bank_account_events.parquet")
    assert read_events_file(tmp_path / "bank_account_events.jsonl.gz").equals(table)
    assert f"({table.num_rows} events)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("cqrs_lab.examples.bank_account:BankAccountQuery", "a Projection or a ProcessRunner, a list"),
        ("cqrs_lab.examples.bank_account:nothing_here", "has no 'nothing_here'"),
        ("no_such_module_here:projections", "cannot import 'no_such_module_here'"),
    ],
)
def test_project_refuses_what_is_not_projections(
    spec: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "bank.duckdb"
    assert main(["project", "--db", str(db), "--projection", spec]) == 2
    assert says in capsys.readouterr().err
