"""Where every episode starts: one definition for recording and evaluation, sim and real arm.

A policy only meets its training start state again in evaluation if both begin from the
same place. So recording (each episode, after the reset) and evaluation (each trial)
start from `EPISODE_START`:

- the arm at `HOME_JOINTS_RAD` with the gripper open (ready to grasp);
- in sim, the task's objects placed from the seed, then `settle_s` of physics with the
  arm holding still, so objects rest on the table before the first frame;
- on the real arm, the follower within `tolerance` of the pose: evaluation drives it
  there; in recording the operator brings the leader there (or the PC drives the
  follower on two buses), and the Record page shows how far away it is.

Import-light (no MuJoCo, no SDK): the GUI, the recorder and the evaluator read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from collect.limits import GRIPPER_LIMITS_M, HOME_JOINTS_RAD, MOTOR_KEYS


@dataclass(frozen=True)
class EpisodeStart:
    arm_q: tuple[float, ...] = HOME_JOINTS_RAD
    gripper_m: float = GRIPPER_LIMITS_M[1]  # open
    settle_s: float = 0.2  # sim: objects come to rest while the arm holds the start pose
    tolerance: float = 0.03  # real arm: rad (m for the gripper) from the pose that counts as there

    def vector(self) -> tuple[float, ...]:
        """The start pose as a 7-vector in MOTOR_KEYS order."""
        return (*self.arm_q, self.gripper_m)

    def action(self) -> dict[str, float]:
        """The start pose as an action dict (what `send_action` takes)."""
        return dict(zip(MOTOR_KEYS, self.vector(), strict=True))

    def gap(self, observation: dict[str, float]) -> float:
        """Largest distance of any motor from the start pose (rad, or m for the gripper)."""
        return max(abs(float(observation[k]) - v) for k, v in zip(MOTOR_KEYS, self.vector(), strict=True))

    def reached(self, observation: dict[str, float]) -> bool:
        return self.gap(observation) <= self.tolerance


EPISODE_START = EpisodeStart()
