"""Charts that nbval can compare: matplotlib figures shown as SVG that is the same on every run."""

from __future__ import annotations

__all__ = ["SVG_METADATA", "svg_charts"]

SVG_METADATA: dict[str, str | None] = {"Date": None, "Creator": None}
"""SVG metadata left out: the date of the run and the matplotlib version."""


def svg_charts(width: float = 8.0, height: float = 3.2) -> None:
    """Show matplotlib figures in this notebook as deterministic SVG (call once, before plotting).

    Figures are drawn as SVG (sharp at any zoom, and text in a handout stays
    text) instead of PNG; the SVG carries no date or version, its element ids
    come from a fixed hash salt, and text is kept as text rather than glyph
    outlines, so re-running a notebook gives byte-identical chart outputs.
    ``width`` and ``height`` are the default figure size in inches (8 inches
    fits a notebook column 1000 px wide). Needs matplotlib.
    """
    import matplotlib
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    matplotlib.rcParams.update(
        {"svg.hashsalt": "cqrs-lab", "svg.fonttype": "none", "figure.figsize": (width, height)}
    )
    set_matplotlib_formats("svg", metadata=SVG_METADATA)  # type: ignore[no-untyped-call]
