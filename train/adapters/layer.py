"""What our own adapter layers (LoRA-SP, LoRA-MoE) share: they wrap a frozen nn.Linear,
keep its call signature and attributes, and count the active rank of every forward."""

from __future__ import annotations

import math

import torch
from torch import nn


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
        #: the auxiliary losses of the last training forward (scalar tensors), or {}
        self.last_aux: dict[str, torch.Tensor] = {}
        self._rank_hist: torch.Tensor | None = None

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
        if not torch.is_autocast_enabled(x.device.type):
            x = x.to(self.adapter_dtype())
        return out + self.adapter_delta(x).to(out.dtype)

    # Active-rank bookkeeping: a histogram of k over every row since the last reset, kept
    # on the layer's device so that training steps never wait for a host sync.
    def record_ranks(self, k: torch.Tensor) -> None:
        k = k.detach().reshape(-1).long()
        if self._rank_hist is None or self._rank_hist.device != k.device:
            self._rank_hist = torch.zeros(self.max_rank + 1, dtype=torch.long, device=k.device)
        # index_add_, not bincount: bincount on CUDA reads the max back to the host.
        self._rank_hist.index_add_(0, k, torch.ones_like(k))

    def rank_histogram(self, reset: bool = False) -> torch.Tensor:
        """Counts of rows per active rank 0..max_rank (a CPU int64 tensor)."""
        hist = self._rank_hist
        out = torch.zeros(self.max_rank + 1, dtype=torch.long) if hist is None else hist.cpu()
        if reset:
            self._rank_hist = None
        return out
