"""Time from launching `piper-ws` to its window on screen.

Runs the real console script in a child process (offscreen unless a DISPLAY is set) with
PIPER_WS_STARTUP_REPORT=1, which prints the moment the window is shown and quits. As a
reference in the same run, it also times a bare Python interpreter start, and
`import PySide6.QtWidgets` + an empty shown QWidget, so the figure can be read against
this machine's load. Target: under 3 s.

With --gui-latency it then measures, in this process, how late a 20 ms GUI timer fires
while the sim station opens and while it previews both cameras (the GUI thread must never
block), against the same timer with no station (reference).

    .venv/bin/python benchmarks/bench_startup.py [--runs 5] [--gui-latency] [--size 480x640]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EMPTY_QT = (
    "import time; from PySide6.QtWidgets import QApplication, QWidget; a = QApplication([]); "
    "w = QWidget(); w.show(); a.processEvents(); print(f'window_shown_at={time.time():.6f}')"
)


def _shown_after(command: list[str], env: dict[str, str]) -> float:
    start = time.time()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    for line in proc.stdout.splitlines():
        if line.startswith("window_shown_at="):
            return float(line.split("=", 1)[1]) - start
    raise RuntimeError(f"{command[0]} did not report its window:\n{proc.stdout}\n{proc.stderr}")


def _wall(command: list[str], env: dict[str, str]) -> float:
    start = time.time()
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)
    return time.time() - start


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def gui_latency(image_size: tuple[int, int], preview_s: float = 10.0) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui.context import AppContext
    from app.gui.main_window import MainWindow
    from app.gui.workers import station_worker as sw
    from collect.workspace import Workspace

    app = QApplication.instance() or QApplication([])
    context = AppContext(Workspace.open(tempfile.mkdtemp(prefix="bench-ws-")))
    window = MainWindow(context)
    window.show()
    page = window.page(0)
    clock = QElapsedTimer()
    phases: dict[str, list[float]] = {"idle (reference)": [], "station opening": [], "live preview": []}
    state = {"phase": "idle (reference)", "last": 0.0, "until": 0.0, "frames0": 0}

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e9
        phases[state["phase"]].append((now - state["last"]) * 1000 - 20.0)  # ms late
        state["last"] = now
        if state["phase"] == "idle (reference)" and now > 3.0:
            state["phase"] = "station opening"
            context.open_station(image_size=image_size)
        elif state["phase"] == "station opening" and context.station.state in (sw.READY, sw.ERROR):
            state["phase"], state["until"] = "live preview", now + preview_s
            state["frames0"] = page.cameras["side"].frames_shown
        elif state["phase"] == "live preview" and now > state["until"]:
            state["frames"] = page.cameras["side"].frames_shown - state["frames0"]
            timer.stop()
            window.close()
            app.quit()

    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(tick)
    clock.start()
    timer.start()
    app.exec()
    print(f"GUI timer lateness (ms), 20 ms timer, sim station at {image_size[0]}x{image_size[1]}:")
    for name, values in phases.items():
        if values:
            print(
                f"  {name:18s} n={len(values):4d}  p50 {_percentile(values, 0.5):6.1f}  "
                f"p99 {_percentile(values, 0.99):6.1f}  max {max(values):6.1f}"
            )
    print(f"  preview frames shown: {state.get('frames', 0) / preview_s:.1f}/s per camera")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gui-latency", action="store_true")
    parser.add_argument("--size", default="480x640", help="camera HxW for --gui-latency")
    args = parser.parse_args()
    piper_ws = Path(sys.executable).with_name("piper-ws")
    env = dict(os.environ, PIPER_WS_STARTUP_REPORT="1", PIPER_WS_HOME=tempfile.mkdtemp(prefix="bench-ws-"))
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    _shown_after([str(piper_ws)], env)  # warm the file cache; not counted
    window = [_shown_after([str(piper_ws)], env) for _ in range(args.runs)]
    empty_qt = [_shown_after([sys.executable, "-c", EMPTY_QT], env) for _ in range(args.runs)]
    bare = [_wall([sys.executable, "-c", "pass"], env) for _ in range(args.runs)]
    print(
        f"platform: {env.get('QT_QPA_PLATFORM') or 'DISPLAY=' + env['DISPLAY']}   load (1/5/15 min): "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}   cores: {os.cpu_count()}"
    )
    for name, values in (
        ("piper-ws -> window shown", window),
        ("empty Qt window (reference)", empty_qt),
        ("bare python (reference)", bare),
    ):
        print(
            f"{name:30s} median {statistics.median(values):.3f} s   min {min(values):.3f}   max {max(values):.3f}"
        )
    ratio = statistics.median(window) / statistics.median(empty_qt)
    verdict = "OK" if statistics.median(window) < 3.0 else "OVER the 3 s target"
    print(f"piper-ws / empty Qt window: {ratio:.2f}x   target < 3 s: {verdict}")
    if args.gui_latency:
        height, width = (int(v) for v in args.size.split("x"))
        gui_latency((height, width))


if __name__ == "__main__":
    main()
