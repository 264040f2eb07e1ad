"""Tool-point IK on the simulated PiPER agrees with MuJoCo's own kinematics."""

import numpy as np

from collect.sim.ik import arm_ik, rotation_vector
from collect.sim.world import PiperWorld


def test_ik_reaches_poses_the_arm_can_reach():
    world = PiperWorld(image_size=(48, 64))
    ik = arm_ik(world)
    rng = np.random.default_rng(0)
    home = world.arm_q()
    for _ in range(10):
        q_goal = home + rng.uniform(-0.35, 0.35, 6)
        q_goal[3] = 0.0  # the solver prefers joint 4 near zero; ask for a pose it can match exactly
        q_goal = np.clip(q_goal, ik.lo, ik.hi)
        goal = ik.forward(q_goal)
        q, err_pos, err_rot = ik.solve(goal, home, iters=200)
        reached = ik.forward(q)
        assert err_pos < 2e-3 and np.linalg.norm(reached.pos - goal.pos) < 2e-3
        assert err_rot < 2e-2 and np.dot(reached.approach, goal.approach) > 0.999
        assert np.all(q >= ik.lo) and np.all(q <= ik.hi)


def test_tool_point_is_the_worlds_tcp_site():
    world = PiperWorld(image_size=(48, 64))
    q = world.arm_q() + np.array([0.3, 0.2, -0.2, 0.0, 0.4, 0.5])
    world.reset(q)
    pose = arm_ik(world).forward(q)
    np.testing.assert_allclose(pose.pos, world.site("tcp").xpos, atol=1e-9)


def test_rotation_vector_of_a_known_rotation():
    angle = 0.7
    R = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    np.testing.assert_allclose(rotation_vector(R), [0, 0, angle], atol=1e-9)
