"""Every strategy on a small plain-torch transformer-like stack: identity at init,
gradients only on adapters, parameter counts by formula, LoRA-SP's knobs and paths."""

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
    parse_targets,
)
from train.adapters.lora_sp import LoraSPLinear, energy_select
from train.adapters.lora_sp_fused import kept_union

D, HIDDEN = 24, 40


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(D, D)
        self.up_proj = nn.Linear(D, HIDDEN, bias=False)
        self.down_proj = nn.Linear(HIDDEN, D)
        self.norm = nn.LayerNorm(D)

    def forward(self, x):
        x = x + self.q_proj(self.norm(x))
        return x + self.down_proj(torch.nn.functional.gelu(self.up_proj(x)))


class Stack(nn.Module):
    def __init__(self, depth=2):
        super().__init__()
        self.layers = nn.ModuleList(Block() for _ in range(depth))
        self.head = nn.Linear(D, 3)

    def forward(self, x):
        for block in self.layers:
            x = block(x)
        return self.head(x)


TARGETS = "re:layers\\.\\d+\\.(q|up|down)_proj$"
# (d_in, d_out) of the targeted layers of one Block
SHAPES = [(D, D), (D, HIDDEN), (HIDDEN, D)]

STRATEGIES = {
    "lora_sp": lambda: LoraSPConfig(r=8, router_hidden=6),
    "lora_sp_sample": lambda: LoraSPConfig(r=8, router_hidden=6, routing="sample"),
    "lora_sp_authors": lambda: LoraSPConfig(r=8, router_depth=1, score_fn="none", k_rule="one_fewer"),
    "lora_moe_top1": lambda: LoraMoEConfig(r=8, num_experts=4),
    "lora_moe_weighted": lambda: LoraMoEConfig(r=8, num_experts=2, routing="weighted"),
    "vla_gse": lambda: VlaGseConfig(r=8, num_experts=4),
    "lora": lambda: LoraConfig(r=4, lora_alpha=8),
    "adalora": lambda: AdaLoraConfig(init_r=6, target_r=3, total_step=20, tinit=0, tfinal=5),
    "full": lambda: FullFinetuneConfig(),
}


def build(seed=0):
    torch.manual_seed(seed)
    return Stack()


def inputs(seed=1):
    return torch.randn(3, 7, D, generator=torch.Generator().manual_seed(seed))


def train_step(handle, model, x, step=1, lr=0.05):
    optimizer = torch.optim.SGD(handle.trainable_parameters(), lr=lr)
    loss = model(x).square().mean() + handle.aux_losses()["total"]
    loss.backward()
    optimizer.step()
    handle.set_step(step)
    optimizer.zero_grad()
    return loss


@pytest.mark.parametrize("name", STRATEGIES)
def test_identity_at_init(name):
    model, x = build(), inputs()
    before = model(x)
    handle = apply_adapters(model, STRATEGIES[name](), TARGETS)
    assert torch.equal(model(x), before)
    model.eval()
    assert torch.equal(model(x), before)
    assert len(handle.groups) == 6


@pytest.mark.parametrize("name", [n for n in STRATEGIES if n != "full"])
def test_gradients_reach_adapter_and_router_parameters_only(name):
    model, x = build(), inputs()
    handle = apply_adapters(model, STRATEGIES[name](), TARGETS)
    train_step(handle, model, x)  # B leaves zero, so A and the router get gradient next
    (model(x).square().mean() + handle.aux_losses()["total"]).backward()
    for param_name, param in model.named_parameters():
        is_adapter = "lora_" in param_name or ".router." in param_name
        if not is_adapter:
            assert not param.requires_grad and param.grad is None, param_name
        elif param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() > 0, param_name


def test_full_finetune_trains_everything_or_only_targets():
    model = build()
    handle = apply_adapters(model, FullFinetuneConfig(), TARGETS)
    assert handle.parameter_counts().trainable == sum(p.numel() for p in model.parameters())
    model = build()
    handle = apply_adapters(model, FullFinetuneConfig(scope="targets"), TARGETS)
    per_block = sum(d_in * d_out for d_in, d_out in SHAPES) + D + D  # q and down have biases
    assert handle.parameter_counts().trainable == 2 * per_block
    assert not model.head.weight.requires_grad and not model.layers[0].norm.weight.requires_grad


def count_formula(name: str) -> int:
    per_block = 0
    for d_in, d_out in SHAPES:
        if name == "lora_sp":  # bank A, B and the router d_in -> h -> r with biases
            r, h = 8, 6
            per_block += r * (d_in + d_out) + d_in * h + h + h * r + r
        elif name == "lora_moe_top1":  # 4 experts of rank 2 and a linear router with bias
            per_block += 8 * (d_in + d_out) + d_in * 4 + 4
        elif name == "vla_gse":  # 4 experts of rank 2 and a bias-free router to the 3 specialists
            per_block += 8 * (d_in + d_out) + d_in * 3
        elif name == "lora":
            per_block += 4 * (d_in + d_out)
        elif name == "adalora":  # P, Q and the diagonal E
            per_block += 6 * (d_in + d_out) + 6
    return 2 * per_block


