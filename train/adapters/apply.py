"""`apply_adapters(model, config, targets)`: the one entry point for every strategy.

The model is changed in place: target nn.Linear layers are wrapped (ours: LoRA-SP,
LoRA-MoE, VLA-GSE; peft's: LoRA, AdaLoRA), everything else is frozen, and the returned handle
knows what was done.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Mapping

from torch import nn

from .config import (
    AdapterConfig,
    FullFinetuneConfig,
    LoraMoEConfig,
    LoraSPConfig,
    VlaGseConfig,
    strategy_name,
)
from .handle import AdapterHandle
from .layer import AdapterLinear
from .lora_moe import LoraMoELinear
from .lora_sp import LoraSPLinear
from .targets import AdapterTargets, detect_targets, names_targets, parse_targets
from .vla_gse import VlaGseLinear

TargetsLike = AdapterTargets | str | Mapping[str, str] | Iterable[str] | None


def as_targets(model: nn.Module, targets: TargetsLike) -> AdapterTargets:
    """AdapterTargets from: None (detect SmolVLA/pi0), a spec string ("smolvla:vision",
    "re:<regex>"), a {name: group} mapping or a list of module names."""
    if targets is None:
        return detect_targets(model)
    if isinstance(targets, AdapterTargets):
        return targets
    if isinstance(targets, str):
        return parse_targets(targets)
    return names_targets(targets)


def apply_adapters(model: nn.Module, config: AdapterConfig, targets: TargetsLike = None) -> AdapterHandle:
    strategy = strategy_name(config)
    _refuse_adapted(model)
    if strategy == "full":
        return _apply_full(model, config, targets)
    groups = as_targets(model, targets).resolve(model)
    _warn_if_model_forces_eval(model, groups)
    if strategy in ("lora", "adalora"):
        return _apply_peft(model, config, groups, strategy)
    layer_cls = _LAYERS[type(config)]
    model.requires_grad_(False)
    for name in groups:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer_cls(getattr(parent, child), config))
    return AdapterHandle(model, config, strategy, groups)


_LAYERS = {LoraSPConfig: LoraSPLinear, LoraMoEConfig: LoraMoELinear, VlaGseConfig: VlaGseLinear}


def _refuse_adapted(model: nn.Module) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in model.named_modules():
        if isinstance(module, AdapterLinear | BaseTunerLayer):
            raise ValueError(
                f"{name} already has an adapter: build a fresh backbone before apply_adapters / load_adapters"
            )


def _apply_full(model: nn.Module, config: FullFinetuneConfig, targets: TargetsLike) -> AdapterHandle:
    if config.scope == "all":
        model.requires_grad_(True)
        try:
            groups = as_targets(model, targets).resolve(model)
        except ValueError:
            groups = {}  # group labels are optional for a full fine-tune
        return AdapterHandle(model, config, "full", groups)
    groups = as_targets(model, targets).resolve(model)
    model.requires_grad_(False)
    for name in groups:
        model.get_submodule(name).requires_grad_(True)
    return AdapterHandle(model, config, "full", groups)


def _apply_peft(model: nn.Module, config, groups: dict[str, str], strategy: str) -> AdapterHandle:
    from peft import AdaLoraModel, LoraModel

    peft_config = copy.deepcopy(config)
    peft_config.target_modules = sorted(groups)
    peft_config.inference_mode = False
    tuner_cls = AdaLoraModel if strategy == "adalora" else LoraModel
    # The tuner injects into `model` in place and freezes every non-adapter parameter.
    tuner = tuner_cls(model, peft_config, "default")
    return AdapterHandle(model, peft_config, strategy, groups, peft_tuner=tuner)


def _warn_if_model_forces_eval(model: nn.Module, groups: dict[str, str]) -> None:
    """SmolVLA/pi0 put their VLM (train_expert_only) or vision tower (freeze_vision_encoder)
    in eval mode on every .train(): adapters there would never see a training forward."""
    cfg = getattr(model, "config", None)
    adapted = set(groups.values())
    if getattr(cfg, "train_expert_only", False) and adapted & {"vision", "language"}:
        warnings.warn(
            "the policy config has train_expert_only=True, which keeps the VLM in eval mode: set it to "
            "False to train adapters on the vision/language groups",
            stacklevel=3,
        )
    elif getattr(cfg, "freeze_vision_encoder", False) and "vision" in adapted:
        warnings.warn(
            "the policy config has freeze_vision_encoder=True, which keeps the vision tower in eval mode: "
            "set it to False to train adapters on the vision group",
            stacklevel=3,
        )
