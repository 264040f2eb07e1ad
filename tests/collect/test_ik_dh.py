"""The emulator's IK on piper_sdk's DH model: agrees with the SDK's own FK, stays inside the limits."""

import math

import numpy as np
from piper_sdk.kinematics.piper_fk import C_PiperForwardKinematics

from collect.ik_dh import DhArm, Pose
from collect.limits import JOINT_LIMITS_RAD

LOW = np.array([lo for lo, _ in JOINT_LIMITS_RAD])
HIGH = np.array([hi for _, hi in JOINT_LIMITS_RAD])


def test_forward_kinematics_is_the_sdks():
    sdk, arm = C_PiperForwardKinematics(0x01), DhArm.from_sdk()
    for q in np.random.default_rng(0).uniform(LOW, HIGH, size=(50, 6)):
        x, y, z, rx, ry, rz = sdk.CalFK(list(q))[-1]
        mm, rad = arm.forward(q).distance_to(Pose.from_xyz_rpy((x, y, z), (rx, ry, rz)))
        assert mm < 1e-9 and rad < 1e-9


def test_solutions_reach_the_pose_inside_the_limits():
    arm, rng = DhArm.from_sdk(), np.random.default_rng(1)
    solved = 0
    for q_true in rng.uniform(0.9 * LOW, 0.9 * HIGH, size=(100, 6)):
        target = arm.forward(q_true)
        q = arm.solve(target, np.clip(q_true + rng.normal(0, 0.3, 6), LOW, HIGH))
        if q is None:
            continue
        solved += 1
        mm, rad = arm.forward(q).distance_to(target)
        assert mm < 1e-3 and math.degrees(rad) < 1e-3
        assert np.all(q >= LOW) and np.all(q <= HIGH)
    assert solved >= 95  # a few far starts near the limits do not converge


def test_out_of_reach_has_no_solution():
    arm = DhArm.from_sdk()
    assert arm.solve(Pose.from_xyz_rpy((900.0, 0.0, 200.0), (0.0, 90.0, 0.0)), np.zeros(6)) is None