@pytest.mark.parametrize("name", ["lora_sp", "lora_moe_top1", "vla_gse", "lora", "adalora"])
def test_trainable_counts_match_formulas(name):
    model = build()
    base_total = sum(p.numel() for p in model.parameters())
    counts = apply_adapters(model, STRATEGIES[name](), TARGETS).parameter_counts()
    assert counts.trainable == count_formula(name)
    extra = 2 * 3 if name == "adalora" else 0  # AdaLoRA: a frozen scalar `ranknum` per module
    assert counts.total == base_total + counts.trainable + extra
    assert counts.percent == pytest.approx(100 * counts.trainable / counts.total)


def test_aux_losses_are_reported_separately_and_weighted():
    model, x = build(), inputs()
    config = LoraSPConfig(r=8, router_hidden=6, lambda_spec=0.5, lambda_router=0.25, z_weight=2.0)
    handle = apply_adapters(model, config, TARGETS)
    model(x)
    aux = handle.aux_losses()
    assert set(aux) == {"spectral", "balance", "z", "total"}
    expected = 0.5 * aux["spectral"] + 0.25 * (aux["balance"] + 2.0 * aux["z"])
    assert torch.allclose(aux["total"], expected)
    assert aux["spectral"] > 0 and aux["balance"] > 0 and aux["z"] > 0
    # consumed on read; an eval forward records none
    model.eval()
    model(x)
    assert handle.aux_losses()["total"] == 0


def test_active_rank_per_module_and_group():
    model, x = build(), inputs()
    targets = parse_targets("re:q_proj$")
    targets = type(targets)({"attn": r"q_proj$", "mlp": r"(up|down)_proj$"})
    handle = apply_adapters(model, LoraSPConfig(r=8, router_hidden=6, eta=0.6), targets)
    model(x)
    stats = handle.active_rank(reset=True)
    assert set(stats.per_group) == {"attn", "mlp"}
    assert len(stats.per_module) == 6
    for group, hist in stats.histogram.items():
        rows_per_module = 3 * 7
        modules = 2 if group == "attn" else 4
        assert sum(hist) == rows_per_module * modules
    # the per-module mean equals the mean k of the rule applied to that layer's own scores
    layer = model.layers[0].q_proj
    _, scores = layer.scores(model.layers[0].norm(x))
    assert stats.per_module["layers.0.q_proj"] == pytest.approx(
        energy_select(scores, 0.6).k.float().mean().item()
    )
    assert 1 <= stats.overall <= 8
    assert handle.active_rank().per_module == {}  # reset

    # Several processes: every histogram goes through one reduction (a sum over ranks; here a
    # second rank that saw other rows, simulated by adding counts of one more row at rank 8).
    model(x)
    calls = []

    def reduce(counts):
        calls.append(counts.shape)
        extra = torch.zeros_like(counts)
        extra[8::9] = 1  # each module's histogram has ranks 0..8
        return counts + extra

    reduced = handle.active_rank(reset=True, reduce=reduce)
    assert len(calls) == 1 and calls[0] == (6 * 9,)
    for group, hist in reduced.histogram.items():
        modules = 2 if group == "attn" else 4
        assert sum(hist) == (3 * 7 + 1) * modules and hist == [
            a + (modules if r == 8 else 0) for r, a in enumerate(stats.histogram[group])
        ]


def test_eta_schedule_and_inference_eta():
    model, x = build(), inputs()
    config = LoraSPConfig(r=8, eta=0.5, eta_schedule="linear", eta_warmup_steps=10, eta_inference=0.95)
    handle = apply_adapters(model, config, TARGETS)
    layers = list(handle.modules.values())
    assert all(layer.eta == 1.0 for layer in layers)
    handle.set_step(5)
    assert all(layer.eta == pytest.approx(0.75) for layer in layers)
    handle.set_step(10)
    assert all(layer.eta == 0.5 for layer in layers)
    model(x)
    train_rank = handle.active_rank(reset=True).overall
    model.eval()
    model(x)
    assert handle.active_rank(reset=True).overall > train_rank  # 0.95 keeps more than 0.5
    handle.set_inference_eta(None)
    model(x)
    assert handle.active_rank(reset=True).overall == pytest.approx(train_rank)


