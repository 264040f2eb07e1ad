"""Adapters for fine-tuning VLA backbones: LoRA-SP, LoRA-MoE, VLA-GSE, peft's LoRA and AdaLoRA,
full fine-tuning, behind one entry point:

    from train.adapters import LoraSPConfig, apply_adapters
    handle = apply_adapters(policy, LoraSPConfig(r=128, eta=0.9), "smolvla")

This package imports torch and peft; `import train` alone does not.
"""

from .apply import apply_adapters, as_targets
from .config import (
    AdaLoraConfig,
    AdapterConfig,
    FullFinetuneConfig,
    LoraConfig,
    LoraMoEConfig,
    LoraSPConfig,
    VlaGseConfig,
    config_from_dict,
    config_to_dict,
    strategy_name,
)
from .handle import ActiveRankStats, AdapterHandle, ParameterCounts
from .io import load_adapters, save_adapters
from .targets import PI0, PRESETS, SMOLVLA, AdapterTargets, parse_targets, pattern_targets, targets_for

__all__ = [
    "PI0",
    "PRESETS",
    "SMOLVLA",
    "ActiveRankStats",
    "AdaLoraConfig",
    "AdapterConfig",
    "AdapterHandle",
    "AdapterTargets",
    "FullFinetuneConfig",
    "LoraConfig",
    "LoraMoEConfig",
    "LoraSPConfig",
    "ParameterCounts",
    "VlaGseConfig",
    "apply_adapters",
    "as_targets",
    "config_from_dict",
    "config_to_dict",
    "load_adapters",
    "parse_targets",
    "pattern_targets",
    "save_adapters",
    "strategy_name",
    "targets_for",
]
