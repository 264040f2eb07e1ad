"""The fused LoRA-SP path against the kept reference path: the same selection (ties and
exact-boundary rows included), outputs, auxiliary losses and gradients; no host reads in a
training step; auxiliary losses summed over every call of a layer."""

import pytest
import torch
from test_adapters_rule import brute_force_k
from torch import nn

from train.adapters import LoraSPConfig, apply_adapters
from train.adapters.lora_sp import (
    LoraSPLinear,
    _select,
    balance_loss,
    energy_select,
    eta_tensor,
    spectral_loss,
    z_loss,
)
from train.adapters.lora_sp_fused import (
    eta_fraction,
    kept_union,
    threshold_select,
    threshold_select_numpy,
    threshold_select_torch,
)

D_IN, D_OUT = 12, 10

# Rows whose cumulative energy hits eta exactly (small integers: every sum is exact).
BOUNDARY = {
    0.99: [9.0, 3.0, 3.0, 1.0, 0.0, 0.0],  # 81 + 9 + 9 = 99 of 100: k = 3
    0.9: [3.0, 1.0, 0.0, 0.0, 0.0, 0.0],  # 9 of 10: k = 1
    0.75: [3.0, 1.0, 1.0, 1.0, 0.0, 0.0],  # 9 of 12: k = 1
    0.5: [1.0, 1.0, 1.0, 1.0, 0.0, 0.0],  # ties: 2 of 4: k = 2
    0.3: [1.0] * 10,  # ties: 3 of 10: k = 3
}


SELECT = {"numpy": threshold_select_numpy, "torch": threshold_select_torch, "dispatch": threshold_select}


def fused_k_and_mask(scores, eta, k_rule="smallest", impl="dispatch"):
    mask, dropped = SELECT[impl](scores, eta_tensor(eta), k_rule)
    return (scores.shape[-1] - dropped.squeeze(-1)), mask


@pytest.mark.parametrize("impl", sorted(SELECT))
@pytest.mark.parametrize("eta", sorted(BOUNDARY))
def test_exact_boundary_rows_keep_the_smallest_k(eta, impl):
    row = torch.tensor([BOUNDARY[eta]])
    expected = brute_force_k(BOUNDARY[eta], eta)
    k, mask = fused_k_and_mask(row, eta, impl=impl)
    assert k.item() == expected == energy_select(row, eta).k.item()
    assert mask.sum().item() == expected


def test_float32_eta_was_the_defect():
    """eta held as float32 (0.99 -> 0.99000001) made the 0.99 boundary row keep 4, not 3."""
    energy = torch.tensor(BOUNDARY[0.99]).square().sort().values
    prefix = energy.cumsum(0)
    old_dropped = int((prefix <= (1.0 - torch.tensor(0.99)) * prefix[-1]).sum())
    assert len(energy) - old_dropped == 4
    assert eta_fraction(0.99) == (1, 100)


@pytest.mark.parametrize("impl", ["numpy", "torch"])
@pytest.mark.parametrize("k_rule", ["smallest", "one_fewer"])
@pytest.mark.parametrize("eta", [0.3, 0.5, 0.9, 0.99, 1.0])
def test_threshold_select_equals_reference_with_ties(eta, k_rule, impl):
    generator = torch.Generator().manual_seed(11)
    random = torch.rand(64, 16, generator=generator) * torch.logspace(-2, 1, 16)
    # many ties: scores from a handful of integers, some rows all equal, some all zero
    tied = torch.randint(0, 4, (64, 16), generator=generator).float()
    tied[:4] = 2.0
    tied[4:6] = 0.0
    scores = torch.cat([random, tied, torch.randn(32, 16, generator=generator)])
    k, mask = fused_k_and_mask(scores, eta, k_rule, impl)
    ref_k, ref_mask, _, _ = _select(scores, eta_tensor(eta), k_rule)
    assert torch.equal(k, ref_k)
    assert torch.equal(mask, ref_mask)  # the same vectors: ties keep the lowest bank indices
    assert k.dtype == torch.long and mask.dtype == torch.bool
    if k_rule == "smallest":
        assert k.tolist() == [brute_force_k(row, eta) for row in scores.tolist()]
    tied_row = fused_k_and_mask(torch.full((1, 16), 2.0), eta, impl=impl)[1][0]
    kept = int(tied_row.sum())
    assert tied_row[:kept].all() and not tied_row[kept:].any()


def fused_and_reference_layers(seed=0, **config):
    torch.manual_seed(seed)
    fused = LoraSPLinear(nn.Linear(D_IN, D_OUT), LoraSPConfig(**{"r": 8, "router_hidden": 6, **config}))
    nn.init.normal_(fused.lora_B, std=0.3)
    reference = LoraSPLinear(nn.Linear(D_IN, D_OUT), LoraSPConfig(**{"r": 8, "router_hidden": 6, **config}))
    reference.load_state_dict(fused.state_dict())
    reference.implementation = "reference"
    return fused, reference


