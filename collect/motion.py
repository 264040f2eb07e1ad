"""Moving the follower to a pose on its own: the episode start before a trial or an episode.

Every command goes through `PiperFollower.send_action` (safety filter: limits, per-tick
step, e-stop), one per control tick, so the arm approaches at the safety step rate and
an E-STOP stops it at once (`send_action` raises).
"""

from __future__ import annotations

import time

from collect.episode_start import EpisodeStart
from collect.limits import MOTOR_KEYS


def drive_to(follower, pose: EpisodeStart, *, fps: int = 30, timeout_s: float = 8.0, sim=None) -> bool:
    """Command `pose` tick by tick until the follower is within its tolerance; False on timeout.
    `sim`: a lockstep `SimRuntime` to advance one period per tick instead of sleeping."""
    period = 1.0 / fps
    for _ in range(max(1, round(timeout_s * fps))):
        if pose.reached(dict(zip(MOTOR_KEYS, follower.read_joints(), strict=True))):  # joints only, no frames
            return True
        follower.send_action(pose.action())
        if sim is not None:
            sim.advance(period)
        else:
            time.sleep(period)
    return False
