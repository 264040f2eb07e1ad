"""A real lerobot policy (a tiny ACT, random weights, built offline) driving sim trials."""

import threading

import pytest

torch = pytest.importorskip("torch")

from collect.limits import HOME_JOINTS_RAD, MOTOR_KEYS  # noqa: E402
from evaluate.campaign import Campaign, CampaignSpec, TrialSlot, run_campaign  # noqa: E402
from evaluate.rollout import GymSimExecutor, PolicyAgent, RolloutError  # noqa: E402
from evaluate.store import ResultsStore  # noqa: E402

H, W = 48, 64
CHUNK = 5


def tiny_act(cameras=("side", "wrist")):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    inputs = {"observation.state": PolicyFeature(FeatureType.STATE, (7,))}
    inputs |= {f"observation.images.{c}": PolicyFeature(FeatureType.VISUAL, (3, H, W)) for c in cameras}
    config = ACTConfig(
        chunk_size=CHUNK,
        n_action_steps=CHUNK,
        pretrained_backbone_weights=None,
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_decoder_layers=1,
        use_vae=False,
        device="cpu",
        input_features=inputs,
        output_features={"action": PolicyFeature(FeatureType.ACTION, (7,))},
    )
    torch.manual_seed(0)
    policy = ACTPolicy(config)
    home = torch.tensor([*HOME_JOINTS_RAD, 0.03])
    stats = {k: {"mean": home, "std": torch.full((7,), 0.3)} for k in ("observation.state", "action")}
    for c in cameras:
        stats[f"observation.images.{c}"] = {
            "mean": torch.full((3, 1, 1), 0.5),
            "std": torch.full((3, 1, 1), 0.2),
        }
    pre, post = make_pre_post_processors(config, dataset_stats=stats)
    return policy, pre, post


@pytest.fixture(scope="module")
def agent():
    return PolicyAgent(*tiny_act(), name="tiny-act")


@pytest.mark.slow  # ~10-30 s on 2 loaded cores (CPU inference of the tiny ACT)
def test_policy_runs_sim_trials_with_action_chunking_and_writes_rows(agent, tmp_path, monkeypatch):
    inferences = []
    predict = agent.policy.predict_action_chunk
    monkeypatch.setattr(
        agent.policy, "predict_action_chunk", lambda batch: inferences.append(1) or predict(batch)
    )
    store = ResultsStore(tmp_path / "results.sqlite")
    spec = CampaignSpec(
        name="act", runs=("tiny-act",), tasks=("press_button", "open_pot"), trials=1, max_duration_s=0.5
    )
    campaign = Campaign.create(store, spec)
    with GymSimExecutor(
        {"tiny-act": agent}, image_size=(H, W), max_duration_s=spec.max_duration_s
    ) as executor:
        run_campaign(campaign, executor)
    rows = store.trials("act")
    assert [(r.task, r.trial_index, r.seed) for r in rows] == [
        ("press_button", 0, spec.seed_for("press_button", 0)),
        ("open_pot", 0, spec.seed_for("open_pot", 0)),
    ]
    assert all(r.scorer == "predicate" and r.outcome in ("success", "failure") for r in rows)
    assert all(r.duration_s == pytest.approx(0.5) for r in rows)  # 15 ticks at 30 fps, lockstep
    # one inference per chunk: 15 ticks / 5 actions per chunk = 3 per trial
    assert len(inferences) == 2 * 3


def test_actions_are_seven_finite_motor_targets(agent):
    import numpy as np

    agent.reset()
    observation = {k: v for k, v in zip(MOTOR_KEYS, [*HOME_JOINTS_RAD, 0.02], strict=True)}
    observation |= {c: np.zeros((H, W, 3), np.uint8) for c in ("side", "wrist")}
    action = agent.act(observation, "press the button")
    assert list(action) == list(MOTOR_KEYS) and all(np.isfinite(v) for v in action.values())


def test_feature_mismatch_and_eta_on_a_non_lora_sp_policy_are_clear_errors(agent):
    from lerobot.configs.types import FeatureType, PolicyFeature

    with pytest.raises(RolloutError, match="LoRA-SP"):
        agent.set_inference_eta(0.8)
    policy, pre, post = tiny_act(cameras=("side",))
    policy.config.input_features["observation.images.top"] = PolicyFeature(FeatureType.VISUAL, (3, H, W))
    with pytest.raises(RolloutError, match="observation.images.top"):
        PolicyAgent(policy, pre, post)


def test_served_chunks_equal_lerobots_per_tick_actions():
    """The agent serves a chunk's actions itself (no per-tick preprocessing): the actions are
    exactly what lerobot's predict_action gives tick by tick."""
    import numpy as np

    rng = np.random.default_rng(0)
    observations = [
        {k: float(v) for k, v in zip(MOTOR_KEYS, rng.normal(size=7) * 0.1, strict=True)}
        | {c: rng.integers(0, 255, (H, W, 3), dtype=np.uint8) for c in ("side", "wrist")}
        for _ in range(2 * CHUNK + 1)
    ]
    actions = []
    for serve_chunks in (True, False):
        agent = PolicyAgent(*tiny_act())
        agent._serve_chunks = serve_chunks
        agent.reset()
        actions.append([agent.act(o, "press the button") for o in observations])
    assert actions[0] == actions[1]


@pytest.mark.slow  # two 1 s trials of the tiny ACT
def test_cameras_render_only_when_the_policy_looks_and_the_trial_is_the_same(agent, monkeypatch):
    """With no live view and no episode sink a trial renders once per action chunk: the
    same actions as rendering every tick (the frames are of the same instants)."""
    from collect.sim.env import PiperSimEnv

    renders = []
    camera_frames = PiperSimEnv.camera_frames
    monkeypatch.setattr(PiperSimEnv, "camera_frames", lambda env: renders.append(1) or camera_frames(env))
    act = agent.act
    actions = []
    monkeypatch.setattr(
        agent, "act", lambda obs, instruction: actions.append(act(obs, instruction)) or actions[-1]
    )
    slot = TrialSlot("tiny-act", "press_button", 0, 3)
    counts = []
    for live_view in (None, lambda info: None):
        renders.clear()
        with GymSimExecutor(
            {"tiny-act": agent}, image_size=(H, W), max_duration_s=1.0, on_tick=live_view
        ) as ex:
            ex.reset(slot)
            result = ex.run(slot, threading.Event())
        counts.append(len(renders))
    ticks = result.steps
    assert ticks == 30 and len(actions) == 2 * ticks
    assert actions[:ticks] == actions[ticks:]
    assert counts == [ticks // CHUNK, ticks + 1]  # every tick's observation, and the reset's
