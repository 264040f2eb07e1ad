"""Env steps per second of the PiPER sim gym envs, both cameras rendered.

One step = 1/30 s of physics (17 MuJoCo steps) + the side and wrist frames. The reference
in the same process is the state-only env (`obs_type="agent_pos"`): the ratio tells what
rendering costs. The virtual operator drives the arm so the scene is in motion.

    .venv/bin/python benchmarks/bench_env.py                  # pick_grape, 150 steps per size
    .venv/bin/python benchmarks/bench_env.py --task pour_block --steps 300
    .venv/bin/python benchmarks/bench_env.py --images docs/images   # also one side+wrist image per task
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")


def steps_per_second(task: str, obs_type: str, size: tuple[int, int], steps: int) -> float:
    from collect.sim.env import PiperSimEnv
    from collect.sim.operator import VirtualOperator

    env = PiperSimEnv(task, obs_type=obs_type, image_size=size)
    env.reset(seed=0)
    operator = VirtualOperator(task, 0)
    env.step(operator.act(env.world, env.sim_time))  # renderer creation is not a step
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, _, _ = env.step(operator.act(env.world, env.sim_time))
        if terminated:
            env.reset(seed=1)
            operator = VirtualOperator(task, 1)
    elapsed = time.perf_counter() - t0
    env.close()
    return steps / elapsed


# The operator's move at whose start each task's picture is taken (the task in progress).
SNAPSHOT_AT = {
    "open_pot": "carry",
    "pour_block": "let it fall",
    "press_button": "release",
    "pick_grape": "lower",
}


def save_task_images(folder: Path, size: tuple[int, int] = (240, 320), seed: int = 3) -> None:
    """docs/images/<task>.png: side view | wrist view, mid-task, driven by the virtual operator."""
    import numpy as np
    from PIL import Image

    from collect.sim.env import PiperSimEnv
    from collect.sim.operator import VirtualOperator

    folder.mkdir(parents=True, exist_ok=True)
    for task, move in SNAPSHOT_AT.items():
        env = PiperSimEnv(task, image_size=size)
        obs, _ = env.reset(seed=seed)
        operator = VirtualOperator(task, seed)
        while not operator.done:
            action = operator.act(env.world, env.sim_time)
            if operator.current_move == move:
                break
            obs, *_ = env.step(action)
        pair = np.concatenate([obs["pixels"]["side"], obs["pixels"]["wrist"]], axis=1)
        Image.fromarray(pair).save(folder / f"{task}.png", optimize=True)
        env.close()
        print(f"saved {folder / f'{task}.png'} ({env.task_description!r})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="pick_grape")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--images", type=Path, help="also save one side+wrist image per task here")
    args = parser.parse_args()
    if args.images:
        save_task_images(args.images)

    reference = steps_per_second(args.task, "agent_pos", (96, 128), args.steps * 2)
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; task {args.task}")
    print(
        f"state only (no rendering):   {reference:7.1f} steps/s  ({reference / 30:.1f}x real time at 30 fps)"
    )
    for size in ((480, 640), (240, 320)):
        rate = steps_per_second(args.task, "pixels_agent_pos", size, args.steps)
        print(
            f"side+wrist at {size[0]}x{size[1]}: {rate:7.1f} steps/s  ({rate / 30:.2f}x real time at 30 fps, "
            f"{rate / reference:.2f}x the state-only rate)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
