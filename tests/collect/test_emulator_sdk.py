"""The unmodified piper_sdk against the emulator: the protocol the real arm speaks."""

import math
import threading
import time

import pytest

from collect import can_protocol as p
from collect.emulator import PiperEmulator
from collect.follower import EStopActive, PiperFollower, PiperFollowerConfig
from collect.joint_source import FirstOrderJoints
from collect.leader import PiperLeader, PiperLeaderConfig
from collect.limits import MOTOR_KEYS
from collect.sdk import ArmError, close_sdk, open_sdk, sdk_threads_alive, wait_for_feedback

from .conftest import unique_channel, wait_until

pytestmark = pytest.mark.timeout(60)


class NeverEnables(PiperEmulator):
    """An arm whose motors never report enabled (power switch off)."""

    def _on_enable(self, motor, flag):
        pass


def test_sdk_reads_status_joints_firmware_and_limits(follower_emulator):
    sdk = open_sdk(follower_emulator.channel, "virtual")
    try:
        wait_for_feedback(sdk, follower_emulator.channel)
        expected_mdeg = [p.rad_to_mdeg(q) for q in follower_emulator.joints.read().positions_rad]
        joints = sdk.GetArmJointMsgs().joint_state
        assert [joints.joint_1, joints.joint_2, joints.joint_3] == expected_mdeg[:3]
        assert expected_mdeg[1] == 89954  # 1.57 rad: the home pose, decoded by the SDK itself
        assert int(sdk.GetArmStatus().arm_status.ctrl_mode.value) == p.CTRL_MODE_STANDBY
        assert wait_until(lambda: "S-V1.6" in str(sdk.GetPiperFirmwareVersion()))
        limits = sdk.GetAllMotorAngleLimitMaxSpd().all_motor_angle_limit_max_spd
        # The SDK decodes every reply into one shared object: the last one (motor 6) is what it shows.
        assert (
            limits.motor[6].motor_num,
            limits.motor[6].max_angle_limit,
            limits.motor[6].min_angle_limit,
        ) == (6, 1200, -1200)
        assert wait_until(lambda: sdk.GetCanFps() > 100)  # the full frame set at 200 Hz
    finally:
        close_sdk(sdk)
    assert sdk_threads_alive(sdk) == []


def test_enable_then_joint_and_gripper_commands_are_reached(follower, follower_emulator):
    follower.enable()
    assert follower_emulator.enabled == [True] * 6 and follower_emulator.motion_allowed
    target = [0.3, 1.2, -1.0, 0.2, -0.3, 0.5, 0.05]
    # The safety filter limits each step, so a far target takes several ticks.
    for _ in range(40):
        follower.send_action(dict(zip(MOTOR_KEYS, target, strict=True)))
        time.sleep(0.01)
    assert wait_until(
        lambda: max(abs(a - b) for a, b in zip(follower.read_joints(), target, strict=True)) < 2e-3
    )


def test_motor_frames_report_enable_state_and_speed_while_moving(follower, follower_emulator):
    assert wait_until(lambda: follower.status()["motors_enabled"] == [False] * 6)
    follower.enable()
    assert wait_until(lambda: follower.status()["motors_enabled"] == [True] * 6)  # 0x261-0x266 bit 6
    assert follower.sdk.GetArmGripperMsgs().gripper_state.foc_status.driver_enable_status
    q = follower.read_joints()
    speeds = []
    for _ in range(30):  # joint 1 moving at about 2 rad/s
        q[0] = min(q[0] + 0.01, 0.3)
        follower.send_action(dict(zip(MOTOR_KEYS, q, strict=True)))
        speeds.append(follower.sdk.GetArmHighSpdInfoMsgs().motor_1.motor_speed)  # 0x251, 0.001 rad/s
        time.sleep(0.005)
    assert max(speeds) > 200
    assert follower.sdk.GetArmEndPoseMsgs().end_pose.Z_axis > 0  # 0x2A2-0x2A4 decoded (0.001 mm)


