"""Where a failing policy went: how close the tool came to each sim trial's first target.

    piper-ws --workspace W eval --run R1 --run R2 --backend sim ... --campaign C --save-episodes
    .venv/bin/python benchmarks/reach.py --workspace W --campaign C

Success says a trial failed; this says whether the arm got to the object at all. For every
trial the campaign saved as an episode (`--save-episodes`), the tool point (the forward
kinematics of the recorded joints, `collect.sim.ik`) is compared with the task's first
target in that trial's scene (rebuilt from its seed): the closest horizontal distance, the
lowest tool height within `--near` of the target, and the distance `--at` seconds in. Per
run and task: the trials that came within `--near`, and the medians. Trials are seeded, so
a campaign gives the same figures every time.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

# the object the tool must reach first in each task (its position at the trial's start)
FIRST_TARGET = {"press_button": "button", "pick_grape": "grape", "open_pot": "lid", "pour_block": "cup"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--campaign", required=True, help="a sim campaign run with --save-episodes")
    parser.add_argument("--near", type=float, default=0.02, help="m: 'reached' within this (horizontal)")
    parser.add_argument("--at", type=float, default=2.0, help="s: also the distance this far into a trial")
    parser.add_argument("--every", type=int, default=3, help="frames between the poses compared")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from collect.sim.env import PiperSimEnv
    from collect.sim.ik import arm_ik
    from collect.sim.tasks.base import body_pos
    from collect.workspace import Workspace
    from evaluate.store import ResultsStore

    workspace = Workspace.open(args.workspace)
    with ResultsStore(workspace.results_db) as store:
        trials = [t for t in store.trials(args.campaign) if t.episode_ref]
    if not trials:
        print(
            f"campaign {args.campaign!r} has no saved trials: run it with `piper-ws eval ... --save-episodes`"
        )
        return 2
    dataset = trials[0].episode_ref.split("#")[0]
    root = workspace.datasets_dir / dataset
    frames = pd.concat(pd.read_parquet(p) for p in sorted((root / "data").rglob("*.parquet")))
    info = pd.read_json(root / "meta" / "info.json", typ="series")
    fps = int(info["fps"])

    envs: dict = {}
    summary: dict[tuple[str, str], list] = defaultdict(list)
    for trial in trials:
        if trial.task not in FIRST_TARGET:
            continue
        if trial.task not in envs:
            env = PiperSimEnv(task=trial.task, image_size=(48, 64))
            envs[trial.task] = (env, arm_ik(env.world))
        env, ik = envs[trial.task]
        env.reset(seed=trial.seed)
        target = np.asarray(body_pos(env.world, FIRST_TARGET[trial.task]))
        episode = int(trial.episode_ref.split("#")[1])
        states = np.stack(frames[frames.episode_index == episode]["observation.state"].to_numpy())
        tool = np.array([ik.forward(q[:6]).pos for q in states[:: args.every]])
        horizontal = np.linalg.norm(tool[:, :2] - target[:2], axis=1)
        near = horizontal < args.near
        lowest = float(tool[near, 2].min()) if near.any() else float("nan")
        at = horizontal[min(len(horizontal) - 1, round(args.at * fps / args.every))]
        summary[(trial.run, trial.task)].append((horizontal.min(), lowest, at, trial.outcome == "success"))
        print(
            f"{trial.run} {trial.task} #{trial.trial_index} (seed {trial.seed}, {trial.outcome}): "
            f"closest {horizontal.min():.3f} m, lowest tool z within {args.near} m {lowest:.3f}, "
            f"{at:.3f} m at {args.at:g} s"
        )
    print()
    print(f"| run | task | trials | within {args.near * 100:g} cm | successes | median closest (m) "
          f"| median lowest z there (m) | median at {args.at:g} s (m) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for (run, task), rows in summary.items():
        a = np.array(rows, dtype=float)
        lowest = np.nanmedian(a[:, 1]) if np.isfinite(a[:, 1]).any() else float("nan")
        print(
            f"| {run} | {task} | {len(a)} | {int((a[:, 0] < args.near).sum())} | {int(a[:, 3].sum())} "
            f"| {np.median(a[:, 0]):.3f} | {lowest:.3f} | {np.median(a[:, 2]):.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
