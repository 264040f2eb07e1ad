"""The vendor's own demo flows (piper_sdk/demo/V2) through the unmodified SDK against the emulator."""

import itertools
import math
import time

import numpy as np
import pytest

from collect import can_protocol as p
from collect.emulator import PiperEmulator
from collect.ik_dh import Pose
from collect.joint_source import FirstOrderJoints
from collect.limits import HOME_JOINTS_RAD, JOINT_LIMITS_RAD
from collect.sdk import close_sdk, open_sdk, wait_for_feedback

from .conftest import unique_channel, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def demo():
    """An enabled arm, as every demo starts: `while not piper.EnablePiper(): time.sleep(0.01)`."""
    with PiperEmulator(
        unique_channel("demo"), role="follower", joint_source=FirstOrderJoints(tau_s=0.02)
    ) as emu:
        piper = open_sdk(emu.channel, "virtual")
        try:
            wait_for_feedback(piper, emu.channel)
            assert wait_until(piper.EnablePiper)
            yield emu, piper
        finally:
            close_sdk(piper)


def stroke_um(piper) -> int:
    return piper.GetArmGripperMsgs().gripper_state.grippers_angle


def test_gripper_demo_opens_and_closes_without_motion_ctrl_2(demo):
    """piper_ctrl_gripper.py: clear and enable the gripper, then stream strokes; never MotionCtrl_2."""
    emu, piper = demo
    joints_before = emu.joints.read().positions_rad
    piper.GripperCtrl(0, 1000, 0x02, 0)  # disable and clear errors
    piper.GripperCtrl(0, 1000, 0x01, 0)  # enable
    for target in (50_000, 0, 30_000):  # 0.001 mm: 50 mm open, shut, 30 mm
        for _ in range(40):  # the demo streams the same command every 5 ms
            piper.GripperCtrl(target, 1000, 0x01, 0)
            time.sleep(0.005)
        assert wait_until(lambda t=target: abs(stroke_um(piper) - t) <= 20), (target, stroke_um(piper))
    assert not emu.control_frames(frozenset({p.MOTION_CTRL_2}))
    assert int(piper.GetArmStatus().arm_status.ctrl_mode.value) == p.CTRL_MODE_STANDBY
    assert emu.joints.read().positions_rad == pytest.approx(joints_before, abs=1e-9)  # the arm stays put
    piper.GripperCtrl(0, 1000, 0x00, 0)  # disabled: a stroke command is refused
    piper.GripperCtrl(10_000, 1000, 0x00, 0)
    time.sleep(0.1)
    assert abs(stroke_um(piper) - 30_000) <= 20


def test_gripper_holds_in_estop(demo):
    emu, piper = demo
    piper.GripperCtrl(0, 1000, 0x01, 0)
    piper.EmergencyStop(p.ESTOP_STOP)
    assert wait_until(lambda: emu.estop)
    for _ in range(20):
        piper.GripperCtrl(50_000, 1000, 0x01, 0)
        time.sleep(0.005)
    time.sleep(0.1)
    assert stroke_um(piper) == 0


# -- end-pose control (0x152-0x154) -------------------------------------------------------------
DEMO_POSES = (
    (57.0, 0.0, 215.0, 0.0, 85.0, 0.0),
    (57.0, 0.0, 260.0, 0.0, 85.0, 0.0),
)  # piper_ctrl_end_pose.py
# piper_ctrl_moveL.py: a 100 mm square, the flange pointing down
SQUARE = tuple(
    (x, y, 150.0, -179.9, 0.0, -179.9) for x, y in ((150, -50), (150, 50), (250, 50), (250, -50), (150, -50))
)
POS_TOL_MM, ROT_TOL_DEG = 0.05, 0.05


def reported_pose(piper) -> Pose:
    e = piper.GetArmEndPoseMsgs().end_pose
    xyz_rpy = p.end_pose_from_bus((e.X_axis, e.Y_axis, e.Z_axis, e.RX_axis, e.RY_axis, e.RZ_axis))
    return Pose.from_xyz_rpy(xyz_rpy[:3], xyz_rpy[3:])


def pose_error(piper, xyz_rpy) -> tuple[float, float]:
    """(mm, deg) between the reported flange pose and `xyz_rpy`."""
    mm, rad = reported_pose(piper).distance_to(Pose.from_xyz_rpy(xyz_rpy[:3], xyz_rpy[3:]))
    return mm, math.degrees(rad)


def command_pose(piper, move_mode, xyz_rpy, speed=100):
    piper.MotionCtrl_2(p.CTRL_MODE_CAN, move_mode, speed, 0x00)
    piper.EndPoseCtrl(*p.end_pose_to_bus(xyz_rpy))


