"""Several training processes that compute what one process would.

Each of `world` processes takes rank r's slice of every global batch (`EpochBatchSampler`).
Gradients are averaged by DDP; that alone equals one process's step only if every sample
also gets the same random draws. So every rank draws the *global* batch's flow-matching
noise and time, and state noise, from the same generator state (every rank is seeded
alike) and keeps its own rows. Then the loss curve does not depend on the process count
(up to float summation order), and a checkpoint from N processes resumes exactly in M.

SmolVLA's task loss is a mean over the valid (not padded) action steps of the batch, so the
ranks' means are weighed by their share of valid steps before DDP averages them.

Also here: the collectives the loop needs (a stop that every rank agrees on, means of the
logged terms, sums of the active-rank histograms); with one process they are no-ops.
"""

from __future__ import annotations

import torch


class Ranks:
    """This process's place among the training processes, and the collectives over them."""

    def __init__(self, accelerator) -> None:
        self.accelerator = accelerator
        self.rank = accelerator.process_index
        self.world = accelerator.num_processes

    def rows(self, local: int) -> slice:
        """This rank's rows of a global draw of `local * world` rows."""
        return slice(self.rank * local, (self.rank + 1) * local)

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any (a cancel seen by one rank stops all)."""
        if self.world == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.reduce(value, "sum").item() > 0)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        return values if self.world == 1 else self._reduce(values, "mean")

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        return values if self.world == 1 else self._reduce(values, "sum")

    def _reduce(self, values: torch.Tensor, how: str) -> torch.Tensor:
        # NCCL reduces only tensors on the GPU
        return self.accelerator.reduce(values.to(self.accelerator.device), how)


def averaged_entries(policy, batch: dict) -> torch.Tensor:
    """How many entries the policy's mean task loss divides by for this batch: SmolVLA averages
    over the valid (not padded) action steps, pi0 over every entry (lerobot's `forward`)."""
    pad = batch.get("action_is_pad")
    if policy.config.type == "smolvla" and pad is not None:
        return (~pad).sum().clamp_min(1).float()
    return torch.tensor(float(len(batch["action"])), device=batch["action"].device)


def task_loss_scale(policy, batch: dict, ranks: Ranks) -> torch.Tensor | float:
    """The factor on this rank's mean task loss that makes DDP's average over ranks the mean
    over the global batch (ranks whose slices hold more valid entries weigh more)."""
    if ranks.world == 1:
        return 1.0
    entries = averaged_entries(policy, batch)
    return entries / ranks.mean(entries.reshape(1))[0]


def share_random_draws(flow_model, ranks: Ranks) -> None:
    """Make `flow_model.sample_noise` / `sample_time` (SmolVLA's and pi0's flow-matching
    draws) draw for the global batch and return this rank's rows."""
    if ranks.world == 1:
        return
    sample_noise, sample_time = flow_model.sample_noise, flow_model.sample_time

    def global_noise(shape, device):
        local = shape[0]
        return sample_noise((local * ranks.world, *shape[1:]), device)[ranks.rows(local)]

    def global_time(bsize, device):
        return sample_time(bsize * ranks.world, device)[ranks.rows(bsize)]

    flow_model.sample_noise, flow_model.sample_time = global_noise, global_time


def global_randn_like(local: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Standard normal noise shaped like `local`, this rank's rows of one global draw."""
    if ranks.world == 1:
        return torch.randn_like(local)
    rows = local.shape[0]
    full = torch.randn((rows * ranks.world, *local.shape[1:]), dtype=local.dtype, device=local.device)
    return full[ranks.rows(rows)]
