"""Open the workstation window (`piper-ws` with no command).

Qt needs a display. Without one (no DISPLAY / WAYLAND_DISPLAY and QT_QPA_PLATFORM unset)
we say how to run offscreen or headless and exit 2 instead of letting Qt abort.
Set PIPER_WS_STARTUP_REPORT=1 to print `window_shown_at=<unix time>` and quit as soon as
the window is on screen (benchmarks/bench_startup.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

NO_DISPLAY_HELP = """piper-ws: no display found (DISPLAY and WAYLAND_DISPLAY are unset), so the window cannot open.
  - On a desktop: run it from a terminal of that desktop, or `ssh -X` into this machine.
  - Without a screen: run the window offscreen, e.g. for a screenshot or a smoke test:
        QT_QPA_PLATFORM=offscreen piper-ws
    or under a virtual display:  xvfb-run -a piper-ws
  - Everything the window does also runs headless: `piper-ws doctor`, `piper-ws --help`
    lists the commands (record, train, eval, results, ...)."""


def display_available(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("QT_QPA_PLATFORM"):
        return True  # the user chose a platform (offscreen, xcb, wayland, ...)
    if sys.platform != "linux":
        return True  # macOS / Windows always have a window system
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def launch_gui(args: argparse.Namespace) -> int:
    if not display_available():
        print(NO_DISPLAY_HELP, file=sys.stderr)
        return 2

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui.context import AppContext
    from app.gui.main_window import MainWindow
    from collect.workspace import Workspace

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("PiPER Workstation")
    try:
        workspace = Workspace.open(getattr(args, "workspace", None))
        workspace.load_hardware()  # a corrupt workspace.json: say which file, before any window
    except (OSError, ValueError) as exc:
        print(f"piper-ws: cannot open the workspace: {exc}", file=sys.stderr)
        return 1
    context = AppContext(workspace)
    window = MainWindow(context)
    if os.environ.get("PIPER_WS_STARTUP_REPORT"):

        def report() -> None:  # once the event loop runs: the window has been laid out and mapped
            print(f"window_shown_at={time.time():.6f}", flush=True)
            window.close()

        window.shown.connect(lambda: QTimer.singleShot(0, report))
    else:
        window.shown.connect(lambda: context.open_station())
    window.show()
    return app.exec()
