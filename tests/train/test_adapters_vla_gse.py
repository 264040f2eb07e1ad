"""VLA-GSE against its formulas: the SVD split, scales, routing, the balance loss, exact
identity at init (bf16 too), the paths and merges that are valid, and the aux bookkeeping."""

import itertools

import pytest
import torch
from test_adapters_layers import TARGETS, Stack, inputs
from torch import nn

from train.adapters import VlaGseConfig, apply_adapters
from train.adapters.vla_gse import VlaGseLinear, balance_loss, route

D_IN, D_OUT = 24, 40


def layer(config=None, seed=0):
    torch.manual_seed(seed)
    return VlaGseLinear(nn.Linear(D_IN, D_OUT), config or VlaGseConfig(r=8, num_experts=4, num_generalists=1))


def model_with(config, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    model = Stack().to(dtype)
    return model, apply_adapters(model, config, TARGETS)


def perturb(handle, scale=0.05, seed=3):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in handle.trainable_parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator).to(p.dtype))


def expert_product(mod, e, a=None, b=None):
    r_e = mod.config.expert_rank
    a = mod.lora_A if a is None else a
    b = mod.lora_B if b is None else b
    return mod.scales[e] * b[:, e * r_e : (e + 1) * r_e] @ a[e * r_e : (e + 1) * r_e]


@pytest.mark.parametrize("svd", ["full", "lowrank"])
def test_experts_are_disjoint_singular_blocks_of_w_divided_by_rho(svd):
    mod = layer(VlaGseConfig(r=8, num_experts=4, num_generalists=1, svd=svd))
    u, s, vh = torch.linalg.svd(mod.base_layer.weight.detach(), full_matrices=False)
    for e in range(4):
        block = slice(2 * e, 2 * e + 2)
        expected = u[:, block] @ torch.diag(s[block]) @ vh[block] / mod.config.rho
        tol = 1e-5 if svd == "full" else 2e-2  # svd_lowrank (2 power iterations) approximates
        torch.testing.assert_close(expert_product(mod, e), expected, atol=tol, rtol=tol)
    for i, j in itertools.combinations(range(4), 2):  # row and column spaces pairwise orthogonal
        a_i, a_j = mod.lora_A[2 * i : 2 * i + 2], mod.lora_A[2 * j : 2 * j + 2]
        b_i, b_j = mod.lora_B[:, 2 * i : 2 * i + 2], mod.lora_B[:, 2 * j : 2 * j + 2]
        assert (a_i @ a_j.T).abs().max() < 1e-5 and (b_i.T @ b_j).abs().max() < 1e-5
    # the generalist holds the largest singular value, the specialists the next ones
    assert float(
        torch.linalg.matrix_norm(expert_product(mod, 0).detach(), ord=2)
    ) * mod.config.rho == pytest.approx(float(s[0]), rel=1e-4 if svd == "full" else 2e-2)


def test_scale_rules():
    cfg = VlaGseConfig(r=8, num_experts=4)
    assert cfg.expert_scale(D_IN) == pytest.approx((3 * D_IN / 2) ** 0.5)
    assert VlaGseConfig(r=8, num_experts=4, scale_rule="alpha", alpha=6).expert_scale(D_IN) == 3.0
    mod = layer(VlaGseConfig(r=8, num_experts=4, specialist_scaling="gradient_balanced"))
    s = torch.linalg.svdvals(mod.base_layer.weight.detach())[:8]
    traces = torch.stack([s[2:4].sum(), s[4:6].sum(), s[6:8].sum()])
    torch.testing.assert_close(mod.scales[1:], 2.0 * traces.mean() / traces)
    assert mod.scales[0] == pytest.approx((3 * D_IN / 2) ** 0.5)