def test_estop_stops_motion_and_refuses_commands_until_resume(follower, follower_emulator):
    follower.enable()
    start = follower.read_joints()
    follower.estop()
    assert wait_until(lambda: follower_emulator.estop)
    with pytest.raises(EStopActive):
        follower.send_action(dict(zip(MOTOR_KEYS, start, strict=True)))
    with pytest.raises(EStopActive, match="Resume"):
        follower.enable()
    follower.resume()
    follower.enable()  # at once: enable waits for the status frame to leave e-stop
    assert not follower_emulator.estop
    moved = list(start)
    moved[0] += 0.05
    follower.send_action(dict(zip(MOTOR_KEYS, moved, strict=True)))
    assert wait_until(lambda: abs(follower.read_joints()[0] - moved[0]) < 2e-3)


def test_estop_works_from_another_thread_while_commands_stream(follower, follower_emulator):
    follower.enable()
    errors = []

    def stream():
        q = follower.read_joints()
        for i in range(500):
            q[0] = 0.5 * math.sin(i / 20)
            try:
                follower.send_action(dict(zip(MOTOR_KEYS, q, strict=True)))
            except EStopActive:
                errors.append(i)
                return
            time.sleep(0.002)

    worker = threading.Thread(target=stream)
    worker.start()
    time.sleep(0.1)
    follower.estop()
    worker.join(timeout=5)
    assert errors, "commands kept flowing after the e-stop"
    assert wait_until(lambda: follower_emulator.estop)
    frozen = follower.read_joints()[0]
    time.sleep(0.2)
    assert abs(follower.read_joints()[0] - frozen) < 1e-3  # the arm holds in e-stop


def test_enable_times_out_with_a_clear_error_when_the_arm_never_reports_enabled():
    with NeverEnables(unique_channel("dead"), role="follower") as emu:
        arm = PiperFollower(
            PiperFollowerConfig(port=emu.channel, interface="virtual", enable_timeout_s=0.5), cameras={}
        )
        arm.connect()
        try:
            with pytest.raises(ArmError, match="did not report its motors enabled"):
                arm.enable()
        finally:
            arm.disconnect()


def test_estop_goes_out_at_once_while_enable_is_still_waiting_for_the_motors():
    with NeverEnables(unique_channel("slow-enable"), role="follower") as emu:
        arm = PiperFollower(
            PiperFollowerConfig(port=emu.channel, interface="virtual", enable_timeout_s=10), cameras={}
        )
        arm.connect()
        outcome = []

        def enable():
            try:
                arm.enable()
            except ArmError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=enable)
        try:
            worker.start()
            time.sleep(0.3)  # enable() is polling the motors now
            pressed = time.monotonic()
            arm.estop()
            assert wait_until(lambda: emu.estop, timeout_s=1.0), "the e-stop waited for enable()"
            worker.join(timeout=2.0)
            assert not worker.is_alive() and time.monotonic() - pressed < 2.0
            assert isinstance(outcome[0], EStopActive) and not arm.enabled
        finally:
            worker.join(timeout=12)
            arm.disconnect()


def test_no_frames_is_a_clear_error_not_a_hang():
    from collect.sdk import CanPortError

    channel = unique_channel("silent")  # nobody answers on this bus
    arm = PiperFollower(
        PiperFollowerConfig(port=channel, interface="virtual", feedback_timeout_s=0.3), cameras={}
    )
    with pytest.raises(CanPortError, match="no frames from the arm"):
        arm.connect()
    assert not arm.is_connected


def test_leader_frames_are_the_action_on_one_bus_and_the_follower_obeys_them():
    channel = unique_channel("shared")
    leader_joints = FirstOrderJoints(tau_s=0.02)
    with (
        PiperEmulator(channel, role="follower", joint_source=FirstOrderJoints(tau_s=0.02)),
        PiperEmulator(channel, role="leader", joint_source=leader_joints),
    ):
        follower = PiperFollower(PiperFollowerConfig(port=channel, interface="virtual"), cameras={})
        leader = PiperLeader(PiperLeaderConfig(port=channel, interface="virtual"))
        follower.connect()
        leader.connect()
        try:
            follower.enable()
            target = (0.4, 1.3, -1.1, 0.0, 0.2, -0.4)
            leader_joints.command(target, 0.03)
            assert wait_until(lambda: abs(leader.get_action()["joint_1.pos"] - 0.4) < 1e-3)
            assert wait_until(lambda: abs(leader.get_action()["gripper.pos"] - 0.03) < 1e-4)
            # The firmware linkage moves the follower; send_action only reports the leader's command
            # (as the follower's own SDK reader decoded it: on a loaded machine a few ms behind).
            assert wait_until(
                lambda: abs(follower.send_action(leader.get_action())["joint_1.pos"] - 0.4) < 2e-3
            )
            assert wait_until(lambda: abs(follower.read_joints()[0] - 0.4) < 2e-3)
        finally:
            leader.disconnect()
            follower.disconnect()


