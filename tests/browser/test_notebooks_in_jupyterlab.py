"""Every notebook in JupyterLab in Chromium: Run All, then check what a reader sees.

No error output, no widget that failed to show, no console error; the
stepper answers Next and Back; the process stepper shows its clock moving on
and a deadline firing; a timeline fits a notebook column 1000 px wide without
scrolling. A screenshot of each notebook is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.lab import NOTEBOOK, Lab, NotebookPage

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator

ROOT = Path(__file__).resolve().parent.parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
COLUMN = 1000


@pytest.fixture
def opened(
    chromium_browser: BrowserContext, lab: Lab, request: pytest.FixtureRequest
) -> Iterator[NotebookPage]:
    """The notebook (``request.param``) open in JupyterLab, every cell run."""
    page = NotebookPage.open(chromium_browser, lab, request.param)
    try:
        page.run_all()
        yield page
    finally:
        page.close()


def _steppers(page: NotebookPage) -> Locator:
    return page.page.locator(f"{NOTEBOOK} .widget-vbox").filter(has=page.page.locator(".cqrs-lab-step"))


@pytest.mark.parametrize("opened", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS], indirect=True)
def test_notebook_runs_all_cells_in_jupyterlab_and_shows_every_output(
    opened: NotebookPage, screenshots: Path, request: pytest.FixtureRequest
) -> None:
    stem = request.node.callspec.id
    cells = opened.outputs()
    assert cells and all(cell["count"] is not None for cell in cells), "a code cell did not run"
    assert opened.errors() == []
    assert opened.widget_errors() == []
    # every stepper opens at step 0 after Run All (no later cell clicks it)
    steppers = _steppers(opened)
    for index in range(steppers.count()):
        assert steppers.nth(index).locator(".cqrs-lab-step").inner_text().startswith("step 0")
    assert opened.screenshot_pages(screenshots, stem)
    assert opened.console_errors == []


STEPPERS = ("CommandStepper(", "ProcessStepper(")
STEPPER_NOTEBOOKS = [p for p in NOTEBOOKS if any(stepper in p.read_text() for stepper in STEPPERS)]


@pytest.mark.parametrize(
    "opened", STEPPER_NOTEBOOKS, ids=[p.stem for p in STEPPER_NOTEBOOKS], indirect=True
)
def test_stepper_answers_next_back_play_and_stop(
    opened: NotebookPage, screenshots: Path, request: pytest.FixtureRequest
) -> None:
    stepper = _steppers(opened).first
    shown = stepper.locator(".cqrs-lab-step")
    at_start = shown.inner_html()
    assert shown.inner_text().startswith("step 0")

    def button(label: str) -> Locator:
        return stepper.locator("button", has_text=label)

    for label in ("Back", "Next", "Play", "Stop", "Repeat"):
        assert button(label).get_attribute("title"), f"{label} has no tooltip"
    assert button("Back").is_disabled() and button("Next").is_enabled()

    button("Next").click()
    shown.filter(has_text="step 1 of").wait_for()
    assert shown.inner_html() != at_start  # another step: its command, its events, its state table
    assert "before" in shown.inner_text() and "after" in shown.inner_text()
    stepper.scroll_into_view_if_needed()
    stepper.screenshot(path=screenshots / f"{request.node.callspec.id}-stepper-step-1.png")

    button("Back").click()
    shown.filter(has_text="step 0").wait_for()
    assert shown.inner_html() == at_start
    assert button("Back").is_disabled()

    button("Play").click()  # the animation runs in the browser; each step comes from the kernel
    shown.filter(has_text="step 2 of").wait_for()
    button("Stop").click()
    shown.filter(has_text="step 0").wait_for()
    assert shown.inner_html() == at_start


PROCESS_STEPPER_NOTEBOOKS = [p for p in NOTEBOOKS if "ProcessStepper(" in p.read_text()]


@pytest.mark.parametrize(
    "opened", PROCESS_STEPPER_NOTEBOOKS, ids=[p.stem for p in PROCESS_STEPPER_NOTEBOOKS], indirect=True
)
def test_process_stepper_shows_the_clock_move_and_a_deadline_fire(
    opened: NotebookPage, screenshots: Path, request: pytest.FixtureRequest
) -> None:
    stepper = opened.page.locator(f"{NOTEBOOK} .widget-vbox").filter(
        has=opened.page.locator(".cqrs-lab-process-step")
    ).first
    shown = stepper.locator(".cqrs-lab-process-step")
    next_button = stepper.locator("button", has_text="Next")
    assert next_button.get_attribute("title") == "next step"
    assert shown.inner_text().startswith("step 0")
    start = _clock(shown)
    seen = []
    while next_button.is_enabled():
        number = len(seen) + 1
        next_button.click()
        shown.filter(has_text=f"step {number} of").wait_for()
        seen.append((shown.inner_text(), _clock(shown)))
        if "a deadline fires" in seen[-1][0]:
            stepper.scroll_into_view_if_needed()
            stepper.screenshot(path=screenshots / f"{request.node.callspec.id}-process-stepper-deadline.png")
    kinds = [next(k for k in KINDS if k in text) for text, _ in seen]
    assert "time passes" in kinds and "a deadline fires" in kinds and "an event in" in kinds
    clocks = [start, *(clock for _, clock in seen)]
    assert clocks == sorted(clocks) and clocks[-1] > start  # the clock is shown, and moves on
    deadline = kinds.index("a deadline fires")
    assert "pending deadlines" in seen[deadline - 1][0] and "due now" in seen[deadline - 1][0]
    stepper.locator("button", has_text="Back").click()
    shown.filter(has_text=f"step {len(seen) - 1} of").wait_for()
    assert shown.inner_text() == seen[-2][0]


KINDS = ("a command from outside", "time passes", "an event in", "a deadline fires")


def _clock(shown: Locator) -> str:
    """The time on the step's clock badge (``clock 2024-01-01 00:31:02``)."""
    text = shown.inner_text()
    return text[text.index("clock ") + len("clock "):][:19]


TIMELINE_NOTEBOOKS = [p for p in NOTEBOOKS if "timeline(" in p.read_text()]


@pytest.mark.parametrize(
    "opened", TIMELINE_NOTEBOOKS, ids=[p.stem for p in TIMELINE_NOTEBOOKS], indirect=True
)
def test_timeline_fits_a_1000px_notebook_column_without_scrolling(opened: NotebookPage) -> None:
    opened.set_notebook_width(COLUMN)
    timelines = opened.page.locator(f"{NOTEBOOK} .cqrs-lab-timeline svg")
    assert timelines.count() >= 1
    for index in range(timelines.count()):
        fit = timelines.nth(index).evaluate(
            """(svg) => {
              const output = svg.closest('.jp-OutputArea-output');
              return {drawn: svg.getBoundingClientRect().width, asked: svg.width.baseVal.value,
                      scrolls: output.scrollWidth > output.clientWidth,
                      right: svg.getBoundingClientRect().right, room: output.getBoundingClientRect().right};
            }"""
        )
        assert not fit["scrolls"] and fit["right"] <= fit["room"]
        assert fit["drawn"] == pytest.approx(fit["asked"], abs=1)  # at its own size: not shrunk to fit
