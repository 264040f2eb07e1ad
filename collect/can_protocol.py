"""The PiPER CAN protocol as piper_sdk 0.6.2 speaks it: IDs, units, frame layouts.

Standard 11-bit IDs, DLC 8, big-endian fields (../shared/design/PIPER_CAN.md). The
emulator encodes and decodes frames with these helpers, never with the SDK's own
encoder, so that the SDK's decoder is exercised for real in every test.
"""

from __future__ import annotations

import math
import struct

from collect.limits import GRIPPER_LIMITS_M, JOINT_LIMITS_RAD

# arm -> PC feedback
ARM_STATUS = 0x2A1
END_POSE = (0x2A2, 0x2A3, 0x2A4)  # X,Y / Z,RX / RY,RZ
JOINT_FEEDBACK = (0x2A5, 0x2A6, 0x2A7)  # J1,J2 / J3,J4 / J5,J6
GRIPPER_FEEDBACK = 0x2A8
HIGH_SPEED_BASE = 0x251  # 0x251..0x256, one per motor
LOW_SPEED_BASE = 0x261  # 0x261..0x266, one per motor

# PC -> arm (and leader -> follower on a shared bus)
MOTION_CTRL_1 = 0x150  # e-stop / resume
MOTION_CTRL_2 = 0x151  # control mode, move mode, speed
END_POSE_CTRL = (0x152, 0x153, 0x154)
JOINT_CTRL = (0x155, 0x156, 0x157)
GRIPPER_CTRL = 0x159
MASTER_SLAVE_CONFIG = 0x470
MOTOR_ENABLE = 0x471
QUERY_MOTOR_LIMITS = 0x472
MOTOR_LIMITS_REPLY = 0x473
MOTOR_MAX_ACC_REPLY = 0x47C
FIRMWARE = 0x4AF

CONTROL_IDS = frozenset((MOTION_CTRL_2, *JOINT_CTRL, GRIPPER_CTRL))  # what a leader sends
# every PC -> arm command an emulator records for audits (queries are not commands)
COMMAND_IDS = CONTROL_IDS | {MOTION_CTRL_1, *END_POSE_CTRL, MASTER_SLAVE_CONFIG, MOTOR_ENABLE}

# 0x2A1 byte 0
CTRL_MODE_STANDBY, CTRL_MODE_CAN, CTRL_MODE_TEACH, CTRL_MODE_LEADER = 0x00, 0x01, 0x02, 0x06
# 0x2A1 byte 1
ARM_STATUS_NORMAL, ARM_STATUS_ESTOP, ARM_STATUS_NO_SOLUTION, ARM_STATUS_JOINT_LIMIT = 0x00, 0x01, 0x02, 0x04
# 0x151 byte 1 and 0x2A1 byte 2 (C, M and CPV are not emulated)
MOVE_MODE_P, MOVE_MODE_JOINT, MOVE_MODE_L = 0x00, 0x01, 0x02
ESTOP_STOP, ESTOP_RESUME = 0x01, 0x02
ENABLE_FLAG, DISABLE_FLAG = 0x02, 0x01
LEADER_CONFIG, FOLLOWER_CONFIG = 0xFA, 0xFC
ENABLED_BIT = 0x40  # bit 6 of the low-speed and gripper status bytes
LEADER_FEEDBACK_OFFSET = 0x10  # a leader on a shared bus reports on 0x2Bx

# milli-degrees for joints, micrometres for the gripper stroke
JOINT_LIMITS_MDEG: tuple[tuple[int, int], ...] = tuple(
    (math.ceil(math.degrees(lo) * 1000), math.floor(math.degrees(hi) * 1000)) for lo, hi in JOINT_LIMITS_RAD
)
GRIPPER_MAX_UM = round(GRIPPER_LIMITS_M[1] * 1_000_000)


END_POSE_PER_UNIT = 1000  # 0x152-0x154 and 0x2A2-0x2A4 carry 0.001 mm and 0.001 deg


def end_pose_to_bus(xyz_mm_rpy_deg) -> tuple[int, ...]:
    """X, Y, Z (mm), RX, RY, RZ (deg) as the six integers of an end-pose frame set."""
    return tuple(round(v * END_POSE_PER_UNIT) for v in xyz_mm_rpy_deg)


def end_pose_from_bus(values) -> tuple[float, ...]:
    """The six integers of an end-pose frame set as X, Y, Z (mm), RX, RY, RZ (deg)."""
    return tuple(v / END_POSE_PER_UNIT for v in values)


