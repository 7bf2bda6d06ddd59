#!/usr/bin/env python
"""Take the README's screenshots of the notebook kit, in JupyterLab in headless Chromium.

The same machinery as the browser tests (``tests/browser/lab.py``): JupyterLab
on 127.0.0.1 with throwaway settings and autosave off, Debian's Chromium
(``/usr/bin/chromium``) through Playwright with a fresh profile. The window is
an ordinary 1280 x 900 with the file browser open, as a reader would have it;
nothing is widened to make a picture fit.

It opens ``notebooks/screenshot_tour.ipynb``, runs all cells, clicks the
``CommandStepper``'s **Next** and saves to ``docs/images/``: ``stepper.png`` (a
step that produced an event), ``stepper-rejected.png`` (a step a ``UserError``
rejected), ``timeline.png`` and ``timeline-dark.png`` (the same output in
JupyterLab Dark). The notebook file is checked to be byte for byte what it was.

Needs ``apt-get install chromium`` and ``pip install -e ".[dev]"`` (never
``playwright install``)::

    python scripts/screenshots.py              # docs/images/*.png
    python scripts/screenshots.py --execute    # first rebuild the notebook (notebooks/build.py)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.lab import (  # noqa: E402  (the repository root goes on the path first)
    CHANGE_THEME_JS,
    CHROMIUM,
    CLIP_JS,
    NOTEBOOK,
    SHOW_FILE_BROWSER_JS,
    NotebookPage,
    chromium,
    jupyter_lab,
)

TOUR = ROOT / "notebooks" / "screenshot_tour.ipynb"
IMAGES = ROOT / "docs" / "images"
STEPPER_AT = 3  # the step of stepper.png (WriteCheck: an event, the balance changes)


def save(path: Path) -> None:
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"wrote {shown} ({path.stat().st_size // 1024} KB)")


def take_screenshots(out: Path, work: Path, dark: bool) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with jupyter_lab(ROOT, work / "lab") as lab, sync_playwright() as playwright:
        context = chromium(playwright, work / "profile")
        try:
            tour = NotebookPage.open(context, lab, TOUR)
            page = tour.page
            page.evaluate(SHOW_FILE_BROWSER_JS)  # as a reader has it: the file browser open
            tour.run_all()
            if tour.errors() or tour.widget_errors():
                raise RuntimeError(f"the tour did not run cleanly: {tour.errors() + tour.widget_errors()}")

            steppers = page.locator(f"{NOTEBOOK} .widget-vbox").filter(has=page.locator(".cqrs-lab-step"))
            stepper = steppers.first
            stepper.locator(".cqrs-lab-step", has_text="step 0").wait_for()
            shots = {STEPPER_AT: out / "stepper.png", STEPPER_AT + 1: out / "stepper-rejected.png"}
            for step in range(1, max(shots) + 1):
                stepper.locator("button", has_text="Next").click()
                stepper.locator(".cqrs-lab-step", has_text=f"step {step} of").wait_for()
                if step in shots:
                    page.mouse.move(0, 0)  # no hover or focus styles on the buttons
                    page.evaluate("() => document.activeElement && document.activeElement.blur()")
                    page.screenshot(path=shots[step], clip=stepper.evaluate(CLIP_JS, 6))
                    save(shots[step])

            svg = page.locator(f"{NOTEBOOK} .cqrs-lab-timeline svg").first
            svg.scroll_into_view_if_needed()
            drawn, asked = svg.evaluate("(el) => [el.getBoundingClientRect().width, el.width.baseVal.value]")
            print(f"timeline drawn {drawn:.0f} px wide of its {asked:.0f} px in a 1280 px window")
            svg.screenshot(path=out / "timeline.png")
            save(out / "timeline.png")

            if dark:  # the same output in JupyterLab Dark, with its prompt and the page around it
                page.evaluate(CHANGE_THEME_JS, "JupyterLab Dark")
                page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
                page.wait_for_load_state("networkidle")
                area = page.locator(f"{NOTEBOOK} .jp-OutputArea-child").filter(
                    has=page.locator(".cqrs-lab-timeline")
                ).first
                page.screenshot(path=out / "timeline-dark.png", clip=area.evaluate(CLIP_JS, 12))
                save(out / "timeline-dark.png")
            if tour.console_errors:
                raise RuntimeError(f"console errors: {tour.console_errors}")
            tour.close()
        finally:
            context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=IMAGES, help="where the PNGs go (default docs/images)")
    parser.add_argument("--no-dark", action="store_true", help="skip timeline-dark.png")
    parser.add_argument(
        "--execute", action="store_true", help=f"rebuild {TOUR.relative_to(ROOT)} first (notebooks/build.py)"
    )
    options = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set CHROMIUM=/path/to/it)")
    if options.execute:
        subprocess.run([sys.executable, str(ROOT / "notebooks" / "build.py"), TOUR.stem], check=True)

    before = TOUR.read_bytes()
    work = Path(tempfile.mkdtemp(prefix="cqrs-lab-screenshots-"))
    try:
        take_screenshots(options.out.resolve(), work, dark=not options.no_dark)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if TOUR.read_bytes() != before:  # autosave is off; this is a safety net
            TOUR.write_bytes(before)
            print(f"warning: JupyterLab changed {TOUR.relative_to(ROOT)}; restored it", file=sys.stderr)


if __name__ == "__main__":
    main()
