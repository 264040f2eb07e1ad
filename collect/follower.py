"""The PiPER follower arm as a lerobot `Robot`, through piper_sdk.

    follower = PiperFollower(PiperFollowerConfig(port="can0"), cameras={"side": cam, "wrist": cam2})
    follower.connect()             # SDK reader running, feedback arriving; the arm stays disabled
    follower.enable()              # CAN control, joint mode, motors powered
    follower.send_action({"joint_1.pos": 0.1, ..., "gripper.pos": 0.03})  # -> what was really sent
    follower.estop()               # any thread, any state; send_action refuses until resume()

Every command goes through `collect.safety.SafetyFilter` (limits, NaN/inf, step per tick)
and one lock (the SDK's sender is not thread-safe). Observations are the measured joints
(rad), the gripper opening (m) and the camera frames.

Leader-follower linkage (one bus): the PiPER firmware makes the follower obey the leader's
control frames directly. While a leader's frames are on the follower's bus (the SDK never
hears its own), `send_action` puts nothing on the bus (two sources of joint targets would
fight) and returns the leader's command as the firmware received it
(`yield_to_leader=False` turns this off). For the same reason `enable()` on such a bus
first checks the leader-follower gap (`collect.teleop.GapTooLarge`): enabled, the arm
would go straight to the leader's pose.
"""

from __future__ import annotations

import threading
import time
from functools import cached_property
from typing import Any

from lerobot.cameras.utils import make_cameras_from_configs
from lerobot.robots import Robot

from collect import can_protocol as p
from collect.cameras import connect_camera
from collect.config_follower import PiperFollowerConfig
from collect.limits import CAMERA_NAMES, MOTOR_KEYS
from collect.safety import SafetyFilter, action_to_vector
from collect.sdk import ArmError, close_sdk, motor_values, open_sdk, wait_for_feedback
from collect.teleop import check_gap

LEADER_FRAMES_FRESH_S = 0.1
ESTOP_CLEAR_WAIT_S = 0.5  # the status frame reports a resume within a few 200 Hz ticks


class EStopActive(ArmError):
    """A command was refused because the e-stop is active."""


