"""Packaging: environment.yml matches pyproject.toml, imports stay light, the demo runs."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# conda-forge names that differ from PyPI's
CONDA_NAMES = {"python-duckdb": "duckdb", "psycopg-pool": "psycopg_pool"}


def _name(requirement: str) -> str:
    name = re.split(r"[<>=!\[ ;]", requirement.strip(), maxsplit=1)[0]
    return name.lower().replace("_", "-")


def _pyproject_packages() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = list(project["dependencies"])
    todo, seen = ["dev"], set()  # the dev extra and the extras it names (cqrs-lab[...])
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for requirement in extras[extra]:
            if requirement.startswith("cqrs-lab["):
                todo += [e for e in requirement[len("cqrs-lab["):-1].split(",") if e not in seen]
            else:
                requirements.append(requirement)
    return {_name(r): re.sub(r"^[^<>=!]*", "", r.split(";")[0]).strip() for r in requirements}


def _environment_packages() -> dict[str, str]:
    packages: dict[str, str] = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        match = re.match(r"^\s+- ([A-Za-z][\w.-]*)(\S*)\s*$", line)
        if not match or match.group(1) in ("python", "pip"):
            continue
        name = CONDA_NAMES.get(match.group(1), match.group(1))
        packages[_name(name)] = match.group(2)
    return packages


def test_environment_yml_lists_the_same_packages_and_bounds_as_pyproject() -> None:
    expected = _pyproject_packages()
    expected["psycopg"] = expected.pop("psycopg")  # the [binary] extra is a wheel choice, same package
    assert _environment_packages() == expected


def test_import_cqrs_lab_does_not_load_drivers_or_widgets() -> None:
    code = (
        "import sys, cqrs_lab, cqrs_lab.examples.bank_account\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'duckdb', 'psycopg', 'psycopg_pool', 'ipywidgets', 'pandas', 'pyarrow', 'cqrs_lab.notebook'})\n"
        "assert not any(m.startswith(('cqrs_lab.notebook', 'cqrs_lab.aio')) for m in sys.modules)\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_py_typed_is_shipped() -> None:
    assert (ROOT / "cqrs_lab" / "py.typed").is_file()


def test_readme_shows_the_demo_and_test_commands_that_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install . && cqrs-lab demo" in readme
    test_command = 'pip install -e ".[dev]" && pytest'
    assert test_command in readme
    assert 'pip install -e ".[dev]"' in ci
    assert re.search(r"^\s*pytest\b", ci, re.M)
