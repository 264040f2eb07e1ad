"""Rollouts on the sim station: every action goes through the follower's safety-clamped send_action."""

import threading

import pytest

from collect.limits import JOINT_LIMITS_RAD, MOTOR_KEYS
from evaluate.campaign import TrialSlot
from evaluate.rollout import StationExecutor


class Reckless:
    """Asks for joint_1 far beyond its limit every tick; stops the trial after `stop_at` ticks."""

    def __init__(self, stop=None, stop_at=None):
        self.stop, self.stop_at, self.ticks = stop, stop_at, 0

    def reset(self, seed=None):
        self.ticks = 0

    def act(self, observation, instruction):
        self.ticks += 1
        if self.stop is not None and self.ticks == self.stop_at:
            self.stop.set()
        return {k: observation[k] for k in MOTOR_KEYS} | {"joint_1.pos": 10.0}


@pytest.fixture(scope="module")
def station():
    from collect.station import StationConfig, open_station

    with open_station(
        StationConfig(
            backend="sim",
            task="press_button",
            image_size=(48, 64),
            realtime=False,
            leader_port="leader",  # two buses: no leader control frames for the follower to yield to
        )
    ) as st:
        st.enable()
        yield st


def test_actions_are_clamped_and_rate_limited_by_the_follower(station):
    from collect.sim.tasks import INSTRUCTIONS

    sent = []
    executor = StationExecutor(
        station,
        {"r": Reckless()},
        INSTRUCTIONS,
        max_duration_s=1.0,
        on_tick=lambda tick: sent.append(tick.action["joint_1.pos"]),
    )
    slot = TrialSlot("r", "press_button", 0, seed=3)
    executor.reset(slot)
    result = executor.run(slot, threading.Event())
    assert result.steps == 30 and result.success is False and result.duration_s == pytest.approx(1.0)
    assert max(sent) == pytest.approx(JOINT_LIMITS_RAD[0][1])  # reached the limit, never beyond it
    step = station.config.max_step_rad
    assert all(b - a <= step + 1e-6 for a, b in zip(sent, sent[1:], strict=False))  # per-tick step limit


def test_stop_mid_trial_aborts_it(station):
    from collect.sim.tasks import INSTRUCTIONS

    stop = threading.Event()
    executor = StationExecutor(station, {"r": Reckless(stop, stop_at=4)}, INSTRUCTIONS, max_duration_s=2.0)
    slot = TrialSlot("r", "press_button", 1, seed=4)
    executor.reset(slot)
    result = executor.run(slot, stop)
    assert result.aborted and result.steps == 4


def test_wrong_task_scene_is_a_clear_error(station):
    from evaluate.rollout import RolloutError

    executor = StationExecutor(station, {"r": Reckless()}, {}, max_duration_s=0.1)
    with pytest.raises(RolloutError, match="needs 'open_pot'"):
        executor.reset(TrialSlot("r", "open_pot", 0, seed=0))


def test_go_home_drives_the_arm_back_through_send_action(station):
    from collect.episode_start import EPISODE_START

    home = EPISODE_START.action()
    executor = StationExecutor(station, {"r": Reckless()}, {}, max_duration_s=0.5)
    slot = TrialSlot("r", "press_button", 2, seed=5)
    executor.reset(slot)
    executor.run(slot, threading.Event())  # joint_1 driven away from home
    assert abs(station.follower.get_observation()["joint_1.pos"] - home["joint_1.pos"]) > 0.5
    assert executor.go_home(timeout_s=5.0)
    observation = station.follower.get_observation()
    assert all(abs(observation[k] - home[k]) <= EPISODE_START.tolerance for k in MOTOR_KEYS)


def test_a_leader_driving_the_bus_is_refused_before_the_trial():
    """On one bus the firmware obeys the leader, so a policy's commands would silently not act."""
    from collect.station import StationConfig, open_station
    from evaluate.rollout import RolloutError

    with open_station(StationConfig(backend="sim", task="press_button", image_size=(48, 64))) as single_bus:
        executor = StationExecutor(single_bus, {"r": Reckless()}, {}, max_duration_s=0.1)
        with pytest.raises(RolloutError, match="leader arm is commanding"):
            executor.reset(TrialSlot("r", "press_button", 0, seed=0))


class EStopsAt:
    """Holds still; presses E-STOP on the station at tick `at` (0: never)."""

    def __init__(self, station, at=0):
        self.station, self.at, self.ticks = station, at, 0

    def reset(self, seed=None):
        self.ticks = 0

    def act(self, observation, instruction):
        self.ticks += 1
        if self.ticks == self.at:
            self.station.estop()
        return {k: observation[k] for k in MOTOR_KEYS}


def test_a_rollout_the_estopped_arm_refuses_keeps_none_of_its_frames(station, tmp_path):
    """The e-stopped arm refuses the next command: the trial's frames are dropped, never
    prepended to the next trial's evaluation episode."""
    from lerobot.datasets import LeRobotDataset

    from collect.follower import EStopActive
    from evaluate.episodes import EvalEpisodeWriter

    sink = EvalEpisodeWriter(tmp_path, "eval_estop", fps=30, image_size=(48, 64))
    agents = {"stop": EStopsAt(station, at=3), "hold": EStopsAt(station)}
    executor = StationExecutor(station, agents, {}, max_duration_s=0.2, episode_sink=sink)
    slot = TrialSlot("stop", "press_button", 0, seed=1)
    executor.reset(slot)
    with pytest.raises(EStopActive):
        executor.run(slot, threading.Event())
    station.resume()
    station.enable()
    slot = TrialSlot("hold", "press_button", 0, seed=1)
    executor.reset(slot)
    assert executor.run(slot, threading.Event()).steps == 6
    executor.close()
    dataset = LeRobotDataset("local/eval_estop", root=tmp_path / "eval_estop")
    assert dataset.num_episodes == 1 and dataset.num_frames == 6
