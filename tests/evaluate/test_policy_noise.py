"""A flow-matching policy samples noise at every chunk; a trial seeds it from its scene
seed (`PolicyAgent.reset(seed)`), so a trial of a run on a scene is repeatable."""


def test_a_trial_draws_the_same_policy_noise_on_the_same_seed(tmp_path):
    """Flow-matching policies sample noise; seeding it per trial makes a trial repeatable."""
    import numpy as np
    import torch

    from collect.limits import HOME_JOINTS_RAD, MOTOR_KEYS
    from evaluate.rollout import PolicyAgent
    from train.backbones import load_base_policy, load_processors, resolve_backbone

    backbone = resolve_backbone("tiny-smolvla", tmp_path / "models")
    policy = load_base_policy(backbone)
    stats = {key: {"mean": torch.zeros(7), "std": torch.ones(7)} for key in ("observation.state", "action")}
    agent = PolicyAgent(policy, *load_processors(backbone, policy.config, stats), name="tiny")
    observation = dict(zip(MOTOR_KEYS, [*HOME_JOINTS_RAD, 0.05], strict=True))
    observation |= {camera: np.full((64, 64, 3), 90, np.uint8) for camera in ("side", "wrist")}

    def first_action(seed):
        agent.reset(seed=seed)
        return agent.act(observation, "press the button")

    assert first_action(3) == first_action(3)
    assert first_action(3) != first_action(4)
