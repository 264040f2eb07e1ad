"""The gymnasium envs: lerobot's conventions, gym's checker, determinism per seed."""

import gymnasium as gym
import numpy as np
import pytest

import collect.sim.env  # noqa: F401  (registers the envs)
from collect.limits import HOME_JOINTS_RAD
from collect.sim.env import PiperSimEnv, env_id
from collect.sim.operator import VirtualOperator
from collect.sim.tasks import INSTRUCTIONS, TASK_KEYS

from .conftest import SMALL


def test_every_task_is_registered_with_its_instruction():
    ids = {key: env_id(key) for key in TASK_KEYS}
    assert ids["open_pot"] == "PiperSim/OpenPot-v0" and ids["pick_grape"] == "PiperSim/PickGrape-v0"
    env = gym.make(ids["pour_block"], image_size=SMALL)
    try:
        assert env.unwrapped.task == "pour_block"
        assert (
            env.unwrapped.task_description == INSTRUCTIONS["pour_block"] == "pour the block into the basket"
        )
        obs, info = env.reset(seed=0)
        assert set(obs) == {"pixels", "agent_pos"} and set(obs["pixels"]) == {"side", "wrist"}
        assert obs["pixels"]["side"].shape == (*SMALL, 3) and obs["pixels"]["side"].dtype == np.uint8
        assert obs["agent_pos"].shape == (7,)
        assert info == {"is_success": False}
        assert env.spec.max_episode_steps == int(env.unwrapped.sim_task.episode_seconds * 30)
    finally:
        env.close()


def test_gym_env_checker_passes():
    from gymnasium.utils.env_checker import check_env

    env = PiperSimEnv("press_button", image_size=SMALL)
    try:
        check_env(env, skip_render_check=False)
    finally:
        env.close()


def test_same_seed_same_observations_and_different_seed_differs():
    def rollout(seed):
        env = PiperSimEnv("pick_grape", image_size=SMALL)
        obs, _ = env.reset(seed=seed)
        operator = VirtualOperator("pick_grape", seed)
        frames = [obs]
        for _ in range(40):
            obs, *_ = env.step(operator.act(env.world, env.sim_time))
            frames.append(obs)
        env.close()
        return frames

    a, b, c = rollout(4), rollout(4), rollout(5)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa["agent_pos"], fb["agent_pos"])
        for cam in ("side", "wrist"):
            np.testing.assert_array_equal(fa["pixels"][cam], fb["pixels"][cam])
    assert not np.array_equal(a[0]["pixels"]["side"], c[0]["pixels"]["side"])  # objects moved


def test_action_is_clamped_to_the_joint_limits_and_bad_actions_refused(state_envs):
    env = state_envs["press_button"]
    env.reset(seed=0)
    wild = np.array([9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 1.0])
    env.step(wild)
    assert env.world.data.ctrl[5] == pytest.approx(2.0944)
    assert env.world.data.ctrl[6] == pytest.approx(0.07)
    with pytest.raises(ValueError, match="7 finite"):
        env.step(np.array([np.nan] * 7))
    with pytest.raises(ValueError, match="7 finite"):
        env.step(np.zeros(6))


def test_episode_starts_at_home_with_objects_at_rest(state_envs):
    for key, env in state_envs.items():
        obs, info = env.reset(seed=8)
        np.testing.assert_allclose(obs["agent_pos"][:6], HOME_JOINTS_RAD, atol=0.02)
        assert not info["is_success"], key
        free_dofs = env.world.data.qvel[6:]
        assert np.abs(free_dofs).max() < 0.05, f"{key}: objects still moving at the start"


def test_unknown_task_names_the_known_ones():
    with pytest.raises(KeyError, match="pick_grape"):
        PiperSimEnv("pick_grapes", obs_type="agent_pos", image_size=SMALL)


def test_task_table_is_import_light_and_matches_the_classes():
    import subprocess
    import sys

    code = "import sys, collect.sim.tasks as t; t.INSTRUCTIONS, t.TASK_KEYS; print('mujoco' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    from collect.sim.tasks import TASKS

    assert {key: cls.instruction for key, cls in TASKS.items()} == INSTRUCTIONS
    assert all(cls.key == key for key, cls in TASKS.items())
