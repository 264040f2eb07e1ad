"""One config per adaptation strategy.

`LoraConfig` and `AdaLoraConfig` are peft's own classes (re-exported); the others are
ours. Every reading the LoRA-SP paper leaves open is a field here, with the paper's
choice as the default and the authors' public-code choice as the alternative.
"""

from __future__ import annotations

import dataclasses
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
    score_fn: Literal["softplus", "relu", "none"] = "softplus"  # "none": raw scores (authors' code)
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


AdapterConfig = LoraSPConfig | LoraMoEConfig | FullFinetuneConfig | LoraConfig | AdaLoraConfig

_OWN = {"lora_sp": LoraSPConfig, "lora_moe": LoraMoEConfig, "full": FullFinetuneConfig}
_PEFT = {"lora": LoraConfig, "adalora": AdaLoraConfig}


def strategy_name(config: AdapterConfig) -> str:
    """The strategy key used in saved files and logs: lora_sp | lora_moe | lora | adalora | full."""
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
        "LoraSPConfig, LoraMoEConfig, LoraConfig, AdaLoraConfig, FullFinetuneConfig"
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
