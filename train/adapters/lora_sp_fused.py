"""The fast LoRA-SP update: threshold selection and one custom autograd function.

Same numbers as the reference path in `lora_sp.py` (tests hold them equal, ties included),
built for speed and memory:

- selection sorts the squared scores as values only (no index tensor, no scatter), reads
  the number of dropped vectors from their prefix sums and keeps the scores above the
  per-row threshold; ties at the threshold keep the lowest bank indices, so exactly k*
  vectors are kept, as in the reference;
- the energy comparison runs in float64 against eta as the decimal it is written as
  (`eta_fraction`), so rows exactly at the boundary (E(k) = 0.99) keep k, not k + 1;
- nothing reads a tensor value on the host: a training step never synchronises;
- backward saves x, A x and the r-wide kept mask only; the router's hidden layer and
  logits are recomputed, and the auxiliary losses' gradients are written out by hand.
"""

from __future__ import annotations

import contextlib
import math
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

#: eta's decimal is read with at most this denominator (0.99 -> 99/100; a schedule's
#: 0.95499999999 -> the nearest fraction, 1e-12 away)
_ETA_DENOMINATOR = 10**6


def eta_fraction(eta: float) -> tuple[int, int]:
    """(den - num, den) for eta = num / den read as the decimal it is written as: a row drops
    its m smallest squared scores iff their sum * den <= (den - num) * total. Both sides are
    exact in float64 whenever the sums are (small integers, the boundary cases)."""
    frac = Fraction(repr(float(eta))).limit_denominator(_ETA_DENOMINATOR)
    return frac.denominator - frac.numerator, frac.denominator


def threshold_select(scores: torch.Tensor, eta_frac: torch.Tensor, k_rule: str):
    """(mask [..., r] bool in bank order, dropped [..., 1] = r - k*) by the energy rule. The
    selection carries no gradient: on CPU in eager mode it runs in NumPy (its SIMD sort is
    >10x faster than torch's at r = 128, and a small array op costs ~1 us, not ~8 us);
    compiled code, GPUs and meta tensors take the torch form. Both give the same result."""
    if k_rule not in ("smallest", "one_fewer"):
        raise ValueError(f"k_rule must be smallest|one_fewer, got {k_rule!r}")
    if scores.device.type == "cpu" and not torch.compiler.is_compiling():
        return threshold_select_numpy(scores, eta_frac, k_rule)
    return threshold_select_torch(scores, eta_frac, k_rule)


def threshold_select_torch(scores: torch.Tensor, eta_frac: torch.Tensor, k_rule: str):
    r = scores.shape[-1]
    energy = scores.detach().double().square()
    ascending = energy.sort(dim=-1).values  # values only: no index tensor, no scatter
    prefix = ascending.cumsum(dim=-1)  # from the smallest up: tiny tails are not rounded away
    allow, den = eta_frac.unbind()  # int64 scalars: the products promote to float64
    dropped = (prefix * den <= allow * prefix[..., -1:]).sum(dim=-1, keepdim=True)
    if k_rule == "one_fewer":
        dropped = (dropped + 1).clamp(max=r)
    positions = torch.arange(r, device=scores.device)
    # tau: the smallest kept energy (inf when nothing is kept: an all-zero row)
    tau = torch.where(positions < dropped, math.inf, ascending).amin(dim=-1, keepdim=True)
    above = energy > tau
    tie = energy == tau
    need = (r - dropped) - above.sum(dim=-1, keepdim=True)  # ties to keep, lowest index first
    mask = above | (tie & (tie.cumsum(dim=-1, dtype=torch.int32) <= need))
    return mask, dropped


def threshold_select_numpy(scores: torch.Tensor, eta_frac: torch.Tensor, k_rule: str):
    """`threshold_select_torch` in NumPy (CPU tensors only). Host code may branch on values:
    the tie rule's running count runs only on rows whose ties at tau exceed what they keep."""
    r = scores.shape[-1]
    energy = scores.detach().numpy().astype(np.float64)
    energy *= energy
    ascending = np.sort(energy, axis=-1)
    prefix = np.cumsum(ascending, axis=-1)
    allow, den = eta_frac.numpy()
    dropped = np.count_nonzero(prefix * den <= allow * prefix[..., -1:], axis=-1)[..., None]
    if k_rule == "one_fewer":
        dropped = np.minimum(dropped + 1, r)
    tau = np.take_along_axis(ascending, np.minimum(dropped, r - 1), axis=-1)
    tau[dropped == r] = np.inf  # nothing kept: an all-zero row
    mask = energy >= tau
    excess = np.count_nonzero(mask, axis=-1)[..., None] - (r - dropped)  # ties beyond k*
    rows = np.nonzero(excess[..., 0] > 0)
    if rows[0].size:
        tie = energy[rows] == tau[rows]
        above = energy[rows] > tau[rows]
        need = (r - dropped[rows]) - np.count_nonzero(above, axis=-1)[..., None]
        mask[rows] = above | (tie & (np.cumsum(tie, axis=-1) <= need))
    return torch.from_numpy(mask), torch.from_numpy(dropped.astype(np.int64))


