"""The LoRA-SP layer (Select-Prune, arXiv 2603.07404, Sec. IV).

s(x) = g(W2 phi(W1 x + b1) + b2) >= 0          router scores over the r-vector bank
k*(x) = smallest k with E(k) >= eta             E(k): cumulative energy of sorted s^2
y = W0 x + scale * B((m(x) * s(x)) * (A x))     m: the top-k* mask (hard, no straight-through)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import LoraSPConfig
from .layer import AdapterLinear, kaiming_uniform_

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


@dataclass
class EnergySelection:
    k: torch.Tensor  # [...] long: vectors kept per row
    mask: torch.Tensor  # [..., r] bool: the kept vectors, in bank order
    order: torch.Tensor  # [..., r] long: bank indices sorted by descending score


def energy_select(scores: torch.Tensor, eta: float, k_rule: str = "smallest") -> EnergySelection:
    """The energy rule on the last dim, computed in float32 whatever the input dtype.

    k* is the smallest k whose top-k squared scores hold at least eta of the total
    ("one_fewer" keeps k* - 1, as the authors' code does). Rows of all-zero scores get
    k* = 0. Ties are broken by sort order, so exactly k* vectors are kept.
    """
    energy = scores.detach().float().square()
    sorted_energy, order = energy.sort(dim=-1, descending=True)
    # tail[j]: energy left out when keeping the top j (suffix sums, added from the smallest
    # up so that tiny tails are not lost to rounding). E(j) >= eta <=> tail[j] <= (1-eta)*total;
    # tail is non-increasing, so k* = how many j fail. At eta = 1 this keeps exactly the
    # non-zero scores; all-zero rows get k* = 0.
    tail = sorted_energy.flip(-1).cumsum(dim=-1).flip(-1)
    total = tail[..., :1]
    k = (tail > (1.0 - eta) * total).sum(dim=-1)
    if k_rule == "one_fewer":
        k = (k - 1).clamp(min=0)
    elif k_rule != "smallest":
        raise ValueError(f"k_rule must be smallest|one_fewer, got {k_rule!r}")
    positions = torch.arange(energy.shape[-1], device=energy.device)
    keep_sorted = positions < k.unsqueeze(-1)
    mask = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return EnergySelection(k=k, mask=mask, order=order)


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
    """ST-MoE router z-loss: mean(logsumexp(logits)^2); "log1p": mean(log1p(lse)) (authors' code)."""
    lse = logits.float().logsumexp(dim=-1)
    if form == "square":
        return lse.square().mean()
    if form == "log1p":
        return torch.log1p(lse).mean()
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


class LoraSPLinear(AdapterLinear):
    def __init__(self, base_layer: nn.Linear, config: LoraSPConfig) -> None:
        super().__init__(base_layer)
        self.config = config
        self.max_rank = config.r
        self.scale = config.scale
        w = base_layer.weight
        dtype = w.dtype if w.dtype in (torch.float32, torch.float64) else torch.float32
        self.lora_A = nn.Parameter(torch.empty(config.r, self.in_features, device=w.device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, config.r, device=w.device, dtype=dtype))
        kaiming_uniform_(self.lora_A)
        self.router = Router(
            self.in_features, config.r, config.router_hidden, config.router_depth, config.router_activation
        ).to(device=w.device, dtype=dtype)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.eta = config.eta_at(0)
        self.inference_eta = config.eta_inference
        #: "dense" (masked, every vector computed) or "gathered" (kept vectors only); eval only
        self.inference_path = "dense"

    def adapter_dtype(self) -> torch.dtype:
        return self.lora_A.dtype

    def current_eta(self) -> float:
        if not self.training and self.inference_eta is not None:
            return self.inference_eta
        return self.eta

    def scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre-activation logits, non-negative scores); per sample when routing == "sample"."""
        if self.config.routing == "sample" and x.dim() >= 3:
            x = x.mean(dim=tuple(range(1, x.dim() - 1)), keepdim=True)
        logits = self.router(x)
        fn = self.config.score_fn
        if fn == "softplus":
            scores = F.softplus(logits)
        elif fn == "relu":
            scores = F.relu(logits)
        elif fn == "none":
            scores = logits
        else:
            raise ValueError(f"score_fn must be softplus|relu|none, got {fn!r}")
        return logits, scores

    def adapter_delta(self, x: torch.Tensor) -> torch.Tensor:
        logits, scores = self.scores(x)
        selection = energy_select(scores, self.current_eta(), self.config.k_rule)
        self.record_ranks(selection.k)
        gate = scores * selection.mask
        if self.training and torch.is_grad_enabled():
            self.last_aux = {
                "spectral": spectral_loss(scores, gate),
                "balance": balance_loss(logits, selection.mask),
                "z": z_loss(logits, self.config.z_loss_form),
            }
        # scale folded into the r-wide gate: one multiply of r, not d_out, columns per row
        gate = gate * self.scale if self.scale != 1.0 else gate
        x = self.dropout(x)
        if self.inference_path == "gathered" and not self.training:
            return self._gathered(x, gate, selection)
        return F.linear(F.linear(x, self.lora_A) * gate, self.lora_B)

    def _gathered(self, x: torch.Tensor, gate: torch.Tensor, selection: EnergySelection) -> torch.Tensor:
        """Compute only kept vectors: per sample (bmm on each sample's own set) when routing
        by sample, else on the union of the rows' kept sets."""
        if self.config.routing == "sample" and x.dim() == 3:
            k_max = int(selection.k.max())
            index = selection.order[:, 0, :k_max]  # [batch, k_max]
            gate_kept = gate[:, 0, :].gather(-1, index).unsqueeze(1)  # zero beyond each k
            a_kept = self.lora_A[index]  # [batch, k_max, d_in]
            b_kept = self.lora_B.t()[index]  # [batch, k_max, d_out]
            return torch.bmm(torch.bmm(x, a_kept.transpose(1, 2)) * gate_kept, b_kept)
        kept = selection.mask.reshape(-1, self.max_rank).any(dim=0).nonzero().squeeze(1)
        return F.linear(F.linear(x, self.lora_A[kept]) * gate[..., kept], self.lora_B[:, kept])