def test_one_bus_enable_refuses_while_the_leader_is_far_and_says_how_far():
    """Linkage: an enabled follower goes straight to the leader's pose, so enable checks the gap first."""
    from collect.teleop import GapTooLarge

    channel = unique_channel("shared-far")
    leader_joints = FirstOrderJoints(initial_rad=(0.8, 1.57, -1.3485, 0.0, 0.0, 0.0), tau_s=0.02)
    with (
        PiperEmulator(channel, role="follower", joint_source=FirstOrderJoints(tau_s=0.02)) as follower_emu,
        PiperEmulator(channel, role="leader", joint_source=leader_joints),
    ):
        follower = PiperFollower(PiperFollowerConfig(port=channel, interface="virtual"), cameras={})
        follower.connect()
        try:
            assert wait_until(follower.leader_is_commanding)
            with pytest.raises(GapTooLarge, match=r"joint_1.pos \+0.800 rad"):
                follower.enable()
            assert not follower.enabled and follower_emu.enabled == [False] * 6
            time.sleep(0.1)
            assert follower.read_joints()[0] == pytest.approx(0.0, abs=1e-4)  # it did not move
            leader_joints.command((0.1, 1.57, -1.3485, 0.0, 0.0, 0.0), 0.0)  # the operator comes closer
            assert wait_until(lambda: abs(follower._leader_command()["joint_1.pos"] - 0.1) < 1e-3)
            follower.enable()
            assert wait_until(lambda: abs(follower.read_joints()[0] - 0.1) < 2e-3)
        finally:
            follower.disconnect()


def test_two_buses_the_pc_relays_the_leader_to_the_follower():
    from collect.teleop import TeleopRelay

    leader_joints = FirstOrderJoints(tau_s=0.02)
    with (
        PiperEmulator(
            unique_channel("f"), role="follower", joint_source=FirstOrderJoints(tau_s=0.02)
        ) as follower_emu,
        PiperEmulator(unique_channel("l"), role="leader", joint_source=leader_joints) as leader_emu,
    ):
        follower = PiperFollower(
            PiperFollowerConfig(port=follower_emu.channel, interface="virtual"), cameras={}
        )
        leader = PiperLeader(PiperLeaderConfig(port=leader_emu.channel, interface="virtual", two_bus=True))
        follower.connect()
        leader.connect()
        try:
            relay = TeleopRelay(leader, follower)
            relay.start()
            leader_joints.command((-0.3, 1.4, -1.2, 0.1, 0.0, 0.2), 0.02)
            for _ in range(60):
                relay.step()
                time.sleep(0.01)
            assert wait_until(lambda: abs(follower.read_joints()[0] + 0.3) < 5e-3)
            assert follower_emu.control_frames(frozenset(p.JOINT_CTRL))  # the PC sent them
        finally:
            leader.disconnect()
            follower.disconnect()


def test_leader_that_sends_nothing_is_a_clear_error():
    from collect.sdk import CanPortError

    with PiperEmulator(unique_channel("quiet-leader"), role="leader") as emu:
        emu.sends_commands = False
        leader = PiperLeader(PiperLeaderConfig(port=emu.channel, interface="virtual", frames_timeout_s=0.3))
        with pytest.raises(CanPortError, match="no command frames from the leader"):
            leader.connect()


def test_an_arm_already_in_estop_is_named_at_enable_and_resume_brings_it_back(follower_emulator):
    follower_emulator.estop = True  # the red button was pressed before the PC connected
    arm = PiperFollower(PiperFollowerConfig(port=follower_emulator.channel, interface="virtual"), cameras={})
    arm.connect()
    try:
        assert arm.estopped and arm.status()["estop"]
        with pytest.raises(EStopActive, match="release the e-stop, press Resume, then Enable"):
            arm.enable()
        assert follower_emulator.enabled == [False] * 6
        arm.resume()
        assert wait_until(lambda: not follower_emulator.estop)
        assert wait_until(lambda: arm.status()["arm_status"] == p.ARM_STATUS_NORMAL)
        arm.enable()
        assert follower_emulator.motion_allowed
    finally:
        arm.disconnect()


