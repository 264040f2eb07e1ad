"""Where an emulated arm's joints come from.

`PiperEmulator` owns the protocol state (enabled, e-stop, control mode) and asks a
`JointSource` for the joints it reports. Two sources exist: `FirstOrderJoints` here (no
physics, for protocol tests and the leader arm) and the MuJoCo arm in `collect.sim`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Protocol

from collect.limits import HOME_JOINTS_RAD


@dataclass(frozen=True)
class JointState:
    positions_rad: tuple[float, ...]  # 6 joints
    velocities_rad_s: tuple[float, ...]  # 6 joints
    gripper_m: float
    gripper_effort_nm: float = 0.0


class JointSource(Protocol):
    def command(self, joints_rad: tuple[float, ...], gripper_m: float) -> None:
        """New targets (follower: from 0x155-0x159; leader: from the virtual operator)."""

    def set_motion_allowed(self, allowed: bool) -> None:
        """False while disabled, in e-stop or not in CAN control: the arm holds still."""

    def advance(self, dt: float) -> None:
        """Called once per emulator tick; a physics-backed source may do nothing here."""

    def read(self) -> JointState: ...


class FirstOrderJoints:
    """Joints that approach their targets with time constant `tau_s`. Thread-safe."""

    def __init__(
        self, initial_rad: tuple[float, ...] = HOME_JOINTS_RAD, gripper_m: float = 0.0, tau_s: float = 0.05
    ):
        self._lock = threading.Lock()
        self._q = list(initial_rad)
        self._qd = [0.0] * 6
        self._target = list(initial_rad)
        self._grip = gripper_m
        self._grip_target = gripper_m
        self._allowed = True
        self.tau_s = tau_s

    def command(self, joints_rad: tuple[float, ...], gripper_m: float) -> None:
        with self._lock:
            self._target = [float(v) for v in joints_rad]
            self._grip_target = float(gripper_m)

    def jump_to(self, joints_rad: tuple[float, ...], gripper_m: float) -> None:
        """Be at (and aim at) this pose now: a simulated reset, not a motion."""
        with self._lock:
            self._q = [float(v) for v in joints_rad]
            self._target = list(self._q)
            self._qd = [0.0] * 6
            self._grip = self._grip_target = float(gripper_m)

    def target(self) -> tuple[tuple[float, ...], float]:
        """The pose it is moving to (joints rad, gripper m)."""
        with self._lock:
            return tuple(self._target), self._grip_target

    def set_motion_allowed(self, allowed: bool) -> None:
        with self._lock:
            self._allowed = allowed
            if not allowed:  # forget the target so that re-enabling does not jump
                self._target = list(self._q)
                self._grip_target = self._grip

    def advance(self, dt: float) -> None:
        alpha = 1.0 - math.exp(-dt / self.tau_s) if self.tau_s > 0 else 1.0
        with self._lock:
            if not self._allowed:
                self._qd = [0.0] * 6
                return
            for i in range(6):
                step = (self._target[i] - self._q[i]) * alpha
                self._q[i] += step
                self._qd[i] = step / dt if dt > 0 else 0.0
            self._grip += (self._grip_target - self._grip) * alpha

    def read(self) -> JointState:
        with self._lock:
            return JointState(tuple(self._q), tuple(self._qd), self._grip)
