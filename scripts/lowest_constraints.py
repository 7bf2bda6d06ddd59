"""Print pip constraints pinning every direct dependency to its declared minimum.

``.ci/run`` installs the project with them in a second virtual environment and
runs the tests there, so the lower bounds in pyproject.toml are tested, not
just declared::

    python scripts/lowest_constraints.py > lowest.txt
    pip install -c lowest.txt -e ".[dev]"

Every requirement of the runtime dependencies and of every extra must have a
``>=`` lower bound; the script fails naming one that has none.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_REQUIREMENT = re.compile(r"^([A-Za-z0-9._-]+)(\[[^\]]*\])?\s*(.*)$")


def lowest_pins(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``name==minimum`` for every direct dependency (runtime and every extra)."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    pins = []
    for requirement in requirements:
        found = _REQUIREMENT.match(requirement.strip())
        if found is None:
            raise SystemExit(f"lowest_constraints: cannot read requirement {requirement!r}")
        name, _, specifiers = found.groups()
        if name.replace("_", "-") == "cqrs-lab":
            continue
        minimum = re.search(r">=\s*([^,\s;]+)", specifiers)
        if minimum is None:
            raise SystemExit(f"lowest_constraints: {requirement!r} has no '>=' lower bound; declare one")
        pins.append(f"{name}=={minimum.group(1)}")
    return list(dict.fromkeys(pins))


if __name__ == "__main__":
    sys.stdout.write("".join(f"{pin}\n" for pin in lowest_pins()))
