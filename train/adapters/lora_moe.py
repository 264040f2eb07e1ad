"""LoRA-MoE: N LoRA experts of rank r/N with a linear router (the paper's baseline [7]).

The experts are stored stacked (A: [N * r_e, d_in], B: [d_out, N * r_e]) so that one pair
of matmuls computes them all; the router's gate then weights each expert's r_e slots.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import LoraMoEConfig
from .layer import AdapterLinear, kaiming_uniform_
from .lora_sp import balance_loss, z_loss


class LoraMoELinear(AdapterLinear):
    def __init__(self, base_layer: nn.Linear, config: LoraMoEConfig) -> None:
        super().__init__(base_layer)
        self.config = config
        self.max_rank = config.r
        self.scale = config.scale
        n, r_e = config.num_experts, config.expert_rank
        w = base_layer.weight
        dtype = w.dtype if w.dtype in (torch.float32, torch.float64) else torch.float32
        self.lora_A = nn.Parameter(torch.empty(n * r_e, self.in_features, device=w.device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, n * r_e, device=w.device, dtype=dtype))
        for expert in self.lora_A.data.view(n, r_e, self.in_features):
            kaiming_uniform_(expert)
        self.router = nn.Linear(self.in_features, n, device=w.device, dtype=dtype)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def adapter_dtype(self) -> torch.dtype:
        return self.lora_A.dtype

    def expert_gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, gates, top-1 one-hot); gates are softmax probs, zeroed but the top-1 for top1."""
        logits = self.router(x)
        probs = logits.float().softmax(dim=-1)
        top1 = F.one_hot(probs.argmax(dim=-1), self.config.num_experts).to(probs.dtype)
        gates = probs * top1 if self.config.routing == "top1" else probs
        return logits, gates, top1

    def adapter_delta(self, x: torch.Tensor) -> torch.Tensor:
        n, r_e = self.config.num_experts, self.config.expert_rank
        logits, gates, top1 = self.expert_gates(x)
        self.record_fixed_rank(r_e if self.config.routing == "top1" else n * r_e, x.shape[:-1].numel())
        if self.training and torch.is_grad_enabled():
            self.last_aux = {
                "balance": balance_loss(logits, top1),
                "z": z_loss(logits, self.config.z_loss_form),
            }
        hidden = F.linear(self.dropout(x), self.lora_A)  # [..., n * r_e]
        slot_gates = (gates * self.scale).to(hidden.dtype).repeat_interleave(r_e, dim=-1)
        return F.linear(hidden * slot_gates, self.lora_B)