def kept_counts_of(dropped: torch.Tensor, r: int) -> torch.Tensor:
    """Rows that kept the vector at each ascending-score position (position p is kept iff
    p >= r - k), summed over rows: what `AdapterLinear.record_kept_counts` takes."""
    if dropped.device.type == "cpu" and not torch.compiler.is_compiling():
        return torch.from_numpy(np.bincount(dropped.numpy().ravel(), minlength=r + 1)[:r].cumsum())
    return (torch.arange(r, device=dropped.device) >= dropped.reshape(-1, 1)).sum(dim=0)


def _activation(pre: torch.Tensor, name: str) -> torch.Tensor:
    return {"gelu": F.gelu, "relu": F.relu, "silu": F.silu}[name](pre)


def _activation_grad(grad: torch.Tensor, pre: torch.Tensor, name: str) -> torch.Tensor:
    if name == "gelu":
        return torch.ops.aten.gelu_backward(grad, pre)
    if name == "silu":
        return torch.ops.aten.silu_backward(grad, pre)
    return grad * (pre > 0)


def _score(logits: torch.Tensor, score_fn: str) -> torch.Tensor:
    if score_fn == "softplus":
        return F.softplus(logits)
    if score_fn == "relu":
        return F.relu(logits)
    return logits


def _score_grad(logits: torch.Tensor, score_fn: str) -> torch.Tensor | float:
    if score_fn == "softplus":
        return torch.sigmoid(logits)
    if score_fn == "relu":
        return (logits > 0).to(logits.dtype)
    return 1.0


def _router(x, w1, b1, w2, b2, activation):
    """(hidden pre-activation or None, float32 logits)."""
    if w1 is None:
        return None, F.linear(x, w2, b2).float()
    pre = F.linear(x, w1, b1)
    return pre, F.linear(_activation(pre, activation), w2, b2).float()


def _forward(x, lora_a, lora_b, w1, b1, w2, b2, eta_frac, scale, cfg, want_aux):
    """(delta, aux or None, kept counts, (A x, mask, dispatch share or None)) on 2-D x."""
    activation, score_fn, k_rule, z_form = cfg
    _, logits = _router(x, w1, b1, w2, b2, activation)
    scores = _score(logits, score_fn)
    mask, dropped = threshold_select(scores, eta_frac, k_rule)
    gate = scores * mask
    ax = F.linear(x, lora_a)
    delta = F.linear(ax * (gate * scale).to(ax.dtype), lora_b)
    aux = share = None
    if want_aux:
        aux, share = _aux_losses(logits, scores, gate, mask, z_form)
    return delta, aux, kept_counts_of(dropped, mask.shape[-1]), (ax, mask, share)


class LoraSPFunction(torch.autograd.Function):
    """delta = B((scale * m(x) * s(x)) * (A x)) on 2-D x, and (spectral, balance, z) of the call.

    Inputs share one dtype (the caller casts under autocast). Returns (delta, aux [3] float32,
    kept counts [r] long); aux is zeros when `want_aux` is False.
    """

    @staticmethod
    def forward(ctx, x, lora_a, lora_b, w1, b1, w2, b2, eta_frac, scale, cfg, want_aux):
        delta, aux, kept, (ax, mask, share) = _forward(
            x, lora_a, lora_b, w1, b1, w2, b2, eta_frac, scale, cfg, want_aux
        )
        if aux is None:
            aux = torch.zeros(3, device=x.device)
        ctx.save_for_backward(x, ax, mask, lora_a, lora_b, w1, b1, w2, b2, share)
        ctx.config = (scale, cfg, want_aux)
        ctx.mark_non_differentiable(kept)
        return delta, aux, kept

    @staticmethod
    def backward(ctx, grad_delta, grad_aux, _grad_kept):
        x, ax, mask, lora_a, lora_b, w1, b1, w2, b2, share = ctx.saved_tensors
        scale, (activation, score_fn, _, z_form), want_aux = ctx.config
        dtype = x.dtype
        pre, logits = _router(x, w1, b1, w2, b2, activation)  # recomputed, not saved
        scores = _score(logits, score_fn)
        gate = scores * mask
        gate_scaled = (gate * scale).to(dtype)
        grad_delta = grad_delta.to(dtype)
        grad_u = grad_delta @ lora_b  # [N, r]
        grad_b = grad_delta.t() @ (ax * gate_scaled)
        grad_ax = grad_u * gate_scaled
        grad_a = grad_ax.t() @ x
        grad_scores = (grad_u * ax).float() * (mask * scale)
        grad_logits = None
        if want_aux:
            grad_scores_aux, grad_logits = _aux_grads(logits, scores, gate, mask, share, z_form, grad_aux)
            grad_scores = grad_scores + grad_scores_aux
        grad_logits_s = grad_scores * _score_grad(logits, score_fn)
        grad_logits = (grad_logits_s if grad_logits is None else grad_logits_s + grad_logits).to(dtype)
        grad_x = grad_ax @ lora_a
        grad_b2 = grad_logits.sum(dim=0)
        if w1 is None:
            grad_w2 = grad_logits.t() @ x
            grad_w1 = grad_b1 = None
            grad_x = grad_x + grad_logits @ w2
        else:
            grad_w2 = grad_logits.t() @ _activation(pre, activation)
            grad_pre = _activation_grad(grad_logits @ w2, pre, activation)
            grad_w1 = grad_pre.t() @ x
            grad_b1 = grad_pre.sum(dim=0)
            grad_x = grad_x + grad_pre @ w1
        return grad_x, grad_a, grad_b, grad_w1, grad_b1, grad_w2, grad_b2, None, None, None, None