def test_manual_emulator_answers_only_when_ticked():
    """Lockstep: the caller's tick() is the arm's clock; nothing moves or reports between ticks."""
    joints = FirstOrderJoints(tau_s=0.02)
    with PiperEmulator(unique_channel("manual"), role="follower", joint_source=joints, manual=True) as emu:
        sdk = open_sdk(emu.channel, "virtual")
        try:
            with pytest.raises(Exception, match="no frames from the arm"):
                wait_for_feedback(sdk, emu.channel, timeout_s=0.2)
            emu.tick(0.005)
            wait_for_feedback(sdk, emu.channel, timeout_s=1.0)
            assert emu.ticks == 1 and emu.frames_sent > 0
            sdk.MotionCtrl_2(p.CTRL_MODE_CAN, p.MOVE_MODE_JOINT, 100, 0x00)
            for _ in range(200):  # the SDK's EnablePiper polls the 0x261-0x266 enable bits
                emu.tick(0.005)
                if sdk.EnablePiper():
                    break
            assert emu.motion_allowed
            start = joints.read().positions_rad
            sdk.JointCtrl(*p.joint_targets_mdeg((0.2, 1.57, -1.3485, 0.0, 0.0, 0.0)))
            time.sleep(0.05)
            # On the bus, but not yet read by the arm: no tick, no motion.
            assert joints.read().positions_rad == start and not emu.control_frames(frozenset(p.JOINT_CTRL))
            emu.tick(0.005)
            assert len(emu.control_frames(frozenset(p.JOINT_CTRL))) == 3
            for _ in range(100):  # 0.5 s of arm time = 25 time constants
                emu.tick(0.005)
            assert joints.read().positions_rad[0] == pytest.approx(0.2, abs=1e-4)
            assert wait_until(lambda: abs(sdk.GetArmJointMsgs().joint_state.joint_1 - 11459) <= 1)
        finally:
            close_sdk(sdk)


def test_a_kick_reports_a_new_state_at_once_between_slow_heartbeats():
    """Lockstep sim runs its emulators at a slow heartbeat and kicks them when the arm has
    moved: the SDK sees the new joints within milliseconds, not at the next heartbeat."""
    joints = FirstOrderJoints(tau_s=0.0)
    with PiperEmulator(unique_channel("kick"), role="follower", joint_source=joints, rate_hz=0.2) as emu:
        sdk = open_sdk(emu.channel, "virtual")
        try:
            emu.kick()  # its first tick went out before the SDK listened
            wait_for_feedback(sdk, emu.channel, timeout_s=1.0)
            for target_mdeg in (20_000, -15_000):  # two moves, each reported by its own kick
                joints.jump_to((math.radians(target_mdeg / 1000), 1.57, -1.3485, 0.0, 0.0, 0.0), 0.0)
                ticks, start = emu.ticks, time.monotonic()
                emu.kick()
                assert wait_until(lambda t=target_mdeg: sdk.GetArmJointMsgs().joint_state.joint_1 == t, 0.5)
                assert time.monotonic() - start < 0.5  # the next heartbeat is 5 s after the first tick
                assert emu.ticks == ticks + 1
        finally:
            close_sdk(sdk)


def test_the_heartbeat_goes_on_after_a_burst_of_kicks():
    """A recorded episode kicks every frame; in the pause after it the arm must still report
    at its heartbeat (a leader silent for 0.5 s reads as lost)."""
    with PiperEmulator(unique_channel("burst"), role="follower", rate_hz=20.0) as emu:
        for _ in range(100):  # 100 kicked ticks: five seconds of 20 Hz heartbeats
            emu.kick()
            time.sleep(0.003)
        start = emu.ticks
        time.sleep(0.5)
        assert emu.ticks - start >= 5  # about 10 at 20 Hz


