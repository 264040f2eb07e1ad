"""Spectral analysis of a fine-tune (the paper's Sec. III and Fig. 4), as a guide to r.

For every linear weight present in both checkpoints, the singular values of the update
dW = W_tuned - W_base give the cumulative energy E(k) = sum_{i<=k} sigma_i^2 / sum sigma^2,
and by Eckart-Young the best rank-k approximation of dW has relative error sqrt(1 - E(k)).
The smallest k with E(k) >= eta is the rank a LoRA needs for that module at that tolerance;
it is the same rule LoRA-SP applies to its router scores, so `energy_select` does both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .lora_sp import energy_select
from .targets import PI0, SMOLVLA, AdapterTargets, pattern_targets

ETAS = (0.5, 0.7, 0.8, 0.9, 0.99)


@dataclass
class ModuleSpectrum:
    name: str
    group: str
    shape: tuple[int, int]
    singular_values: torch.Tensor  # float32, descending
    ranks: dict[float, int]  # eta -> smallest k with E(k) >= eta (0: the weight did not change)

    @property
    def full_rank(self) -> int:
        return min(self.shape)

    def energy_curve(self) -> torch.Tensor:
        energy = self.singular_values.double().square()
        total = energy.sum()
        return (energy.cumsum(0) / total).float() if total > 0 else torch.zeros_like(self.singular_values)


@dataclass
class SpectrumReport:
    modules: list[ModuleSpectrum] = field(default_factory=list)
    etas: tuple[float, ...] = ETAS

    def groups(self) -> dict[str, list[ModuleSpectrum]]:
        out: dict[str, list[ModuleSpectrum]] = {}
        for module in self.modules:
            out.setdefault(module.group, []).append(module)
        return out

    def group_summary(self) -> dict[str, dict[float, dict[str, float]]]:
        """group -> eta -> mean / max of k and mean k as a fraction of full rank."""
        summary = {}
        for group, modules in self.groups().items():
            summary[group] = {}
            for eta in self.etas:
                ks = [m.ranks[eta] for m in modules]
                summary[group][eta] = {
                    "mean": sum(ks) / len(ks),
                    "max": max(ks),
                    "mean_fraction": sum(m.ranks[eta] / m.full_rank for m in modules) / len(modules),
                }
        return summary

    def suggest_r(self, eta: float = 0.9, quantile: float = 0.9) -> int:
        """A LoRA-SP bank size: the power of two covering `quantile` of the modules' k at eta."""
        ks = sorted(m.ranks[eta] for m in self.modules)
        if not ks:
            return 0
        k = ks[min(len(ks) - 1, math.ceil(quantile * len(ks)) - 1)]
        return 1 << max(0, math.ceil(math.log2(max(k, 1))))


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint: a .safetensors file, or a directory holding one or
    several (lerobot's model.safetensors, sharded model-0000x-of-0000y.safetensors)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        files = [f for f in files if f.name != "adapter_model.safetensors"] or files
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"{path} does not exist: give a checkpoint directory or a .safetensors file")
    if not files:
        raise FileNotFoundError(
            f"no .safetensors file in {path}: give a policy checkpoint directory (it holds model.safetensors)"
        )
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            weights.update(load_file(str(file)))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{file} cannot be read ({err}); the checkpoint is damaged") from err
    return weights


def _targets_for_names(names: list[str]) -> AdapterTargets:
    if any("vlm_with_expert" in n for n in names):
        return SMOLVLA
    if any("paligemma_with_expert" in n for n in names):
        return PI0
    return pattern_targets(r".", group="all")


def analyse(
    base: dict[str, torch.Tensor],
    tuned: dict[str, torch.Tensor],
    targets: AdapterTargets | None = None,
    etas: tuple[float, ...] = ETAS,
) -> SpectrumReport:
    """Spectra of the updates of the 2-D `*.weight` tensors in both checkpoints that the
    targets select (default: the SmolVLA/pi0 preset when the names fit, else all)."""
    names = sorted(k[: -len(".weight")] for k, v in tuned.items() if k.endswith(".weight") and v.dim() == 2)
    names = [n for n in names if n + ".weight" in base and "embed" not in n and not n.endswith("lm_head")]
    targets = targets or _targets_for_names(names)
    report = SpectrumReport(etas=tuple(etas))
    for name in names:
        group = targets.group_of(name)
        w0, w1 = base[name + ".weight"], tuned[name + ".weight"]
        if group is None:
            continue
        if w0.shape != w1.shape:
            raise ValueError(
                f"{name}: base {tuple(w0.shape)} vs tuned {tuple(w1.shape)}; the two checkpoints are "
                "not of one backbone"
            )
        sv = torch.linalg.svdvals(w1.float() - w0.float())
        row = sv.unsqueeze(0)
        ranks = {eta: int(energy_select(row, eta).k[0]) for eta in etas}
        report.modules.append(ModuleSpectrum(name, group, tuple(w0.shape), sv, ranks))
    if not report.modules:
        raise ValueError("the checkpoints share no selected linear weight; are they of one backbone?")
    return report


def format_report(report: SpectrumReport, per_module: bool = True) -> str:
    head = f"{'module':<72} {'shape':>11} " + " ".join(f"{'k@' + str(e):>7}" for e in report.etas)
    lines = []
    if per_module:
        lines += [head, "-" * len(head)]
        for m in report.modules:
            shape = f"{m.shape[0]}x{m.shape[1]}"
            lines.append(
                f"{m.name[-72:]:<72} {shape:>11} " + " ".join(f"{m.ranks[e]:>7}" for e in report.etas)
            )
        lines.append("")
    lines.append(f"{'group (modules)':<24} " + " ".join(f"{'k@' + str(e):>14}" for e in report.etas))
    for group, by_eta in report.group_summary().items():
        count = len(report.groups()[group])
        cells = " ".join(f"{by_eta[e]['mean']:>7.1f}/{by_eta[e]['max']:<6}" for e in report.etas)
        lines.append(f"{group + f' ({count})':<24} {cells}")
    lines.append("(mean/max smallest k with E(k) >= eta, per group)")
    lines.append(f"suggested LoRA-SP r (covers 90% of modules at eta=0.9): {report.suggest_r()}")
    return "\n".join(lines)


def plot_energy_curves(report: SpectrumReport, path: str | Path) -> Path:
    """Cumulative energy E(k) against k / full rank, one panel per group (the paper's Fig. 4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = report.groups()
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.6), squeeze=False)
    for ax, (group, modules) in zip(axes[0], groups.items(), strict=True):
        for m in modules:
            curve = m.energy_curve().numpy()
            ax.plot([(i + 1) / m.full_rank for i in range(len(curve))], curve, lw=0.8, alpha=0.6)
        for eta in report.etas:
            ax.axhline(eta, color="grey", lw=0.5, ls=":")
        ax.set_title(f"{group} ({len(modules)} modules)")
        ax.set_xlabel("k / full rank")
        ax.set_ylim(0, 1.01)
    axes[0][0].set_ylabel("cumulative energy E(k)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
