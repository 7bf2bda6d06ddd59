"""The handout of every notebook, opened in Chromium with the network blocked: every output shows.

Each notebook's ``cqrs-lab handout`` is opened from a file; every request
that is not for a file or inline data is aborted and recorded (there must be
none). Every output must take room on the page and show something (text, a
table, an SVG), no widget may be left waiting, and the stepper's static copy
must answer Next and Back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest

from cqrs_lab.notebook.handout import write_handout
from tests.browser.lab import WIDGET_ERRORS

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Route

ROOT = Path(__file__).resolve().parent.parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# Per output: its size and whether it shows anything (text, a picture, a table).
SHOWN_JS = """() => [...document.querySelectorAll('.jp-OutputArea-output')].map((el) => {
  const box = el.getBoundingClientRect();
  const pictures = el.querySelectorAll('svg, img, table').length;
  return {height: box.height, width: box.width, text: el.innerText.trim().length, pictures,
          html: el.outerHTML.slice(0, 200)};
})"""


class OfflinePage:
    """A page whose every request for anything but a file or inline data is aborted, and noted."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        page.route("**/*", self._route)
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))

    def _route(self, route: Route) -> None:
        url = route.request.url
        if url.startswith(("file://", "data:")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("internetdisconnected")


@pytest.fixture
def offline(chromium_browser: BrowserContext) -> Iterator[OfflinePage]:
    page = chromium_browser.new_page()
    page.set_default_timeout(60_000)
    try:
        yield OfflinePage(page)
    finally:
        page.close()


def _outputs(notebook: Path) -> int:
    nb = nbformat.read(notebook, as_version=4)
    return sum(len(cell.get("outputs", [])) for cell in nb.cells)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_handout_shows_every_output_offline(
    notebook: Path, offline: OfflinePage, tmp_path: Path, screenshots: Path
) -> None:
    handout = write_handout(notebook, tmp_path / f"{notebook.stem}.html")
    offline.page.goto(handout.as_uri())
    offline.page.wait_for_load_state("load")
    shown = offline.page.evaluate(SHOWN_JS)
    assert len(shown) == _outputs(notebook)
    empty = [s["html"] for s in shown if s["height"] < 8 or not (s["text"] or s["pictures"])]
    assert empty == []
    body = offline.page.locator("body").inner_text()
    assert [problem for problem in WIDGET_ERRORS if problem in body] == []
    offline.page.screenshot(path=screenshots / f"handout-{notebook.stem}.png", full_page=True)
    assert offline.blocked == []
    assert offline.console_errors == []


STEPPERS = ("CommandStepper(", "ProcessStepper(")
STEPPER_NOTEBOOKS = [p for p in NOTEBOOKS if any(stepper in p.read_text() for stepper in STEPPERS)]


@pytest.mark.parametrize("notebook", STEPPER_NOTEBOOKS, ids=[p.stem for p in STEPPER_NOTEBOOKS])
def test_handout_stepper_has_every_step_and_answers_next_and_back(
    notebook: Path, offline: OfflinePage, tmp_path: Path
) -> None:
    offline.page.goto(write_handout(notebook, tmp_path / "handout.html").as_uri())
    stepper = offline.page.locator(".cqrs-lab-stepper-static").first
    pages = stepper.locator(".cqrs-lab-page")
    total = pages.count()
    assert total >= 3

    def visible() -> list[int]:
        return [k for k in range(total) if pages.nth(k).is_visible()]

    assert visible() == [0]
    assert "step 0" in pages.nth(0).inner_text()
    for k in range(1, total):
        pages.nth(k - 1).locator("label", has_text="Next").click()
        assert visible() == [k]
        assert f"step {k} of {total - 1}" in pages.nth(k).inner_text()
    pages.nth(total - 1).locator("label", has_text="Back").click()
    assert visible() == [total - 2]
    assert offline.blocked == []
