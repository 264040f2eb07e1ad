"""The station on the sim backend: the real piper_sdk over virtual CAN to emulators whose
joints are the MuJoCo arm's. What is sent through the follower must move the MuJoCo arm."""

import threading
import time

import numpy as np
import pytest

from collect.limits import HOME_JOINTS_RAD, MOTOR_KEYS
from collect.station import Station, StationConfig, open_station

SMALL = (96, 128)


def sim_arm(station) -> np.ndarray:
    """The MuJoCo arm's joints and opening, read on the sim worker (ground truth, not via CAN)."""
    return station.sim.call(lambda world: np.append(world.arm_q(), world.gripper_opening()))


def drive(station, target: dict[str, float], seconds: float, fps: float = 30.0) -> None:
    """Send `target` every tick, as a control loop does (the safety filter limits each step)."""
    for _ in range(int(seconds * fps)):
        station.follower.send_action(target)
        time.sleep(1.0 / fps)


def wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def two_bus_station():
    threads_before = set(threading.enumerate())
    station = open_station(StationConfig(backend="sim", leader_port="leader", image_size=SMALL))
    station.connect()
    yield station
    station.disconnect()
    assert wait_until(lambda: set(threading.enumerate()) <= threads_before, 3.0), (
        f"threads left running: {[t.name for t in set(threading.enumerate()) - threads_before]}"
    )


def test_joint_target_through_the_sdk_reaches_the_mujoco_arm_and_estop_stops_it(two_bus_station):
    station = two_bus_station
    station.enable()
    obs = station.follower.get_observation()
    assert obs["side"].shape == SMALL + (3,) and obs["wrist"].shape == SMALL + (3,)
    assert np.allclose([obs[k] for k in MOTOR_KEYS[:6]], HOME_JOINTS_RAD, atol=0.01)

    target = dict(zip(MOTOR_KEYS, [0.4, 1.3, -1.1, 0.2, 0.3, -0.2, 0.05], strict=True))
    drive(station, target, seconds=2.0)
    assert np.allclose(sim_arm(station), list(target.values()), atol=0.02)
    # ... and the SDK reads back what MuJoCo did.
    measured = station.follower.get_observation()
    assert np.allclose([measured[k] for k in MOTOR_KEYS], list(target.values()), atol=0.02)

    # Head for a far target, e-stop mid-way from another thread: the arm stops short and stays.
    far = dict(target, **{"joint_1.pos": -1.5})
    stopper = threading.Timer(0.4, station.estop)
    stopper.start()
    with pytest.raises(Exception, match="e-stop"):
        drive(station, far, seconds=3.0)
    stopper.join()
    time.sleep(0.3)  # the stop frame reaches the emulator; the arm settles
    stopped = sim_arm(station)
    time.sleep(0.7)
    assert abs(sim_arm(station)[0] - stopped[0]) < 0.01, "the arm kept moving after e-stop"
    assert stopped[0] > -1.3, "e-stop came too late: the arm reached the far target"
    assert station.sim.emulators["follower"].estop
    assert station.health()["arm"]["estop"]

    station.resume()
    # The arm's status frame (200 Hz) must show the e-stop released before enable() accepts.
    assert wait_until(lambda: not station.health()["arm"]["estop"], 1.0)
    station.enable()
    drive(station, target, seconds=1.5)
    assert np.allclose(sim_arm(station)[:6], list(target.values())[:6], atol=0.02)


def test_single_bus_follower_follows_the_simulated_leader():
    """PiPER linkage: the virtual operator moves the leader; the follower's firmware follows it."""
    with open_station(StationConfig(backend="sim", image_size=SMALL)) as station:
        assert station.sim.leader_channel == station.sim.follower_channel
        station.enable()
        goal = (0.6, 1.4, -1.0, -0.3, 0.4, 0.5)
        station.sim.leader_source.command(goal, 0.03)
        assert wait_until(lambda: np.allclose(sim_arm(station), goal + (0.03,), atol=0.02), 4.0), sim_arm(
            station
        )
        action = station.leader.get_action()
        assert np.allclose([action[k] for k in MOTOR_KEYS], goal + (0.03,), atol=0.01)
        health = station.health()
        assert all(rate > 100 for rate in health["can_fps"].values()), health
        assert set(health["camera_fps"]) == {"side", "wrist"}


def test_health_reports_camera_rate(two_bus_station):
    for _ in range(5):
        two_bus_station.follower.get_observation()
    health = two_bus_station.health()
    assert health["backend"] == "sim" and health["connected"]
    assert all(fps > 0 for fps in health["camera_fps"].values()), health


def test_bad_configuration_is_a_clear_error():
    with pytest.raises(ValueError, match="sim"):
        StationConfig(backend="pipr")
    station = Station(StationConfig(backend="piper", follower_port="can_missing9", cameras={"side": "0"}))
    threads_before = set(threading.enumerate())
    with pytest.raises(ConnectionError, match="can_missing9"):
        station.connect()
    assert not station.is_connected and station.follower is None
    assert set(threading.enumerate()) <= threads_before
    with pytest.raises(RuntimeError, match="not connected"):
        station.enable()
    station.estop()  # a closed station: e-stop is a harmless no-op, never an error


def test_lockstep_applies_each_command_before_physics_advances():
    """Recording/evaluation in lockstep: the command sent this tick is what the next advance simulates."""
    config = StationConfig(backend="sim", leader_port="leader", image_size=SMALL, realtime=False)
    with open_station(config) as station:
        station.enable()
        t0 = station.sim.sim_time
        target = dict(zip(MOTOR_KEYS, [0.5, 1.3, -1.0, 0.0, 0.4, 0.0, 0.06], strict=True))
        for _ in range(45):
            sent = station.follower.send_action(target)
            station.sim.advance(1 / 30)
            ctrl = station.sim.call(lambda world: world.data.ctrl[:7].copy())
            assert np.allclose(ctrl, [sent[k] for k in MOTOR_KEYS], atol=1e-4), (
                "advance ran on a stale command"
            )
        assert station.sim.sim_time - t0 == pytest.approx(1.5, abs=1e-6)
        assert np.allclose(sim_arm(station), list(target.values()), atol=0.02)
        # no deadline in lockstep: a frame or a leader command late on a busy CPU is waited
        # for (a real stall is not); a niced corpus beside a test run stopped on the leader's
        # 0.5 s before
        from collect.sim.lockstep import LOCKSTEP_STALL_S
        from collect.station import LOCKSTEP_CAMERA_TIMEOUT_MS

        assert station.follower.config.camera_timeout_ms == LOCKSTEP_CAMERA_TIMEOUT_MS
        assert station.leader.config.stale_after_s == LOCKSTEP_STALL_S
        # nor do the lockstep waits give up early: at 0.5 s, 10 of 480 episodes recorded
        # niced beside training missed some
        import inspect

        from collect.sim import runtime
        from collect.sim.lockstep import sync_reports

        assert inspect.signature(sync_reports).parameters["timeout_s"].default == LOCKSTEP_STALL_S
        assert runtime.LEADER_COMMAND_WAIT_S == LOCKSTEP_STALL_S


def test_sim_station_without_gl_fails_fast_with_the_fix():
    import os
    import subprocess
    import sys

    code = (
        "from collect.station import StationConfig, open_station\n"
        "open_station(StationConfig(backend='sim', image_size=(48, 64))).connect()\n"
    )
    env = dict(os.environ, MUJOCO_GL="nonexistent")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "GLUnavailableError" in proc.stderr and "libegl1" in proc.stderr
