"""The VLA-GSE layer (Generalized and Specialized Experts, arXiv 2605.06175).

W = U S V^T. The top r singular triplets are cut into `num_experts` disjoint blocks of
r_e = r / num_experts: the first `num_generalists` blocks (largest values) become the
always-on generalists, the next ones the routed specialists. Expert e starts as
s_e B_e A_e = U_e S_e V_e^T / rho, with A_e = sqrt(S_e / (s_e rho)) V_e^T and
B_e = U_e sqrt(S_e / (s_e rho)).

    y = W x + sum_e c_e(x) s_e (B_e A_e - B0_e A0_e) x        (init_offset "subtract")
    y = W' x + sum_e c_e(x) s_e B_e A_e x,  W' = W - sum_e s_e B0_e A0_e   ("fold", authors' code)

c_e = 1 (or 1/num_generalists) for generalists; for specialists the top-k of a softmax
router (renormalised), 0 elsewhere. In "subtract" the frozen copy's gates are detached: for
the same input and output gradient, A, B and the router get the fold form's gradients, and
the model is the backbone exactly at init (fold is not: only the chosen specialists come back).
Balance loss (authors' code): n_spec * sum_i f_i P_i, f_i = rows routed to i / rows,
P_i = mean router probability of i; equals top_k when routing is uniform.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .config import VlaGseConfig
from .layer import AdapterLinear

SVD_SEED = 42  # svd_lowrank's random start, fixed so that a rebuilt layer is the same layer


def top_singular(
    weight: torch.Tensor, r: int, method: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(U [d_out, r], S [r] descending, Vh [r, d_in]) of `weight`, in float32."""
    w = weight.detach().float()
    if method == "full":
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        return u[:, :r], s[:r], vh[:r]
    with torch.random.fork_rng(devices=[w.device] if w.is_cuda else []):
        torch.manual_seed(SVD_SEED)
        u, s, v = torch.svd_lowrank(w, q=r, niter=2)
    return u, s, v.T


def expert_scales(config: VlaGseConfig, d_in: int, singular: torch.Tensor) -> torch.Tensor:
    """s_e per expert; gradient-balanced specialists get base * mean(tr) / tr_i (tr: sum of S)."""
    n, r_e = config.num_experts, config.expert_rank
    scales = torch.full((n,), config.expert_scale(d_in), dtype=torch.float32)
    if config.specialist_scaling == "gradient_balanced":
        traces = singular.float().cpu().view(n, r_e).sum(dim=1)[config.num_generalists :]
        balanced = config.specialist_scaling_base * traces.mean() / traces.clamp_min(1e-12)
        scales[config.num_generalists :] = balanced
    return scales