def run(layer, x, weights):
    """Forward, the aux terms, a loss using all of them, backward: (out, aux, grads)."""
    x = x.clone().requires_grad_()
    out = layer(x)
    names, summed, rows = layer.take_aux()
    aux = summed / rows
    (out.square().mean() + (aux * weights).sum()).backward()
    grads = {n: p.grad.clone() for n, p in layer.named_parameters() if p.grad is not None}
    grads["x"] = x.grad
    return out, aux, grads


CONFIGS = {
    "paper": {},
    "scaled_eta_0.6": {"alpha": 4.0, "eta": 0.6},
    "authors": {"router_depth": 1, "score_fn": "none", "k_rule": "one_fewer"},
    "relu_silu_log1p": {"score_fn": "relu", "router_activation": "silu", "z_loss_form": "log1p"},
    "relu_router": {"router_activation": "relu", "eta": 0.99},
    "sigmoid": {"score_fn": "sigmoid"},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fused_layer_equals_reference(name):
    fused, reference = fused_and_reference_layers(**CONFIGS[name])
    x = torch.randn(3, 5, D_IN, generator=torch.Generator().manual_seed(1))
    weights = torch.tensor([0.7, 0.3, 0.2])  # every aux term carries gradient
    out_f, aux_f, grads_f = run(fused, x, weights)
    out_r, aux_r, grads_r = run(reference, x, weights)
    torch.testing.assert_close(out_f, out_r, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(aux_f, aux_r, rtol=1e-5, atol=1e-6)
    assert grads_f.keys() == grads_r.keys()
    for key in grads_r:
        torch.testing.assert_close(grads_f[key], grads_r[key], rtol=1e-4, atol=1e-6, msg=key)
    assert torch.equal(fused.rank_histogram(), reference.rank_histogram())


def test_fused_layer_equals_reference_where_log1p_z_is_clamped():
    """Rows on both sides of the log1p z-loss's floor (logsumexp -0.99): the same finite aux
    terms and the same gradients, the clamped rows' z gradient zero in both."""
    fused, reference = fused_and_reference_layers(z_loss_form="log1p")
    spread = torch.linspace(0.2, 4, 6).view(6, 1, 1)  # wider logits, higher logsumexp
    x = torch.randn(6, 5, D_IN, generator=torch.Generator().manual_seed(8)) * spread
    for layer in (fused, reference):
        with torch.no_grad():
            layer.router.net[-1].bias.fill_(-3.3)
    lse = reference.scores(x)[0].logsumexp(dim=-1)
    assert (lse < -0.99).any() and (lse > -0.99).any()
    out_f, aux_f, grads_f = run(fused, x, torch.tensor([0.0, 0.0, 1.0]))
    out_r, aux_r, grads_r = run(reference, x, torch.tensor([0.0, 0.0, 1.0]))
    assert torch.isfinite(aux_f).all()
    torch.testing.assert_close(aux_f, aux_r, rtol=1e-5, atol=1e-6)
    for key in grads_r:
        torch.testing.assert_close(grads_f[key], grads_r[key], rtol=1e-4, atol=1e-6, msg=key)


def test_fused_layer_equals_reference_on_tied_scores():
    """A router whose scores tie (zero W2, repeated biases): both paths keep the same vectors."""
    fused, reference = fused_and_reference_layers(eta=0.5, score_fn="relu")
    for layer in (fused, reference):
        with torch.no_grad():
            layer.router.net[-1].weight.zero_()
            layer.router.net[-1].bias.copy_(torch.tensor([1.0, 2.0, 2.0, 1.0, 2.0, 0.0, 2.0, 1.0]))
    x = torch.randn(4, D_IN, generator=torch.Generator().manual_seed(2))
    out_f, aux_f, grads_f = run(fused, x, torch.ones(3))
    out_r, aux_r, grads_r = run(reference, x, torch.ones(3))
    torch.testing.assert_close(out_f, out_r)
    torch.testing.assert_close(aux_f, aux_r)
    torch.testing.assert_close(grads_f["lora_A"], grads_r["lora_A"])
    # energies 4,4,4,4 of 4+4+4+4+1+1+1 = 19: half needs 3 of the four tied vectors
    assert fused.rank_histogram()[3] == 4


def test_fused_layer_under_bf16_autocast_stays_close_to_reference():
    fused, reference = fused_and_reference_layers()
    x = torch.randn(2, 6, D_IN, generator=torch.Generator().manual_seed(3))
    results = []
    for layer in (fused, reference):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            results.append(run(layer, x, torch.ones(3)))
    (out_f, aux_f, grads_f), (out_r, aux_r, grads_r) = results
    assert grads_f["lora_A"].dtype == torch.float32  # the parameters stay float32
    torch.testing.assert_close(out_f.float(), out_r.float(), rtol=0.05, atol=0.05)
    torch.testing.assert_close(aux_f, aux_r, rtol=0.05, atol=0.02)
    for key in ("lora_A", "lora_B", "router.net.0.weight"):
        cos = torch.nn.functional.cosine_similarity(grads_f[key].flatten(), grads_r[key].flatten(), dim=0)
        assert cos > 0.98, key


def test_backward_saves_only_x_and_ax_beyond_weights_and_r_wide_mask():
    """The autograd graph of a fused forward holds x, A x, the kept mask, three numbers per
    row (for the auxiliary terms' gradients) and the weights: not the router's hidden
    layer, not its logits or scores."""
    fused, _ = fused_and_reference_layers(router_hidden=32)
    fused.base_layer.requires_grad_(False)  # frozen, as apply_adapters leaves it
    x = torch.randn(50, D_IN, requires_grad=True)
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fused(x)
    shapes = {tuple(t.shape) for t in saved}
    assert (50, 32) not in shapes  # the hidden layer is recomputed in backward
    activations = [t for t in saved if t.shape[0] == 50]
    wide = [t for t in activations if t.shape[-1] > 1]
    assert sorted(tuple(t.shape) for t in wide) == [(50, 8), (50, 8), (50, D_IN)]
    assert sum(t.dtype == torch.bool for t in wide) == 1  # x, A x and the bool mask
    assert len(activations) - len(wide) == 3  # energy, kept energy, logsumexp per row


def test_training_step_reads_no_tensor_value_on_the_host():
    """Meta tensors have no values: a forward, the aux losses, backward and the rank
    bookkeeping that run on them cannot contain a .item(), a bool(tensor) or a .tolist()
    (each of which stalls a GPU and breaks a compiled graph)."""
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(D_IN, D_IN), nn.GELU(), nn.Linear(D_IN, D_OUT))
        handle = apply_adapters(model, LoraSPConfig(r=8, router_hidden=6, eta=0.7), r"re:^[02]$")
        x = torch.randn(4, 3, D_IN)
    for step in range(2):
        loss = model(x).square().mean() + handle.aux_losses()["total"]
        loss.backward()
        handle.set_step(step + 1)
    assert loss.device.type == "meta"
    assert model[0].lora_A.grad.device.type == "meta"


def test_aux_losses_sum_every_call_of_a_layer():
    """A layer called twice in one forward (a vision tower per camera): each term is the mean
    over the rows of both calls, not the last call's."""
    fused, _ = fused_and_reference_layers()
    camera1 = torch.randn(2, 3, D_IN, generator=torch.Generator().manual_seed(4))
    camera2 = torch.randn(2, 5, D_IN, generator=torch.Generator().manual_seed(5)) * 3
    fused(camera1)
    fused(camera2)
    names, summed, rows = fused.take_aux()
    assert rows == 6 + 10

    def terms(x):
        logits, scores = fused.scores(x)
        mask = energy_select(scores, fused.eta).mask
        return torch.stack([spectral_loss(scores, scores * mask), balance_loss(logits, mask), z_loss(logits)])

    expected = (terms(camera1) * 6 + terms(camera2) * 10) / 16
    torch.testing.assert_close(summed / rows, expected, rtol=1e-5, atol=1e-6)
    assert names == ("spectral", "balance", "z")
    assert fused.take_aux() is None  # consumed


def test_handle_averages_layers_after_summing_calls():
    model = nn.Sequential(nn.Linear(D_IN, D_IN), nn.Linear(D_IN, D_IN))
    handle = apply_adapters(model, LoraSPConfig(r=8, router_hidden=6), r"re:^[01]$")
    x = torch.randn(3, D_IN, generator=torch.Generator().manual_seed(6))
    model[0](x)
    model[0](x * 2)  # layer 0 runs twice, layer 1 once
    model[1](x)
    per_layer = [model[0].last_aux, model[1].last_aux]
    aux = handle.aux_losses()
    for key in ("spectral", "balance", "z"):
        torch.testing.assert_close(aux[key], (per_layer[0][key] + per_layer[1][key]) / 2)
    assert handle.aux_losses()["total"] == 0


def test_eta_setter_keeps_the_exact_fraction():
    layer, _ = fused_and_reference_layers(eta=0.9)
    assert layer._eta.tolist() == [1, 10]
    layer.eta = 0.99
    assert layer._eta.tolist() == [1, 100] and layer.eta == 0.99
    layer.to(torch.bfloat16)
    assert layer._eta.dtype == torch.long  # a dtype cast leaves eta exact


def test_kept_union_lists_the_vectors_some_row_keeps():
    mask = torch.zeros(2, 3, 8, dtype=torch.bool)
    mask[0, 1, [5, 2]] = True
    mask[1, 2, [2, 7]] = True
    assert kept_union(mask).tolist() == [2, 5, 7]
    assert kept_union(torch.zeros(4, 8, dtype=torch.bool)).tolist() == []
