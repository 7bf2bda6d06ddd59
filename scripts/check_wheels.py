"""Check that cqrs-lab installs from wheels on every supported Python and platform.

For the runtime dependencies and every extra in pyproject.toml, pip resolves the
whole dependency set with ``--only-binary :all:`` for each CPython version and
platform below, as if installing there (``pip install --dry-run --target``:
wheel metadata only, nothing is installed or built). A package without a wheel
for one of them fails the check, which names the package, Python and platform::

    python scripts/check_wheels.py                 # everything, as .ci/run does
    python scripts/check_wheels.py --python 3.13 --platform windows
    python scripts/check_wheels.py --requirement somepkg    # check other requirements

Extra pip options (``--pip-option=--no-index --pip-option=--find-links=DIR``) point
pip at another index; the test of this script uses a local folder of wheels.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = ("3.11", "3.12", "3.13", "3.14")


def _manylinux(arch: str, oldest: int) -> tuple[str, ...]:
    """Tags of wheels that install on glibc 2.28 (pip does not expand ``manylinux_2_28`` itself)."""
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(28, oldest - 1, -1)]
    tags += [f"{legacy[m]}_{arch}" for m in sorted(legacy, reverse=True) if m >= oldest]
    return (*tags, f"linux_{arch}")


PLATFORMS: dict[str, tuple[str, ...]] = {
    "manylinux-x86_64": _manylinux("x86_64", 5),
    "manylinux-aarch64": _manylinux("aarch64", 17),
    "macos-arm64": ("macosx_14_0_arm64",),  # pip adds older macOS versions and universal2
    "windows-amd64": ("win_amd64",),
}
_NO_MATCH = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)")
_NOT_FOUND = re.compile(r"Could not find a version that satisfies the requirement ([A-Za-z0-9._-]+)")


@dataclass(frozen=True)
class Failure:
    python: str
    platform: str
    package: str
    detail: str

    def __str__(self) -> str:
        return f"no wheel of {self.package} for CPython {self.python} on {self.platform} (pip: {self.detail})"


def project_requirements(extras: Sequence[str] | None = None) -> list[str]:
    """The runtime dependencies plus those of ``extras`` (default: every extra), without cqrs-lab itself."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    wanted = list(optional) if extras is None else list(extras)
    requirements = list(project["dependencies"])
    for extra in wanted:
        requirements += [r for r in optional[extra] if not r.replace("_", "-").startswith("cqrs-lab")]
    return list(dict.fromkeys(requirements))


def check_one(
    requirements: Sequence[str], python: str, platform: str, pip_options: Sequence[str] = ()
) -> Failure | None:
    """Resolve ``requirements`` from wheels only for one Python and platform; the failure, if any."""
    with tempfile.TemporaryDirectory() as target:
        command = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
            "--disable-pip-version-check", "--only-binary", ":all:", "--implementation", "cp",
            "--python-version", python, "--target", target,
            *(f"--platform={tag}" for tag in PLATFORMS[platform]),
            *pip_options, *requirements,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return None
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    found = _NO_MATCH.search(done.stderr) or _NOT_FOUND.search(done.stderr)
    package = found.group(1) if found else "(see pip's message)"
    return Failure(python, platform, package, " ".join(errors)[-400:] or done.stderr.strip()[-400:])


def check(
    requirements: Sequence[str],
    pythons: Sequence[str] = PYTHONS,
    platforms: Sequence[str] = tuple(PLATFORMS),
    pip_options: Sequence[str] = (),
) -> list[Failure]:
    """Every (Python, platform) pair checked, four at a time; the failures in a stable order."""
    pairs = [(p, plat) for p in pythons for plat in platforms]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda pair: check_one(requirements, *pair, pip_options), pairs)
        return [failure for failure in results if failure is not None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", choices=PYTHONS, help="a CPython version (default: all)")
    parser.add_argument(
        "--platform", action="append", choices=list(PLATFORMS), help="a platform (default: all)"
    )
    parser.add_argument(
        "--requirement", action="append", help="check these requirements instead of the project's"
    )
    parser.add_argument("--pip-option", action="append", default=[], help="an extra option for pip")
    args = parser.parse_args(argv)
    requirements = args.requirement or project_requirements()
    pythons = args.python or PYTHONS
    platforms = args.platform or list(PLATFORMS)
    failures = check(requirements, pythons, platforms, args.pip_option)
    for failure in failures:
        print(f"check_wheels: {failure}", file=sys.stderr)
    checked = f"{len(requirements)} requirement(s) on CPython {', '.join(pythons)} x {', '.join(platforms)}"
    if failures:
        failed = f"FAILED for {len(failures)} Python/platform pair(s)"
        print(f"check_wheels: {failed} of {checked}", file=sys.stderr)
        return 1
    print(f"check_wheels: every dependency has wheels: {checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
