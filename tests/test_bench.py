"""``cqrs-lab bench``: the smallest run on every store gives complete, checked, well-formed results.

No timing is asserted: only that every workload ran on every store it applies
to, did the work it claims, and produced finite figures and ratios.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from cqrs_lab import bench
from cqrs_lab.bench import SIZES, STORES, WORKLOADS, main, plan
from cqrs_lab.bench.sites import MemorySite

SMALL = SIZES["small"]
EXPECTED_COUNTS = {
    "W1": SMALL.aggregates,
    "W2": SMALL.stream,
    "W3": SMALL.stream,
    "W4": SMALL.log,
    "W5": SMALL.bulk,
    "W6": SMALL.log,
    "W7": SMALL.workers * SMALL.worker_commands,
    "W8": SMALL.log,
    "W9": SMALL.live_commits,
    "W10": SMALL.log,
    "W11": SMALL.aggregates,
}


@pytest.fixture(scope="module")
def small_run(postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``--size small`` run of every workload on every store, read back from ``--json``."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CQRS_LAB_POSTGRES_DSN", postgres_dsn)
        assert main(["--size", "small", "--repeat", "1", "--json", str(out)]) == 0
    data: dict[str, Any] = json.loads(out.read_text())
    return data


@pytest.mark.postgres
@pytest.mark.slow
def test_every_workload_runs_on_every_store_it_applies_to(small_run: dict[str, Any]) -> None:
    cells = {(r["workload"], r["store"]) for r in small_run["results"]}
    assert cells == set(plan(WORKLOADS, STORES))
    assert {r["store"] for r in small_run["results"] if r["workload"] == "W7"} == {"postgres"}
    assert {r["store"] for r in small_run["results"] if r["workload"] == "W8"} == {"duckdb"}
    for live in ("W9", "W10", "W11"):
        assert {r["store"] for r in small_run["results"] if r["workload"] == live} == {"postgres"}
    variants = {(r["workload"], r["variant"]) for r in small_run["results"]}
    expected = {("W1", "warm"), ("W2", "floor"), ("W2", "nocache"), ("W2", "snapshot"), ("W3", "snapshot")}
    assert expected | {("W5", "memory")} <= variants
    assert {("W9", ""), ("W9", "poll"), ("W9", "poll-10ms"), ("W10", ""), ("W10", "2workers")} <= variants
    w3 = [r for r in small_run["results"] if r["workload"] == "W3"]
    raw_snapshot = [r for r in w3 if r["variant"] == "snapshot raw"]
    assert {r["store"] for r in raw_snapshot} == {"duckdb", "postgres"}
    assert all(r["target"] == "" and r["baseline_name"] == "raw" for r in raw_snapshot)


@pytest.mark.postgres
@pytest.mark.slow
def test_counts_match_the_size_and_figures_are_finite(small_run: dict[str, Any]) -> None:
    for result in small_run["results"]:
        where = f"{result['workload']} {result['variant']} {result['store']}"
        assert result["count"] == EXPECTED_COUNTS[result["workload"]], where
        assert len(result["runs"]) >= 1, where
        assert math.isfinite(result["framework"]) and result["framework"] > 0, where
        if result["workload"] in ("W5", "W6", "W8"):
            assert result["peak_rss"] > 0, where


@pytest.mark.postgres
@pytest.mark.slow
def test_every_baseline_has_a_finite_positive_ratio_and_a_verdict_where_targeted(
    small_run: dict[str, Any],
) -> None:
    for result in small_run["results"]:
        where = f"{result['workload']} {result['variant']} {result['store']}"
        if result["workload"] in ("W6", "W7", "W9") or (result["workload"], result["variant"]) == ("W10", ""):
            assert result["baseline"] is None and result["ratio"] is None, where
            continue
        assert math.isfinite(result["baseline"]) and result["baseline"] > 0, where
        assert math.isfinite(result["ratio"]) and result["ratio"] > 0, where
        if result["target"]:
            assert isinstance(result["met"], bool), where
    duckdb = [r for r in small_run["results"] if r["store"] == "duckdb"]
    targeted = {(r["workload"], r["variant"]) for r in duckdb if r["target"]}
    assert targeted == {
        ("W1", ""), ("W1", "warm"), ("W2", ""), ("W2", "floor"), ("W3", ""), ("W3", "snapshot"),
        ("W4", ""), ("W5", ""), ("W5", "memory"), ("W8", ""),
    }  # fmt: skip
    w9 = {r["variant"]: r for r in small_run["results"] if r["workload"] == "W9"}
    assert w9[""]["target"] == "p99 < 50 ms" and isinstance(w9[""]["met"], bool)
    assert all(0 < r["extra"]["p50_ms"] <= r["framework"] for r in w9.values())
    w7 = next(r for r in small_run["results"] if r["workload"] == "W7")
    assert w7["extra"]["failed"] == 0
    assert w7["extra"]["retries"] >= 0 and w7["extra"]["conflicts_per_s"] >= 0


@pytest.mark.postgres
def test_json_describes_the_machine_and_the_command(small_run: dict[str, Any]) -> None:
    assert small_run["size"]["name"] == "small"
    assert small_run["command"].startswith("cqrs-lab bench --size small")
    for key in ("cpu", "cpus", "memory", "python", "duckdb", "postgres"):
        assert small_run["machine"][key], key


def test_a_store_that_loses_events_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = MemorySite.count_events
    monkeypatch.setattr(MemorySite, "count_events", lambda self: real(self) - 1)
    assert main(["--size", "small", "--repeat", "1", "--stores", "memory", "--workloads", "W1"]) == 1
    committed = 2 * SMALL.aggregates  # a command on each new aggregate, then one more on each
    assert f"W1 (framework) committed {committed - 1} events, expected {committed}" in capsys.readouterr().err


def test_the_table_shows_each_figure_its_baseline_and_the_target(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    assert (
        main(
            [
                "--size",
                "small",
                "--repeat",
                "1",
                "--stores",
                "memory",
                "--workloads",
                "W3",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())["results"]
    table = bench.format_table([bench.Result(**r) for r in rows])
    lines = table.splitlines()
    assert lines[0].startswith("| id | workload | store | framework | baseline | ratio | target | met |")
    assert len(lines) == 2 + len(rows)
    assert "W3 snapshot" in table and "≥ 20" in table and "≤ 2" in table


@pytest.mark.parametrize(
    "argv",
    [["--stores", "sqlite"], ["--size", "huge"], ["--repeat", "0"], ["--workloads", "W12"]],
)
def test_bad_options_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "cqrs-lab bench" in capsys.readouterr().err
