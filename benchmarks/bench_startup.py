"""Time from launching `piper-ws` to its window on screen.

Runs the real console script in a child process (offscreen unless a DISPLAY is set) with
PIPER_WS_STARTUP_REPORT=1, which prints the moment the window is shown and quits. As a
reference in the same run, it also times a bare Python interpreter start, and
`import PySide6.QtWidgets` + an empty shown QWidget, so the figure can be read against
this machine's load. Target: under 3 s.

    .venv/bin/python benchmarks/bench_startup.py [--runs 5]
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    piper_ws = Path(sys.executable).with_name("piper-ws")
    env = dict(os.environ, PIPER_WS_STARTUP_REPORT="1", PIPER_WS_HOME=tempfile.mkdtemp(prefix="bench-ws-"))
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    _shown_after([str(piper_ws)], env)  # warm the file cache; not counted
    window = [_shown_after([str(piper_ws)], env) for _ in range(args.runs)]
    empty_qt = [_shown_after([sys.executable, "-c", EMPTY_QT], env) for _ in range(args.runs)]
    bare = [_wall([sys.executable, "-c", "pass"], env) for _ in range(args.runs)]
    print(f"platform: {env.get('QT_QPA_PLATFORM') or 'DISPLAY=' + env['DISPLAY']}   load (1/5/15 min): "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}   cores: {os.cpu_count()}")
    for name, values in (("piper-ws -> window shown", window), ("empty Qt window (reference)", empty_qt),
                         ("bare python (reference)", bare)):
        print(f"{name:30s} median {statistics.median(values):.3f} s   min {min(values):.3f}   max {max(values):.3f}")
    ratio = statistics.median(window) / statistics.median(empty_qt)
    verdict = "OK" if statistics.median(window) < 3.0 else "OVER the 3 s target"
    print(f"piper-ws / empty Qt window: {ratio:.2f}x   target < 3 s: {verdict}")


if __name__ == "__main__":
    main()
