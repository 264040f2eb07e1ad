"""Source tasks: the pretraining corpus's tasks, kept apart from the four evaluated ones."""

import numpy as np
import pytest

from collect.sim.env import PiperSimEnv
from collect.sim.operator import run_expert_episode
from collect.sim.tasks import INSTRUCTIONS, SOURCE_INSTRUCTIONS, SOURCE_TASK_KEYS, TASK_KEYS, make_task
from collect.sim.tasks.source import SOURCE_CAMERA_SHIFT_M


def test_source_tasks_are_not_evaluated_tasks():
    assert set(SOURCE_TASK_KEYS).isdisjoint(TASK_KEYS) and len(TASK_KEYS) == 4
    assert set(SOURCE_INSTRUCTIONS.values()).isdisjoint(INSTRUCTIONS.values())
    for key in SOURCE_TASK_KEYS:
        assert make_task(key).instruction == SOURCE_INSTRUCTIONS[key]


@pytest.mark.parametrize("task", SOURCE_TASK_KEYS)
def test_the_virtual_operator_solves_each_source_task(task):
    env = PiperSimEnv(task=task, obs_type="agent_pos")
    try:
        results = [run_expert_episode(env, seed) for seed in range(4)]
    finally:
        env.close()
    assert all(r.success for r in results), [(r.seed, r.success) for r in results]


def test_source_scenes_see_the_table_from_another_side_camera_pose():
    target, source = PiperSimEnv(task="press_button", obs_type="agent_pos"), PiperSimEnv(task="push_switch")
    try:
        source.reset(seed=0)
        side = source.world.model.camera("side").id
        shift = source.world.model.cam_pos[side] - source.world.nominal_camera_pos("side")
        assert np.allclose(shift, SOURCE_CAMERA_SHIFT_M, atol=0.021)
        target.reset(seed=0)
        assert np.array_equal(target.world.model.cam_pos[side], target.world.nominal_camera_pos("side"))
    finally:
        target.close()
        source.close()


def test_the_mini_tokenizer_learns_the_source_instructions():
    """train cannot import collect (layering): this keeps its copy of the instructions honest."""
    from train.scratch_models import MINI_SMOLVLM

    assert set(MINI_SMOLVLM["vocabulary"]) == set(SOURCE_INSTRUCTIONS.values())
