"""The start of every sim episode, recorded (`SimRuntime.reset`) or evaluated (`PiperSimEnv.reset`).

One function, so a seed gives the same first frame in the recorder and in the gym env:
the arm at the episode start pose (`collect.episode_start`), appearance perturbations,
the task's objects placed from the seed, distractors, then `settle_s` of physics with
the arm holding still.
"""

from __future__ import annotations

import numpy as np

from collect.episode_start import EPISODE_START, EpisodeStart


def begin_episode(
    world,
    task,
    rng: np.random.Generator,
    *,
    start: EpisodeStart = EPISODE_START,
    perturber=None,
    distractors: bool = False,
) -> None:
    """Put `world` in the start state of an episode of `task` (None: bare table), drawing from `rng`."""
    world.reset(start.arm_q, start.gripper_m)
    world.rng = rng  # appearance jitter draws from the episode's stream too
    if perturber is not None:
        perturber.apply(rng)
    if task is not None:
        task.place(world, rng)
    if distractors:
        from collect.sim.perturb import place_distractors

        world.forward()
        place_distractors(world, rng, task.keepout(world) if task is not None else [])
    world.forward()
    world.advance(start.settle_s)


def episode_rng(seed: int | None) -> np.random.Generator:
    """The random stream of a seeded episode: the same as gymnasium's `np_random` for that seed."""
    return np.random.default_rng(seed)
