"""One config per adaptation strategy.

`LoraConfig` and `AdaLoraConfig` are peft's own classes (re-exported); the others are
ours. Every reading the LoRA-SP paper leaves open is a field here, with the paper's
choice as the default and the authors' public-code choice as the alternative.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from peft import AdaLoraConfig, LoraConfig

__all__ = [
    "AdaLoraConfig",
    "AdapterConfig",
    "FullFinetuneConfig",
    "LoraConfig",
    "LoraMoEConfig",
    "LoraSPConfig",
    "VlaGseConfig",
    "config_from_dict",
    "config_to_dict",
    "strategy_name",
]


@dataclass
class LoraSPConfig:
    """LoRA-SP (Select-Prune): y = W0 x + scale * B((m(x) * s(x)) * (A x)).

    r vectors per layer, a router s(x) >= 0, and the energy rule keeping the smallest
    k with E(k) = sum_{i<=k} s_(i)^2 / sum_i s_(i)^2 >= eta.
    """

    r: int = 128
    alpha: float | None = None  # scale = alpha / r; None means alpha = r (scale 1)
    router_hidden: int = 64
    router_depth: Literal[1, 2] = 2  # 2: W2 phi(W1 x + b1) + b2 (paper); 1: one linear (authors' code)
    router_activation: Literal["gelu", "relu", "silu"] = "gelu"
    # "none": raw scores (authors' code); "sigmoid": each score in (0, 1), so that how large the
    # update is rests with B and A, as in LoRA, not with an unbounded router
    score_fn: Literal["softplus", "relu", "sigmoid", "none"] = "softplus"
    k_rule: Literal["smallest", "one_fewer"] = "smallest"  # "one_fewer": authors' code keeps k-1
    routing: Literal["token", "sample"] = "token"  # sample: mean-pooled over the sequence
    eta: float = 0.9
    eta_schedule: Literal["constant", "linear"] = "constant"  # linear: 1.0 -> eta over warm-up
    eta_warmup_steps: int = 0
    eta_inference: float | None = None  # None: the training eta (paper Table IV sweeps it)
    lambda_spec: float = 1e-2
    lambda_router: float = 1e-3  # weight of (balance + z_weight * z)
    z_weight: float = 1.0
    z_loss_form: Literal["square", "log1p"] = "square"  # ST-MoE mean(lse^2) | authors' log1p(lse)
    dropout: float = 0.0
    compile: bool = False  # torch.compile the layer's forward: far fewer kernels (GPU); slow first steps

    @property
    def scale(self) -> float:
        return (self.alpha if self.alpha is not None else self.r) / self.r

    def __post_init__(self) -> None:
        if self.r < 1 or self.router_hidden < 1:
            raise ValueError(
                f"LoraSPConfig: r and router_hidden must be >= 1 (got {self.r}, {self.router_hidden})"
            )
        for name in ("eta", "eta_inference"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value <= 1.0:
                raise ValueError(f"LoraSPConfig.{name} must be in (0, 1], got {value}")
        if self.eta_schedule not in ("constant", "linear"):
            raise ValueError(f"LoraSPConfig.eta_schedule must be constant|linear, got {self.eta_schedule!r}")
        if self.score_fn not in ("softplus", "relu", "sigmoid", "none"):
            raise ValueError(
                f"LoraSPConfig.score_fn must be softplus|relu|sigmoid|none, got {self.score_fn!r}"
            )

    def eta_at(self, step: int) -> float:
        """The training eta at `step`: linear goes from 1.0 down to `eta` over the warm-up."""
        if self.eta_schedule == "constant" or self.eta_warmup_steps <= 0 or step >= self.eta_warmup_steps:
            return self.eta
        frac = max(step, 0) / self.eta_warmup_steps
        return 1.0 + (self.eta - 1.0) * frac


@dataclass
class LoraMoEConfig:
    """N LoRA experts of rank r/N each and a linear router (LoRAMoE, the paper's baseline).

    top1: y = W0 x + scale * p_e* B_e* A_e* x (Switch-style, so the router gets gradient);
    weighted: y = W0 x + scale * sum_e p_e B_e A_e x. p = softmax(router logits).
    """

    r: int = 128
    num_experts: int = 4
    routing: Literal["top1", "weighted"] = "top1"
    alpha: float | None = None  # scale = alpha / (r / num_experts); None: scale 1
    lambda_router: float = 1e-2  # Switch Transformer's balance weight
    z_weight: float = 0.0
    z_loss_form: Literal["square", "log1p"] = "square"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.routing not in ("top1", "weighted"):
            raise ValueError(f"LoraMoEConfig.routing must be top1|weighted, got {self.routing!r}")
        if self.num_experts < 1 or self.r % self.num_experts:
            raise ValueError(
                f"LoraMoEConfig: r={self.r} must be a multiple of num_experts={self.num_experts}"
            )

    @property
    def expert_rank(self) -> int:
        return self.r // self.num_experts

    @property
    def scale(self) -> float:
        return (self.alpha if self.alpha is not None else self.expert_rank) / self.expert_rank


@dataclass
class FullFinetuneConfig:
    """Full fine-tuning. scope "all": every parameter trains; "targets": only the targeted
    linear layers' weights and biases (a partial fine-tune of the chosen groups)."""

    scope: Literal["all", "targets"] = "all"

    def __post_init__(self) -> None:
        if self.scope not in ("all", "targets"):
            raise ValueError(f"FullFinetuneConfig.scope must be all|targets, got {self.scope!r}")


@dataclass(frozen=True)
class VlaGseConfig:
    """VLA-GSE (arXiv 2605.06175): per layer, `num_experts` LoRA experts of rank r/num_experts
    built from W's SVD: the first `num_generalists` (always on) from the leading singular
    components, the rest (specialists, softmax router, top-k) from the disjoint next ones.

    Expert e holds U_e S_e V_e^T / rho (A_e = sqrt(S_e/(s_e rho)) V_e^T, B_e = U_e sqrt(...)),
    s_e its scale. Defaults: the paper's r=16, 8 experts, top-2 of 7 specialists, 0.01
    balance; the scale rule, rho and top-k renormalisation as the authors' code runs them.
    """

    r: int = 16  # total rank over all experts
    num_experts: int = 8
    num_generalists: int = 1  # paper: one shared expert (top-2 of 7); authors' code default: 2
    top_k: int = 2
    scale_rule: Literal["gse", "alpha"] = "gse"  # gse: s_e = sqrt(3 scale_eta d_in / r_e) (code); alpha / r_e
    scale_eta: float = 1.0
    alpha: float | None = None  # scale_rule "alpha": s_e = alpha / r_e; None means alpha = r_e
    rho: float = 10.0  # the experts take S / rho of their singular values (authors' code: RHO=10)
    generalist_weight: Literal["sum", "mean"] = "sum"  # mean: each weighs 1/num_generalists (code)
    renormalize: bool = True  # top-k gates divided by their sum (authors' code)
    specialist_scaling: Literal["default", "gradient_balanced"] = "default"
    specialist_scaling_base: float = 2.0  # gradient_balanced: s_i = base * mean(tr S_j) / tr S_i
    # subtract: W is kept, the forward subtracts the frozen initial experts along the same
    # routing: the model equals the backbone exactly at init (any dtype) with the authors'
    # gradients. fold: W -= sum_e s_e B_e A_e once (authors' code): equal only up to rounding
    # and only if the router picked every specialist with weight 1.
    init_offset: Literal["subtract", "fold"] = "subtract"
    svd: Literal["full", "lowrank"] = "full"  # lowrank: torch.svd_lowrank(niter=2, seed 42) (code)
    lambda_balance: float = 1e-2
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.r < 1 or self.num_experts < 1 or self.r % self.num_experts:
            raise ValueError(
                f"VlaGseConfig: r={self.r} must be a positive multiple of num_experts={self.num_experts}"
            )
        if not 0 <= self.num_generalists < self.num_experts:
            raise ValueError(
                f"VlaGseConfig: num_generalists={self.num_generalists} must be in [0, num_experts)"
            )
        if not 1 <= self.top_k <= self.num_specialists:
            raise ValueError(
                f"VlaGseConfig: top_k={self.top_k} must be in [1, {self.num_specialists}] (the specialists)"
            )
        for name in ("rho", "scale_eta", "specialist_scaling_base"):
            if getattr(self, name) <= 0:
                raise ValueError(f"VlaGseConfig.{name} must be > 0, got {getattr(self, name)}")
        for name, allowed in (
            ("scale_rule", ("gse", "alpha")),
            ("generalist_weight", ("sum", "mean")),
            ("specialist_scaling", ("default", "gradient_balanced")),
            ("init_offset", ("subtract", "fold")),
            ("svd", ("full", "lowrank")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"VlaGseConfig.{name} must be {'|'.join(allowed)}, got {getattr(self, name)!r}"
                )
        if self.lambda_balance < 0 or not 0 <= self.dropout < 1:
            raise ValueError("VlaGseConfig: lambda_balance must be >= 0 and dropout in [0, 1)")

    @property
    def expert_rank(self) -> int:
        return self.r // self.num_experts

    @property
    def num_specialists(self) -> int:
        return self.num_experts - self.num_generalists

    def expert_scale(self, d_in: int) -> float:
        """s_e before gradient-scale balancing (the same for every expert of a layer)."""
        if self.scale_rule == "gse":
            return math.sqrt(3 * self.scale_eta * d_in / self.expert_rank)
        return (self.alpha if self.alpha is not None else self.expert_rank) / self.expert_rank

    def trainable_per_layer(self, d_in: int, d_out: int) -> int:
        """A and B of every expert plus the router (d_in -> specialists, no bias)."""
        return self.r * (d_in + d_out) + d_in * self.num_specialists


AdapterConfig = VlaGseConfig | LoraSPConfig | LoraMoEConfig | FullFinetuneConfig | LoraConfig | AdaLoraConfig

_OWN = {
    "lora_sp": LoraSPConfig,
    "lora_moe": LoraMoEConfig,
    "vla_gse": VlaGseConfig,
    "full": FullFinetuneConfig,
}
_PEFT = {"lora": LoraConfig, "adalora": AdaLoraConfig}


def strategy_name(config: AdapterConfig) -> str:
    """The strategy key used in saved files and logs: lora_sp | lora_moe | vla_gse | lora | adalora | full."""
    # AdaLoraConfig subclasses LoraConfig: test it first.
    if isinstance(config, AdaLoraConfig):
        return "adalora"
    if isinstance(config, LoraConfig):
        return "lora"
    for name, cls in _OWN.items():
        if isinstance(config, cls):
            return name
    raise TypeError(
        f"unknown adapter config {type(config).__name__}; use one of "
        "LoraSPConfig, LoraMoEConfig, VlaGseConfig, LoraConfig, AdaLoraConfig, FullFinetuneConfig"
    )


def config_to_dict(config: AdapterConfig) -> dict[str, Any]:
    """A JSON-ready dict with the strategy name, enough to rebuild the config."""
    strategy = strategy_name(config)
    if strategy in _PEFT:
        fields = config.to_dict()
        for key, value in list(fields.items()):
            if isinstance(value, set):
                fields[key] = sorted(value)
        fields.pop("peft_type", None)
        fields.pop("task_type", None)
    else:
        fields = dataclasses.asdict(config)
    return {"strategy": strategy, "fields": fields}


def config_from_dict(data: dict[str, Any]) -> AdapterConfig:
    strategy = data.get("strategy")
    cls = _OWN.get(strategy) or _PEFT.get(strategy)
    if cls is None:
        raise ValueError(f"unknown adapter strategy {strategy!r}; known: {sorted(_OWN | _PEFT)}")
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.get("fields", {}).items() if k in known})