def test_sample_routing_gives_one_rank_per_sample():
    model, x = build(), inputs()
    handle = apply_adapters(model, LoraSPConfig(r=8, routing="sample"), TARGETS)
    model(x)
    hist = handle.active_rank().histogram["custom"]
    assert sum(hist) == 3 * 6  # 3 samples x 6 layers, not 3 x 7 tokens x 6


def test_all_zero_scores_add_nothing():
    layer = LoraSPLinear(nn.Linear(D, D), LoraSPConfig(r=8, score_fn="relu"))
    nn.init.normal_(layer.lora_B)
    with torch.no_grad():
        layer.router.net[-1].bias.fill_(-1e4)  # relu scores all zero
    x = inputs()
    assert torch.equal(layer(x), layer.base_layer(x))
    assert layer.rank_histogram()[0] == 3 * 7


@pytest.mark.parametrize("score_fn", ["softplus", "sigmoid"])
def test_sigmoid_scores_keep_the_update_within_what_b_and_a_give(score_fn):
    """|delta| <= |B| |A x| per token when every score is below 1; softplus scores grow with
    the input, so its update can outgrow LoRA's (Run 25: up to 598x the frozen output)."""
    torch.manual_seed(0)
    layer = LoraSPLinear(nn.Linear(D, D), LoraSPConfig(r=8, eta=1.0, score_fn=score_fn))
    with torch.no_grad():
        nn.init.normal_(layer.lora_B)
        for parameter in layer.router.parameters():
            nn.init.normal_(parameter)
        x = 30 * inputs()
        update = (layer(x) - layer.base_layer(x)).norm(dim=-1)
        bound = torch.linalg.matrix_norm(layer.lora_B, ord=2) * (x @ layer.lora_A.T).norm(dim=-1)
    assert bool((update <= bound * (1 + 1e-5)).all()) == (score_fn == "sigmoid")


def test_an_unknown_score_function_is_refused_at_construction():
    with pytest.raises(ValueError, match="score_fn must be softplus"):
        LoraSPConfig(score_fn="tanh")


