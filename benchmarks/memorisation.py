"""Closed-loop memorisation through the real commands: record a few episodes, fully
fine-tune on them, roll the policy out on those episodes' own scenes, print the tally.

    .venv/bin/python benchmarks/memorisation.py                       # 5 press_button episodes, tiny
    .venv/bin/python benchmarks/memorisation.py --episodes 6 --steps 1500 --lr 1e-3 --state-noise 0
    .venv/bin/python benchmarks/memorisation.py --workspace /tmp/memo   # keep (and reuse) what it made

`piper-ws record` -> `piper-ws train` -> `piper-ws eval --seeds-from-dataset`, in one
workspace (a temporary one unless --workspace; run again, it continues from what is
there). Trials are seeded (scene and policy noise), so one policy gives one tally; the
tiny backbone's random initial weights differ between caches, and so does the tally.
The issue's goal is 4 of 5.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
for key, value in (("MUJOCO_GL", "egl"), ("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1")):
    os.environ.setdefault(key, value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", help="workspace to use (default: a temporary one)")
    parser.add_argument("--task", default="press_button")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--image-size", default="64x64")
    parser.add_argument("--backbone", default="tiny-smolvla")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--state-noise", type=float, default=0.3)
    parser.add_argument("--max-duration", type=float, default=12.0)
    args = parser.parse_args()

    from app.cli import main as cli
    from evaluate.store import ResultsStore
    from train.checkpoint import last_step

    root = Path(args.workspace or tempfile.mkdtemp(prefix="memorisation-"))
    ws = ["--workspace", str(root)]
    dataset, run = f"memo-{args.task}", "memo"
    timings = {}
    t0 = time.perf_counter()
    record = ["record", "--backend", "sim", "--dataset", dataset, "--tasks", args.task,
              "--episodes", str(args.episodes), "--image-size", args.image_size]  # fmt: skip
    if (root / "datasets" / dataset).exists():
        record.append("--resume")
    if cli([*ws, *record]) != 0:
        return 1
    timings["record"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    train = ["train", "--dataset", dataset, "--run", run, "--preset", "smolvla-full", "--backbone", args.backbone,
             "--steps", str(args.steps), "--lr", str(args.lr), "--set", f"state_noise={args.state_noise}",
             "--set", "val_episodes_per_task=0", "--device", "cpu"]  # fmt: skip
    done = last_step(root / "runs" / run)
    if done:
        train.append("--resume")
    if done < args.steps and cli([*ws, *train]) != 0:
        return 1
    timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    evaluate = ["eval", "--run", run, "--backend", "sim", "--seeds-from-dataset", dataset,
                "--image-size", args.image_size, "--max-duration", str(args.max_duration), "--campaign", run]  # fmt: skip
    if cli([*ws, *evaluate]) != 0:
        return 1
    timings["eval"] = time.perf_counter() - t0
    with ResultsStore(root / "results.sqlite") as store:
        trials = store.trials(run)
    wins = sum(t.outcome == "success" for t in trials)
    print(f"\nworkspace: {root}")
    print(f"own scenes replayed: {wins}/{len(trials)} " + " ".join(f"{t.seed}:{t.outcome}" for t in trials))
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
