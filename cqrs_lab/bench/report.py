"""The report: the results as a Markdown table, one-line summaries, and JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from cqrs_lab.bench.results import Result, Size

__all__ = ["format_table", "mb", "summary", "to_json"]


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:,.2f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value:,.0f} {unit}"


def mb(value: int | None) -> str:
    return "—" if value is None else f"{value / 1024 / 1024:,.0f} MB"


def _notes(result: Result) -> str:
    notes = [f"baseline: {result.baseline_name}"] if result.baseline_name not in ("", "raw") else []
    return "; ".join(notes + result.notes)


def _ident(result: Result) -> str:
    return result.workload + (f" {result.variant}" if result.variant else "")


def _ratio(result: Result) -> str:
    if result.ratio is None:
        return "—"
    return f"{result.ratio:.1f}x" if result.ratio_meaning.startswith("speed-up") else f"{result.ratio:.2f}"


def summary(result: Result) -> str:
    """One line about a finished result, for the progress log."""
    line = f"{_ident(result)} {result.store}: {_figure(result.framework, result.unit)}"
    if result.baseline is not None:
        line += (
            f" vs {_figure(result.baseline, result.unit)} ({result.baseline_name}), ratio {_ratio(result)}"
        )
    if result.met is not None:
        line += f", target {result.target} {'met' if result.met else 'MISSED'}"
    return line + f" [{result.seconds:.0f} s]"


def format_table(results: Sequence[Result]) -> str:
    """The results as a Markdown table."""
    header = "| id | workload | store | framework | baseline | ratio | target | met | peak RSS | notes |"
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for r in results:
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        cells = (
            _ident(r), r.title, r.store, _figure(r.framework, r.unit), _figure(r.baseline, r.unit),
            _ratio(r), r.target or "—", met, mb(r.peak_rss), _notes(r),
        )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_json(
    results: Sequence[Result], info: dict[str, str], size: Size, repeat: int, command: str
) -> dict[str, Any]:
    return {
        "command": command,
        "size": asdict(size),
        "repeat": repeat,
        "machine": info,
        "results": [asdict(r) for r in results],
    }
