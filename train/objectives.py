"""Training objectives beside the task loss and the adapters' own aux losses (capability
vectors, arXiv 2605.10903):

- `FutureStateObjective` (TrainConfig.aux_objective = "future_state"): a linear head on the
  action expert's last hidden states (the input of `action_out_proj`, mean over the chunk)
  predicts the follower's measured state `aux_horizon` frames ahead, as the change from
  now in units of the dataset's state std (clamped at the episode's last frame). Every
  LeRobotDataset the workstation records has it for free; the head is thrown away after.
- `OrthogonalRegulariser` (TrainConfig.orth_weight > 0): orth_weight * sum_k <dW_k, v_k/|v_k|>^2
  over the weights k of the backbone's capability vector v: the squared length of the
  update's projection on the vector, tensor by tensor; zero for updates orthogonal to it.
  dW is W - W0 for a full fine-tune and scaling * B A for LoRA.

`LossModule` puts the task loss, the adapters' aux losses and these in one forward (what
the loop trains and DDP wraps).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .config import TrainConfig

VECTOR_FILE = "capability_vector.safetensors"  # in a backbone dir made by train.capvector


def projection_loss(updates: dict[str, torch.Tensor], vector: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum_k <u_k, v_k / |v_k|>^2 over the keys of `updates` (the formula, on plain tensors)."""
    total = torch.zeros(())
    for key, update in updates.items():
        v = vector[key].double()
        total = total + ((update.double() * v).sum() / v.norm()) ** 2
    return total


class OrthogonalRegulariser:
    """Keeps the fine-tuning update orthogonal to a capability vector, for "full" and "lora"."""

    def __init__(self, handle, vector: dict[str, torch.Tensor], weight: float) -> None:
        self.weight = weight
        self.full: list[tuple[nn.Parameter, torch.Tensor, torch.Tensor]] = []  # (W, v_hat, <W0, v_hat>)
        self.lora: list[tuple[nn.Module, torch.Tensor]] = []  # (peft LoRA layer, v_hat)
        if handle.strategy == "full":
            for name, param in handle.model.named_parameters():
                v_hat = _unit(vector.get(name), param)
                if param.requires_grad and v_hat is not None:
                    self.full.append((param, v_hat, (param.detach().float() * v_hat).sum()))
        elif handle.strategy == "lora":
            for name, module in handle.modules.items():
                v_hat = _unit(vector.get(f"{name}.weight"), module.base_layer.weight)
                if v_hat is not None:
                    self.lora.append((module, v_hat))
        else:
            raise ValueError(
                f"orth_weight applies to the full and lora strategies, not {handle.strategy}: "
                "set orth_weight to 0 or train with --preset ...-full / ...-lora32"
            )
        if not self.full and not self.lora:
            raise ValueError(
                "the capability vector shares no weight with what this run trains: check the targets"
            )

    def loss(self) -> torch.Tensor:
        self._follow_device()
        terms = [((p.float() * v).sum() - start) ** 2 for p, v, start in self.full]
        for module, v in self.lora:
            a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
            # <s B A, v> = s * sum((B^T v) * A): never forms the d_out x d_in update
            terms.append((module.scaling["default"] * ((b.float().T @ v) * a.float()).sum()) ** 2)
        return self.weight * torch.stack(terms).sum()

    def _follow_device(self) -> None:
        """Accelerate moves the model after this was built: move the vectors along, once."""
        self.full = [(p, v.to(p.device), c.to(p.device)) for p, v, c in self.full]
        self.lora = [(m, v.to(m.base_layer.weight.device)) for m, v in self.lora]


