"""JupyterLab in Debian's Chromium, driven by Playwright: the browser tests and the README screenshots.

- ``jupyter_lab(root, work)`` starts JupyterLab on 127.0.0.1 (a free port, a
  random token, throwaway config, settings and workspace directories; autosave
  off, so no notebook on disk is ever rewritten), waits until it answers, and
  always shuts it (and its kernels) down.
- ``chromium(playwright, work, ...)`` launches ``/usr/bin/chromium`` headless
  with a fresh profile and the flags that keep it off the network (Playwright's
  own browser download is never used).
- ``NotebookPage`` opens a notebook, runs all cells and reads what the page
  shows: error outputs, widget errors, console errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Playwright, ViewportSize

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WINDOW: ViewportSize = {"width": 1280, "height": 900}
"""An ordinary laptop window: the README screenshots are taken at this size."""

# JupyterLab user settings for a clean, quiet, deterministic page.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/themes": {"theme": "JupyterLab Light"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # render every cell, not only those in view, so all outputs exist in the DOM
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}

WIDGET_ERRORS = ("Error displaying widget", "Loading widget", "Model not found")


# -- the JupyterLab server ------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_lab_settings(settings_dir: Path) -> None:
    for plugin, values in LAB_SETTINGS.items():
        file = settings_dir / f"{plugin}.jupyterlab-settings"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(values, indent=2))


def api(base: str, token: str, path: str, method: str = "GET") -> int:
    """The HTTP status of a Jupyter server API call."""
    request = urllib.request.Request(
        f"{base}{path}", method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Lab:
    """A running JupyterLab: where it answers and how to get in."""

    base: str
    token: str
    root: Path
    log: Path

    def url(self, notebook: Path) -> str:
        """The notebook alone in a workspace of its own (``reset``: no tab of an earlier page comes back)."""
        path = notebook.relative_to(self.root).as_posix()
        return f"{self.base}/lab/workspaces/{notebook.stem}/tree/{path}?reset&token={self.token}"


@contextlib.contextmanager
def jupyter_lab(root: Path, work: Path, timeout: float = 120) -> Iterator[Lab]:
    """Run JupyterLab on 127.0.0.1 serving ``root``; always stops it and its kernels."""
    port, token = free_port(), secrets.token_hex(24)
    settings, workspaces = work / "lab-settings", work / "lab-workspaces"
    write_lab_settings(settings)
    workspaces.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(work / "jupyter-config"),  # no user config can change the page
        "JUPYTER_RUNTIME_DIR": str(work / "jupyter-runtime"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={workspaces}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run commands
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # e.g. in a container, or CI as root
    log = work / "jupyter-lab.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({server.returncode}):\n{tail(log)}")
            with contextlib.suppress(OSError):
                if api(base, token, "/api/status") == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not answer in {timeout:.0f}s:\n{tail(log)}")
            time.sleep(0.25)
        yield Lab(base, token, root, log)
    finally:
        stop(server, base, token)


def stop(server: subprocess.Popen[bytes], base: str, token: str) -> None:
    """Shut the server down through its API (which stops its kernels), then by signal if need be."""
    if server.poll() is None:
        with contextlib.suppress(OSError):
            api(base, token, "/api/shutdown", method="POST")
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    # kernels left behind are in the server's process group (its own session)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.pid, signal.SIGTERM)


# -- the browser ----------------------------------------------------------------
def chromium(playwright: Playwright, profile: Path, viewport: ViewportSize = WINDOW) -> BrowserContext:
    """Debian's Chromium, headless, with a fresh profile directory (``--user-data-dir``)."""
    return playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport=viewport,
        device_scale_factor=1,
        color_scheme="light",
    )


# In the page: the notebook panel opened from the URL, once the kernel is ready.
READY_JS = """async () => {
  const app = window.jupyterapp;
  await app.restored;
  const panel = app.shell.currentWidget;
  await panel.context.ready;
  await panel.sessionContext.ready;
  panel.node.setAttribute('data-under-test', 'true');
  return panel.sessionContext.session.kernel.name;
}"""

NOTEBOOK = "[data-under-test] .jp-Notebook"
"""The notebook under test (its panel is marked by READY_JS)."""

RUN_ALL_JS = """async () => {
  const app = window.jupyterapp;
  const ok = await app.commands.execute('notebook:run-all-cells');
  const notebook = app.shell.currentWidget.content;
  notebook.activeCellIndex = 0;   // no active-cell marker next to the outputs
  notebook.mode = 'command';
  return ok;
}"""

