"""`piper-ws pretrain` at test scale: a source corpus, full training from scratch, an exported
backbone with its card that `--backbone` takes by name; running it again continues."""

import json

import pytest

from app.cli import main

pytestmark = pytest.mark.slow

SMALL = ["--size", "tiny", "--tasks", "lift_cube,touch_ball", "--episodes-per-task", "1", "--image-size", "48x64",
         "--batch-size", "2", "--device", "cpu"]  # fmt: skip


def test_pretrain_builds_a_backbone_the_trainer_takes_by_name_and_resumes(
    workspace, tmp_path, monkeypatch, capsys
):
    from train.backbones import read_card, resolve_backbone

    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))
    ws = ["--workspace", str(workspace.root)]
    assert main([*ws, "pretrain", *SMALL, "--steps", "4"]) == 0
    card = read_card("tiny-smolvla-pretrained")
    assert card["from"] == "tiny-smolvla" and card["steps"] == 4 and card["run"] == "pretrain-tiny"
    assert card["corpus"]["episodes"] == 2 and card["corpus"]["frames"] > 100
    assert card["corpus"]["tasks"] == ["lift_cube", "touch_ball"]
    assert card["parameters"] > 1e5 and card["final_loss"] > 0
    assert set(card["software"]) == {"mujoco", "torch", "lerobot"}
    backbone = resolve_backbone("tiny-smolvla-pretrained")
    config = json.loads((backbone.path / "config.json").read_text())
    assert config["vlm_model_name"] == str(backbone.path / "vlm") and (backbone.path / "vlm").is_dir()
    sidecar = (workspace.datasets_dir / "source-tiny" / "piper" / "episodes.jsonl").read_text().splitlines()
    assert {json.loads(row)["task"] for row in sidecar} == {"lift_cube", "touch_ball"}

    capsys.readouterr()
    assert main([*ws, "pretrain", *SMALL, "--steps", "4"]) == 0  # nothing left to do
    err = capsys.readouterr().err
    assert "already reached step 4" in err and "is up to date" in err and "kept" not in err

    assert main([*ws, "pretrain", *SMALL, "--steps", "6"]) == 0  # continues from step 4
    assert read_card("tiny-smolvla-pretrained")["steps"] == 6
    metrics = (workspace.runs_dir / "pretrain-tiny" / "metrics.jsonl").read_text()
    assert '"event": "resumed"' in metrics

    train = ["train", "--dataset", "source-tiny", "--preset", "smolvla-full", "--backbone",
             "tiny-smolvla-pretrained", "--run", "from-pretrained", "--steps", "2", "--batch-size", "2", "--device", "cpu"]  # fmt: skip
    assert main([*ws, *train]) == 0
    written = json.loads(
        (
            workspace.runs_dir
            / "from-pretrained"
            / "checkpoints"
            / "000002"
            / "pretrained_model"
            / "backbone.json"
        ).read_text()
    )
    assert written["path"] == str(backbone.path)


def test_an_in_house_backbone_not_made_yet_names_the_command(tmp_path, monkeypatch):
    from train.backbones import BackboneError, resolve_backbone

    monkeypatch.setenv("PIPER_WS_MODEL_CACHE", str(tmp_path / "models"))
    with pytest.raises(BackboneError, match="run `piper-ws pretrain` first"):
        resolve_backbone("mini-smolvla")