def _unit(v: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    if v is None or v.shape != like.shape or not v.is_floating_point():
        return None
    norm = v.float().norm()
    return v.float() / norm if norm > 0 else None


class FutureStateObjective(nn.Module):
    def __init__(self, policy, dataset, horizon: int, weight: float) -> None:
        super().__init__()
        table = dataset.hf_dataset.data  # the arrow table: no per-row decoding
        index = torch.as_tensor(table.column("index").to_numpy()).long()
        episode = torch.as_tensor(table.column("episode_index").to_numpy()).long()
        states = torch.tensor(table.column("observation.state").to_pylist(), dtype=torch.float32)
        size = int(index.max()) + 1
        self.register_buffer("states", torch.zeros(size, states.shape[-1]).index_copy(0, index, states))
        last = torch.zeros(size, dtype=torch.long)
        for ep in episode.unique():
            rows = index[episode == ep]
            last[rows] = rows.max()
        self.register_buffer("last", last)
        std = torch.as_tensor(dataset.meta.stats["observation.state"]["std"]).float()
        self.register_buffer("std", std.clamp_min(1e-3))
        self.horizon, self.weight = horizon, weight
        out_proj = policy.model.action_out_proj  # SmolVLA and pi0 both end in it
        self.head = nn.Linear(out_proj.in_features, states.shape[-1])
        self._features: torch.Tensor | None = None
        out_proj.register_forward_hook(self._capture)

    def _capture(self, module, args, output) -> None:
        self._features = args[0]

    def target(self, index: torch.Tensor) -> torch.Tensor:
        """(state[t + horizon] - state[t]) / std, with t + horizon clamped to the episode's end."""
        index = index.long().to(self.last.device)
        future = torch.minimum(index + self.horizon, self.last[index])
        return (self.states[future] - self.states[index]) / self.std

    def losses(self, batch) -> dict[str, torch.Tensor]:
        features, self._features = self._features, None
        prediction = self.head(features.float().mean(dim=1))
        error = (prediction - self.target(batch["index"])).square().mean()
        return {"future_state": self.weight * error}


class Objectives:
    """What a run adds to its loss beside the adapters' aux losses; empty for most runs."""

    def __init__(self, modules: list[nn.Module], orth: OrthogonalRegulariser | None) -> None:
        self.modules, self.orth = modules, orth

    def parameters(self) -> list[nn.Parameter]:
        return [p for module in self.modules for p in module.parameters()]

    def losses(self, batch) -> dict[str, torch.Tensor]:
        out = {}
        for module in self.modules:
            out.update(module.losses(batch))
        if self.orth is not None:
            out["orth"] = self.orth.loss()
        return out


def build_objectives(config: TrainConfig, policy, handle, dataset, backbone_dir: Path, device) -> Objectives:
    modules = []
    if config.aux_objective == "future_state":
        modules.append(
            FutureStateObjective(policy, dataset, config.aux_horizon, config.aux_weight).to(device)
        )
    orth = None
    if config.orth_weight > 0:
        from safetensors.torch import load_file

        path = Path(backbone_dir) / VECTOR_FILE
        if not path.is_file():
            raise ValueError(
                f"orth_weight > 0 needs a capability vector, and {backbone_dir} has none: build a backbone "
                "with `piper-ws capvector` and train on it, or set orth_weight to 0"
            )
        orth = OrthogonalRegulariser(handle, load_file(str(path)), config.orth_weight)
    return Objectives(modules, orth)


class LossModule(nn.Module):
    """The policy's task loss, the strategy's auxiliary losses and the run's extra objectives
    in one forward. Under DDP every loss must come out of the wrapped forward: LoRA-SP's
    spectral term reaches adapter weights whose layer output the task loss never uses (the
    VLM's last MLP), and DDP would count their gradient twice if it were computed outside."""

    def __init__(self, policy, handle, objectives) -> None:
        super().__init__()
        self.policy = policy
        self.objective_modules = nn.ModuleList(objectives.modules)  # trained: DDP syncs them too
        self.handle, self.objectives = handle, objectives  # plain attributes, not submodules

    def forward(self, batch, task_scale=1.0):
        task_loss, _ = self.policy(batch)
        task_loss = task_loss * task_scale  # train.distributed.task_loss_scale under several processes
        aux = self.handle.aux_losses()
        extra = self.objectives.losses(batch)  # capability vectors' aux objective, orth
        return task_loss, aux, extra
