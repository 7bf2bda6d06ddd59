"""Every ``python`` code block in README.md runs as written.

Blocks under one ``## `` heading run in order as one script (a section's later
examples build on its first), each section in a fresh interpreter and folder.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _sections() -> dict[str, str]:
    sections: dict[str, str] = {}
    for chunk in re.split(r"^## ", README.read_text(), flags=re.M)[1:]:
        title = chunk.splitlines()[0].strip()
        blocks = re.findall(r"```python\n(.*?)```", chunk, re.S)
        if blocks:
            sections[title] = "\n".join(blocks)
    return sections


SECTIONS = _sections()


def test_readme_has_python_examples() -> None:
    assert len(SECTIONS) >= 2


@pytest.mark.parametrize("title", list(SECTIONS))
def test_readme_example_runs(title: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(SECTIONS[title])
    (tmp_path / "data").symlink_to(README.parent / "data")  # examples may load the sample log
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
