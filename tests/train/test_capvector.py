"""Capability vectors: the vector arithmetic, the orthogonality loss against its formula,
the future-state target, and the whole pipeline on the tiny SmolVLA through files."""

import json

import pytest
import torch
from test_adapters_layers import TARGETS, Stack, inputs

from train.adapters import FullFinetuneConfig, LoraConfig, LoraSPConfig, apply_adapters
from train.capvector import apply_vector, capability_vector, check_name
from train.objectives import OrthogonalRegulariser, projection_loss


def test_vector_is_aux_minus_sft_and_applies_exactly():
    sft = {
        "w": torch.tensor([1.0, 2.0, 3.0]),
        "n": torch.tensor([4]),
        "h": torch.tensor([0.5], dtype=torch.float16),
    }
    aux = {
        "w": torch.tensor([1.5, 1.0, 3.0]),
        "n": torch.tensor([7]),
        "h": torch.tensor([0.75], dtype=torch.float16),
    }
    vector = capability_vector(aux, sft)
    assert set(vector) == {"w", "h"}  # integer tensors are not weights
    assert torch.equal(vector["w"], torch.tensor([0.5, -1.0, 0.0]))
    assert torch.equal(vector["h"], torch.tensor([0.25]))
    base = {
        "w": torch.tensor([10.0, 10.0, 10.0]),
        "n": torch.tensor([1]),
        "h": torch.tensor([1.0], dtype=torch.float16),
    }
    merged = apply_vector(base, vector, scale=2.0)
    assert torch.equal(merged["w"], torch.tensor([11.0, 8.0, 10.0]))
    assert merged["h"].dtype == torch.float16 and float(merged["h"]) == 1.5
    assert torch.equal(merged["n"], base["n"])
    with pytest.raises(ValueError, match="same backbone twice"):
        capability_vector({"w": sft["w"]}, sft)
    with pytest.raises(ValueError, match="does not fit"):
        apply_vector({"w": torch.zeros(2)}, {"w": torch.zeros(3)})


def test_projection_loss_formula_and_zero_for_orthogonal_updates():
    v = {"a": torch.tensor([3.0, 4.0]), "b": torch.tensor([[0.0, 2.0]])}
    # a: <(3, 4), (3, 4)/5> = 5; b: <(1, 0), (0, 1)> = 0
    updates = {"a": torch.tensor([3.0, 4.0]), "b": torch.tensor([[1.0, 0.0]])}
    assert float(projection_loss(updates, v)) == pytest.approx(25.0)
    assert float(projection_loss({"a": torch.tensor([4.0, -3.0])}, v)) == 0.0


def random_vector(model, seed=5):
    generator = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=generator) for n, p in model.state_dict().items()}


def test_full_regulariser_is_the_projection_of_the_update():
    torch.manual_seed(0)
    model = Stack()
    vector = random_vector(model)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    handle = apply_adapters(model, FullFinetuneConfig(), TARGETS)
    reg = OrthogonalRegulariser(handle, vector, weight=0.5)
    assert float(reg.loss()) == pytest.approx(0.0, abs=1e-8)  # nothing moved yet
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    update = {n: p.detach() - start[n] for n, p in model.named_parameters()}
    expected = 0.5 * float(projection_loss(update, vector))
    assert float(reg.loss()) == pytest.approx(expected, rel=1e-4)
    with torch.no_grad():  # an update orthogonal to the vector, tensor by tensor
        for n, p in model.named_parameters():
            d = torch.randn_like(p)
            v_hat = vector[n] / vector[n].norm()
            p.copy_(start[n] + 0.01 * (d - (d * v_hat).sum() * v_hat))
    assert float(reg.loss()) == pytest.approx(0.0, abs=1e-8)


def test_lora_regulariser_projects_scaling_b_a():
    torch.manual_seed(0)
    model = Stack()
    vector = random_vector(model)
    handle = apply_adapters(model, LoraConfig(r=4, lora_alpha=8), TARGETS)
    reg = OrthogonalRegulariser(handle, vector, weight=2.0)
    assert float(reg.loss()) == 0.0  # B starts at zero
    with torch.no_grad():
        for module in handle.modules.values():
            module.lora_B["default"].weight.normal_()
    update = {
        f"{name}.weight": 2.0 * m.lora_B["default"].weight @ m.lora_A["default"].weight
        for name, m in handle.modules.items()
    }
    assert float(reg.loss()) == pytest.approx(2.0 * float(projection_loss(update, vector)), rel=1e-4)
    model(inputs()).sum().backward()  # and it is differentiable through A and B
    reg.loss().backward()


