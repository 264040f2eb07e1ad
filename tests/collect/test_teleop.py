import math

import pytest

from collect.limits import MOTOR_KEYS
from collect.teleop import GapTooLarge, TeleopRelay, check_gap


def pose(*values):
    return dict(zip(MOTOR_KEYS, values, strict=True))


def test_gap_check_names_each_joint_that_is_too_far():
    follower = pose(0, 1.5, -1.3, 0, 0, 0, 0.02)
    leader = pose(0.6, 1.5, -1.3, 0, -0.4, 0, 0.02)
    with pytest.raises(GapTooLarge) as err:
        check_gap(leader, follower, max_gap_rad=0.25)
    message = str(err.value)
    assert "joint_1.pos +0.600 rad" in message and "joint_5.pos -0.400 rad" in message
    assert "joint_2.pos" not in message
    assert err.value.gaps["joint_1.pos"] == pytest.approx(0.6)


def test_gap_check_passes_close_poses_and_refuses_nan():
    follower = pose(0, 1.5, -1.3, 0, 0, 0, 0.02)
    report = check_gap(pose(0.1, 1.45, -1.3, 0, 0, 0.05, 0.03), follower)
    assert report.largest_joint_gap_rad == pytest.approx(0.1)
    with pytest.raises(GapTooLarge):
        check_gap(pose(math.nan, 1.5, -1.3, 0, 0, 0, 0.02), follower)


def test_relay_refuses_to_start_when_the_follower_is_far(follower, follower_emulator):
    from collect.emulator import PiperEmulator
    from collect.joint_source import FirstOrderJoints
    from collect.leader import PiperLeader, PiperLeaderConfig

    from .conftest import unique_channel

    far = FirstOrderJoints(initial_rad=(1.0, 1.57, -1.3485, 0, 0, 0))
    with PiperEmulator(unique_channel("far-leader"), role="leader", joint_source=far) as leader_emu:
        leader = PiperLeader(PiperLeaderConfig(port=leader_emu.channel, interface="virtual", two_bus=True))
        leader.connect()
        try:
            relay = TeleopRelay(leader, follower)
            with pytest.raises(GapTooLarge, match="joint_1.pos"):
                relay.start()
            assert not follower.enabled and follower_emulator.enabled == [False] * 6  # nothing moved
            with pytest.raises(RuntimeError, match="start"):
                relay.step()
        finally:
            leader.disconnect()