class PiperFollower(Robot):
    config_class = PiperFollowerConfig
    name = "piper_follower"

    def __init__(self, config: PiperFollowerConfig, cameras: dict[str, Any] | None = None):
        super().__init__(config)
        self.config = config
        self.port = config.port
        # Simulated cameras are built by the station; real ones from the config.
        self.cameras = dict(cameras) if cameras is not None else make_cameras_from_configs(config.cameras)
        self.sdk = None
        self.safety = SafetyFilter(config.max_step_rad, config.max_step_m)
        self._send_lock = threading.Lock()
        self._enabled = False
        self._estopped = False

    # -- features -----------------------------------------------------------------------
    @cached_property
    def observation_features(self) -> dict[str, Any]:
        features: dict[str, Any] = {key: float for key in MOTOR_KEYS}
        for name, cam in self.cameras.items():
            features[name] = (cam.height, cam.width, 3)
        return features

    @cached_property
    def action_features(self) -> dict[str, type]:
        return {key: float for key in MOTOR_KEYS}

    # -- life cycle ---------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self.sdk is not None

    def connect(self, calibrate: bool = True) -> None:
        if self.sdk is not None:
            return
        sdk = open_sdk(self.config.port, self.config.interface)
        try:
            wait_for_feedback(sdk, self.config.port, self.config.feedback_timeout_s)
            for role, cam in self.cameras.items():
                if not cam.is_connected:
                    connect_camera(role, cam)
        except BaseException:
            close_sdk(sdk)
            self._disconnect_cameras()
            raise
        self.sdk = sdk
        self._estopped = self._arm_reports_estop()
        if self.config.enable_on_connect:
            self.enable()

    @property
    def is_calibrated(self) -> bool:
        return True  # the PiPER's joint zeros are set at the factory; nothing to calibrate here

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    def disconnect(self) -> None:
        with self._send_lock:  # a command being sent finishes first; none starts after
            sdk, self.sdk = self.sdk, None
            self._enabled = False
        if sdk is not None:
            close_sdk(sdk)
        self._disconnect_cameras()

    def _disconnect_cameras(self) -> None:
        for cam in self.cameras.values():
            if cam.is_connected:
                cam.disconnect()

    # -- arm verbs ------------------------------------------------------------------------
    def enable(self) -> None:
        """CAN control in joint mode with all motors powered; ArmError if the arm refuses."""
        sdk = self._require_sdk()
        # Right after resume() the arm's status frame may still say e-stop for a few ticks.
        settle_until = time.monotonic() + ESTOP_CLEAR_WAIT_S
        while not self._estopped and self._arm_reports_estop() and time.monotonic() < settle_until:
            time.sleep(0.01)
        if self._estopped or self._arm_reports_estop():
            self._estopped = True
            raise EStopActive("the arm is in e-stop: release the e-stop, press Resume, then Enable")
        if self.config.yield_to_leader and self.leader_is_commanding():
            # Linkage: once enabled, the firmware drives this arm straight to the leader's command.
            here = dict(zip(MOTOR_KEYS, self.read_joints(), strict=True))
            check_gap(self._leader_command(), here, self.config.max_gap_rad, self.config.max_gap_m)
        deadline = time.monotonic() + self.config.enable_timeout_s
        while True:
            # The sender lock is taken per attempt, never across the wait: an e-stop from
            # another thread goes out at once, and this loop gives up when it sees it.
            with self._send_lock:
                self._refuse_if_estopped("enable aborted")
                sdk.MotionCtrl_2(p.CTRL_MODE_CAN, p.MOVE_MODE_JOINT, self.config.speed_percent, 0x00)
                if sdk.EnablePiper():
                    break
            if time.monotonic() > deadline:
                raise ArmError(
                    f"the arm on {self.port!r} did not report its motors enabled within "
                    f"{self.config.enable_timeout_s:.0f} s: check its power and the e-stop button"
                )
            time.sleep(0.02)
        with self._send_lock:
            self._refuse_if_estopped("enable aborted")
            current = self.read_joints()
            sdk.GripperCtrl(p.gripper_target_um(current[-1]), self._gripper_effort(), 0x01, 0)
            self.safety.reset(current)
            self._enabled = True

    def disable(self) -> None:
        sdk = self._require_sdk()
        with self._send_lock:
            self._enabled = False  # first: a send_action waiting for the lock then refuses
            sdk.DisableArm(7)
            sdk.GripperCtrl(0, 0, 0x00, 0)

    def estop(self) -> None:
        """Stop now. Safe from any thread; refuses nothing, waits for nothing but the sender."""
        self._estopped = True
        self._enabled = False
        sdk = self.sdk
        if sdk is None:
            return
        with self._send_lock:
            sdk.EmergencyStop(p.ESTOP_STOP)
            self._enabled = False  # an enable() that raced this call must not leave it set

    def resume(self) -> None:
        """Leave e-stop. The arm comes back disabled: call enable() to move again."""
        sdk = self._require_sdk()
        with self._send_lock:
            self._enabled = False
            sdk.EmergencyStop(p.ESTOP_RESUME)
        self._estopped = False

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def estopped(self) -> bool:
        return self._estopped

    # -- observation and action -------------------------------------------------------------
    def read_joints(self) -> list[float]:
        """Measured joints (rad) and gripper opening (m), in MOTOR_KEYS order."""
        sdk = self._require_sdk()
        return motor_values(
            sdk.GetArmJointMsgs().joint_state, sdk.GetArmGripperMsgs().gripper_state.grippers_angle
        )

    def get_observation(self) -> dict[str, Any]:
        observation: dict[str, Any] = dict(zip(MOTOR_KEYS, self.read_joints(), strict=True))
        for name, cam in self.cameras.items():
            observation[name] = cam.async_read(timeout_ms=self.config.camera_timeout_ms)
        return observation

    def send_action(self, action: dict[str, Any]) -> dict[str, float]:
        sdk = self._require_sdk()
        self._refuse_unless_enabled()  # fail fast, before reading the leader or filtering
        if self.config.yield_to_leader and self.leader_is_commanding():
            return self._leader_command()
        safe = self.safety.filter(action_to_vector(action))
        with self._send_lock:
            self._refuse_unless_enabled()  # disabled or e-stopped while we waited for the sender
            joints_mdeg = p.joint_targets_mdeg(safe[:6])
            gripper_um = p.gripper_target_um(safe[6])
            sdk.MotionCtrl_2(p.CTRL_MODE_CAN, p.MOVE_MODE_JOINT, self.config.speed_percent, 0x00)
            sdk.JointCtrl(*joints_mdeg)
            sdk.GripperCtrl(gripper_um, self._gripper_effort(), 0x01, 0)
        # The safe command; the frames carry it rounded to 1 mdeg / 1 um, inside the limits.
        return dict(zip(MOTOR_KEYS, safe, strict=True))

    # -- status -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        sdk = self._require_sdk()
        status = sdk.GetArmStatus().arm_status
        return {
            "ctrl_mode": _enum_value(status.ctrl_mode),
            "arm_status": _enum_value(status.arm_status),
            "estop": self._estopped or _enum_value(status.arm_status) == p.ARM_STATUS_ESTOP,
            "enabled": self._enabled,
            "motors_enabled": list(sdk.GetArmEnableStatus()),
            "can_fps": float(sdk.GetCanFps()),
        }

    # -- helpers ------------------------------------------------------------------------------
    def _require_sdk(self):
        if self.sdk is None:
            raise ArmError(f"the follower on {self.port!r} is not connected: call connect() first")
        return self.sdk

    def _refuse_unless_enabled(self) -> None:
        self._refuse_if_estopped()
        if not self._enabled:
            raise ArmError("the follower is not enabled: call enable() (Enable on the Station page) first")

    def _refuse_if_estopped(self, what: str = "no command is sent") -> None:
        if self._estopped:
            raise EStopActive(f"e-stop is active: {what} until Resume and Enable")

    def _arm_reports_estop(self) -> bool:
        return _enum_value(self._require_sdk().GetArmStatus().arm_status.arm_status) == p.ARM_STATUS_ESTOP

    def _gripper_effort(self) -> int:
        return round(self.config.gripper_effort_nm * 1000)

    def leader_is_commanding(self) -> bool:
        """True while a leader arm's control frames arrive on this bus (firmware linkage)."""
        stamp = self._require_sdk().GetArmJointCtrl().time_stamp
        return stamp > 0 and time.time() - stamp < LEADER_FRAMES_FRESH_S

    def _leader_command(self) -> dict[str, float]:
        values = motor_values(
            self.sdk.GetArmJointCtrl().joint_ctrl, self.sdk.GetArmGripperCtrl().gripper_ctrl.grippers_angle
        )
        return dict(zip(MOTOR_KEYS, values, strict=True))


def _enum_value(value) -> int:
    return int(getattr(value, "value", value))


__all__ = ["CAMERA_NAMES", "EStopActive", "PiperFollower", "PiperFollowerConfig"]
