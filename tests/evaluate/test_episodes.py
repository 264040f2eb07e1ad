"""Evaluation trials saved as LeRobotDataset v3 episodes, read back with lerobot."""

import threading

import pytest

from collect.limits import MOTOR_KEYS
from evaluate.campaign import TrialSlot
from evaluate.episodes import EvalEpisodeWriter
from evaluate.rollout import GymSimExecutor


class HoldStill:
    def reset(self, seed=None):
        pass

    def act(self, observation, instruction):
        return {k: observation[k] for k in MOTOR_KEYS}


@pytest.mark.slow  # lerobot import + h264 encoding: ~15-30 s on 2 loaded cores
def test_finished_trials_become_episodes_and_aborted_ones_do_not(tmp_path):
    pytest.importorskip("lerobot")
    from lerobot.datasets import LeRobotDataset

    sink = EvalEpisodeWriter(tmp_path / "datasets", "eval_c", fps=30, image_size=(48, 64))
    with GymSimExecutor(
        {"r": HoldStill()}, image_size=(48, 64), max_duration_s=0.2, episode_sink=sink
    ) as executor:
        refs = []
        for index in range(2):
            slot = TrialSlot("r", "press_button", index, seed=index)
            executor.reset(slot)
            refs.append(executor.run(slot, threading.Event()).episode_ref)
        stop = threading.Event()
        stop.set()
        slot = TrialSlot("r", "press_button", 2, seed=2)
        executor.reset(slot)
        aborted = executor.run(slot, stop)
    assert refs == ["eval_c#0", "eval_c#1"] and aborted.aborted and aborted.episode_ref == ""
    dataset = LeRobotDataset("local/eval_c", root=tmp_path / "datasets" / "eval_c")
    assert dataset.meta.total_episodes == 2 and dataset.meta.total_frames == 12
    frame = dataset[0]
    assert tuple(frame["observation.images.side"].shape) == (3, 48, 64)
    assert frame["task"] == "press the button"
