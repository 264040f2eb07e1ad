"""Replay on the Datasets page: time from the click to the first frame, and playback fps.

    .venv/bin/python benchmarks/bench_replay.py [--seconds 20] [--size 480x640] [--play-s 5] [--code DIR]

Records one episode with the real `EpisodeWriter` (two cameras of a moving test pattern,
h264 as Record writes it), then drives the real `DatasetsPage` offscreen: selects the
episode and times the click until a frame is on both camera views, then presses Play and
counts the frames the views show per second over `--play-s` s of playback. `--code DIR`
imports everything from another checkout (e.g. the main branch, before a change), so a
before/after runs in the same conditions. Load average is printed: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def record_episode(datasets_dir: Path, seconds: float, size: tuple[int, int], fps: int) -> None:
    import numpy as np

    from collect.recording.plan import RecordingPlan
    from collect.recording.writer import EpisodeRecord, EpisodeWriter

    height, width = size
    plan = RecordingPlan("replay_bench", tasks=["open_pot"], image_size=size, fps=fps)
    writer = EpisodeWriter.open(plan, datasets_dir)
    yy, xx = np.mgrid[0:height, 0 : 2 * width]
    pattern = np.stack([(xx * 0.3) % 255, (yy * 0.5) % 255, ((xx + yy) * 0.2) % 255], -1).astype(np.uint8)
    for i in range(int(seconds * fps)):
        shift = (4 * i) % width
        frame = np.ascontiguousarray(pattern[:, shift : shift + width])
        writer.add_frame(np.zeros(7), np.zeros(7), {"side": frame, "wrist": frame[::-1]}, "open the pot")
        while writer.pending_frames > fps:  # bounded memory; the encoder sets the pace
            time.sleep(0.01)
    writer.keep(EpisodeRecord(task="open_pot", instruction=plan.instruction("open_pot")))
    writer.close()


def wait_until(app, condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.002)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the recorded episode")
    parser.add_argument("--size", default="480x640", help="camera frames, HEIGHTxWIDTH")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--play-s", type=float, default=5.0, help="playback measured for this long")
    parser.add_argument(
        "--code", default=str(Path(__file__).resolve().parent.parent), help="checkout to import"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.code).resolve()))
    size = tuple(int(v) for v in args.size.split("x"))
    print(
        f"code from {Path(args.code).resolve()}; load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )

    from PySide6.QtWidgets import QApplication

    from app.gui.context import AppContext
    from app.gui.pages.datasets import DatasetsPage
    from collect.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        workspace = Workspace.open(Path(tmp) / "ws")
        began = time.perf_counter()
        record_episode(workspace.datasets_dir, args.seconds, size, args.fps)
        print(
            f"recorded a {args.seconds:.0f} s episode, {args.size}, two cameras ({time.perf_counter() - began:.0f} s)"
        )
        app = QApplication.instance() or QApplication([])
        context = AppContext(workspace)
        page = DatasetsPage(context)
        page.resize(1200, 760)
        page.show()
        assert wait_until(app, lambda: page.episode_table.rowCount() == 1, 60), "the episode is not listed"
        views = list(page.views.values())

        clicked = time.perf_counter()
        page.episode_table.selectRow(0)
        shown = wait_until(app, lambda: all(v.last_frame is not None for v in views), 120)
        first_frame_s = time.perf_counter() - clicked
        print(f"click to first frame: {first_frame_s:.3f} s" + ("" if shown else " (NOTHING SHOWN in 120 s)"))
        wait_until(app, lambda: page.play_button.isEnabled(), 120)

        before = views[0].frames_shown
        page.toggle_play()
        started = time.perf_counter()
        wait_until(app, lambda: time.perf_counter() - started >= args.play_s, args.play_s + 1)
        played_s = time.perf_counter() - started
        fps = (views[0].frames_shown - before) / played_s
        print(
            f"playback: {fps:.1f} frames shown per second over {played_s:.1f} s (recorded at {args.fps} fps)"
        )
        page.shutdown()
        context.shutdown()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
