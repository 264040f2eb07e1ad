"""The LoRA-SP layer (Select-Prune, arXiv 2603.07404, Sec. IV).

s(x) = g(W2 phi(W1 x + b1) + b2) >= 0          router scores over the r-vector bank
k*(x) = smallest k with E(k) >= eta             E(k): cumulative energy of sorted s^2
y = W0 x + scale * B((m(x) * s(x)) * (A x))     m: the top-k* mask (hard, no straight-through)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import LoraSPConfig
from .layer import AdapterLinear, kaiming_uniform_
from .lora_sp_fused import LOG1P_LSE_RANGE, eta_fraction, fused_delta, gathered_delta, router_scores

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}
#: the auxiliary terms a LoRA-SP forward records, in this order
AUX_TERMS = ("spectral", "balance", "z")


@dataclass
class EnergySelection:
    k: torch.Tensor  # [...] long: vectors kept per row
    mask: torch.Tensor  # [..., r] bool: the kept vectors, in bank order
    keep_ascending: torch.Tensor  # [..., r] bool: the same, in ascending-score order
    order_ascending: torch.Tensor  # [..., r] long: bank indices sorted by ascending score

    @property
    def order(self) -> torch.Tensor:
        """Bank indices by descending score: the first k of a row are its kept vectors."""
        return self.order_ascending.flip(-1)


def _select(scores: torch.Tensor, eta_frac: torch.Tensor, k_rule: str):
    """(k, mask, keep_ascending, order_ascending); see `energy_select`. Tuple-valued so that
    torch.compile traces it without a dataclass. `eta_frac`: `eta_fraction(eta)` as a tensor."""
    energy = scores.detach().double().square()  # squares of float32 values are exact in float64
    # a stable descending sort puts tied scores in bank order, so ties keep the lowest indices
    descending, order = energy.sort(dim=-1, descending=True, stable=True)
    ascending, order = descending.flip(-1), order.flip(-1)
    # prefix[j]: the energy of the j+1 smallest scores, summed from the smallest up so that
    # tiny tails are not lost to rounding. Dropping the m smallest leaves E >= eta iff
    # prefix[m-1] <= (1 - eta) * total, tested as prefix * den <= (den - num) * total for
    # eta = num / den; prefix is non-decreasing, so the most we may drop is how many
    # prefixes pass, and k* = r - m. At eta = 1 exactly the zero scores drop; an all-zero
    # row drops everything (k* = 0).
    prefix = ascending.cumsum(dim=-1)
    allow, den = eta_frac.double().unbind()
    dropped = (prefix * den <= allow * prefix[..., -1:]).sum(dim=-1)
    r = energy.shape[-1]
    if k_rule == "one_fewer":
        dropped = (dropped + 1).clamp(max=r)
    elif k_rule != "smallest":
        raise ValueError(f"k_rule must be smallest|one_fewer, got {k_rule!r}")
    keep_ascending = torch.arange(r, device=energy.device) >= dropped.unsqueeze(-1)
    mask = torch.zeros_like(keep_ascending).scatter(-1, order, keep_ascending)
    return r - dropped, mask, keep_ascending, order


def eta_tensor(eta: float, device=None) -> torch.Tensor:
    """eta as the int64 pair `eta_fraction` gives (int: a model's .to(dtype) leaves it alone)."""
    return torch.tensor(eta_fraction(eta), dtype=torch.long, device=device)


def energy_select(scores: torch.Tensor, eta: float, k_rule: str = "smallest") -> EnergySelection:
    """The energy rule on the last dim, computed in float32 whatever the input dtype.

    k* is the smallest k whose top-k squared scores hold at least eta of the total
    ("one_fewer" keeps k* - 1, as the authors' code does). Rows of all-zero scores get
    k* = 0. Tied scores keep the lowest bank indices, so exactly k* vectors are kept. The
    comparison is exact for eta as the decimal it is written as (see `eta_fraction`).
    This is the reference; the layer trains with `lora_sp_fused.threshold_select`.
    """
    if not isinstance(eta, torch.Tensor):
        eta = eta_tensor(eta, scores.device)
    return EnergySelection(*_select(scores, eta, k_rule))


def spectral_loss(scores: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """mean over rows of 1 - E(k*): the energy outside the kept set (0 for all-zero rows).
    `gate` is the scores with the dropped ones zeroed (scores * mask)."""
    total = scores.float().square().sum(dim=-1)
    kept = gate.float().square().sum(dim=-1)
    outside = torch.where(total > 0, 1.0 - kept / total.clamp_min(torch.finfo(torch.float32).tiny), 0.0)
    return outside.mean()


def balance_loss(logits: torch.Tensor, dispatch: torch.Tensor) -> torch.Tensor:
    """Switch Transformer load balance, n * sum_i f_i P_i: P = mean softmax(logits) over rows,
    f = each slot's share of all dispatches (rows may dispatch to several slots). 1 when uniform."""
    n = logits.shape[-1]
    probs = logits.float().reshape(-1, n).softmax(dim=-1).mean(dim=0)
    dispatch = dispatch.detach().float().reshape(-1, n).sum(dim=0)
    share = dispatch / dispatch.sum().clamp_min(1.0)
    return n * (share * probs).sum()


def z_loss(logits: torch.Tensor, form: str = "square") -> torch.Tensor:
    """ST-MoE router z-loss: mean(logsumexp(logits)^2); "log1p": the authors' code's
    mean(log1p(lse)), lse clamped to LOG1P_LSE_RANGE."""
    lse = logits.float().logsumexp(dim=-1)
    if form == "square":
        return lse.square().mean()
    if form == "log1p":
        return torch.log1p(lse.clamp(*LOG1P_LSE_RANGE)).mean()
    raise ValueError(f"z_loss_form must be square|log1p, got {form!r}")


class Router(nn.Module):
    """Two-layer MLP (or one linear) from the layer input to r pre-activation logits."""

    def __init__(self, d_in: int, r: int, hidden: int, depth: int, activation: str) -> None:
        super().__init__()
        if depth == 2:
            self.net = nn.Sequential(
                nn.Linear(d_in, hidden), _ACTIVATIONS[activation](), nn.Linear(hidden, r)
            )
        elif depth == 1:
            self.net = nn.Sequential(nn.Linear(d_in, r))
        else:
            raise ValueError(f"router_depth must be 1 or 2, got {depth}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """(W1, b1, W2, b2) or (W, b): what `router_logits` needs, so that a compiled forward
        sees tensors, not one module per layer (a module argument recompiles per layer)."""
        return tuple(
            t for layer in self.net if isinstance(layer, nn.Linear) for t in (layer.weight, layer.bias)
        )


def router_logits(x: torch.Tensor, tensors: tuple[torch.Tensor, ...], activation: str) -> torch.Tensor:
    if len(tensors) == 2:
        return F.linear(x, *tensors)
    w1, b1, w2, b2 = tensors
    hidden = F.linear(x, w1, b1)
    if activation == "gelu":
        hidden = F.gelu(hidden)
    elif activation == "relu":
        hidden = F.relu(hidden)
    else:
        hidden = F.silu(hidden)
    return F.linear(hidden, w2, b2)


def lora_sp_forward(
    x: torch.Tensor,
    lora_A: torch.Tensor,
    lora_B: torch.Tensor,
    router: tuple[torch.Tensor, ...],
    eta: torch.Tensor,
    config: LoraSPConfig,
    want_aux: bool,
):
    """The dense LoRA-SP update of one layer, as a pure function (torch.compile fuses it).

    Returns (delta, kept-vector counts per ascending-score position summed over rows,
    (spectral, balance, z) or None).
    """
    route_in = x
    if config.routing == "sample" and x.dim() >= 3:
        route_in = x.mean(dim=tuple(range(1, x.dim() - 1)), keepdim=True)
    logits = router_logits(route_in, router, config.router_activation)
    scores = router_scores(logits, config.score_fn)
    _, mask, keep_ascending, _ = _select(scores, eta, config.k_rule)
    gate = scores * mask
    aux = None
    if want_aux:
        aux = (spectral_loss(scores, gate), balance_loss(logits, mask), z_loss(logits, config.z_loss_form))
    if config.scale != 1.0:  # folded into the r-wide gate, not the d_out-wide output
        gate = gate * config.scale
    delta = F.linear(F.linear(x, lora_A) * gate, lora_B)
    kept_counts = keep_ascending.reshape(-1, keep_ascending.shape[-1]).sum(dim=0)
    return delta, kept_counts, aux


# Parameters' shapes are static to torch.compile, so a policy compiles once per adapted
# shape and input rank (the tiny SmolVLA's action expert: 12 compiles): past dynamo's
# default limit of 8, the remaining layers would silently run eager.
COMPILED_SHAPES_LIMIT = 64


@functools.cache
def compiled_lora_sp_forward():
    """One compiled copy shared by all layers (recompiled per input shape, then dynamic)."""
    _allow_compiled_shapes()
    return torch.compile(lora_sp_forward)


@functools.cache
def compiled_fused_delta():
    """The fused path compiled once for all layers (the autograd function is traced whole)."""
    _allow_compiled_shapes()
    return torch.compile(fused_delta)


def _allow_compiled_shapes() -> None:
    """Raises dynamo's per-function compile limit for the whole process (it has no per-function one)."""
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, COMPILED_SHAPES_LIMIT)


class LoraSPLinear(AdapterLinear):
    #: "fused" (`lora_sp_fused`, the default) or "reference" (`lora_sp_forward`, kept to test
    #: against). Sample routing always takes the reference path.
    implementation = "fused"

    def __init__(self, base_layer: nn.Linear, config: LoraSPConfig) -> None:
        super().__init__(base_layer)
        self.config = config
        self.max_rank = config.r
        w = base_layer.weight
        dtype = w.dtype if w.dtype in (torch.float32, torch.float64) else torch.float32
        self.lora_A = nn.Parameter(torch.empty(config.r, self.in_features, device=w.device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, config.r, device=w.device, dtype=dtype))
        kaiming_uniform_(self.lora_A)
        self.router = Router(
            self.in_features, config.r, config.router_hidden, config.router_depth, config.router_activation
        ).to(device=w.device, dtype=dtype)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self._fused_config = (config.router_activation, config.score_fn, config.k_rule, config.z_loss_form)
        # eta lives on the device as the int64 pair (den - num, den): no host transfer per
        # forward, an exact comparison, and a compiled forward does not recompile while the
        # schedule moves it. The float value is kept on the host for reading.
        self.register_buffer("_eta", eta_tensor(config.eta_at(0), w.device), persistent=False)
        self._eta_value = config.eta_at(0)
        self.register_buffer("_inference_eta", eta_tensor(1.0, w.device), persistent=False)
        self.inference_eta = config.eta_inference
        #: eval forward: "dense" (masked, every vector computed), "gathered" (kept vectors
        #: only) or "auto" (gathered when the rows keep at most r/2 vectors between them)
        self.inference_path = "dense"

    @property
    def eta(self) -> float:
        return self._eta_value

    @eta.setter
    def eta(self, value: float) -> None:
        if value != self._eta_value:  # a constant schedule costs nothing per step
            self._eta_value = value
            allow, den = eta_fraction(value)
            self._eta[0].fill_(allow)
            self._eta[1].fill_(den)

    @property
    def inference_eta(self) -> float | None:
        return self._inference_eta_value

    @inference_eta.setter
    def inference_eta(self, value: float | None) -> None:
        self._inference_eta_value = value
        if value is not None:
            allow, den = eta_fraction(value)
            self._inference_eta[0].fill_(allow)
            self._inference_eta[1].fill_(den)

    def adapter_dtype(self) -> torch.dtype:
        return self.lora_A.dtype

    def current_eta(self) -> torch.Tensor:
        """The eta in force, as the int64 pair of `eta_fraction`."""
        if not self.training and self._inference_eta_value is not None:
            return self._inference_eta
        return self._eta

    def scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre-activation logits, non-negative scores); per sample when routing == "sample"."""
        if self.config.routing == "sample" and x.dim() >= 3:
            x = x.mean(dim=tuple(range(1, x.dim() - 1)), keepdim=True)
        logits = self.router(x)
        return logits, router_scores(logits, self.config.score_fn)

    def _fused_args(self) -> tuple:
        """What `fused_delta` and `gathered_delta` take after x: tensors, not modules, so
        that a compiled forward does not recompile per layer."""
        return (
            self.lora_A,
            self.lora_B,
            self.router.tensors(),
            self.current_eta(),
            self.config.scale,
            self._fused_config,
        )

    def adapter_delta(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x)
        if not self.training and self.inference_path != "dense":
            return self._gathered(x, auto=self.inference_path == "auto")
        want_aux = self.training and torch.is_grad_enabled()
        sample = self.config.routing == "sample" and x.dim() >= 3
        if self.implementation == "fused" and not sample:
            forward = compiled_fused_delta() if self.config.compile else fused_delta
            delta, aux, kept_counts = forward(x, *self._fused_args(), want_aux)
        else:
            forward = compiled_lora_sp_forward() if self.config.compile else lora_sp_forward
            delta, kept_counts, aux = forward(
                x, self.lora_A, self.lora_B, self.router.tensors(), self.current_eta(), self.config, want_aux
            )
            if aux is not None:
                aux = torch.stack(aux)
        rows = x.shape[0] if sample else x.shape[:-1].numel()
        self.record_kept_counts(kept_counts, rows)
        if want_aux:
            self.record_aux(AUX_TERMS, aux, rows)
        return delta

    def _gathered(self, x: torch.Tensor, auto: bool = False) -> torch.Tensor:
        """Compute only kept vectors: per sample (bmm on each sample's own set) when routing
        by sample, else on the union of the rows' kept sets (`gathered_delta`). Eval only: it
        reads the kept set on the host. `auto`: the full bank when the union holds more than
        r/2 vectors (the gather then costs more than it saves)."""
        if self.config.routing == "sample" and x.dim() == 3:
            _, scores = self.scores(x)
            selection = energy_select(scores, self.current_eta(), self.config.k_rule)
            self.record_kept_counts(
                selection.keep_ascending.reshape(-1, self.max_rank).sum(dim=0), selection.k.numel()
            )
            gate = scores * selection.mask * self.config.scale
            k_max = int(selection.k.max())
            index = selection.order[:, 0, :k_max]  # [batch, k_max]
            gate_kept = gate[:, 0, :].gather(-1, index).unsqueeze(1)  # zero beyond each k
            a_kept = self.lora_A[index]  # [batch, k_max, d_in]
            b_kept = self.lora_B.t()[index]  # [batch, k_max, d_out]
            return torch.bmm(torch.bmm(x, a_kept.transpose(1, 2)) * gate_kept, b_kept)
        delta, kept_counts = gathered_delta(x, *self._fused_args(), auto)
        self.record_kept_counts(kept_counts, x.shape[:-1].numel())
        return delta
