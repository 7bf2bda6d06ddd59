"""The notebooks' sources: MyST files that the built notebooks match, cell for cell.

``notebooks/build.py`` only executes a source and normalises the result; these
tests check that every committed notebook was built from its source as it is
now (so an edit made to one side only is caught), that the workshop's student
edition is the teacher edition without its solutions, and that a rebuild of an
unchanged notebook is byte for byte the committed one.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = _build_module()
SOURCES = build.sources()


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, str, list[str]]]:
    return [(cell.id, cell.cell_type, cell.source, build.tags(cell)) for cell in nb.cells]


def test_every_notebook_has_a_source_and_every_source_a_notebook() -> None:
    assert len(SOURCES) >= 8
    built = {path.stem for path in NOTEBOOKS.glob("*.ipynb")}
    expected = set()
    for name in SOURCES:
        expected |= set(build.editions(name, build.read_source(SOURCES[name])))
    assert built == expected


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_committed_notebooks_match_their_source_cell_for_cell(name: str) -> None:
    for edition, expected in build.editions(name, build.read_source(SOURCES[name])).items():
        committed = nbformat.read(NOTEBOOKS / f"{edition}.ipynb", as_version=4)
        assert _cells(committed) == _cells(expected), (
            f"notebooks/{edition}.ipynb differs from its source notebooks/{name}.md: edit one, "
            f"then `jupytext --sync notebooks/{name}.md` and `python notebooks/build.py {name}`"
        )
        assert committed.metadata.get("jupytext") == expected.metadata.get("jupytext")


def _unversioned(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("jupytext_version:"))


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_source_is_what_jupytext_writes_for_its_paired_notebook(name: str) -> None:
    # what JupyterLab (with Jupytext) compares when it opens the pair: a difference would make
    # it refuse to open the notebook, since the built .ipynb is newer than its source
    committed = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert _unversioned(SOURCES[name].read_text()) == _unversioned(jupytext.writes(committed, fmt="md:myst"))


def test_no_notebook_text_lives_in_the_build_script() -> None:
    script = (NOTEBOOKS / "build.py").read_text()
    for source in SOURCES.values():
        heading = next(line for line in source.read_text().splitlines() if line.startswith("# "))
        assert heading not in script


def test_the_student_edition_is_the_workshop_without_its_solutions() -> None:
    teacher = nbformat.read(NOTEBOOKS / "02_workshop.ipynb", as_version=4)
    student = nbformat.read(NOTEBOOKS / "02_workshop_student.ipynb", as_version=4)
    solutions = [cell for cell in teacher.cells if "solution" in build.tags(cell)]
    assert len(solutions) >= 8
    assert _cells(student) == [c for c in _cells(teacher) if "solution" not in c[3]]
    assert "jupytext" not in student.metadata  # generated, not paired
    your_turn = [cell for cell in student.cells if "your-turn" in build.tags(cell)]
    assert len(your_turn) == 4
    # the specs are saved failing, visibly: the report's HTML says so
    reports = [o for cell in student.cells for o in cell.get("outputs", [])
               if "cqrs-lab-spec-report" in str(o.get("data", {}).get("text/html", ""))]
    assert len(reports) == 4
    teacher_reports = [o for cell in teacher.cells for o in cell.get("outputs", [])
                       if "cqrs-lab-spec-report" in str(o.get("data", {}).get("text/html", ""))]
    assert all(">0 failed<" in str(o["data"]["text/html"]) for o in teacher_reports)
    assert all(">0 failed<" not in str(o["data"]["text/html"]) for o in reports)


def test_rebuilding_an_unchanged_notebook_is_byte_for_byte_the_same(tmp_path: Path) -> None:
    # the screenshot tour has widgets (numbered model ids) and a timeline: the cases that drift
    [written] = build.build("screenshot_tour", out=tmp_path)
    assert written.read_bytes() == (NOTEBOOKS / "screenshot_tour.ipynb").read_bytes()
