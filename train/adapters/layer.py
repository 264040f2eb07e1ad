"""What our own adapter layers (LoRA-SP, LoRA-MoE) share: they wrap a frozen nn.Linear,
keep its call signature and attributes, and count the active rank of every forward."""

from __future__ import annotations

import math

import torch
from torch import nn

from .lora_sp_fused import autocast_dtype


def kaiming_uniform_(weight: torch.Tensor) -> None:
    """LoRA's A init (peft and nn.Linear use the same a=sqrt(5) Kaiming-uniform)."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))


class AdapterLinear(nn.Module):
    """A frozen `base_layer` plus an additive adapter. Subclasses implement `adapter_delta`."""

    #: the maximum rank a forward can use (the histogram has max_rank + 1 bins)
    max_rank: int

    def __init__(self, base_layer: nn.Linear) -> None:
        super().__init__()
        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"adapters wrap nn.Linear layers, got {type(base_layer).__name__}")
        self.base_layer = base_layer
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self.adapter_enabled = True
        self._reset_aux()
        self._reset_ranks()

    # Model code reads `q_proj.weight.dtype` etc.: answer for the frozen layer.
    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def adapter_dtype(self) -> torch.dtype:
        raise NotImplementedError

    def adapter_delta(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        out = self.base_layer(x, *args, **kwargs)
        if not self.adapter_enabled:
            return out
        # Under autocast the matmuls pick their own dtype; otherwise run the adapter in its
        # own dtype (float32 adapters on a bf16 base, as peft does) and cast back.
        if autocast_dtype(x.device.type) is None:
            x = x.to(self.adapter_dtype())
        # In place: the base output is this call's own (backward keeps x, not it), and a fresh
        # [tokens, d_out] sum cost 5% of a SmolVLA-wide LoRA-SP forward at batch 1 on the CPU.
        return out.add_(self.adapter_delta(x).to(out.dtype))

    # Auxiliary losses of the training forwards since the last `take_aux`: every call adds
    # (a layer may run more than once per forward: SmolVLA's vision tower once per camera),
    # weighted by its rows, so a term is its mean over all the tokens the layer saw.
    def record_aux(self, names: tuple[str, ...], values: torch.Tensor, rows: int) -> None:
        """Add one call's terms (`values[i]` is term `names[i]`, a mean over `rows` rows)."""
        if self._aux_names is not None and names != self._aux_names:
            raise ValueError(f"aux terms changed within a forward: {self._aux_names} then {names}")
        weighted = values * rows
        self._aux_sum = weighted if self._aux_sum is None else self._aux_sum + weighted
        self._aux_names = names
        self._aux_rows += rows

    def take_aux(self) -> tuple[tuple[str, ...], torch.Tensor, int] | None:
        """(names, summed row-weighted terms, rows) since the last take, then reset; None if
        no training forward ran."""
        if self._aux_sum is None:
            return None
        taken = (self._aux_names, self._aux_sum, self._aux_rows)
        self._reset_aux()
        return taken

    @property
    def last_aux(self) -> dict[str, torch.Tensor]:
        """The accumulated terms as {name: mean} (read only; `take_aux` consumes them)."""
        if self._aux_sum is None:
            return {}
        return dict(zip(self._aux_names, self._aux_sum / self._aux_rows, strict=True))

    @last_aux.setter
    def last_aux(self, terms: dict[str, torch.Tensor]) -> None:
        """`layer.last_aux = {...}` in a forward records one call (weight 1); {} resets."""
        if not terms:
            self._reset_aux()
            return
        self.record_aux(tuple(terms), torch.stack([t.float() for t in terms.values()]), 1)

    def _reset_aux(self) -> None:
        self._aux_names: tuple[str, ...] | None = None
        self._aux_sum: torch.Tensor | None = None
        self._aux_rows = 0

    # Active-rank bookkeeping since the last reset, without host syncs in training steps.
    # LoRA-SP adds, per forward, how many rows kept the vector at each ascending-score
    # position (position p is kept iff k > max_rank - 1 - p, so these are the counts of
    # k > i read backwards); layers of a fixed rank just count rows.
    def record_kept_counts(self, kept_counts: torch.Tensor, rows: int) -> None:
        if self._kept_counts is None or self._kept_counts.device != kept_counts.device:
            self._kept_counts = torch.zeros(self.max_rank, dtype=torch.long, device=kept_counts.device)
        self._kept_counts += kept_counts
        self._kept_rows += rows

    def record_fixed_rank(self, rank: int, rows: int) -> None:
        self._fixed_rank_rows[rank] = self._fixed_rank_rows.get(rank, 0) + rows

    def rank_histogram(self, reset: bool = False) -> torch.Tensor:
        """Counts of rows (tokens or samples) per active rank 0..max_rank (CPU int64)."""
        hist = torch.zeros(self.max_rank + 1, dtype=torch.long)
        if self._kept_counts is not None and self._kept_rows:
            above = self._kept_counts.cpu().flip(0)  # above[i]: rows with k > i
            hist[0] += self._kept_rows - above[0]
            hist[1:-1] += above[:-1] - above[1:]
            hist[-1] += above[-1]
        for rank, rows in self._fixed_rank_rows.items():
            hist[rank] += rows
        if reset:
            self._reset_ranks()
        return hist

    def _reset_ranks(self) -> None:
        self._kept_counts: torch.Tensor | None = None
        self._kept_rows = 0
        self._fixed_rank_rows: dict[int, int] = {}
