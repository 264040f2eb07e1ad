"""The emulated follower's joints are the MuJoCo arm's joints.

`PiperEmulator` runs on its own thread and talks to a `collect.joint_source.JointSource`;
the MuJoCo world lives on the `SimRuntime` worker thread. This class is the hand-over
between the two: commands are queued under a lock and applied by the worker before it
steps physics (`apply_to`), and the worker publishes the arm's state after stepping
(`publish_from`), which `read()` returns to the emulator.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from collect.joint_source import JointState

log = logging.getLogger(__name__)


class MujocoJointSource:
    """A `JointSource` backed by a `PiperWorld` that another thread steps."""

    def __init__(self, initial: JointState):
        self._lock = threading.Lock()
        self._new_command = threading.Condition(self._lock)
        self._state = initial
        self._pending: tuple[tuple[float, ...], float] | None = None
        self._allowed = True
        self._hold_requested = False
        self.commands_received = 0
        self.last_command: tuple[tuple[float, ...], float] | None = None  # newest received, applied or not

    # -- JointSource (emulator thread) --------------------------------------------------
    def command(self, joints_rad: Sequence[float], gripper_m: float) -> None:
        with self._lock:
            if not self._allowed:  # disabled / e-stop / not in CAN mode: the arm holds
                return
            self._pending = self.last_command = (tuple(float(v) for v in joints_rad), float(gripper_m))
            self.commands_received += 1
            self._new_command.notify_all()

    def forget_commands(self) -> None:
        """Drop a command not yet applied (the world was reset; it belonged to the old episode)."""
        with self._lock:
            self._pending = self.last_command = None

    def wait_for_value(self, expected: list[float], timeout_s: float) -> bool:
        """Block until the newest command, as the emulator decoded it, equals `expected`
        (7 motor values as the bus carries them); False after `timeout_s`. Lockstep simulation
        calls this so that the command of this tick, not an older one, is applied."""
        deadline = time.monotonic() + timeout_s
        with self._new_command:
            while not self._matches(expected):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._allowed:
                    return self._matches(expected)
                self._new_command.wait(remaining)
            return True

    def _matches(self, expected: list[float]) -> bool:
        if self.last_command is None:
            return False
        joints, gripper = self.last_command
        return list(joints) + [gripper] == expected

    def set_motion_allowed(self, allowed: bool) -> None:
        with self._lock:
            if self._allowed and not allowed:
                self._pending = None
                self._hold_requested = True
            self._allowed = allowed

    def advance(self, dt: float) -> None:
        """Physics time passes on the runtime's worker, not with the emulator's ticks."""

    def read(self) -> JointState:
        with self._lock:
            return self._state

    @property
    def motion_allowed(self) -> bool:
        with self._lock:
            return self._allowed

    def wait_for_command(self, since: int, timeout_s: float, quiet_s: float = 0.003) -> int:
        """Block until commands arrived after count `since` and then `quiet_s` passed without
        another one (one SDK command is several CAN frames), or `timeout_s`; returns the count.
        Lockstep simulation calls this so that a command sent just before `advance` is applied."""
        deadline = time.monotonic() + timeout_s
        with self._new_command:
            while self.commands_received == since:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._allowed:
                    return self.commands_received
                self._new_command.wait(remaining)
            while True:
                seen = self.commands_received
                remaining = min(quiet_s, deadline - time.monotonic())
                if remaining <= 0 or not self._new_command.wait(remaining) or self.commands_received == seen:
                    return self.commands_received

    # -- world side (runtime worker thread) ---------------------------------------------
    def apply_to(self, world) -> None:
        """Hand the newest command (or a hold) to the world's actuators."""
        with self._lock:
            pending, hold = self._pending, self._hold_requested
            self._pending, self._hold_requested = None, False
        if hold:  # motion was stopped; a command after that (re-enabled) still applies
            world.hold()
        if pending is not None:
            try:
                world.set_arm_targets(*pending)
            except ValueError as exc:  # NaN or a wrong length never reaches the actuators
                log.warning("ignored an invalid arm command: %s", exc)

    def publish_from(self, world) -> None:
        state = world.arm_state()
        with self._lock:
            self._state = state
