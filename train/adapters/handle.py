"""`AdapterHandle`: what the trainer holds after `apply_adapters`.

Per step the trainer does:

    loss = task_loss + handle.aux_losses()["total"]     # after the forward
    loss.backward(); optimizer.step()
    handle.set_step(step)                               # steps done; before zero_grad (AdaLoRA)
    optimizer.zero_grad()
    log(handle.active_rank(reset=True).as_log())
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .config import AdapterConfig, LoraSPConfig
from .layer import AdapterLinear
from .lora_sp import LoraSPLinear
from .vla_gse import VlaGseLinear
from .vla_gse import aux_losses as vla_gse_aux_losses


@dataclass
class ParameterCounts:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        """Trainable / total in % (the paper's Table I column); total includes the adapters."""
        return 100.0 * self.trainable / self.total if self.total else 0.0


@dataclass
class ActiveRankStats:
    """Mean active rank per module and per group (each module weighs the same in its group),
    and per group a histogram: counts of rows (tokens or samples) per rank 0..max_rank for
    LoRA-SP / LoRA-MoE, counts of modules per rank for LoRA / AdaLoRA."""

    per_module: dict[str, float] = field(default_factory=dict)
    per_group: dict[str, float] = field(default_factory=dict)
    histogram: dict[str, list[int]] = field(default_factory=dict)

    @property
    def overall(self) -> float:
        values = list(self.per_module.values())
        return sum(values) / len(values) if values else 0.0

    def as_log(self, prefix: str = "active_rank/") -> dict[str, float]:
        out = {f"{prefix}{group}": value for group, value in self.per_group.items()}
        out[f"{prefix}mean"] = self.overall
        return out


def _histogram_mean(hist: torch.Tensor) -> float | None:
    rows = int(hist.sum())
    if rows == 0:
        return None
    return float((hist.double() * torch.arange(len(hist), dtype=torch.float64)).sum()) / rows


class AdapterHandle:
    def __init__(
        self,
        model: nn.Module,
        config: AdapterConfig,
        strategy: str,
        groups: dict[str, str],
        peft_tuner: Any | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.strategy = strategy
        #: module name -> module group ("vision" | "language" | "action" | custom)
        self.groups = dict(groups)
        self.peft_tuner = peft_tuner
        self.step = 0
        self.merged = False
        self._own_layer_cache: dict[str, AdapterLinear] | None = None
        self._zero_tensor: torch.Tensor | None = None
        self._eta_set: float | None = None

    # ---- what was wrapped -------------------------------------------------------------
    @property
    def modules(self) -> dict[str, nn.Module]:
        """module name -> the wrapped module now in the model (empty after merge)."""
        if self.merged or self.strategy == "full":
            return {}
        return {name: self.model.get_submodule(name) for name in self.groups}

    def _own_layers(self) -> dict[str, AdapterLinear]:
        """Our adapter layers by name, looked up once (aux_losses and set_step run every step)."""
        if self.merged:
            return {}
        if self._own_layer_cache is None:
            self._own_layer_cache = {n: m for n, m in self.modules.items() if isinstance(m, AdapterLinear)}
        return self._own_layer_cache

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def parameter_counts(self) -> ParameterCounts:
        params = list(self.model.parameters())
        return ParameterCounts(
            trainable=sum(p.numel() for p in params if p.requires_grad), total=sum(p.numel() for p in params)
        )

    # ---- losses ---------------------------------------------------------------------------
    def aux_losses(self) -> dict[str, torch.Tensor]:
        """Auxiliary losses of the training forwards since the last call (consumed on read):
        each term averaged over the layers that ran, and "total", the weighted sum to add to
        the task loss. Terms: spectral, balance, z (LoRA-SP); balance, z (LoRA-MoE);
        orth (AdaLoRA's orthogonality regulariser, as peft computes it); none for LoRA/full."""
        if self.strategy == "adalora":
            orth = self._adalora_orth()
            return {"orth": orth, "total": self.config.orth_reg_weight * orth}
        if self.strategy == "vla_gse":  # balance only; a layer called twice counts its mean
            return vla_gse_aux_losses(self._own_layers().values(), self.config, self._zero().device)
        taken = [t for t in (layer.take_aux() for layer in self._own_layers().values()) if t is not None]
        if self.strategy not in ("lora_sp", "lora_moe"):
            return {"total": self._zero()}
        cfg = self.config
        names = ("spectral", "balance", "z") if isinstance(cfg, LoraSPConfig) else ("balance", "z")
        terms = dict.fromkeys(names, self._zero())
        if taken:
            # one stack per distinct row count (usually one), not a few ops per layer
            by_rows: dict[int, list[torch.Tensor]] = {}
            for layer_names, summed, rows in taken:
                if layer_names != names:
                    raise ValueError(f"a {self.strategy} layer recorded {layer_names}, expected {names}")
                by_rows.setdefault(rows, []).append(summed)
            means = torch.cat([torch.stack(sums) / rows for rows, sums in by_rows.items()]).mean(dim=0)
            terms = dict(zip(names, means.unbind(), strict=True))
        total = cfg.lambda_router * (terms["balance"] + cfg.z_weight * terms["z"])
        if isinstance(cfg, LoraSPConfig):
            total = total + cfg.lambda_spec * terms["spectral"]
        terms["total"] = total
        return terms

    def _zero(self) -> torch.Tensor:
        if self._zero_tensor is None:
            self._zero_tensor = torch.zeros((), device=next(self.model.parameters()).device)
        return self._zero_tensor

    def _adalora_orth(self) -> torch.Tensor:
        """peft's AdaLoRA regulariser: mean over A and B of ||P P^T - I||_F (A) / ||P^T P - I||_F (B)."""
        terms = []
        for name, p in self.model.named_parameters():
            if p.requires_grad and ("lora_A" in name or "lora_B" in name):
                cov = p @ p.T if "lora_A" in name else p.T @ p
                terms.append(
                    torch.linalg.matrix_norm(cov - torch.eye(len(cov), device=cov.device, dtype=cov.dtype))
                )
        return torch.stack(terms).mean() if terms else torch.zeros(())

    # ---- per-step hooks and inference knobs ---------------------------------------------
    def set_step(self, step: int) -> None:
        """Call once per optimiser step, after optimizer.step() and before zero_grad(), with
        the number of steps done. Moves LoRA-SP's eta schedule; runs AdaLoRA's
        update_and_allocate (which reads the gradients, hence before zero_grad)."""
        self.step = step
        if isinstance(self.config, LoraSPConfig):
            eta = self.config.eta_at(step)
            if eta != self._eta_set:  # a constant (or finished) schedule: nothing to do per step
                for layer in self._own_layers().values():
                    layer.eta = eta
                self._eta_set = eta
        elif self.strategy == "adalora" and not self.merged:
            # peft's allocator multiplies every adapter by its gradient; modules off the loss's
            # path (SmolVLA/pi0 never use the last VLM layer's queries and MLP) have none: their
            # sensitivity is zero, so give them a zero gradient rather than crash.
            for param in self.model.parameters():
                if param.requires_grad and param.grad is None:
                    param.grad = torch.zeros_like(param)
            self.peft_tuner.update_and_allocate(step)

    def set_inference_eta(self, eta: float | None) -> None:
        """LoRA-SP's eta in eval mode (None: the training eta)."""
        if not isinstance(self.config, LoraSPConfig):
            raise ValueError(f"inference eta applies to LoRA-SP only, not {self.strategy}")
        if eta is not None and not 0.0 < eta <= 1.0:
            raise ValueError(f"eta must be in (0, 1], got {eta}")
        for layer in self._own_layers().values():
            layer.inference_eta = eta

    def set_inference_path(self, path: str) -> None:
        """LoRA-SP / VLA-GSE eval forward: "dense" (masked), "gathered" (kept vectors / chosen
        experts only) or "auto" (LoRA-SP: gathered when the rows of a call keep at most r/2
        vectors between them; VLA-GSE: gathered)."""
        if path not in ("dense", "gathered", "auto"):
            raise ValueError(f"inference path must be dense|gathered|auto, got {path!r}")
        for layer in self._own_layers().values():
            if isinstance(layer, LoraSPLinear | VlaGseLinear):
                layer.inference_path = path

    # ---- observability ----------------------------------------------------------------------
    def active_rank(self, reset: bool = False, reduce=None) -> ActiveRankStats:
        """Active-rank statistics: measured per row since the last reset for LoRA-SP/MoE,
        the current (static or AdaLoRA-allocated) rank per module for LoRA/AdaLoRA.
        `reduce` sums a tensor over training processes (one call for every histogram)."""
        stats = ActiveRankStats()
        by_group: dict[str, list[float]] = {}
        measured = {
            n: m.rank_histogram(reset=reset) for n, m in self.modules.items() if isinstance(m, AdapterLinear)
        }
        if reduce is not None and measured:
            summed = reduce(torch.cat(list(measured.values())).double()).round().long().cpu()
            lengths = [len(h) for h in measured.values()]
            measured = dict(zip(measured, summed.split(lengths), strict=True))
        for name, module in self.modules.items():
            group = self.groups[name]
            if name in measured:
                hist = measured[name]
                mean = _histogram_mean(hist)
                if mean is None:
                    continue
                prev = stats.histogram.get(group)
                stats.histogram[group] = (hist if prev is None else torch.tensor(prev) + hist).tolist()
            else:
                mean = float(self._peft_rank(module))
                counts = stats.histogram.setdefault(group, [0] * (self._peft_max_rank() + 1))
                counts[int(mean)] += 1
            stats.per_module[name] = mean
            by_group.setdefault(group, []).append(mean)
        stats.per_group = {g: sum(v) / len(v) for g, v in by_group.items()}
        return stats

    def _peft_max_rank(self) -> int:
        cfg = self.config
        return max(getattr(cfg, "init_r", 0) or 0, cfg.r)

    def _peft_rank(self, module: nn.Module) -> int:
        if self.strategy == "adalora":
            return int(torch.count_nonzero(module.lora_E["default"]))
        return int(module.r["default"])

    # ---- weights --------------------------------------------------------------------------
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what the strategy adds or trains: adapter and router tensors (AdaLoRA: also
        its rank buffers), or every trainable tensor for full fine-tuning."""
        if self.strategy == "full":
            return {n: p.detach() for n, p in self.model.named_parameters() if p.requires_grad}
        state = {}
        for name, module in self.modules.items():
            for key, value in module.state_dict().items():
                if key.startswith("base_layer."):
                    continue
                if self.strategy in ("lora", "adalora") and "lora_" not in key and "ranknum" not in key:
                    continue
                state[f"{name}.{key}"] = value.detach()
        return state

    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.adapter_state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(
                f"adapter weights do not fit this model: {len(missing)} missing (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}); was it saved from the same "
                "backbone, strategy and targets?"
            )
        current = dict(self.model.state_dict())
        for key, value in state.items():
            if current[key].shape != value.shape:
                raise ValueError(
                    f"adapter tensor {key}: saved shape {tuple(value.shape)} != model {tuple(current[key].shape)}"
                )
        self.model.load_state_dict(state, strict=False)

    def merge(self) -> nn.Module:
        """Fold the adapters into the base weights (LoRA, AdaLoRA) and unwrap the layers; for
        full fine-tuning the model already is the result. LoRA-SP and LoRA-MoE depend on the
        input, so they cannot be merged: keep them wrapped (LoRA-SP: use the gathered path)."""
        if self.strategy == "vla_gse":
            raise ValueError(
                "vla_gse routes its specialists per token and cannot be merged whole; fold only the "
                "always-on generalists with VlaGseLinear.merge_generalists() on each module"
            )
        if self.strategy in ("lora_sp", "lora_moe"):
            raise ValueError(
                f"{self.strategy} computes an input-dependent update and cannot be merged into the base "
                "weights; run it wrapped (LoRA-SP: handle.set_inference_path('gathered'))"
            )
        if self.strategy in ("lora", "adalora") and not self.merged:
            self.peft_tuner.merge_and_unload()
            self.merged = True
        return self.model

    def __repr__(self) -> str:
        counts = self.parameter_counts()
        return (
            f"AdapterHandle({self.strategy}, {len(self.groups)} modules, "
            f"{counts.trainable:,}/{counts.total:,} trainable = {counts.percent:.2f}%)"
        )
