"""The MuJoCo world: actuators track targets within limits, the gripper couples, extras compose."""

import threading

import numpy as np
import pytest

from collect.limits import GRIPPER_LIMITS_M, JOINT_LIMITS_RAD
from collect.sim.world import PiperWorld, SceneExtra, build_mjcf

CUBE = SceneExtra(
    name="cube",
    asset='<material name="red" rgba="0.9 0.1 0.1 1"/>',
    worldbody='<body name="cube" pos="0.3 0 0.02"><freejoint/>'
    '<geom name="cube" type="box" size="0.02 0.02 0.02" material="red" mass="0.05"/></body>',
)


@pytest.fixture(scope="module")
def world():
    return PiperWorld(extras=[CUBE], image_size=(120, 160))


def test_position_targets_are_reached(world):
    world.reset()
    target = np.array([0.4, 1.3, -1.1, 0.3, -0.4, 0.5])
    world.set_arm_targets(target, 0.05)
    world.advance(2.0)
    state = world.arm_state()
    assert np.allclose(state.positions_rad, target, atol=0.01)
    assert state.gripper_m == pytest.approx(0.05, abs=0.002)
    assert max(abs(v) for v in state.velocities_rad_s) < 0.05


def test_targets_are_clamped_to_the_limits(world):
    world.reset()
    world.set_arm_targets([10, 10, 10, -10, -10, 10], 1.0)
    lows, highs = np.array(JOINT_LIMITS_RAD).T
    assert np.allclose(world.data.ctrl[:6], [highs[0], highs[1], highs[2], lows[3], lows[4], highs[5]])
    assert world.data.ctrl[6] == pytest.approx(GRIPPER_LIMITS_M[1])
    with pytest.raises(ValueError, match="finite"):
        world.set_arm_targets([float("nan")] * 6, 0.0)


def test_fingers_move_together(world):
    world.reset(gripper_m=0.0)
    world.set_arm_targets(world.arm_q(), 0.06)
    world.advance(1.0)
    left, right = world.joint("finger_left").qpos[0], world.joint("finger_right").qpos[0]
    assert left == pytest.approx(right, abs=1e-3)
    assert left + right == pytest.approx(0.06, abs=0.002)


def test_hold_stops_at_the_current_pose(world):
    world.reset()
    world.set_arm_targets([1.0, 1.57, -1.3485, 0, 0, 0], 0.0)
    world.advance(0.1)  # part-way
    world.hold()
    mid = world.arm_q()
    world.advance(1.0)
    assert abs(world.arm_q()[0] - mid[0]) < 0.05 and world.arm_q()[0] < 0.9


def test_extras_compose_and_objects_rest_on_the_table(world):
    world.reset(seed=3)
    world.advance(0.5)
    assert world.body("cube").xpos[2] == pytest.approx(0.02, abs=0.003)
    with pytest.raises(KeyError, match="cube"):
        world.body("no_such_body")
    assert "finger_left" in build_mjcf() and 'name="cube"' not in build_mjcf()


def test_reset_seed_makes_rng_reproducible(world):
    world.reset(seed=7)
    a = world.rng.uniform(size=3)
    world.reset(seed=7)
    assert np.array_equal(a, world.rng.uniform(size=3))


def test_render_binds_to_one_thread():
    world = PiperWorld(image_size=(60, 80))
    frame = world.render("side")
    assert frame.shape == (60, 80, 3) and frame.dtype == np.uint8
    errors = []
    t = threading.Thread(target=lambda: errors.append(pytest.raises(RuntimeError, world.render, "side")))
    t.start()
    t.join()
    assert "one thread" in str(errors[0].value)
    world.close()