def rad_to_mdeg(value_rad: float) -> int:
    return round(math.degrees(value_rad) * 1000.0)


def mdeg_to_rad(value_mdeg: float) -> float:
    return math.radians(value_mdeg / 1000.0)


def m_to_um(value_m: float) -> int:
    return round(value_m * 1_000_000.0)


def joint_targets_mdeg(joints_rad) -> tuple[int, ...]:
    """Six joint targets as sent on the bus: rounded, then kept inside the integer limits.

    Rounding alone can step outside: 1.22 rad is 69900.85 mdeg, which rounds to 69901
    while the limit is 69900. Every command frame is encoded through here.
    """
    return tuple(
        min(max(rad_to_mdeg(value), low), high)
        for value, (low, high) in zip(joints_rad, JOINT_LIMITS_MDEG, strict=True)
    )


def gripper_target_um(opening_m: float) -> int:
    """The gripper target as sent on the bus, inside [0, GRIPPER_MAX_UM]."""
    return min(max(m_to_um(opening_m), 0), GRIPPER_MAX_UM)


def um_to_m(value_um: float) -> float:
    return value_um / 1_000_000.0


def as_reported(motor_values) -> list[float]:
    """Seven motor values (6 joints rad, gripper m) as the arm reports them: rounded to 1 mdeg / 1 um.

    The feedback frames carry these units, so this is what the SDK decodes from an arm at
    `motor_values`; the sim env reports the same, so its states compare with recorded ones."""
    values = [float(v) for v in motor_values]
    return [mdeg_to_rad(rad_to_mdeg(v)) for v in values[:6]] + [um_to_m(m_to_um(values[6]))]


def as_commanded(motor_values) -> list[float]:
    """Seven motor targets as a follower decodes them from control frames (rounded, inside the limits)."""
    values = [float(v) for v in motor_values]
    return [mdeg_to_rad(v) for v in joint_targets_mdeg(values[:6])] + [um_to_m(gripper_target_um(values[6]))]


def pack_i32_pair(first: int, second: int) -> bytes:
    return struct.pack(">ii", int(first), int(second))


def unpack_i32_pair(data: bytes) -> tuple[int, int]:
    return struct.unpack(">ii", bytes(data[:8]))


def pack_status(
    ctrl_mode: int, arm_status: int, move_mode: int, motion_status: int, error_bits: int
) -> bytes:
    return struct.pack(">BBBBBBH", ctrl_mode, arm_status, move_mode, 0, motion_status, 0, error_bits & 0xFFFF)


def pack_gripper_feedback(stroke_um: int, effort_mnm: int, enabled: bool) -> bytes:
    status = (ENABLED_BIT if enabled else 0) | 0x80  # bit 7: homed
    effort = max(-32768, min(32767, int(effort_mnm)))
    return struct.pack(">ihBx", int(stroke_um), effort, status)


def pack_gripper_ctrl(stroke_um: int, effort_mnm: int, code: int, set_zero: int = 0) -> bytes:
    return struct.pack(">iHBB", int(stroke_um), max(0, min(5000, int(effort_mnm))), code, set_zero)


def unpack_gripper_ctrl(data: bytes) -> tuple[int, int, int, int]:
    """(stroke um, effort 0.001 N*m, code, set_zero)"""
    return struct.unpack(">iHBB", bytes(data[:8]))


def pack_high_speed(speed_mrad_s: int, current_ma: int, position: int) -> bytes:
    clamp16 = lambda v: max(-32768, min(32767, int(v)))  # noqa: E731
    return struct.pack(">hhi", clamp16(speed_mrad_s), clamp16(current_ma), int(position))


def pack_low_speed(enabled: bool) -> bytes:
    # voltage 0.1 V, driver temp, motor temp, status byte, bus current 0.001 A
    return struct.pack(">HhbBH", 240, 35, 30, ENABLED_BIT if enabled else 0, 500)


def pack_motion_ctrl_2(ctrl_mode: int, move_mode: int, speed_percent: int) -> bytes:
    return bytes([ctrl_mode, move_mode, max(0, min(100, speed_percent)), 0x00, 0, 0, 0, 0])


def pack_limits_reply(motor: int, max_mdeg: int, min_mdeg: int, max_speed_mrad_s: int) -> bytes:
    # angles in 0.1 deg
    return struct.pack(">BhhHB", motor, max_mdeg // 100, min_mdeg // 100, max_speed_mrad_s, 0)


def pack_max_acc_reply(motor: int, max_acc: int) -> bytes:
    return struct.pack(">BH5x", motor, max_acc)
