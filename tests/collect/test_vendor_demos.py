"""The vendor's own demo flows (piper_sdk/demo/V2) through the unmodified SDK against the emulator."""

import time

import pytest

from collect import can_protocol as p
from collect.emulator import PiperEmulator
from collect.joint_source import FirstOrderJoints
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
