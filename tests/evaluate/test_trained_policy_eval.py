"""End to end: a tiny SmolVLA fine-tuned with LoRA-SP by the project's trainer, evaluated by
`piper-ws eval` on seeded sim trials; the rows and the table come out right."""

import json
import shutil
import threading

import pytest

from app.cli import main
from collect.limits import MOTOR_KEYS
from evaluate.campaign import TrialSlot
from evaluate.episodes import EvalEpisodeWriter
from evaluate.executors import trained_image_size
from evaluate.rollout import GymSimExecutor, PolicyAgent
from evaluate.store import ResultsStore

pytestmark = pytest.mark.slow
RUN = "tiny-sp"


class Wiggle:
    """Data for the tiny dataset: small joint motions around the observed pose."""

    def __init__(self):
        self.t = 0

    def reset(self, seed=None):
        self.t = 0

    def act(self, observation, instruction):
        self.t += 1
        return {k: observation[k] + (0.02 if self.t % 2 and k == "joint_1.pos" else 0.0) for k in MOTOR_KEYS}


@pytest.fixture(scope="module")
def trained_workspace(tmp_path_factory):
    from collect.workspace import Workspace
    from train.loop import run_training
    from train.presets import get_preset

    workspace = Workspace.open(tmp_path_factory.mktemp("ws"))
    sink = EvalEpisodeWriter(workspace.datasets_dir, "sim_tiny", fps=30, image_size=(48, 64))
    with GymSimExecutor(
        {"w": Wiggle()}, image_size=(48, 64), max_duration_s=0.4, episode_sink=sink
    ) as executor:
        for task in ("press_button", "open_pot"):
            for index in range(2):
                slot = TrialSlot("w", task, index, seed=index)
                executor.reset(slot)
                executor.run(slot, threading.Event())
    config = get_preset(
        "smolvla-lora_sp",
        dataset="sim_tiny",
        run_name=RUN,
        steps=2,
        batch_size=2,
        log_every=1,
        checkpoint_every=2,
        val_every=1000,
        device="cpu",
        adapter={"r": 8},
        backbone_cache=str(tmp_path_factory.mktemp("backbones")),
    )
    result = run_training(config, workspace.runs_dir / RUN, workspace.datasets_dir)
    assert result.state == "completed"
    return workspace


def test_eval_cli_scores_a_trained_run_and_prints_the_table(trained_workspace, capsys):
    ws = str(trained_workspace.root)
    argv = [
        "--workspace",
        ws,
        "eval",
        "--run",
        RUN,
        "--tasks",
        "press_button,open_pot",
        "--trials",
        "1",
        "--max-duration",
        "0.2",
        "--image-size",
        "48x64",
        "--eta",
        "0.8",
        "--campaign",
        "e2e",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| tiny-sp (e2e) | lora_sp r=8 |" in out and "Open" in out and "Press" in out
    with ResultsStore(trained_workspace.results_db) as store:
        rows = store.trials("e2e")
        (info,) = store.runs("e2e")
    assert [(r.task, r.trial_index) for r in rows] == [("press_button", 0), ("open_pot", 0)]
    assert all(r.run == RUN and r.strategy == "lora_sp r=8" and r.scorer == "predicate" for r in rows)
    assert all(r.duration_s <= 0.2 + 1e-9 and r.checkpoint == "last" for r in rows)
    assert info.eta == 0.8 and info.trainable_pct and info.trainable_pct > 0
    # the same command again resumes: nothing is run twice
    assert main(argv) == 0
    with ResultsStore(trained_workspace.results_db) as store:
        assert len(store.trials("e2e", include_superseded=True, include_aborted=True)) == 2


def test_inference_eta_reaches_every_lora_sp_layer(trained_workspace):
    agent = PolicyAgent.from_run(trained_workspace.runs_dir / RUN, eta=0.5)
    layers = [m for m in agent.policy.modules() if hasattr(m, "inference_eta")]
    assert layers and all(layer.inference_eta == 0.5 for layer in layers)


def test_sim_trials_render_at_the_size_the_run_was_trained_on(trained_workspace, capsys):
    ws = str(trained_workspace.root)
    argv = ["--workspace", ws, "eval", "--run", RUN, "--tasks", "press_button", "--trials", "1"]
    assert main([*argv, "--max-duration", "0.1", "--campaign", "sized", "--save-episodes"]) == 0
    info = json.loads((trained_workspace.datasets_dir / "eval_sized" / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.side"]["shape"][:2] == [48, 64]  # not 480x640

    # a run trained on other frames cannot share a sim campaign: refused before it is written
    other = trained_workspace.runs_dir / "tiny-sp-96"
    shutil.copytree(trained_workspace.runs_dir / RUN, other)
    for config in other.glob("checkpoints/*/pretrained_model/config.json"):
        data = json.loads(config.read_text())
        for feature in data["input_features"].values():
            if feature["type"] == "VISUAL":
                feature["shape"] = [3, 96, 128]
        config.write_text(json.dumps(data))
    assert trained_image_size(trained_workspace.runs_dir, ["tiny-sp-96"]) == (96, 128)
    capsys.readouterr()
    assert main([*argv, "--campaign", "typo", "--image-size", "96by128"]) == 1
    assert "give it as HxW" in capsys.readouterr().err
    assert main([*argv, "--run", "tiny-sp-96", "--campaign", "mixed"]) == 1
    err = capsys.readouterr().err.strip()
    assert "48x64" in err and "96x128" in err and "--image-size" in err and "\n" not in err
    with ResultsStore(trained_workspace.results_db) as store:
        assert not {"mixed", "typo"} & {c.name for c in store.campaigns()}
    shutil.rmtree(other)