def reach(piper, move_mode, xyz_rpy, timeout_s=5.0) -> tuple[float, float]:
    """Stream the command every 10 ms, as the demos do, until the reported pose is within tolerance."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        command_pose(piper, move_mode, xyz_rpy)
        piper.GripperCtrl(0, 1000, 0x01, 0)
        error = pose_error(piper, xyz_rpy)
        if error[0] < POS_TOL_MM and error[1] < ROT_TOL_DEG:
            return error
        time.sleep(0.01)
    raise AssertionError(f"{xyz_rpy} not reached: error {pose_error(piper, xyz_rpy)} (mm, deg)")


def arm_status(piper) -> tuple[int, int]:
    """(arm_status, mode_feed) of 0x2A1 as the SDK decodes them."""
    status = piper.GetArmStatus().arm_status
    return int(status.arm_status.value), int(status.mode_feed.value)


def test_end_pose_demo_move_p_reaches_each_pose(demo):
    """piper_ctrl_end_pose.py / piper_ctrl_moveP.py: MOVE_P between two poses, repeated at 100 Hz."""
    emu, piper = demo
    piper.GripperCtrl(0, 1000, 0x01, 0)
    for xyz_rpy in (*DEMO_POSES, DEMO_POSES[0]):
        reach(piper, p.MOVE_MODE_P, xyz_rpy)
        assert arm_status(piper) == (p.ARM_STATUS_NORMAL, p.MOVE_MODE_P)
    assert emu.joints.read().positions_rad != pytest.approx(HOME_JOINTS_RAD, abs=1e-3)


def test_end_pose_is_ignored_outside_move_p_and_l(demo):
    emu, piper = demo
    start = emu.joints.read().positions_rad
    piper.EndPoseCtrl(*p.end_pose_to_bus(DEMO_POSES[0]))  # standby: no MotionCtrl_2 yet
    command_pose(piper, p.MOVE_MODE_JOINT, DEMO_POSES[0])
    time.sleep(0.2)
    assert emu.joints.read().positions_rad == pytest.approx(start, abs=1e-9)


def deviation_from_segment(point, a, b) -> float:
    ab = b - a
    s = min(1.0, max(0.0, float(np.dot(point - a, ab) / np.dot(ab, ab))))
    return float(np.linalg.norm(point - (a + s * ab)))


def test_move_l_demo_keeps_the_flange_on_straight_lines(demo):
    """piper_ctrl_moveL.py: MOVE_P to a corner, then MOVE_L around a 100 mm square."""
    emu, piper = demo
    reach(piper, p.MOVE_MODE_P, SQUARE[0])
    for start, end in itertools.pairwise(SQUARE):
        a, b = np.array(start[:3]), np.array(end[:3])
        command_pose(piper, p.MOVE_MODE_L, end)
        samples, worst_deg = [], 0.0
        while pose_error(piper, end)[0] > POS_TOL_MM:
            samples.append(reported_pose(piper).pos_mm)
            worst_deg = max(worst_deg, pose_error(piper, end)[1])  # the orientation stays put
            q = emu.joints.read().positions_rad
            assert all(lo <= v <= hi for v, (lo, hi) in zip(q, JOINT_LIMITS_RAD, strict=True))
            assert len(samples) < 1000, "MOVE_L did not arrive"
            time.sleep(0.005)
        worst_mm = max(deviation_from_segment(x, a, b) for x in samples)
        halfway = [x for x in samples if 0.25 < np.dot(x - a, b - a) / np.dot(b - a, b - a) < 0.75]
        assert len(halfway) >= 10, "the flange jumped instead of travelling"  # 0.5 s at 200 mm/s
        assert worst_mm < 0.5 and worst_deg < 0.1, (start, end, worst_mm, worst_deg)
        assert arm_status(piper) == (p.ARM_STATUS_NORMAL, p.MOVE_MODE_L)


def test_unreachable_pose_is_refused_the_arm_holds_and_a_reachable_one_clears_the_fault(demo):
    emu, piper = demo
    reach(piper, p.MOVE_MODE_P, DEMO_POSES[1])
    held = emu.joints.read().positions_rad
    for move_mode in (p.MOVE_MODE_P, p.MOVE_MODE_L):
        command_pose(piper, move_mode, (900.0, 0.0, 200.0, 0.0, 90.0, 0.0))  # beyond the arm's reach
        assert wait_until(lambda m=move_mode: arm_status(piper) == (p.ARM_STATUS_NO_SOLUTION, m))
        time.sleep(0.1)
        assert emu.joints.read().positions_rad == pytest.approx(held, abs=1e-9)
    reach(piper, p.MOVE_MODE_P, DEMO_POSES[0])
    assert arm_status(piper) == (p.ARM_STATUS_NORMAL, p.MOVE_MODE_P)


def test_estop_stops_a_move_l_and_the_arm_stays_there(demo):
    emu, piper = demo
    reach(piper, p.MOVE_MODE_P, SQUARE[0])
    command_pose(piper, p.MOVE_MODE_L, SQUARE[1], speed=20)  # 100 mm in 2.5 s
    time.sleep(0.5)
    piper.EmergencyStop(p.ESTOP_STOP)
    assert wait_until(lambda: emu.estop)
    stopped = emu.joints.read().positions_rad
    time.sleep(0.3)
    assert emu.joints.read().positions_rad == pytest.approx(stopped, abs=1e-9)
    assert pose_error(piper, SQUARE[1])[0] > 20.0  # it stopped on the way
