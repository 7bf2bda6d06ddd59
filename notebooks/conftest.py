"""pytest configuration for the notebooks (run by nbval, see pyproject.toml).

``--nbval-sanitize-with=notebooks/sanitize.cfg`` comes from ``addopts``, and
nbval opens it relative to the directory pytest was started in. So that
``pytest /path/to/repo/notebooks`` works from any directory, a relative path
that does not exist there is taken relative to the rootdir instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    given = getattr(config.option, "nbval_sanitize_with", None)
    if given and not Path(given).is_absolute() and not Path(given).exists():
        candidate = config.rootpath / given
        if candidate.exists():
            config.option.nbval_sanitize_with = str(candidate)
