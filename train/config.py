"""`TrainConfig`: everything one training run needs, resolved and saved as `runs/<run>/config.json`.

Plain data, no torch: the GUI and CLI build it, the job process reads it back.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STRATEGIES = ("lora_sp", "lora", "adalora", "lora_moe", "vla_gse", "full")
AUX_OBJECTIVES = (None, "future_state")
SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "no", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = ""  # a dataset name under the workspace's datasets/ or a path to one
    run_name: str = ""
    preset: str = ""  # the preset this config started from ("" when built by hand)
    backbone: str = "tiny-smolvla"  # tiny-smolvla | tiny-pi0 | a local pretrained policy dir
    # strategy and its knobs (fields of the train.adapters config class of that strategy)
    strategy: str = "lora_sp"
    adapter: dict[str, Any] = field(default_factory=dict)
    targets: str | None = None  # e.g. "smolvla", "smolvla:language,action", "re:<regex>"; None: detect
    # data
    tasks: list[str] | None = None  # task instructions to train on; None = every task of the dataset
    val_episodes_per_task: int = 1  # held out per task for the validation loss
    val_every: int = 50
    val_batches: int = 2  # batches of validation frames per task, spread over its held-out episodes
    # optimisation
    steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-4
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # end the run (state "unstable") at a validation whose mean loss is above this: the study's
    # guard against a learning rate that a short sweep liked and a long run diverges at. A loss
    # that is not finite (NaN, inf) ends the run whatever this is.
    max_val_loss: float | None = None
    # std of Gaussian noise added to the normalised observation.state of training batches: a
    # policy fitted to a few clean demonstrations otherwise follows the state alone, and in
    # closed loop a small drift takes it onto another demonstration's path (docs/results)
    state_noise: float = 0.0
    precision: str = "auto"  # auto: bf16 on a GPU that has it, else fp32
    seed: int = 0
    # capability vectors (train/objectives.py): an auxiliary objective for the vector's "aux" run,
    # and the weight of the orthogonality to the backbone's vector for fine-tuning on it
    aux_objective: str | None = None  # None | "future_state": the state aux_horizon frames ahead
    aux_horizon: int = 10
    aux_weight: float = 1.0
    orth_weight: float = 0.0
    # policy config fields to override (e.g. chunk_size, train_expert_only)
    policy: dict[str, Any] = field(default_factory=dict)
    # bookkeeping
    log_every: int = 5
    checkpoint_every: int = 200
    # also save a resume point when this many seconds of training passed since the last save
    # (checked at logging steps; 0: off): a kill loses at most this much. Each resume point is
    # deleted once a newer checkpoint is in place, so they cost no disk; a save takes well under
    # a second here (an adapter run's 43 MB), so one per 5 minutes costs under 0.3% of the time.
    resume_every_s: float = 300.0
    # data-loading processes per training process; None: none on a CPU (they would take the
    # training's cores), up to 4 on a GPU (lerobot-train's default) while a core is left per
    # training process (train.data.loader_workers)
    num_workers: int | None = None
    # decode the dataset's videos once into a frame cache beside it (train/frame_cache.py) when
    # its frames take at most this many GB; 0: decode per sample, as lerobot does
    frame_cache_gb: float = 16.0
    # auto | cpu | cpu:N | cuda | cuda:N (accelerate picks under `accelerate launch`); cpu:N is
    # CPU lane N: jobs on different lanes train at once, each on its `threads`
    device: str = "auto"
    threads: int = 0  # CPU threads of the job's torch; 0: torch's default (one per core)
    # training processes on this machine (DDP: CPU processes over gloo, one GPU each over NCCL);
    # batch_size is the global batch, split evenly between them
    processes: int = 1
    accelerate_config: str | None = None  # an `accelerate config` file (FSDP, ...): launched with it
    backbone_cache: str | None = None  # where tiny backbones are built; None: the default cache

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r} unknown; choose one of {', '.join(STRATEGIES)}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(
                f"lr_schedule {self.lr_schedule!r} unknown; choose one of {', '.join(SCHEDULES)}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} unknown; choose one of {', '.join(PRECISIONS)}")
        for name in ("steps", "batch_size", "grad_accum", "log_every", "val_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be 0 or more (or null: by device), not {self.num_workers}")
        if self.threads < 0:
            raise ValueError(f"threads must be 0 (torch's default) or more, not {self.threads}")
        if self.processes < 1 or self.batch_size % self.processes:
            raise ValueError(
                f"processes must be >= 1 and divide batch_size (the global batch): {self.processes} "
                f"processes, batch_size {self.batch_size}"
            )
        if not self.resume_every_s >= 0:
            raise ValueError(
                f"resume_every_s must be >= 0 (0 turns resume points off), got {self.resume_every_s}"
            )
        if not self.frame_cache_gb >= 0:
            raise ValueError(
                f"frame_cache_gb must be >= 0 (0 turns the frame cache off), got {self.frame_cache_gb}"
            )
        if not self.state_noise >= 0:
            raise ValueError(f"state_noise must be >= 0 (a std in normalised units), got {self.state_noise}")
        if self.max_val_loss is not None and not self.max_val_loss > 0:
            raise ValueError(f"max_val_loss must be above 0 (or null: no limit), not {self.max_val_loss}")
        if self.val_episodes_per_task < 0:
            raise ValueError("val_episodes_per_task must be >= 0")
        if self.aux_objective not in AUX_OBJECTIVES:
            raise ValueError(f"aux_objective {self.aux_objective!r} unknown; choose one of {AUX_OBJECTIVES}")
        if self.aux_horizon < 1 or self.aux_weight < 0 or self.orth_weight < 0:
            raise ValueError("aux_horizon must be >= 1, aux_weight and orth_weight >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{path} not found: is this a run directory made by `piper-ws train`?"
            ) from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc})") from exc

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with fields replaced; dict fields (adapter, policy) are merged, not replaced."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; known keys: {sorted(known)}")
        merged = {}
        for key, value in overrides.items():
            current = getattr(self, key)
            merged[key] = (
                {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
            )
        return dataclasses.replace(self, **merged)
