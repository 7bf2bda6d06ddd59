"""cqrs-lab handout: a notebook as one self-contained HTML file (checked in Chromium by tests/browser)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cqrs_lab.cli import main
from cqrs_lab.notebook.handout import WIDGET_VIEW, handout_html

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
STEPPER = NOTEBOOKS / "screenshot_tour.ipynb"


def _loaded_from_elsewhere(html: str) -> list[str]:
    """What the page would fetch: src= and stylesheet href= that are not data: or in-page."""
    sources = re.findall(r"""\bsrc=["']([^"']+)["']""", html)
    sheets = re.findall(r"""<link[^>]+href=["']([^"']+)["']""", html)
    return [url for url in sources + sheets if not url.startswith(("data:", "#"))]


def test_handout_is_one_file_that_fetches_nothing() -> None:
    html = handout_html(STEPPER)
    assert _loaded_from_elsewhere(html) == []
    for cdn in ("require.js", "html-manager", "mathjax", "mermaid.esm"):
        assert cdn not in html.lower()
    assert WIDGET_VIEW not in html  # no live widget waiting for a manager


def test_the_stepper_is_in_the_handout_as_every_step() -> None:
    html = handout_html(STEPPER)
    assert len(re.findall(r"cqrs-lab-page cqrs-lab-page-\d", html)) == 5  # steps 0-4 of the tour's stepper
    assert re.search(r"<div class=.cqrs-lab-timeline.><svg", html)  # the timeline, inline


def test_cli_writes_the_handout_beside_the_notebook_or_where_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "tour.ipynb"
    copy.write_bytes(STEPPER.read_bytes())
    assert main(["handout", str(copy)]) == 0
    assert (tmp_path / "tour.html").is_file()
    assert "every output visible offline" in capsys.readouterr().out
    out = tmp_path / "given.html"
    assert main(["handout", str(copy), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == handout_html(copy)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.ipynb"], "no notebook at"),
        (["not-a-notebook.ipynb"], "is not a Jupyter notebook"),
        (["tour.ipynb", "-o", "no/such/folder/out.html"], "create it first"),
        (["tour.ipynb", "-o", "tour.ipynb"], "would overwrite the notebook"),
    ],
)
def test_cli_handout_errors_say_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    args: list[str], message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tour.ipynb").write_bytes(STEPPER.read_bytes())
    (tmp_path / "not-a-notebook.ipynb").write_text("hello")
    assert main(["handout", *args]) == 2
    assert message in capsys.readouterr().err

