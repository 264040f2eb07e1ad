"""Which nn.Linear layers get an adapter, and the module group each belongs to.

Presets for lerobot's SmolVLA and pi0 split the model into the paper's three groups
(vision tower, language model, action expert + heads); `select` keeps some of them.
Any other model uses the pattern form: a regex searched in each module's full name.

    targets_for("smolvla")                      # all three groups
    targets_for("pi0", groups=["language", "action"])
    parse_targets("smolvla:vision,action")      # the same, from a CLI/config string
    parse_targets("re:layers\\.\\d+\\.mlp")     # pattern form, one group "custom"
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from torch import nn

GROUPS = ("vision", "language", "action")

_ATTN_MLP = r"(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
_SIGLIP = r"(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])"
_HEADS = r"(^|\.)(state_proj|action_in_proj|action_out_proj|action_time_mlp_in|action_time_mlp_out)"


@dataclass(frozen=True)
class AdapterTargets:
    """group name -> regex searched (re.search) in the module's full name; first match wins."""

    groups: Mapping[str, str]
    exclude: str | None = None
    name: str = "custom"
    _compiled: dict = field(default_factory=dict, compare=False, repr=False)

    def select(self, groups: Iterable[str]) -> AdapterTargets:
        wanted = list(groups)
        unknown = [g for g in wanted if g not in self.groups]
        if unknown:
            raise ValueError(f"unknown module group(s) {unknown} for {self.name}; known: {list(self.groups)}")
        return AdapterTargets({g: self.groups[g] for g in wanted}, self.exclude, self.name)

    def group_of(self, module_name: str) -> str | None:
        if self.exclude and re.search(self.exclude, module_name):
            return None
        for group, pattern in self.groups.items():
            compiled = self._compiled.get(pattern) or self._compiled.setdefault(pattern, re.compile(pattern))
            if compiled.search(module_name):
                return group
        return None

    def resolve(self, model: nn.Module) -> dict[str, str]:
        """{module name: group} of the model's nn.Linear layers that match. Raises with
        a hint when nothing matches (usually a preset applied to the wrong backbone)."""
        linear_names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        found = {n: g for n in linear_names if (g := self.group_of(n)) is not None}
        if not found:
            sample = ", ".join(linear_names[:5]) or "none"
            raise ValueError(
                f"targets {self.name!r} ({dict(self.groups)}) match no nn.Linear in "
                f"{type(model).__name__} (its linear layers include: {sample}); pick the preset of this "
                "backbone or give a pattern with parse_targets('re:<regex>')"
            )
        return found


SMOLVLA = AdapterTargets(
    name="smolvla",
    groups={
        "vision": r"vlm_with_expert\.vlm\.model\.vision_model\.encoder\.layers\.\d+\." + _SIGLIP + "$",
        "language": r"vlm_with_expert\.vlm\.model\.(text_model\.layers\.\d+\."
        + _ATTN_MLP
        + r"|connector\.modality_projection\.proj)$",
        "action": r"(vlm_with_expert\.lm_expert\.layers\.\d+\." + _ATTN_MLP + "|" + _HEADS + ")$",
    },
)

PI0 = AdapterTargets(
    name="pi0",
    groups={
        "vision": r"paligemma_with_expert\.paligemma\.model\.vision_tower\..*layers\.\d+\." + _SIGLIP + "$",
        "language": r"paligemma_with_expert\.paligemma\.model\.(language_model\.layers\.\d+\."
        + _ATTN_MLP
        + r"|multi_modal_projector\.linear)$",
        "action": r"(paligemma_with_expert\.gemma_expert\.model\.layers\.\d+\."
        + _ATTN_MLP
        + "|"
        + _HEADS
        + ")$",
    },
)

PRESETS: dict[str, AdapterTargets] = {"smolvla": SMOLVLA, "pi0": PI0}


def targets_for(backbone: str, groups: Iterable[str] | None = None) -> AdapterTargets:
    if backbone not in PRESETS:
        close = difflib.get_close_matches(backbone, PRESETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"no target preset {backbone!r}{hint}; presets: {sorted(PRESETS)}")
    preset = PRESETS[backbone]
    return preset if groups is None else preset.select(groups)


def pattern_targets(pattern: str, group: str = "custom") -> AdapterTargets:
    re.compile(pattern)  # fail here, not deep inside apply_adapters
    return AdapterTargets({group: pattern}, name=f"re:{pattern}")


def names_targets(names: Mapping[str, str] | Iterable[str]) -> AdapterTargets:
    """Exactly these modules; a {name: group} mapping keeps the groups (used when loading)."""
    mapping = dict(names) if isinstance(names, Mapping) else dict.fromkeys(names, "custom")
    by_group: dict[str, list[str]] = {}
    for module_name, group in mapping.items():
        by_group.setdefault(group, []).append(module_name)
    return AdapterTargets(
        {g: "^(" + "|".join(re.escape(n) for n in ns) + ")$" for g, ns in by_group.items()}, name="names"
    )


def parse_targets(spec: str) -> AdapterTargets:
    """ "smolvla", "pi0:vision,action" (preset and groups) or "re:<regex>" (pattern form)."""
    if spec.startswith("re:"):
        return pattern_targets(spec[3:])
    backbone, _, groups = spec.partition(":")
    return targets_for(backbone, [g.strip() for g in groups.split(",") if g.strip()] if groups else None)


def detect_targets(model: nn.Module) -> AdapterTargets:
    """The preset whose layer names the model has (SmolVLA or pi0)."""
    for name, _ in model.named_modules():
        if "vlm_with_expert" in name:
            return SMOLVLA
        if "paligemma_with_expert" in name:
            return PI0
    raise ValueError(
        f"{type(model).__name__} is neither SmolVLA nor pi0: give targets, e.g. parse_targets('re:<regex>')"
    )