# Every code cell's outputs as the notebook model holds them after running.
OUTPUTS_JS = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
  const found = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    const outputs = cell.outputs.toJSON();
    found.push({index: i, count: cell.executionCount, outputs});
  }
  return found;
}"""

SHOW_FILE_BROWSER_JS = "() => window.jupyterapp.shell.expandLeft()"
HIDE_SIDEBARS_JS = "() => { window.jupyterapp.shell.collapseLeft(); window.jupyterapp.shell.collapseRight() }"
CHANGE_THEME_JS = "(theme) => window.jupyterapp.commands.execute('apputils:change-theme', {theme})"

# Where to clip a screenshot of ``el``: the smallest box around what it draws (text,
# controls, tables, inline boxes, childless flex items; not the full-width block and
# flex containers around them) plus ``pad``, but never above its cell's output.
# Scrolls ``el`` to the middle of the notebook first, away from the status bar.
CLIP_JS = """(el, pad) => {
  el.scrollIntoView({block: 'center'});
  const rects = [];
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
  for (let node = walker.currentNode; node; node = walker.nextNode()) {
    if (node.nodeType === Node.TEXT_NODE) {
      if (!node.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      rects.push(range.getBoundingClientRect());
      continue;
    }
    const display = getComputedStyle(node).display;
    const parent = node.parentElement ? getComputedStyle(node.parentElement).display : '';
    const container = ['block', 'flex', 'grid', 'list-item', 'flow-root'].includes(display);
    const flexLeaf = parent.endsWith('flex') && node.childElementCount === 0;
    const boxed = ['BUTTON', 'INPUT', 'SELECT', 'TEXTAREA', 'IMG', 'TABLE', 'svg'].includes(node.tagName);
    if (!container || flexLeaf || boxed) {
      rects.push(node.getBoundingClientRect());
    }
  }
  const box = el.getBoundingClientRect();
  const drawn = rects.filter(r => r.width > 0 && r.height > 0);
  const right = Math.max(...drawn.map(r => r.right));
  const output = (el.closest('.jp-Cell-outputWrapper') || el).getBoundingClientRect();
  const left = Math.max(box.left - pad, 0), top = Math.max(box.top - pad, output.top);
  return {x: left + window.scrollX, y: top + window.scrollY,
          width: right + pad - left, height: box.bottom + pad - top};
}"""


@dataclass
class NotebookPage:
    """One notebook open in JupyterLab, with what the browser said while it was open."""

    page: Page
    console_errors: list[str] = field(default_factory=list)

    @classmethod
    def open(
        cls, context: BrowserContext, lab: Lab, notebook: Path, timeout_ms: int = 300_000
    ) -> NotebookPage:
        """Open ``notebook`` in a new tab and wait until its kernel is ready."""
        page = context.new_page()
        page.set_default_timeout(timeout_ms)
        opened = cls(page)
        page.on("console", opened._console)
        page.on("pageerror", lambda error: opened.console_errors.append(f"page error: {error}"))
        page.goto(lab.url(notebook))
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget")
        page.evaluate(READY_JS)
        return opened

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    def run_all(self) -> None:
        if not self.page.evaluate(RUN_ALL_JS):
            raise AssertionError("Run All Cells did not finish: see the notebook's outputs")
        # outputs are in the model; give the front end a moment to render them (widgets load lazily)
        self.page.wait_for_load_state("networkidle")

    def close(self) -> None:
        """Shut the notebook's kernel down (it may hold a lot of memory) and close the page."""
        self.page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
        self.page.close()

    def outputs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.page.evaluate(OUTPUTS_JS)
        return result

    def errors(self) -> list[str]:
        """Error outputs (and anything written to stderr) of the cells run."""
        found = []
        for cell in self.outputs():
            for output in cell["outputs"]:
                if output["output_type"] == "error":
                    found.append(f"cell {cell['index']}: {output['ename']}: {output['evalue']}")
                elif output["output_type"] == "stream" and output.get("name") == "stderr":
                    found.append(f"cell {cell['index']} wrote to stderr: {str(output['text'])[:300]}")
        return found

    def widget_errors(self) -> list[str]:
        text = self.page.locator(NOTEBOOK).inner_text()
        return [problem for problem in WIDGET_ERRORS if problem in text]

    def screenshot_pages(self, folder: Path, stem: str, limit: int = 40) -> list[Path]:
        """Screenshots of the whole notebook, one per window height scrolled (at most ``limit``)."""
        scroller = self.page.locator("[data-under-test] .jp-WindowedPanel-outer")
        height, view = scroller.evaluate("(el) => [el.scrollHeight, el.clientHeight]")
        paths = []
        for number, top in enumerate(range(0, height, max(view - 40, 100))):
            if number == limit:
                break
            scroller.evaluate("(el, top) => { el.scrollTop = top; }", top)
            paths.append(folder / f"{stem}-{number + 1:02d}.png")
            self.page.screenshot(path=paths[-1])
        return paths

    def set_notebook_width(self, width: int) -> None:
        """Resize the window so that the notebook column is ``width`` px wide (sidebars collapsed)."""
        self.page.evaluate(HIDE_SIDEBARS_JS)
        for _ in range(3):
            current = self.page.locator(NOTEBOOK).evaluate(
                "(el) => el.getBoundingClientRect().width"
            )
            viewport = self.page.viewport_size or WINDOW
            if round(current) == width:
                return
            self.page.set_viewport_size(
                {"width": viewport["width"] + width - round(current), "height": viewport["height"]}
            )
            self.page.wait_for_function(  # JupyterLab lays the panel out again on resize
                f"(w) => Math.round(document.querySelector('{NOTEBOOK}')"
                ".getBoundingClientRect().width) !== w",
                arg=round(current),
            )
        raise AssertionError(f"could not make the notebook column {width} px wide (it is {current})")
