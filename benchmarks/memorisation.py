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
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
for key, value in (("MUJOCO_GL", "egl"), ("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1")):
    os.environ.setdefault(key, value)


@dataclass(frozen=True)
class Recipe:
    """The closed-loop check's recipe (the defaults are what `make test` runs)."""

    task: str = "press_button"
    episodes: int = 5
    image_size: str = "64x64"
    backbone: str = "tiny-smolvla"
    steps: int = 5000  # 3000 replayed 4/5 on one CPU, 3/5 on another (numerics): 5/5 on both at 5000
    lr: float = 5e-4
    state_noise: float = 0.3
    chunk: int = 30  # steps per action chunk, all executed: 1 s spans the demonstrations' pauses
    max_duration: float = 12.0


def run_memorisation(root: Path, recipe: Recipe = Recipe()):
    """record -> train -> eval in the workspace `root` (continuing what is there); returns the
    scored trials (one per recorded episode, in seed order) and the wall time of each stage."""
    from app.cli import main as cli
    from evaluate.store import ResultsStore
    from train.checkpoint import last_step

    ws = ["--workspace", str(root)]
    dataset, run = f"memo-{recipe.task}", "memo"
    timings = {}
    t0 = time.perf_counter()
    record = ["record", "--backend", "sim", "--dataset", dataset, "--tasks", recipe.task,
              "--episodes", str(recipe.episodes), "--image-size", recipe.image_size]  # fmt: skip
    if (root / "datasets" / dataset).exists():
        record.append("--resume")
    if cli([*ws, *record]) != 0:
        raise RuntimeError("piper-ws record failed")
    timings["record"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    train = ["train", "--dataset", dataset, "--run", run, "--preset", "smolvla-full", "--backbone", recipe.backbone,
             "--steps", str(recipe.steps), "--lr", str(recipe.lr), "--set", f"state_noise={recipe.state_noise}",
             "--set", "val_episodes_per_task=0", "--device", "cpu",
             "--set", f'policy={{"chunk_size": {recipe.chunk}, "n_action_steps": {recipe.chunk}}}']  # fmt: skip
    done = last_step(root / "runs" / run)
    if done:
        train.append("--resume")
    if done < recipe.steps and cli([*ws, *train]) != 0:
        raise RuntimeError("piper-ws train failed")
    timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    evaluate = ["eval", "--run", run, "--backend", "sim", "--seeds-from-dataset", dataset,
                "--image-size", recipe.image_size, "--max-duration", str(recipe.max_duration), "--campaign", run]  # fmt: skip
    if cli([*ws, *evaluate]) != 0:
        raise RuntimeError("piper-ws eval failed")
    timings["eval"] = time.perf_counter() - t0
    with ResultsStore(root / "results.sqlite") as store:
        return store.trials(run), timings


def main() -> int:
    defaults = Recipe()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", help="workspace to use (default: a temporary one)")
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = vars(parser.parse_args())
    root = Path(args.pop("workspace") or tempfile.mkdtemp(prefix="memorisation-"))
    try:
        trials, timings = run_memorisation(root, Recipe(**args))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    wins = sum(t.outcome == "success" for t in trials)
    print(f"\nworkspace: {root}")
    print(f"own scenes replayed: {wins}/{len(trials)} " + " ".join(f"{t.seed}:{t.outcome}" for t in trials))
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
