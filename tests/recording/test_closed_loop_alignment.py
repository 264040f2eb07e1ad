"""Recording and evaluation start from the same world and run on the same clock (issue 16).

A sim dataset is recorded with the virtual operator exactly as `piper-ws record` does, then
compared with the evaluation env (`PiperSimEnv`, what `piper-ws eval --backend sim` runs)
on each episode's seed:
(a) the recorded actions, replayed open loop, succeed and retrace the recorded states;
(b) the first recorded frame is the env's reset observation (state exactly, images up to
    video compression);
(c) every frame is one period of simulated time: frames = simulated duration x fps.
"""

import numpy as np
import pytest

from collect.recording.session import RecordingSession, SessionState
from collect.recording.writer import read_sidecar

from .test_session_sim import wait_for

TASKS = ("press_button", "pick_grape")
SIZE = (96, 128)
STATE_QUANTUM = 1.8e-5  # 1 mdeg, the bus's resolution (states pass through float32)
VIDEO_TOLERANCE = 8.0  # mean absolute difference /255 that h264 at this size leaves


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from lerobot.datasets import LeRobotDataset

    from collect.recording.plan import RecordingPlan

    datasets_dir = tmp_path_factory.mktemp("datasets")
    plan = RecordingPlan(
        "aligned", tasks=list(TASKS), episodes_per_task=2, image_size=SIZE, reset_s=0.0, seed=11
    )
    with RecordingSession(plan, datasets_dir, auto=True) as session:
        session.start().result(60)
        wait_for(session, SessionState.FINISHED)
    root = plan.root(datasets_dir)
    return LeRobotDataset(plan.repo_id, root=root), read_sidecar(root), plan


def _episode(dataset, index):
    meta = dataset.meta.episodes[index]
    rows = range(meta["dataset_from_index"], meta["dataset_to_index"])
    states = np.stack([np.asarray(dataset.hf_dataset[i]["observation.state"]) for i in rows])
    actions = np.stack([np.asarray(dataset.hf_dataset[i]["action"]) for i in rows])
    return rows, states, actions


def _episodes_in_their_env(sidecar):
    """(evaluation env of the episode's task, episode index, sidecar row) for every episode."""
    from collect.sim.env import PiperSimEnv

    for task in TASKS:
        env = PiperSimEnv(task=task, image_size=SIZE)
        for index, row in sidecar.items():
            if row["task"] == task:
                yield env, index, row
        env.close()


@pytest.mark.slow
def test_recorded_actions_replayed_open_loop_succeed_and_retrace_the_states(recorded):
    dataset, sidecar, _ = recorded
    for env, index, row in _episodes_in_their_env(sidecar):
        assert row["success"], f"episode {index}: the virtual operator failed while recording"
        _, states, actions = _episode(dataset, index)
        observation, _ = env.reset(seed=row["seed"])
        success = False
        for k, action in enumerate(actions):
            gap = np.abs(observation["agent_pos"].astype(np.float32) - states[k]).max()
            assert gap <= STATE_QUANTUM, f"episode {index} frame {k}: replay left the recording by {gap:.2e}"
            observation, _, terminated, _, info = env.step(action)
            if terminated:
                success = bool(info["is_success"])
                break
        assert success, f"episode {index} ({row['task']}, seed {row['seed']}) failed when replayed"


@pytest.mark.slow
def test_first_recorded_frame_is_the_evaluation_reset_observation(recorded):
    dataset, sidecar, _ = recorded
    for env, index, row in _episodes_in_their_env(sidecar):
        first = dataset[dataset.meta.episodes[index]["dataset_from_index"]]
        observation, _ = env.reset(seed=row["seed"])
        np.testing.assert_array_equal(
            observation["agent_pos"].astype(np.float32), first["observation.state"].numpy()
        )
        for camera in ("side", "wrist"):
            image = first[f"observation.images.{camera}"].permute(1, 2, 0).numpy() * 255
            difference = np.abs(image - observation["pixels"][camera]).mean()
            assert difference < VIDEO_TOLERANCE, (
                f"episode {index} {camera}: {difference:.1f}/255 from the reset"
            )


@pytest.mark.slow
def test_every_frame_is_one_period_of_simulated_time(recorded):
    dataset, sidecar, plan = recorded
    for index, row in sidecar.items():
        timing = row["timing"]
        assert timing["lockstep"] and timing["dropped_frames"] == 0 and timing["lockstep_misses"] == 0
        assert row["frames"] == dataset.meta.episodes[index]["length"]
        assert row["frames"] == round(timing["sim_seconds"] * plan.fps), row
        _, states, _ = _episode(dataset, index)
        moving = np.abs(np.diff(states[:, :6], axis=0)).max(axis=1) > 0
        # A state that repeats while the arm moves would be a frame read before physics stepped.
        first, last = np.argmax(moving), len(moving) - np.argmax(moving[::-1])
        assert moving[first:last].mean() > 0.9, "the recorded state stalls while the arm moves"
