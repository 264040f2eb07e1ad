"""Sim trials command the arm through the follower's SafetyFilter, as the station does: a
policy that asks for a far pose in one tick gets there step by step, never in a jump."""

import threading

from collect.limits import MOTOR_KEYS
from collect.safety import DEFAULT_MAX_STEP_M, DEFAULT_MAX_STEP_RAD
from evaluate.campaign import TrialSlot
from evaluate.rollout import GymSimExecutor


class Fling:
    """Asks for every joint 2 rad away from where it started, at once."""

    def reset(self, seed=None):
        self.start = None

    def act(self, observation, instruction):
        if self.start is None:
            self.start = {k: observation[k] for k in MOTOR_KEYS}
        return {k: self.start[k] + (2.0 if k != "gripper.pos" else -0.07) for k in MOTOR_KEYS}


def test_a_policy_cannot_fling_the_simulated_arm():
    sent = []
    executor = GymSimExecutor(
        {"fling": Fling()},
        image_size=(48, 64),
        max_duration_s=0.2,
        on_tick=lambda tick: sent.append(tick.action),
    )
    with executor:
        slot = TrialSlot(run="fling", task="open_pot", trial_index=0, seed=3)
        executor.reset(slot)
        start = dict(executor._observation)
        result = executor.run(slot, threading.Event())
    assert result.steps == 6 and len(sent) == 6
    previous = start
    for action in sent:
        for key in MOTOR_KEYS:
            limit = DEFAULT_MAX_STEP_M if key == "gripper.pos" else DEFAULT_MAX_STEP_RAD
            assert abs(action[key] - previous[key]) <= limit + 1e-9, key
        previous = action
    # the commands did move toward the target: the filter limits, it does not freeze
    assert sent[-1]["joint_1.pos"] - start["joint_1.pos"] > 5 * DEFAULT_MAX_STEP_RAD