@pytest.mark.parametrize("routing", ["token", "sample"])
@pytest.mark.parametrize("eta", [0.5, 0.9, 1.0])
def test_gathered_equals_dense(routing, eta):
    model, x = build(), inputs()
    handle = apply_adapters(model, LoraSPConfig(r=16, eta=eta, routing=routing), TARGETS)
    for layer in handle.modules.values():
        nn.init.normal_(layer.lora_B, std=0.2)
    model.eval()
    with torch.no_grad():
        dense = model(x)
        handle.set_inference_path("gathered")
        gathered = model(x)
        handle.set_inference_path("auto")
        auto = model(x)
    assert not torch.equal(dense, model.head(x) * 0)  # the adapters do contribute
    torch.testing.assert_close(gathered, dense, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(auto, dense, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("score_fn", ["softplus", "none"])
def test_gathered_over_a_shared_kept_set_equals_dense(score_fn):
    """A trained-like router (the same few vectors ahead in every row): the gathered path
    multiplies by the kept union alone, a strict subset of the bank, and gives the dense
    numbers and the same active-rank histogram."""
    r = 16
    model, x = build(), inputs()
    handle = apply_adapters(model, LoraSPConfig(r=r, eta=0.9, score_fn=score_fn), TARGETS)
    for layer in handle.modules.values():
        nn.init.normal_(layer.lora_B, std=0.2)
        last = layer.router.net[-1]
        with torch.no_grad():
            last.weight.mul_(0.01)  # a small per-token term: k* still varies between rows
            last.bias.copy_(torch.linspace(3.0, -12.0, r)[torch.randperm(r)])
    model.eval()
    with torch.no_grad():
        for layer in handle.modules.values():  # the precondition: each layer's rows keep <= r/2
            seen = []
            hook = layer.register_forward_pre_hook(lambda _, args, seen=seen: seen.append(args[0]))
            model(x)
            hook.remove()
            _, scores = layer.scores(seen[0])
            assert 0 < kept_union(energy_select(scores, 0.9).mask).numel() <= r // 2
        handle.active_rank(reset=True)
        dense = model(x)
        dense_ranks = handle.active_rank(reset=True).histogram
        handle.set_inference_path("gathered")
        gathered = model(x)
        gathered_ranks = handle.active_rank(reset=True).histogram
        handle.set_inference_path("auto")
        auto = model(x)
    assert not torch.equal(dense, model.head(x) * 0)
    torch.testing.assert_close(gathered, dense, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(auto, dense, rtol=1e-5, atol=1e-5)
    assert gathered_ranks == dense_ranks


def test_adapter_layers_keep_the_base_layer_interface():
    model = build()
    handle = apply_adapters(model, LoraSPConfig(r=4), TARGETS)
    wrapped = handle.modules["layers.0.q_proj"]
    assert wrapped.weight is wrapped.base_layer.weight and wrapped.in_features == D
    with pytest.raises(ValueError, match="already has an adapter"):
        apply_adapters(model, LoraSPConfig(r=4), TARGETS)
    with pytest.raises(ValueError, match="match no nn.Linear"):
        apply_adapters(build(), LoraSPConfig(r=4), "re:nothing_here")
    with pytest.raises(ValueError, match="cannot be merged"):
        handle.merge()


@pytest.mark.slow
def test_compiled_forward_matches_eager_without_recompiling_per_layer():
    """compile=True: the same outputs, aux losses, gradients and ranks as eager, and one
    compiled graph for all layers of a shape (a per-layer recompile would be far too slow)."""
    import torch._dynamo.utils as dynamo_utils

    eager_model, compiled_model, x = build(), build(), inputs()
    config = dict(r=8, router_hidden=6, eta=0.7, eta_schedule="linear", eta_warmup_steps=2)
    eager = apply_adapters(eager_model, LoraSPConfig(**config), TARGETS)
    compiled = apply_adapters(compiled_model, LoraSPConfig(**config, compile=True), TARGETS)
    for layer in eager.modules.values():
        nn.init.normal_(layer.lora_B, std=0.2)
    compiled_model.load_state_dict(eager_model.state_dict())
    dynamo_utils.counters.clear()
    for step in range(3):
        eager.set_step(step)
        compiled.set_step(step)
        losses = []
        for model, handle in ((eager_model, eager), (compiled_model, compiled)):
            out = model(x)
            aux = handle.aux_losses()
            (out.square().mean() + aux["total"]).backward()
            losses.append((out, aux))
        torch.testing.assert_close(losses[1][0], losses[0][0], rtol=1e-5, atol=1e-5)
        for key in ("spectral", "balance", "z", "total"):
            torch.testing.assert_close(losses[1][1][key], losses[0][1][key], rtol=1e-5, atol=1e-6)
    for (name, p_eager), p_compiled in zip(
        eager_model.named_parameters(), compiled_model.parameters(), strict=True
    ):
        if p_eager.grad is not None:
            torch.testing.assert_close(p_compiled.grad, p_eager.grad, rtol=1e-4, atol=1e-5, msg=name)
    assert eager.active_rank().per_module == compiled.active_rank().per_module
    assert dynamo_utils.counters["stats"]["unique_graphs"] <= 6  # 3 layer shapes (+ a dynamic retrace)


@pytest.mark.slow
def test_compiled_forward_covers_more_layer_shapes_than_dynamos_default_limit():
    """A policy adapts a dozen weight shapes; dynamo's default of 8 compiles per function would
    leave the layers past the eighth shape running eager, silently."""
    import torch._dynamo.utils as dynamo_utils

    widths = range(4, 14)  # 10 distinct weight shapes, one layer each
    model = nn.Sequential(*[nn.Linear(w, w + 1) for w in widths])
    model.forward = lambda x: [layer(x[..., : layer.in_features]) for layer in model]
    handle = apply_adapters(model, LoraSPConfig(r=4, router_hidden=3, compile=True), "re:^[0-9]+$")
    assert len(handle.modules) == len(widths)
    dynamo_utils.counters.clear()
    outputs = model(torch.randn(2, 5, max(widths)))
    sum(out.square().mean() for out in outputs).backward()
    assert dynamo_utils.counters["stats"]["unique_graphs"] >= len(widths)


@pytest.mark.parametrize("family", ["mini", "small"])
def test_an_in_house_lora_sp_is_the_share_of_its_lora_r128_that_smolvlas_is(family):
    """The in-house presets scale the router's width with the rank: left at 64, mini's router
    outweighed its r=32 bank and LoRA-SP trained 2.1x LoRA r=128's parameters (SmolVLA's: 1.3x)."""
    from train.loop import adapter_config
    from train.presets import IN_HOUSE_WIDTHS, PAPER_ROUTER_HIDDEN, PAPER_WIDTH, get_preset

    assert PAPER_ROUTER_HIDDEN == LoraSPConfig().router_hidden

    def lora_sp_over_lora(prefix: str, width: int) -> float:
        trainable = {}
        for row in ("lora_sp", "lora128"):
            layer = nn.Sequential(nn.Linear(width, width))
            handle = apply_adapters(layer, adapter_config(get_preset(f"{prefix}-{row}")), "re:^0$")
            trainable[row] = handle.parameter_counts().trainable
        return trainable["lora_sp"] / trainable["lora128"]

    paper = lora_sp_over_lora("smolvla", PAPER_WIDTH)
    assert 1.2 < paper < 1.35
    assert lora_sp_over_lora(family, IN_HOUSE_WIDTHS[family]) == pytest.approx(paper, rel=0.05)
