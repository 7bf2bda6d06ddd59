"""Execute the notebooks in this folder from their sources, and make the result deterministic.

The source of each notebook is the MyST Markdown file beside it (``01_quickstart.md``
for ``01_quickstart.ipynb``): a Jupytext text notebook, paired with the ``.ipynb``.
Edit either one as a notebook in JupyterLab (``pip install -e ".[notebooks]"`` brings
Jupytext, which keeps the pair in sync on save) or the ``.md`` in any editor; then
run this script, which holds no notebook text. For each source it:

1. reads the cells (Jupytext);
2. numbers the cell ids (``cell-01``, ...) in source order;
3. executes the cells with nbclient in a kernel of this interpreter, started in
   this folder: what ``pytest --nbval --nbval-current-env`` does, so the committed
   outputs are the ones nbval compares against;
4. numbers the widget model ids, leaves execution timings and the Python patch
   version out, and writes ``NAME.ipynb``.

Rebuilding an unchanged notebook rewrites it byte for byte the same.

**Workshop editions.** A source with cells tagged ``solution`` is a workshop: it
gives two notebooks. ``NAME.ipynb``, the teacher edition, has every cell;
``NAME_student.ipynb``, the student edition, has no ``solution`` cell, so its
"your turn" cells (tagged ``your-turn``) are left as the student finds them and the
specs after them fail, visibly, until solved. Both are executed and checked by nbval.

Usage (from anywhere)::

    python notebooks/build.py                  # every notebook
    python notebooks/build.py 04 02_workshop   # by number or name
    python notebooks/build.py --no-execute     # cells only, no outputs
    python notebooks/build.py --out /tmp/nb    # write elsewhere (a rebuild to compare)

Needs jupytext, nbformat, nbclient and ipykernel (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import ipykernel.kernelspec
import jupytext
import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode
from traitlets import default

HERE = Path(__file__).resolve().parent
KERNEL = "python3"
CELL_TIMEOUT = 300
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PAIRING = "ipynb,md:myst"
SOLUTION = "solution"
"""Cells with this tag are in the teacher edition only."""
STUDENT_SUFFIX = "_student"


def sources(folder: Path = HERE) -> dict[str, Path]:
    """The notebook sources in ``folder``: every ``.md`` file that is a Jupytext notebook, by name."""
    found = {}
    for path in sorted(folder.glob("*.md")):
        if path.read_text(encoding="utf-8").startswith("---\njupytext:"):
            found[path.stem] = path
    return found


def tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def read_source(path: Path) -> NotebookNode:
    """The notebook of a source file: its cells numbered, its metadata that of a paired notebook."""
    nb = jupytext.read(path)
    for number, cell in enumerate(nb.cells, start=1):
        cell.id = f"cell-{number:02d}"
    nb.metadata = {
        "jupytext": {"formats": PAIRING},
        "kernelspec": {"name": KERNEL, "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    }
    return nb


def editions(name: str, nb: NotebookNode) -> dict[str, NotebookNode]:
    """The notebooks a source gives, by name: itself, and a student edition for a workshop."""
    if not any(SOLUTION in tags(cell) for cell in nb.cells):
        return {name: nb}
    student = copy.deepcopy(nb)
    student.cells = [cell for cell in student.cells if SOLUTION not in tags(cell)]
    del student.metadata["jupytext"]  # generated, not paired: its source is the teacher edition's
    return {name: nb, f"{name}{STUDENT_SUFFIX}": student}


# -- executing --------------------------------------------------------------------
class _CurrentEnvKernelSpecs(KernelSpecManager):
    """Every kernel name means a kernel of this interpreter, as ``--nbval-current-env`` does."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return self.kernel_spec_class(
            resource_dir=ipykernel.kernelspec.RESOURCES, **ipykernel.kernelspec.get_kernel_dict()
        )


class _CurrentEnvKernel(AsyncKernelManager):
    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self) -> KernelSpecManager:
        return _CurrentEnvKernelSpecs(data_dir=self.data_dir)


def execute(nb: NotebookNode) -> None:
    """Run every cell in a fresh kernel started in this folder; outputs go into ``nb``."""
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        kernel_manager_class=_CurrentEnvKernel,
        resources={"metadata": {"path": str(HERE)}},
        timeout=CELL_TIMEOUT,
        record_timing=False,
    )
    client.execute()
    language: dict[str, Any] = nb.metadata.get("language_info", {})
    language.pop("version", None)  # the interpreter's patch version says nothing about the notebook


def number_widget_models(text: str, nb: NotebookNode) -> str:
    """``text`` (the notebook as JSON) with its widget model ids numbered.

    ipywidgets gives every model a random id, and even the order in which a widget's
    models are created varies from run to run. Numbering them in a fixed order (the
    displayed widgets in output order, each followed depth-first by the models it
    refers to, then the models nothing displayed refers to, such as links, ordered by
    what they link) keeps a rebuild of an unchanged notebook byte for byte the same. The
    ids appear as keys of the stored widget state, in the views' ``model_id`` and in
    ``IPY_MODEL_<id>`` references.
    """
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    order: list[str] = []

    def visit(model_id: str) -> None:
        if model_id in state and model_id not in order:
            order.append(model_id)
            for child in re.findall(r"IPY_MODEL_(\w+)", json.dumps(state[model_id], sort_keys=True)):
                visit(child)

    for model_id in re.findall(r'"model_id": "(\w+)"', text):
        visit(model_id)

    def canonical(model_id: str) -> str:
        """A model no displayed widget refers to (a jslink, say), in terms of the numbered ones."""
        known = {m: f"#{n}" for n, m in enumerate(order)}
        text = json.dumps(state[model_id], sort_keys=True)
        return re.sub(r"IPY_MODEL_(\w+)", lambda ref: f"IPY_MODEL_{known.get(ref.group(1), '?')}", text)

    order += sorted((m for m in state if m not in order), key=canonical)
    for number, model_id in enumerate(order, start=1):
        text = text.replace(model_id, uuid.UUID(int=number).hex)
    return text


def write(nb: NotebookNode, path: Path) -> Path:
    nbformat.validate(nb)
    text = number_widget_models(nbformat.writes(nb), nb)
    path.write_text(nbformat.writes(nbformat.reads(text, as_version=4)), encoding="utf-8")  # keys sorted anew
    return path


def build(name: str, *, run: bool = True, out: Path = HERE) -> list[Path]:
    """Build the notebook(s) of source ``name`` into ``out``; the paths written."""
    written = []
    for edition, nb in editions(name, read_source(HERE / f"{name}.md")).items():
        if run:
            execute(nb)
        written.append(write(nb, out / f"{edition}.ipynb"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks to build, by name or number (default: all)")
    parser.add_argument("--no-execute", action="store_true", help="write the cells without running them")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write them (default: this folder)")
    args = parser.parse_args(argv)
    known = list(sources())
    names = []
    for given in args.names or known:
        stem = Path(given).name.removesuffix(".ipynb").removesuffix(".md").removesuffix(STUDENT_SUFFIX)
        matches = [name for name in known if name == stem or name.startswith(f"{stem}_")]
        if len(matches) != 1:
            parser.error(f"no notebook {given!r}; known: {', '.join(known)} (or their numbers)")
        names.append(matches[0])
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        for path in build(name, run=not args.no_execute, out=args.out.resolve()):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
