"""Virtual operator success per sim task over many seeds, with and without perturbations.

Runs the gym envs without rendering (`obs_type="agent_pos"`): the expert reads the scene
state, so lighting and camera shifts cannot change its result; distractors, colour and size
changes are applied as in rendered episodes. Prints a Markdown table and failing seeds.

    .venv/bin/python benchmarks/expert_success.py                       # 50 seeds, all tasks
    .venv/bin/python benchmarks/expert_success.py --seeds 10 --tasks pick_grape --perturbations "" all
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")


def run_cell(task: str, perturbations: str, seeds: list[int]) -> tuple[str, str, list, float]:
    from collect.sim.env import PiperSimEnv
    from collect.sim.operator import run_expert_episode

    env = PiperSimEnv(task, obs_type="agent_pos", image_size=(96, 128), perturbations=perturbations)
    t0 = time.perf_counter()
    episodes = [run_expert_episode(env, s) for s in seeds]
    return task, perturbations, episodes, time.perf_counter() - t0


def main() -> int:
    from collect.sim.tasks import TASK_KEYS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="+", default=list(TASK_KEYS))
    parser.add_argument("--perturbations", nargs="+", default=["", "all"], help='presets; "" = none')
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    cells = [(t, p) for t in args.tasks for p in args.perturbations]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(run_cell, *zip(*cells, strict=True), [seeds] * len(cells)))
    table = {(t, p): (eps, wall) for t, p, eps, wall in results}

    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    header = " | ".join(f"perturbations={p or 'none'}" for p in args.perturbations)
    print(f"\n| task | {header} |\n|---|" + "---|" * len(args.perturbations))
    for t in args.tasks:
        row = []
        for p in args.perturbations:
            eps, _ = table[(t, p)]
            ok = sum(e.success for e in eps)
            row.append(f"{ok}/{len(eps)} ({100 * ok / len(eps):.0f}%)")
        print(f"| {t} | " + " | ".join(row) + " |")
    print()
    for (t, p), (eps, wall) in table.items():
        failed = [e.seed for e in eps if not e.success]
        mean_s = sum(e.sim_seconds for e in eps if e.success) / max(1, sum(e.success for e in eps))
        print(
            f"{t:13s} {p or 'none':10s} mean sim time to success {mean_s:5.1f} s, wall {wall:6.1f} s, failed seeds {failed}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
