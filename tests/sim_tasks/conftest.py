"""Fixtures for the sim task tests: small images, envs built once per module."""

import pytest

SMALL = (48, 64)


@pytest.fixture(scope="module")
def state_envs():
    """One state-only env (no rendering) per task, reused across a module's tests."""
    from collect.sim.env import PiperSimEnv
    from collect.sim.tasks import TASK_KEYS

    envs = {key: PiperSimEnv(key, obs_type="agent_pos", image_size=SMALL) for key in TASK_KEYS}
    yield envs
    for env in envs.values():
        env.close()