def _aux_losses(logits, scores, gate, mask, z_form):
    """(stack(spectral, balance, z), dispatch share): the same formulas as `lora_sp.py`'s
    `spectral_loss`, `balance_loss` and `z_loss`, on float32 [N, r] inputs."""
    total = scores.square().sum(dim=-1)
    kept = gate.square().sum(dim=-1)
    spectral = torch.where(total > 0, 1.0 - kept / total.clamp_min(torch.finfo(torch.float32).tiny), 0.0)
    dispatch = mask.float().sum(dim=0)
    share = dispatch / dispatch.sum().clamp_min(1.0)
    n = logits.shape[-1]
    balance = n * (share * logits.softmax(dim=-1).mean(dim=0)).sum()
    lse = logits.logsumexp(dim=-1)
    z = lse.square().mean() if z_form == "square" else torch.log1p(lse).mean()
    return torch.stack([spectral.mean(), balance, z]), share


def _aux_grads(logits, scores, gate, mask, share, z_form, grad_aux):
    """(d aux / d scores, d aux / d logits) weighted by the incoming gradient of (spectral,
    balance, z)."""
    rows, n = logits.shape
    g_spec, g_bal, g_z = grad_aux.float().unbind()
    total = scores.square().sum(dim=-1, keepdim=True)
    kept = gate.square().sum(dim=-1, keepdim=True)
    safe = total.clamp_min(torch.finfo(torch.float32).tiny)
    # d(1 - kept/total)/ds_j = 2 s_j (kept/total - m_j) / total
    grad_scores = torch.where(total > 0, 2 * scores * (kept / safe - mask.float()) / safe, 0.0)
    grad_scores = grad_scores * (g_spec / rows)
    probs = logits.softmax(dim=-1)
    # balance n * sum_i share_i mean_rows(p_i): d/dlogit_j = n/rows * p_j (share_j - <p, share>)
    grad_logits = probs * (share - (probs * share).sum(dim=-1, keepdim=True)) * (g_bal * n / rows)
    lse = logits.logsumexp(dim=-1, keepdim=True)
    z_scale = 2 * lse if z_form == "square" else 1.0 / (1.0 + lse)
    grad_logits = grad_logits + probs * z_scale * (g_z / rows)
    return grad_scores, grad_logits


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype in force on this device type, or None (meta has no autocast)."""
    if device_type != "meta" and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def fused_delta(x, lora_a, lora_b, router, eta_frac, scale, cfg, want_aux):
    """LoRA-SP update of any-rank x through `LoraSPFunction` (token routing). Under autocast
    every input is cast to the autocast dtype first (as F.linear would), then the function
    runs with autocast off. Returns (delta, aux [3], kept counts)."""
    device = x.device.type
    autocast = autocast_dtype(device)
    dtype = autocast or lora_a.dtype
    w1, b1, w2, b2 = (None, None, *router) if len(router) == 2 else router
    params = [None if t is None else t.to(dtype) for t in (lora_a, lora_b, w1, b1, w2, b2)]
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1]).to(dtype)
    with torch.autocast(device, enabled=False) if autocast else contextlib.nullcontext():
        if torch.is_grad_enabled():
            delta, aux, kept = LoraSPFunction.apply(flat, *params, eta_frac, scale, cfg, want_aux)
        else:  # inference: no autograd node, no aux
            delta, aux, kept, _ = _forward(flat, *params, eta_frac, scale, cfg, False)
    return delta.reshape(*lead, delta.shape[-1]), aux, kept
