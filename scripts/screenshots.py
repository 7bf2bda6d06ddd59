#!/usr/bin/env python
"""Take the README's screenshots of the notebook kit in headless Chromium.

What it does:

1. starts JupyterLab on 127.0.0.1 (a free port, a random token, throwaway
   config, settings and workspace directories; autosave off, so the notebook
   on disk is never rewritten) and waits until it answers;
2. drives Debian's Chromium (``/usr/bin/chromium``) headless through
   Playwright, with a fresh profile directory;
3. opens ``notebooks/screenshot_tour.ipynb``, runs all cells, clicks the
   ``CommandStepper``'s **Next** button and saves element screenshots to
   ``docs/images/``: ``stepper.png`` (a step that produced an event),
   ``stepper-rejected.png`` (a step a ``UserError`` rejected), ``timeline.png``
   (light theme) and ``timeline-dark.png`` (the same output in JupyterLab Dark);
4. always shuts the server (and its kernel) down, and checks that the
   notebook file is byte for byte what it was.

Needs ``apt-get install chromium`` and ``pip install jupyterlab playwright``
(never ``playwright install``: the script uses the system Chromium)::

    python scripts/screenshots.py              # docs/images/*.png
    python scripts/screenshots.py --execute    # first rebuild the notebook (notebooks/build.py)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "screenshot_tour.ipynb"
IMAGES = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
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
VIEWPORT: ViewportSize = {"width": 1100, "height": 900}
STEPPER_AT = 3  # the step of stepper.png (WriteCheck: an event, the balance changes)

# JupyterLab user settings for a clean, quiet, deterministic page.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/themes": {"theme": "JupyterLab Light"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # render every cell, not only those in view, so all outputs exist in the DOM
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


# -- the notebook ---------------------------------------------------------------
def execute_notebook(path: Path) -> None:
    """Rebuild and re-execute ``path`` with ``notebooks/build.py`` (its cells live there),
    so its stored outputs are the ones nbval compares against."""
    build = path.parent / "build.py"
    subprocess.run([sys.executable, str(build), path.stem], check=True)


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


@contextlib.contextmanager
def jupyter_lab(root: Path, work: Path, timeout: float = 90) -> Iterator[tuple[str, str]]:
    """Run JupyterLab on 127.0.0.1 serving ``root``; yields ``(base_url, token)``; always stops it."""
    port, token = free_port(), secrets.token_hex(24)
    settings, workspaces = work / "lab-settings", work / "lab-workspaces"
    write_lab_settings(settings)
    workspaces.mkdir()
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
        f"--IdentityProvider.token={token}",  # ServerApp.token before jupyter_server 2
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={workspaces}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run commands
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # e.g. in a container
    log = work / "jupyter-lab.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
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
        print(f"JupyterLab up on {base} (pid {server.pid})")
        yield base, token
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
    print("JupyterLab stopped")


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# -- the browser ----------------------------------------------------------------
# In the page: the notebook panel opened from the URL, once the kernel is ready.
READY_JS = """async () => {
  const app = window.jupyterapp;
  await app.restored;
  const panel = app.shell.currentWidget;
  await panel.context.ready;
  await panel.sessionContext.ready;
  app.shell.collapseLeft();
  app.shell.collapseRight();
  return panel.sessionContext.session.kernel.name;
}"""

RUN_ALL_JS = """async () => {
  const app = window.jupyterapp;
  const ok = await app.commands.execute('notebook:run-all-cells');
  const notebook = app.shell.currentWidget.content;
  notebook.activeCellIndex = 0;   // no active-cell marker next to the outputs
  notebook.mode = 'command';
  return ok;
}"""

CHANGE_THEME_JS = "(theme) => window.jupyterapp.commands.execute('apputils:change-theme', {theme})"

# Where to clip a screenshot of ``el``: the smallest box around what it draws (text,
# controls, tables, inline boxes, childless flex items; not the full-width block and
# flex containers around them)
# plus ``pad``, but never above its cell's output (the code cell's border is there).
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
    const boxed = ['BUTTON', 'INPUT', 'SELECT', 'TEXTAREA', 'IMG', 'TABLE'].includes(node.tagName);
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


def save(path: Path) -> None:
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"wrote {shown} ({path.stat().st_size // 1024} KB)")


def take_screenshots(base: str, token: str, chromium: str, out: Path, work: Path, dark: bool) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    notebook = NOTEBOOK.relative_to(ROOT).as_posix()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(work / "chromium-profile"),  # a fresh --user-data-dir
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
            device_scale_factor=1,
            color_scheme="light",
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/{notebook}?token={token}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget")
            print(f"notebook open, kernel {page.evaluate(READY_JS)}")
            if not page.evaluate(RUN_ALL_JS):
                raise RuntimeError("Run All Cells failed: see the notebook's outputs")

            # -- the stepper: click Next up to the step to show --------------------
            stepper = (
                page.locator(".jp-OutputArea-output .widget-vbox")
                .filter(has=page.locator(".cqrs-lab-step"))
                .first
            )
            stepper.locator(".cqrs-lab-step", has_text="step 0").wait_for()
            next_button = stepper.locator("button", has_text="Next")
            shots = {STEPPER_AT: out / "stepper.png", STEPPER_AT + 1: out / "stepper-rejected.png"}
            for step in range(1, max(shots) + 1):
                next_button.click()
                stepper.locator(".cqrs-lab-step", has_text=f"step {step} of").wait_for()
                if step in shots:
                    page.mouse.move(0, 0)  # no hover or focus styles on the buttons
                    page.evaluate("() => document.activeElement && document.activeElement.blur()")
                    page.screenshot(path=shots[step], clip=stepper.evaluate(CLIP_JS, 6))
                    save(shots[step])

            # -- the timeline at its own size --------------------------------------
            # JupyterLab shrinks an SVG to the output's width (max-width: 100%), so
            # widen the page until the timeline is drawn at the size it asks for.
            svg = page.locator(".cqrs-lab-timeline svg").first
            svg.wait_for()
            missing = svg.evaluate("(el) => el.width.baseVal.value - el.getBoundingClientRect().width")
            if missing > 0:
                page.set_viewport_size(
                    {"width": VIEWPORT["width"] + int(missing) + 40, "height": VIEWPORT["height"]}
                )
                page.wait_for_function(
                    "(el) => el.getBoundingClientRect().width >= el.width.baseVal.value",
                    arg=svg.element_handle(),
                )
            svg.screenshot(path=out / "timeline.png")
            save(out / "timeline.png")

            if dark:  # the same output in JupyterLab Dark, with its prompt and the page around it
                page.evaluate(CHANGE_THEME_JS, "JupyterLab Dark")
                page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(500)  # let the new theme's CSS apply
                area = (
                    page.locator(".jp-OutputArea-child").filter(has=page.locator(".cqrs-lab-timeline")).first
                )
                page.screenshot(path=out / "timeline-dark.png", clip=area.evaluate(CLIP_JS, 12))
                save(out / "timeline-dark.png")
        finally:
            context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--chromium",
        default=os.environ.get("CHROMIUM", CHROMIUM),
        help=f"the Chromium binary (default {CHROMIUM}, or $CHROMIUM)",
    )
    parser.add_argument("--out", type=Path, default=IMAGES, help="where the PNGs go (default docs/images)")
    parser.add_argument("--no-dark", action="store_true", help="skip timeline-dark.png")
    parser.add_argument(
        "--execute",
        action="store_true",
        help=f"re-execute {NOTEBOOK.relative_to(ROOT)} with nbclient first (its stored outputs)",
    )
    options = parser.parse_args()
    if not Path(options.chromium).exists():
        sys.exit(f"no Chromium at {options.chromium}: apt-get install chromium (or pass --chromium)")
    if options.execute:
        execute_notebook(NOTEBOOK)
        print(f"executed {NOTEBOOK.relative_to(ROOT)}")

    before = NOTEBOOK.read_bytes()
    work = Path(tempfile.mkdtemp(prefix="cqrs-lab-screenshots-"))
    try:
        with jupyter_lab(ROOT, work) as (base, token):
            take_screenshots(
                base, token, options.chromium, options.out.resolve(), work, dark=not options.no_dark
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if NOTEBOOK.read_bytes() != before:  # autosave is off; this is a safety net
            NOTEBOOK.write_bytes(before)
            print(f"warning: JupyterLab changed {NOTEBOOK.relative_to(ROOT)}; restored it", file=sys.stderr)


if __name__ == "__main__":
    main()
