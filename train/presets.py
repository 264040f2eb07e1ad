"""Named training presets, openpi style: `get_preset("smolvla-lora_sp", steps=200)`.

A preset is a frozen `TrainConfig` template; overrides give a new config and never change
the preset. Names are `<family>-<strategy>`; an unknown name lists the closest ones.
"""

from __future__ import annotations

import copy
import difflib
import math
from types import MappingProxyType
from typing import Any

from .config import TrainConfig

DEFAULT_PRESET = "smolvla-lora_sp"

# The VLM must stay in train mode and unfrozen for adapters on the vision/language groups
# (SmolVLA and pi0 otherwise put it in eval mode on every .train()).
_ALL_GROUPS = {"train_expert_only": False, "freeze_vision_encoder": False}

_SMOLVLA = dict(backbone="tiny-smolvla", targets="smolvla", policy=_ALL_GROUPS)
_PI0 = dict(backbone="tiny-pi0", targets="pi0", policy=_ALL_GROUPS)
# The in-house SmolVLAs (train/backbones.py). The paper chose its ranks for SmolVLA's
# 960-wide VLM; on a narrower model the same rank is a far larger share of the weights
# (r=128 would be 46% of mini-smolvla, against the paper's 9.1%). So the in-house presets
# scale every rank by the width ratio, to the nearest power of two: on mini-smolvla 8 -> 2,
# 32 -> 8, 128 -> 32 (1.3%, 5.0% and 17.3% of its parameters), on small-smolvla 8 -> 4,
# 32 -> 16, 128 -> 64 (1.3%, 4.9% and 17.1%). Preset names keep the paper's ranks.
# LoRA-SP's router width scales the same way (64 -> 16 on mini, 32 on small): its router then
# stays the share of the adapter it is on SmolVLA. Left at 64, mini's router outweighed its
# r=32 bank, and LoRA-SP trained 2.0x LoRA r=128's parameters where the paper's trains ~1.3x.
PAPER_WIDTH = 960  # SmolVLM2-500M's hidden size, SmolVLA's VLM
IN_HOUSE_WIDTHS = {"mini": 256, "small": 576}  # hidden sizes (train.scratch_models.MINI_/SMALL_SMOLVLM)
PAPER_ROUTER_HIDDEN = 64  # LoraSPConfig's default; not imported: the GUI imports presets at start-up


def scaled_rank(paper_rank: int, width: int) -> int:
    """The rank that is to a `width`-wide model what `paper_rank` is to SmolVLA."""
    return max(1, 2 ** round(math.log2(paper_rank * width / PAPER_WIDTH)))


# Noise on the normalised joint state in training batches (TrainConfig.state_noise): from
# 120 press_button episodes, 0.3 pressed 11/15 and 13/15 unseen buttons (two seeds) against 7/15
# without (docs/results/study-cpu.md, Run 5). Measured in simulation only: the in-house families have it.
SIM_STATE_NOISE = 0.3
_ADAPTER_LR = dict(lr=1e-3, lr_schedule="cosine", warmup_steps=20)  # adapters train at LoRA's usual higher lr
_FULL_LR = dict(lr=1e-4, lr_schedule="cosine", warmup_steps=20)
# Capability vectors: SFT on a backbone made by train.capvector (pass its dir as backbone),
# the update kept orthogonal to its vector with this weight (not tuned; the paper's is open).
_ORTH = 1.0


def _preset(
    name: str, family: dict, strategy: str, adapter: dict | None = None, **fields: Any
) -> TrainConfig:
    return TrainConfig(preset=name, strategy=strategy, adapter=adapter or {}, **family, **fields)


def _in_house_presets(size: str) -> list[TrainConfig]:
    """The paper's comparison on `<size>-smolvla` (`mini-*`, `small-*`), ranks scaled by `scaled_rank`."""
    family = dict(
        backbone=f"{size}-smolvla", targets="smolvla", policy=_ALL_GROUPS, state_noise=SIM_STATE_NOISE
    )
    r8, r32, r128 = (scaled_rank(r, IN_HOUSE_WIDTHS[size]) for r in (8, 32, 128))
    router_hidden = scaled_rank(PAPER_ROUTER_HIDDEN, IN_HOUSE_WIDTHS[size])
    return [
        _preset(f"{size}-full", family, "full", {"scope": "all"}, **_FULL_LR),
        _preset(f"{size}-lora8", family, "lora", {"r": r8, "lora_alpha": r8}, **_ADAPTER_LR),
        _preset(f"{size}-lora32", family, "lora", {"r": r32, "lora_alpha": r32}, **_ADAPTER_LR),
        _preset(f"{size}-lora128", family, "lora", {"r": r128, "lora_alpha": r128}, **_ADAPTER_LR),
        _preset(f"{size}-adalora", family, "adalora", {"init_r": r128, "target_r": r128 // 2}, **_ADAPTER_LR),
        _preset(
            f"{size}-lora_moe",
            family,
            "lora_moe",
            {"r": r128, "num_experts": 4, "routing": "top1"},
            **_ADAPTER_LR,
        ),
        _preset(
            f"{size}-lora_sp",
            family,
            "lora_sp",
            {"r": r128, "eta": 0.9, "router_hidden": router_hidden},
            **_ADAPTER_LR,
        ),
        # VLA-GSE's experts keep the paper's count (8: one generalist, top-2 of 7); their rank
        # 16/8 = 2 scales to 1, so r = 8 (r = scaled_rank(16) = 4 cannot feed 8 experts).
        _preset(
            f"{size}-vla_gse",
            family,
            "vla_gse",
            {"r": 8 * scaled_rank(16 // 8, IN_HOUSE_WIDTHS[size]), "num_experts": 8},
            **_ADAPTER_LR,
        ),
        # SFT on a capability-vector backbone: pass the dir build_capvector_backbone returned
        _preset(f"{size}-capvector", family, "full", {"scope": "all"}, orth_weight=_ORTH, **_FULL_LR),
    ]


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
        _preset(
            "smolvla-lora_moe",
            _SMOLVLA,
            "lora_moe",
            {"r": 128, "num_experts": 4, "routing": "top1"},
            **_ADAPTER_LR,
        ),
        _preset(
            "smolvla-lora_moe_weighted",
            _SMOLVLA,
            "lora_moe",
            {"r": 128, "num_experts": 4, "routing": "weighted"},
            **_ADAPTER_LR,
        ),
        _preset(
            "smolvla-full", _SMOLVLA, "full", {"scope": "all"}, lr=1e-4, lr_schedule="cosine", warmup_steps=20
        ),
        # VLA-GSE: r=16 over 8 experts (one always-on generalist, top-2 of 7), 0.01 balance
        _preset("smolvla-vla_gse", _SMOLVLA, "vla_gse", {"r": 16, "num_experts": 8}, **_ADAPTER_LR),
        _preset("smolvla-capvector", _SMOLVLA, "full", {"scope": "all"}, orth_weight=_ORTH, **_FULL_LR),
        _preset(
            "smolvla-capvector_lora",
            _SMOLVLA,
            "lora",
            {"r": 32, "lora_alpha": 32},
            orth_weight=_ORTH,
            **_ADAPTER_LR,
        ),
        *_in_house_presets("mini"),
        *_in_house_presets("small"),
        _preset("pi0-lora_sp", _PI0, "lora_sp", {"r": 128, "eta": 0.9}, **_ADAPTER_LR),
        _preset("pi0-vla_gse", _PI0, "vla_gse", {"r": 16, "num_experts": 8}, **_ADAPTER_LR),
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
