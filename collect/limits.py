"""The PiPER's names, units and limits: the one place every layer reads them from.

Joint limits are piper_sdk 0.6.2's (`piper_param_manager.py`); the SDK applies them only
when asked, so the project clamps every command itself (see `collect.safety`).
"""

from __future__ import annotations

import math

JOINT_NAMES: tuple[str, ...] = tuple(f"joint_{i}" for i in range(1, 7))
GRIPPER_NAME = "gripper"
# Order of the 7-vector used for observation.state and action everywhere.
MOTOR_KEYS: tuple[str, ...] = tuple(f"{n}.pos" for n in JOINT_NAMES) + (f"{GRIPPER_NAME}.pos",)
CAMERA_NAMES: tuple[str, ...] = ("side", "wrist")

# radians, (low, high), joint_1 .. joint_6
JOINT_LIMITS_RAD: tuple[tuple[float, float], ...] = (
    (-2.6179, 2.6179),
    (0.0, 3.14),
    (-2.967, 0.0),
    (-1.745, 1.745),
    (-1.22, 1.22),
    (-2.0944, 2.0944),
)
# metres of opening between the fingers
GRIPPER_LIMITS_M: tuple[float, float] = (0.0, 0.07)
# low/high for all seven MOTOR_KEYS, in order
MOTOR_LIMITS: tuple[tuple[float, float], ...] = JOINT_LIMITS_RAD + (GRIPPER_LIMITS_M,)

# A natural ready pose (arm raised, forearm forward); a joint vector means the same
# pose on the real arm and in simulation.
HOME_JOINTS_RAD: tuple[float, ...] = (0.0, 1.57, -1.3485, 0.0, 0.0, 0.0)

# Protocol units used on the CAN bus.
MILLIDEG_PER_RAD = 180_000.0 / math.pi
MICROMETRE_PER_M = 1_000_000.0  # gripper stroke is in 0.001 mm
