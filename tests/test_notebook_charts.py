"""svg_charts: matplotlib figures shown as SVG that is the same on every run (what nbval compares)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
from IPython.core.interactiveshell import InteractiveShell
import matplotlib
matplotlib.use("module://matplotlib_inline.backend_inline")
import matplotlib.pyplot as plt
from cqrs_lab.notebook import svg_charts

shell = InteractiveShell.instance()
svg_charts()

def drawn():
    figure, axes = plt.subplots()
    axes.bar(["a", "b"], [1, 2])
    axes.set_title("a chart")
    data, _ = shell.display_formatter.format(figure)
    plt.close(figure)
    return data

first, second = drawn(), drawn()
print(sorted(first))
svg = first["image/svg+xml"]
print(svg == second["image/svg+xml"])
print("dc:date" in svg, "Matplotlib v" in svg, ">a chart</text>" in svg)
print(matplotlib.rcParams["figure.figsize"])
"""


def test_charts_are_svg_without_date_or_version_and_identical_on_every_run() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "['image/svg+xml', 'text/plain']",  # SVG only: no PNG beside it
        "True",
        "False False True",  # no date, no matplotlib version; text kept as text
        "[8.0, 3.2]",
    ]
