"""`PiperFollowerConfig`, registered with lerobot as robot type "piper_follower".

Its own module, as lerobot lays out its robots (config_<name>.py beside <name>.py): lerobot's
`make_robot_from_config` finds `collect.follower.PiperFollower` from this module's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.cameras import CameraConfig
from lerobot.robots import RobotConfig

from collect.safety import DEFAULT_MAX_STEP_M, DEFAULT_MAX_STEP_RAD
from collect.teleop import DEFAULT_MAX_GAP_M, DEFAULT_MAX_GAP_RAD


@RobotConfig.register_subclass("piper_follower")
@dataclass(kw_only=True)
class PiperFollowerConfig(RobotConfig):
    port: str = "can0"
    interface: str = "socketcan"  # "socketcan" (real arm) or "virtual" (simulated arm)
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    max_step_rad: float = DEFAULT_MAX_STEP_RAD  # per send_action
    max_step_m: float = DEFAULT_MAX_STEP_M
    speed_percent: int = 100
    gripper_effort_nm: float = 1.0
    yield_to_leader: bool = True  # one bus shared with a leader: its frames drive the arm
    # enable() on a bus with a leader refuses when the two arms are further apart than this
    max_gap_rad: float = DEFAULT_MAX_GAP_RAD
    max_gap_m: float = DEFAULT_MAX_GAP_M
    enable_on_connect: bool = False  # lerobot's own tools expect a ready arm after connect()
    feedback_timeout_s: float = 2.0
    enable_timeout_s: float = 3.0
    camera_timeout_ms: float = 1000.0
