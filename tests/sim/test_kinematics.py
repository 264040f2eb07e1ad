"""The simulated arm and piper_sdk's forward kinematics mean the same pose for a joint vector."""

import math

import numpy as np
import pytest
from piper_sdk.kinematics.piper_fk import C_PiperForwardKinematics

from collect.limits import HOME_JOINTS_RAD, JOINT_LIMITS_RAD
from collect.sim.world import PiperWorld


@pytest.fixture(scope="module")
def world():
    return PiperWorld(image_size=(120, 160))


def sdk_flange(q):
    """SDK end pose (mm, deg, rpy as R = Rz(yaw) Ry(pitch) Rx(roll)) -> metres and a 3x3 rotation."""
    x, y, z, roll, pitch, yaw = C_PiperForwardKinematics(dh_is_offset=1).CalFK(list(q))[5]
    r, p, w = (math.radians(v) for v in (roll, pitch, yaw))
    rx = np.array([[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]])
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    rz = np.array([[math.cos(w), -math.sin(w), 0], [math.sin(w), math.cos(w), 0], [0, 0, 1]])
    return np.array([x, y, z]) / 1000.0, rz @ ry @ rx


def flange_at(world, q):
    world.data.qpos[:6] = q
    world.forward()
    return world.flange_pose()


def test_flange_matches_sdk_over_random_joint_vectors(world):
    rng = np.random.default_rng(1234)
    lows, highs = np.array(JOINT_LIMITS_RAD).T
    worst_mm, worst_deg = 0.0, 0.0
    for q in rng.uniform(lows, highs, size=(200, 6)):
        sim_pos, sim_rot = flange_at(world, q)
        sdk_pos, sdk_rot = sdk_flange(q)
        worst_mm = max(worst_mm, 1000 * np.linalg.norm(sim_pos - sdk_pos))
        cos_angle = (np.trace(sim_rot.T @ sdk_rot) - 1) / 2
        worst_deg = max(worst_deg, math.degrees(math.acos(np.clip(cos_angle, -1, 1))))
    assert worst_mm < 5.0, f"flange position differs from the SDK by {worst_mm:.2f} mm"
    assert worst_deg < 1.0, f"flange orientation differs from the SDK by {worst_deg:.2f} deg"


def test_limits_and_home_pose(world):
    for i, (lo, hi) in enumerate(JOINT_LIMITS_RAD):
        assert tuple(world.model.jnt_range[world.model.joint(f"joint_{i + 1}").id]) == pytest.approx((lo, hi))
    # Home: the flange is forward of the base and above the table, as on the real arm.
    pos, _ = flange_at(world, HOME_JOINTS_RAD)
    assert pos[0] > 0.3 and abs(pos[1]) < 1e-6 and pos[2] > 0.2


def test_workspace_on_the_table_is_reachable(world):
    """A pose with the tool point low over the table front exists within the limits."""
    world.reset(arm_q=(0.3, 1.9, -1.2, 0.0, 1.1, 0.0))
    tcp = world.site("tcp").xpos
    (x_lo, x_hi), (y_lo, y_hi) = (0.15, 0.50), (-0.30, 0.30)
    assert x_lo < tcp[0] < x_hi and y_lo < tcp[1] < y_hi and 0.0 < tcp[2] < 0.1
