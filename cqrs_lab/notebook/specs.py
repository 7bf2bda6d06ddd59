"""Run given/when/then specs in a notebook and show them all, failing ones included."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import escape
from typing import Any, Literal

from cqrs_lab._render import FAILED, NEUTRAL, PASSED, REJECTED, badge, grid
from cqrs_lab.testing import SpecFailed, SpecResult

__all__ = ["Spec", "SpecOutcome", "SpecReport", "run_specs"]

Spec = SpecResult | Callable[[], Any]
"""A spec to run: a ``SpecResult`` already made, or a callable.

The callable may return a ``SpecResult`` (e.g. ``lambda: TestFramework(...)
.given(...).when(...).then_expect_events(...)``), raise ``AssertionError``
(a failed ``then_*`` or a plain ``assert``), or return anything else (passed).
"""

Status = Literal["passed", "failed", "error"]


@dataclass(frozen=True)
class SpecOutcome:
    """How one spec went; ``result`` is the spec's data when it produced a ``SpecResult``."""

    title: str
    status: Status
    message: str = ""
    result: SpecResult | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _title(spec: Spec, number: int) -> str:
    name = getattr(spec, "__name__", "")
    return name.replace("_", " ") if name and name != "<lambda>" else f"spec {number}"


def _run(spec: Spec, number: int) -> SpecOutcome:
    if isinstance(spec, SpecResult):
        value: Any = spec
    else:
        try:
            value = spec()
        except SpecFailed as exc:
            value = exc.result
        except AssertionError as exc:
            return SpecOutcome(_title(spec, number), "failed", str(exc) or "AssertionError")
        except Exception as exc:
            return SpecOutcome(_title(spec, number), "error", f"{type(exc).__name__}: {exc}")
    if isinstance(value, SpecResult):
        status: Status = "passed" if value.passed else "failed"
        return SpecOutcome(value.title, status, value.message, value)
    return SpecOutcome(_title(spec, number), "passed")


@dataclass(frozen=True)
class SpecReport:
    """The outcomes of ``run_specs``: counts, a summary table, and a card per failure."""

    title: str
    outcomes: list[SpecOutcome]

    @property
    def passed(self) -> int:
        return sum(o.status == "passed" for o in self.outcomes)

    @property
    def failed(self) -> int:
        """Specs that failed or raised an unexpected error."""
        return len(self.outcomes) - self.passed

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def raise_for_failures(self) -> SpecReport:
        """Raise ``AssertionError`` listing the failed specs (for CI), else return the report."""
        if not self.ok:
            raise AssertionError(str(self))
        return self

    def __str__(self) -> str:
        lines = [f"{self.title}: {len(self.outcomes)} specs, {self.passed} passed, {self.failed} failed"]
        for outcome in self.outcomes:
            first = outcome.message.splitlines()[0] if outcome.message else ""
            lines.append(f"  {outcome.status.upper():6} {outcome.title}" + (f": {first}" if first else ""))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"SpecReport({self.title!r}, passed={self.passed}, failed={self.failed})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        swatches = {"passed": PASSED, "failed": FAILED, "error": REJECTED}
        rows = [
            [
                escape(o.title),
                badge(o.status, swatches[o.status]),
                escape(o.message.splitlines()[0] if o.message else ""),
            ]
            for o in self.outcomes
        ]
        cards = "".join(
            o.result._repr_html_() if o.result is not None
            else f"<pre>{escape(o.title)}\n{escape(o.message)}</pre>"
            for o in self.outcomes
            if not o.passed
        )
        summary = (badge(f"{self.passed} passed", PASSED if self.passed else NEUTRAL) + " "
                   + badge(f"{self.failed} failed", FAILED if self.failed else NEUTRAL))
        return (
            f"<div class='cqrs-lab-spec-report'><div><b>{escape(self.title)}</b> {summary}</div>"
            f"{grid(['spec', 'status', 'message'], rows)}{cards}</div>"
        )


def run_specs(specs: Iterable[Spec], *, title: str = "Specs") -> SpecReport:
    """Run every spec, catching failures, so a notebook shows all of them.

    Each spec is a ``SpecResult`` or a callable (see ``Spec``); a failed
    ``then_*`` keeps its given/when/then data and is shown as a card with the
    expected and actual side by side. Exceptions other than ``AssertionError``
    are reported with status ``error``. Nothing is raised; call
    ``raise_for_failures()`` on the report to fail a CI run.
    """
    return SpecReport(title, [_run(spec, number) for number, spec in enumerate(specs, start=1)])
