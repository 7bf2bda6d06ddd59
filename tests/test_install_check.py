"""scripts/check_wheels.py: the installability check that .ci/run runs.

The check itself is tested against a local folder of wheels (real pip
resolution, no network): a package whose only wheel is for CPython 3.12 must be
named as missing on 3.13, and one with a pure-Python wheel passes everywhere.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_wheels.py"


def _wheel(folder: Path, name: str, tag: str) -> None:
    """A minimal installable wheel ``name-1.0-{tag}.whl``."""
    info = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(folder / f"{name}-1.0-{tag}.whl", "w") as whl:
        whl.writestr(f"{name}/__init__.py", "")
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        whl.writestr(
            f"{info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n"
        )
        whl.writestr(f"{info}/RECORD", "")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=300
    )


def test_a_package_without_a_wheel_is_named_with_python_and_platform(tmp_path: Path) -> None:
    _wheel(tmp_path, "onlyold", "cp312-cp312-manylinux_2_17_x86_64")
    _wheel(tmp_path, "anywhere", "py3-none-any")
    local = ["--pip-option=--no-index", f"--pip-option=--find-links={tmp_path}"]
    done = _run(
        "--requirement", "onlyold", "--requirement", "anywhere",
        "--python", "3.12", "--python", "3.13",
        "--platform", "manylinux-x86_64", "--platform", "windows-amd64",
        *local,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    failures = [line for line in done.stderr.splitlines() if line.startswith("check_wheels: no wheel")]
    named = {line.split(" (pip:")[0] for line in failures}
    assert named == {
        "check_wheels: no wheel of onlyold for CPython 3.12 on windows-amd64",
        "check_wheels: no wheel of onlyold for CPython 3.13 on manylinux-x86_64",
        "check_wheels: no wheel of onlyold for CPython 3.13 on windows-amd64",
    }
    assert "FAILED for 3 Python/platform pair(s)" in done.stderr


def test_wheels_for_every_pair_pass(tmp_path: Path) -> None:
    _wheel(tmp_path, "anywhere", "py3-none-any")
    done = _run(
        "--requirement", "anywhere", "--python", "3.11", "--python", "3.14",
        "--pip-option=--no-index", f"--pip-option=--find-links={tmp_path}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "every dependency has wheels" in done.stdout
    assert "manylinux-aarch64" in done.stdout and "macos-arm64" in done.stdout


def _script(name: str) -> Any:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_the_check_covers_every_declared_dependency_and_extra() -> None:
    check_wheels = _script("check_wheels")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    checked = check_wheels.project_requirements()
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += [r for r in extra if not r.startswith("cqrs-lab")]
    assert set(checked) == set(declared)
    assert not any(r.startswith("cqrs-lab") for r in checked)
    assert check_wheels.PYTHONS == ("3.11", "3.12", "3.13", "3.14")
    assert "Programming Language :: Python :: 3.14" in project["classifiers"]


def test_lowest_constraints_pin_each_direct_dependency_once_at_its_lower_bound() -> None:
    lowest = _script("lowest_constraints")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += [r for r in extra if not r.startswith("cqrs-lab")]
    pins = lowest.lowest_pins()
    assert len(pins) == len(set(pins))
    for requirement in declared:
        name, bound = requirement.split(">=")
        name = name.split("[")[0].strip()
        bound = bound.split(",")[0].split("#")[0].strip().strip('"')
        assert f"{name}=={bound}" in pins, requirement
    assert "duckdb==1.5.2" in pins and not any(p.startswith("cqrs-lab") for p in pins)


def test_lowest_constraints_refuse_a_requirement_without_a_lower_bound(tmp_path: Path) -> None:
    lowest = _script("lowest_constraints")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["duckdb>=1.5", "pandas"]\n', encoding="utf-8")
    with pytest.raises(SystemExit, match="'pandas' has no '>=' lower bound"):
        lowest.lowest_pins(pyproject)
