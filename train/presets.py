"""Named training presets, openpi style: `get_preset("smolvla-lora_sp", steps=200)`.

A preset is a frozen `TrainConfig` template; overrides give a new config and never change
the preset. Names are `<family>-<strategy>`; an unknown name lists the closest ones.
"""

from __future__ import annotations

import copy
import difflib
from types import MappingProxyType
from typing import Any

from .config import TrainConfig

DEFAULT_PRESET = "smolvla-lora_sp"

# The VLM must stay in train mode and unfrozen for adapters on the vision/language groups
# (SmolVLA and pi0 otherwise put it in eval mode on every .train()).
_ALL_GROUPS = {"train_expert_only": False, "freeze_vision_encoder": False}

_SMOLVLA = dict(backbone="tiny-smolvla", targets="smolvla", policy=_ALL_GROUPS)
_PI0 = dict(backbone="tiny-pi0", targets="pi0", policy=_ALL_GROUPS)
_ADAPTER_LR = dict(lr=1e-3, lr_schedule="cosine", warmup_steps=20)  # adapters train at LoRA's usual higher lr


def _preset(name: str, family: dict, strategy: str, adapter: dict | None = None, **fields: Any) -> TrainConfig:
    return TrainConfig(preset=name, strategy=strategy, adapter=adapter or {}, **family, **fields)


_PRESETS: dict[str, TrainConfig] = {
    p.preset: p
    for p in (
        # the paper's method: r=128 bank, eta 0.9, lambda_spec 1e-2, lambda_router 1e-3
        _preset("smolvla-lora_sp", _SMOLVLA, "lora_sp", {"r": 128, "eta": 0.9}, **_ADAPTER_LR),
        _preset("smolvla-lora_sp64", _SMOLVLA, "lora_sp", {"r": 64, "eta": 0.9}, **_ADAPTER_LR),
        _preset("smolvla-lora128", _SMOLVLA, "lora", {"r": 128, "lora_alpha": 128}, **_ADAPTER_LR),
        _preset("smolvla-lora32", _SMOLVLA, "lora", {"r": 32, "lora_alpha": 32}, **_ADAPTER_LR),
        _preset("smolvla-lora8", _SMOLVLA, "lora", {"r": 8, "lora_alpha": 8}, **_ADAPTER_LR),
        _preset(
            "smolvla-adalora",
            _SMOLVLA,
            "adalora",
            {"init_r": 128, "target_r": 64},  # total_step = the run's steps
            **_ADAPTER_LR,
        ),
        _preset("smolvla-lora_moe", _SMOLVLA, "lora_moe", {"r": 128, "num_experts": 4, "routing": "top1"}, **_ADAPTER_LR),
        _preset(
            "smolvla-lora_moe_weighted",
            _SMOLVLA,
            "lora_moe",
            {"r": 128, "num_experts": 4, "routing": "weighted"},
            **_ADAPTER_LR,
        ),
        _preset("smolvla-full", _SMOLVLA, "full", {"scope": "all"}, lr=1e-4, lr_schedule="cosine", warmup_steps=20),
        _preset("pi0-lora_sp", _PI0, "lora_sp", {"r": 128, "eta": 0.9}, **_ADAPTER_LR),
        _preset("pi0-lora128", _PI0, "lora", {"r": 128, "lora_alpha": 128}, **_ADAPTER_LR),
        _preset("pi0-full", _PI0, "full", {"scope": "all"}, lr=5e-5, lr_schedule="cosine", warmup_steps=20),
    )
}
PRESETS = MappingProxyType(_PRESETS)


def preset_names() -> list[str]:
    return list(_PRESETS)


def get_preset(name: str, **overrides: Any) -> TrainConfig:
    """The preset's config with `overrides` applied (adapter/policy dicts are merged)."""
    if name not in _PRESETS:
        close = difflib.get_close_matches(name, _PRESETS, n=3, cutoff=0.4)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise KeyError(f"unknown preset {name!r}{hint}. Presets: {', '.join(_PRESETS)}")
    return copy.deepcopy(_PRESETS[name]).with_overrides(**overrides)
