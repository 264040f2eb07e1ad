"""Every adapter strategy on the tiny SmolVLA and tiny pi0 (built offline by train.backbones):
identity at init, forward, backward, one optimiser step, active rank per module group,
and a bit-exact save/load into a freshly loaded backbone."""

import pytest
import torch

from train.adapters import (
    AdaLoraConfig,
    LoraConfig,
    LoraMoEConfig,
    LoraSPConfig,
    VlaGseConfig,
    apply_adapters,
    load_adapters,
    save_adapters,
    targets_for,
)

BACKBONES = {"tiny-smolvla": "smolvla", "tiny-pi0": "pi0"}
STRATEGIES = {
    "lora_sp": lambda: LoraSPConfig(r=16, router_hidden=8),
    "lora_moe": lambda: LoraMoEConfig(r=16, num_experts=4),
    "vla_gse": lambda: VlaGseConfig(r=8, num_experts=4),
    "lora": lambda: LoraConfig(r=8, lora_alpha=8),
    "adalora": lambda: AdaLoraConfig(init_r=8, target_r=4, total_step=10, tinit=0, tfinal=2),
}


@pytest.fixture(scope="module")
def adapters_backbones(backbone_cache):
    from train.backbones import resolve_backbone

    return {name: resolve_backbone(name, backbone_cache) for name in BACKBONES}


def load_policy(backbone):
    from train.backbones import load_base_policy

    # The VLM and vision tower must train too: lerobot's defaults keep them in eval mode.
    policy = load_base_policy(backbone, train_expert_only=False, freeze_vision_encoder=False)
    return policy.train()


def make_batch(backbone, policy, seed=0):
    from train.backbones import load_processors

    generator = torch.Generator().manual_seed(seed)
    chunk, batch = policy.config.chunk_size, 2
    pre, _ = load_processors(backbone, policy.config)
    return pre(
        {
            "observation.state": torch.randn(batch, 7, generator=generator),
            "action": torch.randn(batch, chunk, 7, generator=generator),
            "action_is_pad": torch.zeros(batch, chunk, dtype=torch.bool),
            "observation.images.side": torch.rand(batch, 3, 64, 80, generator=generator),
            "observation.images.wrist": torch.rand(batch, 3, 64, 80, generator=generator),
            "task": ["open the pot", "press the button"],
        }
    )


def seeded_loss(policy, batch, seed=1):
    torch.manual_seed(seed)  # flow matching samples noise and time
    return policy.forward(batch)[0]


def assert_gradients_reach_adapters(policy, handle):
    """Every adapter gets a finite gradient, except in the last VLM layer: the action expert
    reads only its keys and values, so lerobot never uses its queries, attention output
    and MLP (adapters there learn from the aux losses alone, if any)."""
    without_grad = set()
    for name, param in policy.named_parameters():
        if not param.requires_grad:
            continue
        module = max((m for m in handle.groups if name.startswith(m + ".")), key=len)
        if param.grad is None:
            without_grad.add(module)
        else:
            assert torch.isfinite(param.grad).all(), name
    language = [m for m, g in handle.groups.items() if g == "language" and ".layers." in m]
    last = max(int(m.split(".layers.")[1].split(".")[0]) for m in language)
    dead = {m for m in language if f".layers.{last}." in m and not m.endswith(("k_proj", "v_proj"))}
    assert without_grad <= dead, without_grad - dead


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("backbone_name", BACKBONES)
def test_strategy_trains_on_tiny_backbone(adapters_backbones, backbone_name, strategy):
    backbone = adapters_backbones[backbone_name]
    policy = load_policy(backbone)
    batch = make_batch(backbone, policy)
    with torch.no_grad():
        base_loss = seeded_loss(policy, batch)

    handle = apply_adapters(policy, STRATEGIES[strategy](), targets_for(BACKBONES[backbone_name]))
    assert set(handle.groups.values()) == {"vision", "language", "action"}
    counts = handle.parameter_counts()
    assert 0 < counts.trainable < counts.total
    frozen = {n: p.detach().clone() for n, p in policy.named_parameters() if not p.requires_grad}

    loss = seeded_loss(policy, batch)
    assert torch.equal(loss, base_loss)  # identity at init on the real model
    aux = handle.aux_losses()
    optimizer = torch.optim.AdamW(handle.trainable_parameters(), lr=1e-3)
    (loss + aux["total"]).backward()
    assert_gradients_reach_adapters(policy, handle)
    optimizer.step()
    handle.set_step(1)
    optimizer.zero_grad()

    with torch.no_grad():
        assert not torch.equal(seeded_loss(policy, batch), base_loss)  # the step changed the model
    for name, param in policy.named_parameters():
        if name in frozen:
            assert torch.equal(param, frozen[name]), f"frozen {name} moved"

    stats = handle.active_rank(reset=True)
    assert set(stats.per_group) == {"vision", "language", "action"}
    max_rank = 16 if strategy in ("lora_sp", "lora_moe") else 8
    assert all(0 < value <= max_rank for value in stats.per_group.values())
    if strategy == "lora_sp":
        assert {"spectral", "balance", "z"} <= set(aux) and aux["spectral"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("backbone_name", BACKBONES)
def test_lora_sp_round_trip_into_fresh_backbone(adapters_backbones, backbone_name, tmp_path):
    backbone = adapters_backbones[backbone_name]
    policy = load_policy(backbone)
    batch = make_batch(backbone, policy)
    handle = apply_adapters(policy, LoraSPConfig(r=16, router_hidden=8, eta=0.8), BACKBONES[backbone_name])
    optimizer = torch.optim.AdamW(handle.trainable_parameters(), lr=1e-2)
    for step in range(1, 3):
        (seeded_loss(policy, batch) + handle.aux_losses()["total"]).backward()
        optimizer.step()
        handle.set_step(step)
        optimizer.zero_grad()
    policy.eval()
    with torch.no_grad():
        expected = seeded_loss(policy, batch)
    save_adapters(handle, tmp_path / "adapter")

    fresh = load_policy(backbone)
    load_adapters(fresh, tmp_path / "adapter")
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(seeded_loss(fresh, batch), expected)


def test_default_smolvla_config_warns_that_the_vlm_stays_in_eval(adapters_backbones):
    from train.backbones import load_base_policy

    policy = load_base_policy(adapters_backbones["tiny-smolvla"])  # train_expert_only=True by default
    with pytest.warns(UserWarning, match="train_expert_only"):
        apply_adapters(policy, LoraSPConfig(r=4), "smolvla:language")
