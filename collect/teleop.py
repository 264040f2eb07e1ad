"""Teleoperation: the leader-follower gap check and the one-tick relay.

    relay = TeleopRelay(leader, follower)
    relay.start()                     # GapTooLarge if the follower is far from the leader
    action, sent = relay.step()       # every control tick

On two buses the relay sends the leader's action to the follower through its safety
filter; on one bus the firmware linkage moves the follower and `follower.send_action`
only reports what the leader commanded. Either way the gap check runs first: a follower
enabled far from its leader would otherwise jump (two buses) or lunge (linkage).
"""

from __future__ import annotations

from dataclasses import dataclass

from collect.limits import MOTOR_KEYS
from collect.sdk import ArmError

DEFAULT_MAX_GAP_RAD = 0.25  # ~14 degrees per joint
DEFAULT_MAX_GAP_M = 0.02  # gripper opening


class GapTooLarge(ArmError):
    """The follower is too far from the leader to start teleoperation."""

    def __init__(self, gaps: dict[str, float], limits: dict[str, float]):
        self.gaps = gaps
        too_far = [k for k in gaps if abs(gaps[k]) > limits[k]]
        details = ", ".join(
            f"{k} {gaps[k]:+.3f} {'m' if k.startswith('gripper') else 'rad'} (max {limits[k]:.3f})"
            for k in too_far
        )
        super().__init__(
            f"the follower is too far from the leader to start teleoperation: {details}. "
            "Move the leader arm to match the follower's pose, then start again."
        )


@dataclass(frozen=True)
class GapReport:
    gaps: dict[str, float]  # leader - follower, per motor key

    @property
    def largest_joint_gap_rad(self) -> float:
        return max(abs(v) for k, v in self.gaps.items() if not k.startswith("gripper"))


def gap_limits(
    max_gap_rad: float = DEFAULT_MAX_GAP_RAD, max_gap_m: float = DEFAULT_MAX_GAP_M
) -> dict[str, float]:
    return {k: (max_gap_m if k.startswith("gripper") else max_gap_rad) for k in MOTOR_KEYS}


def check_gap(
    leader_action: dict[str, float],
    follower_observation: dict[str, float],
    max_gap_rad: float = DEFAULT_MAX_GAP_RAD,
    max_gap_m: float = DEFAULT_MAX_GAP_M,
) -> GapReport:
    """The per-motor gap; raises GapTooLarge naming every motor beyond its limit."""
    gaps = {k: float(leader_action[k]) - float(follower_observation[k]) for k in MOTOR_KEYS}
    limits = gap_limits(max_gap_rad, max_gap_m)
    if any(not abs(gaps[k]) <= limits[k] for k in MOTOR_KEYS):  # `not <=` also catches NaN
        raise GapTooLarge(gaps, limits)
    return GapReport(gaps)


class TeleopRelay:
    def __init__(
        self, leader, follower, max_gap_rad: float = DEFAULT_MAX_GAP_RAD, max_gap_m: float = DEFAULT_MAX_GAP_M
    ):
        self.leader = leader
        self.follower = follower
        self.max_gap_rad = max_gap_rad
        self.max_gap_m = max_gap_m
        self.started = False

    def start(self) -> GapReport:
        """Check the gap, then enable the follower if it is not yet."""
        follower_now = dict(zip(MOTOR_KEYS, self.follower.read_joints(), strict=True))
        report = check_gap(self.leader.get_action(), follower_now, self.max_gap_rad, self.max_gap_m)
        if not self.follower.enabled:
            self.follower.enable()
        self.started = True
        return report

    def step(self) -> tuple[dict[str, float], dict[str, float]]:
        """(the leader's action, what the follower was really sent or obeyed)."""
        if not self.started:
            raise RuntimeError("TeleopRelay.start() (the gap check) must run before step()")
        action = self.leader.get_action()
        return action, self.follower.send_action(action)
