"""Fixtures of the browser tests: Debian's Chromium and a JupyterLab server, one each for this folder.

They are package-scoped, not session-scoped: Playwright's sync API keeps an
asyncio loop running while it is open, so it is closed before the rest of the
suite (``asyncio.run`` in other tests) runs.

They need Playwright (the ``browser`` extra, in ``dev``), JupyterLab (the
``notebooks`` extra, in ``dev``) and ``/usr/bin/chromium`` (``apt-get install
chromium``; ``.ci/run`` installs it). Without them the tests skip, saying
what is missing; with ``CQRS_LAB_REQUIRE_BROWSER=1`` (set by ``.ci/run``) they
fail instead. Screenshots of every page go to a folder printed at the end of
the run (``CQRS_LAB_SCREENSHOTS`` to choose it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.lab import CHROMIUM, Lab, chromium, jupyter_lab

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

ROOT = Path(__file__).resolve().parent.parent.parent
REQUIRED = os.environ.get("CQRS_LAB_REQUIRE_BROWSER") == "1"
_screenshots: list[Path] = []


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"CQRS_LAB_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _missing() -> str | None:
    try:
        import jupyterlab  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed: pip install -e '.[dev]'"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}: apt-get install chromium (or set CHROMIUM=/path/to/it)"
    return None


@pytest.fixture(scope="package")
def browser_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder for the browser profile and JupyterLab's settings."""
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="package")
def chromium_browser(browser_work: Path) -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, with a fresh profile (one for the whole session)."""
    reason = _missing()
    if reason:
        _unavailable(reason)
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        try:
            context = chromium(playwright, browser_work / "profile")
        except Error as exc:
            _unavailable(f"Chromium did not start: {str(exc).splitlines()[0]}")
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="package")
def lab(chromium_browser: BrowserContext, browser_work: Path) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1, serving the repository."""
    with jupyter_lab(ROOT, browser_work / "lab") as running:
        yield running


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots of this run go (printed at the end)."""
    chosen = os.environ.get("CQRS_LAB_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    _screenshots.append(folder)
    return folder


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for folder in _screenshots:
        count = sum(1 for _ in folder.glob("*.png"))
        terminalreporter.write_line(f"browser tests: {count} screenshots in {folder}")

