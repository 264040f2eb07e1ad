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
- A and the router's first layer read x in one matmul, forward and backward;
- backward saves x, A x, the r-wide kept mask and three numbers per row; the router's
  hidden layer and logits are recomputed, and the auxiliary losses' gradients are written
  out by hand, folded into a few in-place passes over the [tokens, r] scores.
"""

from __future__ import annotations

import contextlib
import math
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

#: the "log1p" z-loss (the authors' code) reads each row's logsumexp clamped to [-1, 10]
#: first; log1p(-1) is -inf, so the floor here stops 0.01 short of it: a row pushed below it
#: adds a finite constant and no gradient, instead of a NaN that ends the run
LOG1P_LSE_RANGE = (-0.99, 10.0)

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
    """`threshold_select_torch` on CPU tensors, the same result: NumPy sorts |s| (the order
    of s^2; float32 squares are exact in float64), torch sums the prefixes (NumPy's row-wise
    cumsum is ~6x slower) and binary-searches each row for k*. Host code may branch on
    values: the tie rule runs only on rows whose ties at the threshold exceed what they keep."""
    r = scores.shape[-1]
    magnitude = np.abs(scores.detach().numpy())
    ascending = np.sort(magnitude, axis=-1)
    energy = ascending.astype(np.float64)
    prefix = torch.from_numpy(np.square(energy, out=energy)).cumsum_(dim=-1)
    allow, den = eta_frac.tolist()
    bound = prefix[..., -1:] * allow
    # prefixes that pass `prefix * den <= allow * total`: a non-decreasing row's count is a search
    dropped = torch.searchsorted(prefix.mul_(den), bound, right=True)
    if k_rule == "one_fewer":
        dropped = (dropped + 1).clamp_(max=r)
    drop = dropped.numpy()
    tau = np.take_along_axis(ascending, np.minimum(drop, r - 1), axis=-1)  # the smallest kept |s|
    tau[drop == r] = np.inf  # nothing kept: an all-zero row
    mask = magnitude >= tau
    # more than k* reach tau only where the largest dropped |s| ties with it
    below = np.take_along_axis(ascending, np.maximum(drop - 1, 0), axis=-1)
    rows = np.nonzero((drop[..., 0] > 0) & (below[..., 0] == tau[..., 0]))
    if rows[0].size:
        tie = magnitude[rows] == tau[rows]
        above = magnitude[rows] > tau[rows]
        need = (r - drop[rows]) - np.count_nonzero(above, axis=-1)[..., None]
        mask[rows] = above | (tie & (np.cumsum(tie, axis=-1) <= need))
    return torch.from_numpy(mask), dropped


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


def router_scores(logits: torch.Tensor, score_fn: str) -> torch.Tensor:
    """s(x) = g(logits), the scores the energy rule ranks and the kept vectors are scaled by."""
    if score_fn == "softplus":
        return F.softplus(logits)
    if score_fn == "relu":
        return F.relu(logits)
    if score_fn == "sigmoid":
        return torch.sigmoid(logits)
    if score_fn == "none":
        return logits
    raise ValueError(f"score_fn must be softplus|relu|sigmoid|none, got {score_fn!r}")


def _score_grad(logits: torch.Tensor, score_fn: str) -> torch.Tensor | float:
    """d router_scores / d logits."""
    if score_fn == "softplus":
        return torch.sigmoid(logits)
    if score_fn == "relu":
        return (logits > 0).to(logits.dtype)
    if score_fn == "sigmoid":
        sigmoid = torch.sigmoid(logits)
        return sigmoid * (1 - sigmoid)
    return 1.0


def _project(x, lora_a, w_in, b_in):
    """(A x, the router's first pre-activation W_in x + b_in): one matmul reads x for both.
    A x is copied out of the joint product, so that saving it does not keep the router's."""
    r = lora_a.shape[0]
    both = F.linear(x, torch.cat([lora_a, w_in]))
    return both[:, :r].contiguous(), both[:, r:] + b_in


def _logits(pre, w2, b2, activation, one_layer):
    """(hidden activation or None, float32 router logits) from the first pre-activation (the
    logits themselves for a one-layer router)."""
    if one_layer:
        return None, pre.float()
    hidden = _activation(pre, activation)
    return hidden, F.linear(hidden, w2, b2).float()


def _forward(x, lora_a, lora_b, w1, b1, w2, b2, eta_frac, scale, cfg, want_aux):
    """(delta, aux or None, kept counts, (A x, mask, per-row and per-vector sums or None)) on 2-D x."""
    activation, score_fn, k_rule, z_form = cfg
    one_layer = w1 is None
    ax, pre = _project(x, lora_a, w2 if one_layer else w1, b2 if one_layer else b1)
    _, logits = _logits(pre, w2, b2, activation, one_layer)
    scores = router_scores(logits, score_fn)
    mask, dropped = threshold_select(scores, eta_frac, k_rule)
    gate = scores * mask
    delta = F.linear(ax * (gate if scale == 1.0 else gate * scale).to(ax.dtype), lora_b)
    aux = sums = None
    if want_aux:
        aux, sums = _aux_losses(logits, scores, gate, mask, z_form)
    return delta, aux, kept_counts_of(dropped, mask.shape[-1]), (ax, mask, sums)


class LoraSPFunction(torch.autograd.Function):
    """delta = B((scale * m(x) * s(x)) * (A x)) on 2-D x, and (spectral, balance, z) of the call.

    Inputs share one dtype (the caller casts under autocast). Returns (delta, aux [3] float32,
    kept counts [r] long); aux is zeros when `want_aux` is False. Backward gets from forward
    x, A x, the kept mask and, for the auxiliary terms, three numbers per row (energy, kept
    energy, logsumexp) and the dispatch share per vector; the router is recomputed.
    """

    @staticmethod
    def forward(ctx, x, lora_a, lora_b, w1, b1, w2, b2, eta_frac, scale, cfg, want_aux):
        delta, aux, kept, (ax, mask, sums) = _forward(
            x, lora_a, lora_b, w1, b1, w2, b2, eta_frac, scale, cfg, want_aux
        )
        if aux is None:
            aux = torch.zeros(3, device=x.device)
        ctx.save_for_backward(x, ax, mask, lora_a, lora_b, w1, b1, w2, b2, *(sums or ()))
        ctx.config = (scale, cfg, want_aux)
        ctx.mark_non_differentiable(kept)
        return delta, aux, kept

    @staticmethod
    def backward(ctx, grad_delta, grad_aux, _grad_kept):
        x, ax, mask, lora_a, lora_b, w1, b1, w2, b2, *sums = ctx.saved_tensors
        scale, (activation, score_fn, _, z_form), want_aux = ctx.config
        dtype, one_layer = x.dtype, w1 is None
        w_in, b_in = (w2, b2) if one_layer else (w1, b1)
        pre = F.linear(x, w_in, b_in)  # the router, recomputed: not saved
        hidden, logits = _logits(pre, w2, b2, activation, one_layer)
        scores = router_scores(logits, score_fn)
        gate = scores * mask
        gate_scaled = (gate if scale == 1.0 else gate * scale).to(dtype)
        grad_delta = grad_delta.to(dtype)
        grad_u = grad_delta @ lora_b  # [N, r]
        grad_b = grad_delta.t() @ (ax * gate_scaled)
        grad_ax = grad_u * gate_scaled
        # d/ds of the update: (grad_u . A x) * scale on the kept vectors
        grad_scores = (grad_u * ax).float()
        if want_aux:
            grad_scores = _spectral_grad_into(grad_scores, scores, mask, scale, sums, grad_aux)
        else:
            grad_scores = grad_scores.mul_(mask if scale == 1.0 else mask * scale)
        grad_logits = grad_scores.mul_(_score_grad(logits, score_fn))
        if want_aux:
            _router_grad_into(grad_logits, logits, sums, z_form, grad_aux)
        grad_logits = grad_logits.to(dtype)
        grad_b2 = grad_logits.sum(dim=0)
        if one_layer:
            grad_pre, grad_w2 = grad_logits, None
        else:
            grad_w2 = grad_logits.t() @ hidden
            grad_pre = _activation_grad(grad_logits @ w2, pre, activation)
        # A and the router's first layer read x together: one matmul each way
        grad_both = torch.cat([grad_ax, grad_pre], dim=1)
        grad_x = grad_both @ torch.cat([lora_a, w_in])
        grad_w = grad_both.t() @ x
        r = lora_a.shape[0]
        grad_a, grad_w_in = grad_w[:r], grad_w[r:]
        if one_layer:
            return grad_x, grad_a, grad_b, None, None, grad_w_in, grad_b2, None, None, None, None
        grad_b1 = grad_pre.sum(dim=0)
        return grad_x, grad_a, grad_b, grad_w_in, grad_b1, grad_w2, grad_b2, None, None, None, None


def _aux_losses(logits, scores, gate, mask, z_form):
    """(stack(spectral, balance, z), (energy, kept energy, logsumexp per row, dispatch share
    per vector)): the same formulas as `lora_sp.py`'s `spectral_loss`, `balance_loss` and
    `z_loss`, on float32 [N, r] inputs."""
    total = scores.square().sum(dim=-1, keepdim=True)
    kept = gate.square().sum(dim=-1, keepdim=True)
    spectral = torch.where(total > 0, 1.0 - kept / total.clamp_min(torch.finfo(torch.float32).tiny), 0.0)
    dispatch = mask.sum(dim=0, dtype=torch.float32)
    share = dispatch / dispatch.sum().clamp_min(1.0)
    probs = logits.softmax(dim=-1)
    n = logits.shape[-1]
    balance = n * (share * probs.mean(dim=0)).sum()
    # logsumexp from the softmax's largest probability (>= 1/n, so the log is safe)
    lse = logits.amax(dim=-1, keepdim=True) - probs.amax(dim=-1, keepdim=True).log()
    z = lse.square().mean() if z_form == "square" else torch.log1p(lse.clamp(*LOG1P_LSE_RANGE)).mean()
    return torch.stack([spectral.mean(), balance, z]), (total, kept, lse, share)


def _spectral_grad_into(grad_scores, scores, mask, scale, sums, grad_aux):
    """grad_scores (the update's d/ds, before the mask) -> masked and scaled, plus the spectral
    term's d/ds: d(1 - kept/total)/ds_j = 2 s_j (kept/total - m_j) / total, per row mean."""
    total, kept, _, _ = sums
    rows = scores.shape[0]
    g_spec = grad_aux[0].float() / rows
    inverse = torch.where(total > 0, 1.0 / total.clamp_min(torch.finfo(torch.float32).tiny), 0.0)
    beta = (2 * g_spec) * inverse  # [N, 1]
    if scale != 1.0:
        grad_scores = grad_scores.mul_(scale)
    grad_scores = grad_scores.addcmul_(scores, beta, value=-1.0).mul_(mask)
    return grad_scores.addcmul_(scores, beta * kept * inverse)


def _router_grad_into(grad_logits, logits, sums, z_form, grad_aux):
    """grad_logits += d(balance, z)/dlogits. Balance n * sum_i share_i mean_rows(p_i):
    n/rows * p_j (share_j - <p, share>); z: p_j * 2 lse / rows (square) or p_j / (1 + lse) / rows
    inside LOG1P_LSE_RANGE, 0 outside (log1p)."""
    _, _, lse, share = sums
    rows, n = logits.shape
    _, g_bal, g_z = grad_aux.float().unbind()
    probs = (logits - lse).exp_()
    c_bal = g_bal * n / rows
    if z_form == "square":
        dz = 2 * lse
    else:  # clamp's gradient: through at the bounds and between them
        low, high = LOG1P_LSE_RANGE
        dz = torch.where((lse >= low) & (lse <= high), 1.0 / (1.0 + lse), 0.0)
    per_row = (g_z / rows) * dz
    per_row = per_row - c_bal * (probs @ share).unsqueeze(-1)
    return grad_logits.addcmul_(probs, per_row + c_bal * share)


def kept_union(mask: torch.Tensor) -> torch.Tensor:
    """Bank indices (long, ascending) of the vectors at least one row keeps. Reads the mask
    on the host: eval only."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy().reshape(-1, mask.shape[-1]).any(axis=0)))
    return mask.reshape(-1, mask.shape[-1]).any(dim=0).nonzero().squeeze(1)


def gathered_delta(x, lora_a, lora_b, router, eta_frac, scale, cfg, auto):
    """LoRA-SP update of any-rank x at inference, computing only the vectors some row keeps.

    Token routing: the rows of a call share one product over the union of their kept sets
    (a row's dropped vectors have gate 0 in it). `auto`: the full bank instead when the union
    holds more than r/2 vectors (the gather then costs more than it saves). The router reads
    x on its own, as it must before A is cut to the union. Returns (delta, kept counts).
    No autograd node, no auxiliary losses; the union is read on the host: eval only."""
    activation, score_fn, k_rule, _ = cfg
    r = lora_a.shape[0]
    w1, b1, w2, b2 = (None, None, *router) if len(router) == 2 else router
    one_layer = w1 is None
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    pre = F.linear(flat, w2 if one_layer else w1, b2 if one_layer else b1)
    _, logits = _logits(pre, w2, b2, activation, one_layer)
    scores = router_scores(logits, score_fn)
    mask, dropped = threshold_select(scores, eta_frac, k_rule)
    gate = scores * mask if scale == 1.0 else scores * (mask * scale)
    kept = kept_union(mask)
    if kept.numel() == r or (auto and 2 * kept.numel() > r):
        delta = F.linear(F.linear(flat, lora_a) * gate.to(flat.dtype), lora_b)
    else:  # index_select: a contiguous copy of the kept rows (advanced indexing is ~3x slower)
        u = F.linear(flat, lora_a.index_select(0, kept)) * gate.index_select(1, kept).to(flat.dtype)
        delta = F.linear(u, lora_b.index_select(1, kept))
    return delta.reshape(*lead, delta.shape[-1]), kept_counts_of(dropped, r)


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