def route(
    logits: torch.Tensor, top_k: int, renormalize: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(probs, top-k weights, top-k indices) of a softmax router, in float32."""
    probs = logits.float().softmax(dim=-1)
    weights, chosen = probs.topk(top_k, dim=-1)
    if renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return probs, weights, chosen


def balance_loss(probs: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """n * sum_i f_i P_i over rows; f_i counts every top-k pick (so sum_i f_i = k)."""
    n = probs.shape[-1]
    probs = probs.reshape(-1, n)
    f = torch.bincount(chosen.reshape(-1), minlength=n).to(probs.dtype) / probs.shape[0]
    return n * (f * probs.mean(dim=0)).sum()


class VlaGseLinear(AdapterLinear):
    def __init__(self, base_layer: nn.Linear, config: VlaGseConfig) -> None:
        super().__init__(base_layer)
        self.config = config
        r, r_e = config.r, config.expert_rank
        if r > min(self.in_features, self.out_features):
            raise ValueError(
                f"VLA-GSE r={r} exceeds the rank of a {self.out_features}x{self.in_features} layer; "
                "lower r or leave this layer out of the targets"
            )
        self.max_rank = r
        self.active_slots = (config.num_generalists + config.top_k) * r_e
        self.inference_path = "dense"  # eval forward: "dense" (all experts, masked) or "gathered"
        self.generalists_merged = False
        w = base_layer.weight
        dtype = w.dtype if w.dtype in (torch.float32, torch.float64) else torch.float32
        u, s, vh = top_singular(w, r, config.svd)
        scales = expert_scales(config, self.in_features, s).to(w.device)
        root = (s / (scales.repeat_interleave(r_e) * config.rho)).sqrt()
        a0 = (root[:, None] * vh).to(dtype)  # [r, d_in], expert e = rows e*r_e:(e+1)*r_e
        b0 = (u * root[None, :]).to(dtype)  # [d_out, r]
        self.lora_A = nn.Parameter(a0.clone())
        self.lora_B = nn.Parameter(b0.clone())
        self.register_buffer("scales", scales)
        self.router = nn.Linear(
            self.in_features, config.num_specialists, bias=False, device=w.device, dtype=dtype
        )
        if config.init_offset == "subtract":
            self.register_buffer("init_A", a0)
            self.register_buffer("init_B", b0)
        else:  # the authors' fold: every expert's initial product leaves W once
            folded = (b0.float() * scales.repeat_interleave(r_e)) @ a0.float()
            base_layer.weight.data = (w.float() - folded).to(w.dtype)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def adapter_dtype(self) -> torch.dtype:
        return self.lora_A.dtype

    def slot_coefficients(self, weights: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """c_e * s_e per rank slot [..., r]: generalists fixed, specialists their top-k gates."""
        cfg = self.config
        gates = torch.zeros(
            *chosen.shape[:-1], cfg.num_specialists, dtype=weights.dtype, device=weights.device
        )
        gates = gates.scatter(-1, chosen, weights)
        gen_weight = 1.0 if cfg.generalist_weight == "sum" else 1.0 / max(cfg.num_generalists, 1)
        gen = torch.full(
            (*gates.shape[:-1], cfg.num_generalists), gen_weight, dtype=gates.dtype, device=gates.device
        )
        if self.generalists_merged:
            gen = torch.zeros_like(gen)
        coef = torch.cat([gen, gates], dim=-1) * self.scales.to(gates.dtype)
        return coef.repeat_interleave(cfg.expert_rank, dim=-1)

    def _experts(self, x, a, b, coef, weights, chosen) -> torch.Tensor:
        """sum_e c_e s_e B_e A_e x, densely or by gathering each specialist's rows."""
        if not (self.inference_path in ("gathered", "auto") and not self.training):
            return F.linear(F.linear(x, a) * coef.to(x.dtype), b)
        cfg, r_e = self.config, self.config.expert_rank
        g = cfg.num_generalists * r_e
        flat, out_shape = x.reshape(-1, x.shape[-1]), (*x.shape[:-1], self.out_features)
        coef = coef.reshape(-1, coef.shape[-1]).to(x.dtype)
        out = F.linear(F.linear(flat, a[:g]) * coef[:, :g], b[:, :g])
        weights, chosen = weights.reshape(-1, cfg.top_k), chosen.reshape(-1, cfg.top_k)
        for i in range(cfg.num_specialists):
            rows, nth = torch.where(chosen == i)
            if rows.numel():
                lo, hi = g + i * r_e, g + (i + 1) * r_e
                gate = (weights[rows, nth] * self.scales[cfg.num_generalists + i]).to(x.dtype)
                part = F.linear(F.linear(flat[rows], a[lo:hi]), b[:, lo:hi]) * gate[:, None]
                out = out.index_add(0, rows, part)
        return out.reshape(out_shape)

    def adapter_delta(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        probs, weights, chosen = route(self.router(x), cfg.top_k, cfg.renormalize)
        self.record_fixed_rank(self.active_slots, x.shape[:-1].numel())
        if self.training and torch.is_grad_enabled() and cfg.lambda_balance > 0:
            # a layer run several times in one forward: the mean over its calls (weight 1 each)
            self.record_aux(("balance",), balance_loss(probs, chosen).reshape(1), 1)
        coef = self.slot_coefficients(weights, chosen)
        delta = self._experts(self.dropout(x), self.lora_A, self.lora_B, coef, weights, chosen)
        if cfg.init_offset == "subtract":
            frozen = self.slot_coefficients(weights.detach(), chosen)
            delta = delta - self._experts(x, self.init_A, self.init_B, frozen, weights.detach(), chosen)
        return delta

    def take_balance(self) -> torch.Tensor | None:
        """The mean balance loss of this layer's training calls since the last take, consumed."""
        taken = self.take_aux()
        return None if taken is None else taken[1][0] / taken[2]

    @torch.no_grad()
    def merge_generalists(self) -> None:
        """Fold the always-on experts' current update into the frozen weight (valid: it does not
        depend on the input); the routed specialists stay in the forward."""
        if self.generalists_merged or not self.config.num_generalists:
            return
        cfg, g = self.config, self.config.num_generalists * self.config.expert_rank
        gen_weight = 1.0 if cfg.generalist_weight == "sum" else 1.0 / cfg.num_generalists
        slot_scale = self.scales[: cfg.num_generalists].repeat_interleave(cfg.expert_rank) * gen_weight
        update = (self.lora_B[:, :g].float() * slot_scale) @ self.lora_A[:g].float()
        if cfg.init_offset == "subtract":
            update = update - (self.init_B[:, :g].float() * slot_scale) @ self.init_A[:g].float()
        w = self.base_layer.weight
        w.data = (w.float() + update).to(w.dtype)
        self.generalists_merged = True


def aux_losses(
    layers: Iterable[AdapterLinear], config: VlaGseConfig, device: torch.device
) -> dict[str, torch.Tensor]:
    """{"balance": mean over the layers that ran, "total": lambda_balance * balance}."""
    taken = [layer.take_balance() for layer in layers if isinstance(layer, VlaGseLinear)]
    taken = [value for value in taken if value is not None]
    if not taken:
        zero = torch.zeros((), device=device)
        return {"balance": zero, "total": zero}
    balance = torch.stack(taken).mean()
    return {"balance": balance, "total": config.lambda_balance * balance}