def test_a_leader_that_goes_quiet_mid_teleop_is_reported_not_replayed():
    with PiperEmulator(unique_channel("leader-unplugged"), role="leader") as emu:
        leader = PiperLeader(PiperLeaderConfig(port=emu.channel, interface="virtual", stale_after_s=0.2))
        leader.connect()
        try:
            assert leader.get_action()["joint_2.pos"] == pytest.approx(1.57, abs=1e-3)
            emu.sends_commands = False  # cable pulled
            time.sleep(0.25)
            started = time.monotonic()
            with pytest.raises(ArmError, match=r"last command is 0\.\d s old: check its power and CAN cable"):
                leader.get_action()
            assert time.monotonic() - started < 1.0  # one grace period, not a hang
        finally:
            leader.disconnect()


def test_control_log_is_bounded_and_since_counts_across_dropped_frames():
    import can

    with PiperEmulator(unique_channel("log"), role="follower", manual=True, control_log_size=10) as emu:
        with can.Bus(interface="virtual", channel=emu.channel) as pc:
            for i in range(20):
                pc.send(
                    can.Message(
                        arbitration_id=p.GRIPPER_CTRL, data=p.pack_gripper_ctrl(i, 0, 0), is_extended_id=False
                    )
                )
            pc.send(can.Message(arbitration_id=p.END_POSE_CTRL[0], data=bytes(8), is_extended_id=False))
            pc.send(
                can.Message(arbitration_id=p.FIRMWARE, data=bytes([1] + [0] * 7), is_extended_id=False)
            )  # a query
        emu.tick(0.005)
        assert emu.control_frame_count == 21 and len(emu.control_frames()) == 10
        tail = emu.control_frames(since=15)
        assert [f.seq for f in tail] == [15, 16, 17, 18, 19, 20]
        assert [p.unpack_gripper_ctrl(f.data)[0] for f in tail[:5]] == [15, 16, 17, 18, 19]
        assert tail[-1].arbitration_id == p.END_POSE_CTRL[0]
        assert emu.control_frames(frozenset(p.JOINT_CTRL)) == []


def test_malformed_frames_are_ignored_and_a_failing_joint_source_is_reported():
    import can

    class BrokenSource(FirstOrderJoints):
        fail = False

        def advance(self, dt):
            if self.fail:
                raise RuntimeError("physics diverged")
            super().advance(dt)

    source = BrokenSource()
    with PiperEmulator(unique_channel("garbage"), role="follower", joint_source=source) as emu:
        with can.Bus(interface="virtual", channel=emu.channel) as pc:
            pc.send(can.Message(arbitration_id=p.MOTOR_ENABLE, data=b"", is_extended_id=False))  # DLC 0
            pc.send(
                can.Message(arbitration_id=p.MOTION_CTRL_1, data=b"\x01", is_extended_id=False)
            )  # short e-stop
            pc.send(can.Message(arbitration_id=p.MOTION_CTRL_1, data=bytes(8), is_extended_id=True))
            assert wait_until(lambda: emu.malformed_frames == 3)
            assert emu.error is None and not emu.estop and emu.running
            source.fail = True
            assert wait_until(lambda: emu.error is not None)
            assert "physics diverged" in str(emu.error)
            ticks = emu.ticks
            time.sleep(0.05)
            assert emu.ticks == ticks  # silent, as a dead arm is: the SDK side reports no frames


def test_a_command_waiting_for_the_sender_is_refused_once_the_arm_was_disabled(follower, follower_emulator):
    """A send_action that passed its first check and then waited for the sender must look at
    `enabled` again under the lock: a disable() that got the lock first has cleared it there."""
    follower.enable()
    start = dict(zip(MOTOR_KEYS, follower.read_joints(), strict=True))
    outcome = {}

    def send():
        try:
            outcome["sent"] = follower.send_action(start)
        except ArmError as exc:
            outcome["refused"] = str(exc)

    with follower._send_lock:  # the sender is busy: disable() holds it
        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.2)  # send_action has passed its first check and waits for the lock
        assert sender.is_alive()
        follower._enabled = False  # what disable() does first, under the lock
        frames = follower_emulator.control_frame_count
    sender.join(5)
    assert "not enabled" in outcome.get("refused", ""), outcome
    late = [f for f in follower_emulator.control_frames(frozenset(p.JOINT_CTRL)) if f.seq >= frames]
    assert late == [], "a joint command went out after disable"
