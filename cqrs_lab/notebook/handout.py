"""Offline handouts: a notebook as one self-contained HTML file (``cqrs-lab handout``).

Built on nbconvert's ``lab`` template, with what would load from the network
left out: no require.js, no widget manager, no MathJax, no Mermaid script.
Images are embedded. Widgets are shown as they can be without a kernel: a
``CommandStepper`` or ``ProcessStepper`` carries every step as static HTML
(Back and Next work with CSS alone), and any other widget shows its text form. The flow diagram and
the timeline are SVG drawn by cqrs_lab, charts made with ``svg_charts`` are
SVG: nothing in the page waits for a script or a server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cqrs_lab.errors import ConfigurationError

__all__ = ["WIDGET_VIEW", "handout_html", "write_handout"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
"""The output type of a live widget, which needs a kernel or a widget manager to show anything."""

_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def _read(path: Path) -> Any:
    import nbformat

    if not path.is_file():
        raise ConfigurationError(f"no notebook at {str(path)!r}: check the path")
    try:
        return nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    except (json.JSONDecodeError, UnicodeDecodeError, nbformat.reader.NotJSONError) as exc:
        raise ConfigurationError(f"{str(path)!r} is not a Jupyter notebook (.ipynb): {exc}") from exc


def _without_live_widgets(nb: Any) -> Any:
    """The notebook with its widget state dropped and each widget output left with its static forms."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)
    return nb


def handout_html(notebook: str | Path) -> str:
    """The notebook at ``notebook``, as saved (outputs included), as one self-contained HTML page."""
    try:
        from jinja2 import DictLoader
        from nbconvert import HTMLExporter
    except ImportError as exc:
        raise ConfigurationError(
            "handouts need nbconvert: pip install 'cqrs-lab[notebooks]' (or pip install nbconvert)"
        ) from exc
    path = Path(notebook)
    nb = _without_live_widgets(_read(path))
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="lab",
        extra_loaders=[DictLoader({"cqrs_lab_handout.html.j2": _TEMPLATE})],
        template_file="cqrs_lab_handout.html.j2",
        embed_images=True,
    )
    html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
    return str(html)


def write_handout(notebook: str | Path, out: str | Path | None = None) -> Path:
    """Write ``handout_html(notebook)`` to ``out`` (default: the notebook's path with ``.html``)."""
    source = Path(notebook)
    target = source.with_suffix(".html") if out is None else Path(out)
    if not target.parent.is_dir():
        raise ConfigurationError(f"no folder {str(target.parent)!r} to write the handout in: create it first")
    if target.resolve() == source.resolve():
        raise ConfigurationError(
            f"the handout would overwrite the notebook {str(source)!r}: give another -o OUT.html"
        )
    html = handout_html(source)
    target.write_text(html, encoding="utf-8")
    return target