def test_input_dependent_strategies_and_bad_names_are_refused():
    torch.manual_seed(0)
    model = Stack()
    handle = apply_adapters(model, LoraSPConfig(r=4, router_hidden=4), TARGETS)
    with pytest.raises(ValueError, match="full and lora"):
        OrthogonalRegulariser(handle, random_vector(model), 1.0)
    for name in ("", "a/b", "tiny-smolvla", "mini-smolvla"):
        with pytest.raises(ValueError, match="new plain name"):
            check_name(name)


@pytest.mark.slow
def test_pipeline_builds_a_backbone_that_trains_with_the_orth_loss(backbone_cache, train_workspace, tmp_path):
    from safetensors.torch import load_file

    from train.backbones import resolve_backbone
    from train.capvector import build_capvector_backbone
    from train.loop import Trainer, run_training
    from train.metrics import read_metrics
    from train.objectives import VECTOR_FILE
    from train.presets import get_preset

    small = dict(batch_size=2, val_every=100, log_every=1)
    datasets = train_workspace / "datasets"
    out = build_capvector_backbone(
        "tiny-smolvla", "tiny_tasks", 2, "tiny-capvector", datasets_dir=datasets, work_dir=tmp_path / "runs",
        backbone_cache=backbone_cache, aux_horizon=3, **small,
    )  # fmt: skip
    base = load_file(str(resolve_backbone("tiny-smolvla", backbone_cache).path / "model.safetensors"))
    weights, vector = load_file(str(out / "model.safetensors")), load_file(str(out / VECTOR_FILE))
    aux = load_file(str(tmp_path / "runs/aux/checkpoints/000002/pretrained_model/model.safetensors"))
    sft = load_file(str(tmp_path / "runs/sft/checkpoints/000002/pretrained_model/model.safetensors"))
    moved = [k for k in vector if not torch.equal(aux[k], sft[k])]
    assert moved  # the aux objective changed the shared weights
    for key in moved[:20]:
        torch.testing.assert_close(vector[key], aux[key].float() - sft[key].float(), rtol=0, atol=0)
        torch.testing.assert_close(weights[key], (base[key].float() + vector[key]).to(base[key].dtype))
    card = json.loads((out / "card.json").read_text())["capability_vector"]
    assert card["from_backbone"] == "tiny-smolvla" and card["aux_horizon"] == 3

    aux_log = [r for r in read_metrics(tmp_path / "runs/aux") if r.get("kind") == "train"]
    assert all("aux/future_state" in r for r in aux_log)

    config = get_preset(
        "smolvla-capvector", dataset="tiny_tasks", backbone=str(out), backbone_cache=str(backbone_cache),
        steps=2, **small,
    )  # fmt: skip
    run_training(config, tmp_path / "on_vector", datasets)
    logged = [r for r in read_metrics(tmp_path / "on_vector") if r.get("kind") == "train"]
    assert "aux/orth" in logged[-1] and logged[-1]["aux/orth"] > 0
    with pytest.raises(ValueError, match="piper-ws capvector"):
        Trainer(config.with_overrides(backbone="tiny-smolvla"), tmp_path / "no_vector", datasets)


def test_future_state_target_is_the_state_horizon_frames_ahead_clamped_to_the_episode(train_workspace):
    from types import SimpleNamespace

    from lerobot.datasets import LeRobotDataset
    from torch import nn

    from train.objectives import FutureStateObjective

    dataset = LeRobotDataset("local/tiny_tasks", root=train_workspace / "datasets" / "tiny_tasks")
    policy = SimpleNamespace(model=SimpleNamespace(action_out_proj=nn.Linear(6, 7)))
    objective = FutureStateObjective(policy, dataset, horizon=5, weight=1.0)
    std = torch.as_tensor(dataset.meta.stats["observation.state"]["std"]).float().clamp_min(1e-3)
    frames = {int(f["index"]): f for f in (dataset.hf_dataset[i] for i in range(len(dataset)))}
    for i in (0, 3, 12, 15, 16):  # 16 frames per episode: 12 + 5 and 15 + 5 clamp to frame 15
        episode_end = max(
            j for j, f in frames.items() if int(f["episode_index"]) == int(frames[i]["episode_index"])
        )
        future = frames[min(i + 5, episode_end)]["observation.state"]
        expected = (torch.as_tensor(future) - torch.as_tensor(frames[i]["observation.state"])) / std
        torch.testing.assert_close(objective.target(torch.tensor([i]))[0], expected.float())