def test_routing_and_balance_against_their_formulas():
    logits = torch.randn(10, 5, generator=torch.Generator().manual_seed(0))
    probs, weights, chosen = route(logits, top_k=2, renormalize=True)
    expected_loss = 0.0
    for row in range(10):
        p = torch.softmax(logits[row], dim=0)
        top = sorted(range(5), key=lambda i: -p[i])[:2]
        assert set(chosen[row].tolist()) == set(top)
        torch.testing.assert_close(weights[row].sum(), torch.tensor(1.0))
        torch.testing.assert_close(weights[row][0] / weights[row][1], p[top[0]] / p[top[1]])
    for i in range(5):
        f_i = sum(i in chosen[row].tolist() for row in range(10)) / 10
        expected_loss += f_i * float(torch.softmax(logits, dim=-1)[:, i].mean())
    assert float(balance_loss(probs, chosen)) == pytest.approx(5 * expected_loss, rel=1e-6)
    uniform = torch.full((4, 5), 0.2)  # uniform probabilities and picks: the loss is top_k
    picks = torch.tensor([[0, 1], [2, 3], [4, 0], [1, 2]])
    assert float(balance_loss(uniform, picks)) == pytest.approx(8 * 5 * 0.2 / 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("path", ["dense", "gathered"])
def test_exactly_the_backbone_at_init(dtype, path):
    x = inputs().to(dtype)
    torch.manual_seed(0)
    before = Stack().to(dtype)(x)
    model, handle = model_with(VlaGseConfig(r=8, num_experts=4), dtype=dtype)
    handle.set_inference_path(path)
    assert torch.equal(model(x), before)
    model.eval()
    assert torch.equal(model(x), before)


def test_fold_moves_the_initial_experts_out_of_w():
    torch.manual_seed(0)
    base = nn.Linear(D_IN, D_OUT)
    w = base.weight.detach().clone()
    mod = VlaGseLinear(base, VlaGseConfig(r=8, num_experts=4, init_offset="fold"))
    restored = mod.base_layer.weight + sum(expert_product(mod, e) for e in range(4))
    torch.testing.assert_close(restored, w, atol=1e-6, rtol=1e-6)


def test_subtract_has_the_layer_gradients_of_the_folded_form():
    """Same input, same output gradient: A, B and the router get the fold form's gradients."""
    x, upstream = torch.randn(9, D_IN), torch.randn(9, D_OUT)
    grads = {}
    for offset in ("subtract", "fold"):
        mod = layer(VlaGseConfig(r=8, num_experts=4, init_offset=offset, lambda_balance=0.0))
        mod.base_layer.requires_grad_(False)
        (mod(x) * upstream).sum().backward()
        grads[offset] = {n: p.grad for n, p in mod.named_parameters() if p.requires_grad}
    assert set(grads["subtract"]) == set(grads["fold"]) == {"lora_A", "lora_B", "router.weight"}
    for name, grad in grads["subtract"].items():
        torch.testing.assert_close(grad, grads["fold"][name], atol=1e-5, rtol=1e-4)


def test_gathered_equals_dense_and_merged_generalists_equal_unmerged():
    x = inputs()
    model, handle = model_with(VlaGseConfig(r=8, num_experts=4))
    perturb(handle)
    model.eval()
    with torch.no_grad():
        dense = model(x)
        handle.set_inference_path("gathered")
        torch.testing.assert_close(model(x), dense, atol=1e-5, rtol=1e-5)
        for module in handle.modules.values():
            module.merge_generalists()
        torch.testing.assert_close(model(x), dense, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="merge_generalists"):
        handle.merge()


def test_balance_is_weighted_and_averaged_over_calls_and_layers():
    mod = layer()
    mod.train()
    x1, x2 = torch.randn(6, D_IN), torch.randn(5, D_IN)
    mod(x1)
    mod(x2)  # a second call in the same forward: the layer reports its mean
    expected = [balance_loss(*route(mod.router(x), 2, True)[::2]) for x in (x1, x2)]
    torch.testing.assert_close(mod.take_balance(), (expected[0] + expected[1]) / 2)
    model, handle = model_with(VlaGseConfig(r=8, num_experts=4, lambda_balance=0.5))
    model(inputs())
    per_layer = [m.last_aux["balance"] for m in handle.modules.values()]
    aux = handle.aux_losses()
    torch.testing.assert_close(aux["balance"], torch.stack(per_layer).mean())
    torch.testing.assert_close(aux["total"], 0.5 * aux["balance"])
    assert float(handle.aux_losses()["total"]) == 0.0  # consumed on read


def test_active_rank_is_generalists_plus_top_k():
    model, handle = model_with(VlaGseConfig(r=12, num_experts=4, num_generalists=1, top_k=2))
    model(inputs())
    assert handle.active_rank().overall == 9.0  # (1 + 2) experts of rank 3


@pytest.mark.parametrize(
    "knobs",
    [
        dict(r=10, num_experts=4),
        dict(num_generalists=8),
        dict(top_k=8),
        dict(rho=0),
        dict(init_offset="merge"),
        dict(svd="random"),
        dict(dropout=1.0),
    ],
)
def test_impossible_configs_fail_at_construction(knobs):
    with pytest.raises(ValueError, match="VlaGseConfig"):
        VlaGseConfig(**knobs)


def test_rank_above_the_layer_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match="lower r"):
        VlaGseLinear(nn.Linear(4, 30), VlaGseConfig(r=8, num_experts=4))