def test_runtime_lockstep_applies_emulator_commands_and_holds_when_not_allowed():
    from collect.sim.runtime import SimRuntime

    with SimRuntime(image_size=(60, 80), realtime=False, start_emulators=False) as rt:
        source = rt.follower_source
        target = (0.5, 1.2, -1.0, 0.0, 0.3, 0.0)
        source.command(target, 0.04)
        t0 = rt.sim_time
        assert rt.sim_time == t0  # lockstep: no time passes unasked
        rt.advance(2.0)
        assert rt.sim_time == pytest.approx(t0 + 2.0)
        assert np.allclose(source.read().positions_rad, target, atol=0.01)
        source.set_motion_allowed(False)
        source.command((-0.5, 1.57, -1.3485, 0, 0, 0), 0.0)  # ignored while not allowed
        rt.advance(1.0)
        assert np.allclose(source.read().positions_rad, target, atol=0.01)
        thread = rt._thread
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="not running"):
        rt.render("side")


def test_runtime_real_time_clock_survives_a_stall():
    """A slow call on the worker (a long render) must not make physics race ahead afterwards."""
    import time

    from collect.sim.runtime import SimRuntime

    with SimRuntime(image_size=(60, 80), start_emulators=False) as rt:
        rt.call(lambda world: time.sleep(0.5))  # the worker is blocked, wall time runs on
        t0, w0 = rt.sim_time, time.perf_counter()
        time.sleep(1.0)
        sim_elapsed, wall_elapsed = rt.sim_time - t0, time.perf_counter() - w0
    assert abs(sim_elapsed - wall_elapsed) < 0.25, (sim_elapsed, wall_elapsed)


def test_lockstep_emulators_tick_on_news_and_real_time_ones_at_the_arms_rate():
    """Lockstep: a heartbeat plus one kicked tick per advance; switched to real time, the
    emulators tick at the real arm's 200 Hz again (and back)."""
    import time

    from collect.sim.runtime import EMULATOR_HZ, LOCKSTEP_HEARTBEAT_HZ, SimRuntime

    def ticks_per_s(emulator, seconds=0.5):
        start = emulator.ticks
        time.sleep(seconds)
        return (emulator.ticks - start) / seconds

    with SimRuntime(image_size=(60, 80), realtime=False, single_bus=False) as rt:
        follower = rt.emulators["follower"]
        assert ticks_per_s(follower) <= 2 * LOCKSTEP_HEARTBEAT_HZ
        follower.rate_hz = 0.5  # a heartbeat every 2 s: only kicks can keep up below
        time.sleep(0.1)
        for _ in range(10):
            before = follower.ticks
            rt.advance(1 / 30)
            deadline = time.monotonic() + 0.5
            while follower.ticks == before and time.monotonic() < deadline:
                time.sleep(0.002)
            assert follower.ticks > before  # reported at once, not at the next heartbeat
        rt.set_realtime(True)
        assert ticks_per_s(follower) > 2 * LOCKSTEP_HEARTBEAT_HZ
        assert follower.rate_hz == EMULATOR_HZ
        rt.set_realtime(False)
        assert follower.rate_hz == LOCKSTEP_HEARTBEAT_HZ


def test_a_call_the_worker_does_not_answer_in_time_says_so():
    """(Bare, the timeout once stopped a recording with an empty message.)"""
    import time

    from collect.sim.runtime import SimRuntime

    with SimRuntime(image_size=(60, 80), realtime=False, start_emulators=False) as rt:
        with pytest.raises(TimeoutError, match="did not answer within 0.1 s: the machine was paused"):
            rt.call(lambda world: time.sleep(0.5), timeout_s=0.1)


def test_appearance_jitter_is_bounded_and_reversible():
    world = PiperWorld(image_size=(60, 80))
    nominal_cam, nominal_light = world.model.cam_pos.copy(), world.model.light_diffuse.copy()
    world.reset(seed=5)
    world.jitter_appearance(camera_shift_m=0.02, light_scale=0.3)
    shift = np.abs(world.model.cam_pos - nominal_cam)
    assert shift.max() <= 0.02 and shift.max() > 0
    assert not np.allclose(world.model.light_diffuse, nominal_light)
    world.jitter_appearance()  # zeros: back to the nominal scene
    assert np.array_equal(world.model.cam_pos, nominal_cam)
    assert np.array_equal(world.model.light_diffuse, nominal_light)
