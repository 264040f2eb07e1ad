"""Adapter-only checkpoints: bit-exact round trips into a fresh backbone, merging, and
clear errors for damaged or mismatched checkpoints."""

import json

import pytest
import torch
from torch import nn

from train.adapters import (
    AdaLoraConfig,
    FullFinetuneConfig,
    LoraConfig,
    LoraMoEConfig,
    LoraSPConfig,
    VlaGseConfig,
    apply_adapters,
    load_adapters,
    save_adapters,
)
from train.layout import ADAPTER_CONFIG, ADAPTER_WEIGHTS

D = 20


class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"fc1": nn.Linear(D, 32), "fc2": nn.Linear(32, D)}) for _ in range(2)
        )
        self.out = nn.Linear(D, 5)

    def forward(self, x):
        for block in self.blocks:
            x = x + block["fc2"](torch.tanh(block["fc1"](x)))
        return self.out(x)


TARGETS = "re:blocks\\.\\d+\\.fc[12]$"
CONFIGS = {
    "lora_sp": lambda: LoraSPConfig(r=8, router_hidden=5, eta=0.7, eta_schedule="linear", eta_warmup_steps=4),
    "lora_moe": lambda: LoraMoEConfig(r=8, num_experts=4, routing="weighted"),
    "lora": lambda: LoraConfig(r=4, lora_alpha=16, lora_dropout=0.0),
    "adalora": lambda: AdaLoraConfig(init_r=6, target_r=2, total_step=6, tinit=0, tfinal=2, deltaT=1),
    "vla_gse": lambda: VlaGseConfig(r=8, num_experts=4),
    "vla_gse_fold": lambda: VlaGseConfig(r=8, num_experts=4, init_offset="fold", svd="lowrank"),
    "full": lambda: FullFinetuneConfig(),
    "full_targets": lambda: FullFinetuneConfig(scope="targets"),
}


def fresh(seed=0):
    torch.manual_seed(seed)
    return Tower()


def x_batch():
    return torch.randn(4, 6, D, generator=torch.Generator().manual_seed(9))


def trained(name, steps=3):
    model = fresh()
    handle = apply_adapters(model, CONFIGS[name](), TARGETS)
    optimizer = torch.optim.Adam(handle.trainable_parameters(), lr=1e-2)
    for step in range(1, steps + 1):
        loss = (model(x_batch()) - 1).square().mean() + handle.aux_losses()["total"]
        loss.backward()
        optimizer.step()
        handle.set_step(step)
        optimizer.zero_grad()
    return model, handle


@pytest.mark.parametrize("name", CONFIGS)
def test_round_trip_is_bit_exact(name, tmp_path):
    model, handle = trained(name)
    model.eval()
    with torch.no_grad():
        expected = model(x_batch())
    assert not torch.equal(expected, fresh()(x_batch()))  # training changed the output
    save_adapters(handle, tmp_path / "ckpt")

    reloaded_model = fresh()
    reloaded = load_adapters(reloaded_model, tmp_path / "ckpt")
    reloaded_model.eval()
    with torch.no_grad():
        assert torch.equal(reloaded_model(x_batch()), expected)
    assert reloaded.strategy == handle.strategy and reloaded.groups == handle.groups
    assert reloaded.step == 3
    assert reloaded.parameter_counts() == handle.parameter_counts()


def test_checkpoint_holds_adapters_only(tmp_path):
    from safetensors.torch import load_file

    _, handle = trained("lora_sp", steps=1)
    save_adapters(handle, tmp_path)
    keys = load_file(str(tmp_path / ADAPTER_WEIGHTS)).keys()
    assert keys and all(".lora_" in k or ".router." in k for k in keys)
    meta = json.loads((tmp_path / ADAPTER_CONFIG).read_text())
    assert meta["config"]["strategy"] == "lora_sp" and meta["config"]["fields"]["r"] == 8
    assert meta["modules"] == {f"blocks.{i}.fc{j}": "custom" for i in range(2) for j in (1, 2)}


@pytest.mark.parametrize("name", ["lora", "adalora", "full"])
def test_merge_equals_unmerged(name):
    model, handle = trained(name)
    model.eval()
    with torch.no_grad():
        unmerged = model(x_batch())
        merged_model = handle.merge()
        merged = merged_model(x_batch())
    assert all(type(m) is nn.Linear for n, m in merged_model.named_modules() if n.endswith(("fc1", "fc2")))
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["lora_sp", "lora_moe"])
def test_input_dependent_strategies_refuse_to_merge(name):
    _, handle = trained(name, steps=1)
    with pytest.raises(ValueError, match="input-dependent"):
        handle.merge()


def test_missing_damaged_and_mismatched_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="save_adapters"):
        load_adapters(fresh(), tmp_path / "nowhere")
    _, handle = trained("lora", steps=1)
    save_adapters(handle, tmp_path / "ok")

    (tmp_path / "ok" / ADAPTER_WEIGHTS).write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="damaged"):
        load_adapters(fresh(), tmp_path / "ok")

    save_adapters(handle, tmp_path / "ok")
    (tmp_path / "ok" / ADAPTER_CONFIG).write_text("{ truncated")
    with pytest.raises(ValueError, match="damaged"):
        load_adapters(fresh(), tmp_path / "ok")

    class Wider(Tower):
        def __init__(self):
            super().__init__()
            self.blocks[0]["fc1"] = nn.Linear(D, 48)
            self.blocks[0]["fc2"] = nn.Linear(48, D)

    save_adapters(handle, tmp_path / "ok")
    with pytest.raises(ValueError, match="shape"):
        load_adapters(Wider(), tmp_path / "ok")
