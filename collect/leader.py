"""The PiPER leader (teach) arm as a lerobot `Teleoperator`.

A PiPER leader puts its joint and gripper commands on the bus as control frames
(0x151, 0x155-0x157, 0x159), about 200 times a second. Whatever the wiring, the action
is what the SDK decodes from those frames (`GetArmJointCtrl` / `GetArmGripperCtrl`):
- one bus (`two_bus=False`): the follower's firmware obeys the frames itself;
- two buses (`two_bus=True`): the leader has its own port and the PC relays the action to
  the follower through its safety filter (`collect.teleop`).

    leader = PiperLeader(PiperLeaderConfig(port="can1", two_bus=True))
    leader.connect()                 # waits for the leader's command frames
    action = leader.get_action()     # {"joint_1.pos": rad, ..., "gripper.pos": m}
"""

from __future__ import annotations

import time
from functools import cached_property

from lerobot.teleoperators import Teleoperator

from collect.config_leader import PiperLeaderConfig
from collect.limits import MOTOR_KEYS
from collect.sdk import ArmError, CanPortError, close_sdk, motor_values, open_sdk


class PiperLeader(Teleoperator):
    config_class = PiperLeaderConfig
    name = "piper_leader"

    def __init__(self, config: PiperLeaderConfig):
        super().__init__(config)
        self.config = config
        self.port = config.port
        self.sdk = None

    @cached_property
    def action_features(self) -> dict[str, type]:
        return {key: float for key in MOTOR_KEYS}

    @cached_property
    def feedback_features(self) -> dict[str, type]:
        return {}

    @property
    def is_connected(self) -> bool:
        return self.sdk is not None

    def connect(self, calibrate: bool = True) -> None:
        if self.sdk is not None:
            return
        sdk = open_sdk(self.config.port, self.config.interface)
        deadline = time.monotonic() + self.config.frames_timeout_s
        while sdk.GetArmJointCtrl().time_stamp <= 0 or sdk.GetArmGripperCtrl().time_stamp <= 0:
            if time.monotonic() > deadline:
                close_sdk(sdk)
                raise CanPortError(
                    f"no command frames from the leader arm on {self.port!r} within "
                    f"{self.config.frames_timeout_s:.1f} s: is it powered on, set as leader (teach input, "
                    "0x470 0xFA) and on this CAN port?"
                )
            time.sleep(0.01)
        self.sdk = sdk

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    def get_action(self) -> dict[str, float]:
        if self.sdk is None:
            raise ArmError(f"the leader on {self.port!r} is not connected: call connect() first")
        joint_msg = self.sdk.GetArmJointCtrl()
        age = time.time() - joint_msg.time_stamp
        # A reader thread starved on a loaded PC looks stale for a moment too: give the
        # frames one more `stale_after_s` to arrive before calling the leader lost.
        deadline = time.monotonic() + self.config.stale_after_s
        while age > self.config.stale_after_s and time.monotonic() < deadline:
            time.sleep(0.005)
            joint_msg = self.sdk.GetArmJointCtrl()
            age = time.time() - joint_msg.time_stamp
        if age > self.config.stale_after_s:
            raise ArmError(
                f"the leader arm's last command is {age:.1f} s old: check its power and CAN cable ({self.port!r})"
            )
        values = motor_values(joint_msg.joint_ctrl, self.sdk.GetArmGripperCtrl().gripper_ctrl.grippers_angle)
        return dict(zip(MOTOR_KEYS, values, strict=True))

    def send_feedback(self, feedback: dict) -> None:
        pass  # the PiPER leader has no force feedback

    def disconnect(self) -> None:
        sdk, self.sdk = self.sdk, None
        if sdk is not None:
            close_sdk(sdk)
