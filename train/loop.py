"""The training loop: accelerate around a lerobot policy, its processors and an adapter strategy.

    run_training(config, run_dir)          # what the background job calls

One optimiser step = `grad_accum` micro-batches. Loss = task loss + the strategy's weighted
auxiliary losses. Per step the adapter hook `handle.set_step` runs (LoRA-SP's eta schedule,
AdaLoRA's rank allocation). Logging, validation and checkpoints never draw from the
training RNG, so a resumed run continues exactly as an uninterrupted one.
The same code runs on CPU, one GPU, or several processes (`TrainConfig.processes`, started
by the job through torchrun or `accelerate launch`): `batch_size` is the global batch, each
process takes its slice, and `train.distributed` keeps the numbers those of one process.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .layout import RUN_CONFIG
from .metrics import MetricsWriter, peak_memory_mb

log = logging.getLogger("train")

VAL_SEED = 12345  # validation draws its flow-matching noise from this fixed seed


@dataclass
class TrainResult:
    state: str  # "completed" | "canceled" | "stopped" (stop_at_step reached) | "unstable" (a loss not finite, or above max_val_loss)
    step: int
    final_loss: float | None
    final_val: dict[str, float]
    trainable_percent: float
    checkpoint: Path | None


def adapter_config(config: TrainConfig):
    from . import adapters

    knobs = dict(config.adapter)
    classes = {
        "lora_sp": adapters.LoraSPConfig,
        "lora_moe": adapters.LoraMoEConfig,
        "vla_gse": adapters.VlaGseConfig,
        "full": adapters.FullFinetuneConfig,
        "lora": adapters.LoraConfig,
        "adalora": adapters.AdaLoraConfig,
    }
    if config.strategy == "adalora":
        knobs.setdefault("total_step", config.steps)
    try:
        return classes[config.strategy](**knobs)
    except TypeError as exc:
        raise ValueError(f"bad knobs for strategy {config.strategy!r}: {exc}") from exc


def lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    warmup, total = config.warmup_steps, config.steps

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        if config.lr_schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if config.lr_schedule == "linear":
            return max(0.0, 1 - progress)
        return 1.0

    return factor


def _mixed_precision(config: TrainConfig) -> str:
    import torch

    if config.precision != "auto":
        return config.precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


@contextlib.contextmanager
def _isolated_rng(seed: int):
    """Run a block with its own RNG and put the training RNG back afterwards."""
    import torch

    from .checkpoint import rng_state, set_rng_state

    saved = rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        set_rng_state(saved)


class Trainer:
    """Builds everything a run needs, then `fit()`s. Separate steps so tests and benchmarks
    can reach the pieces (policy, handle, one batch)."""

    def __init__(
        self, config: TrainConfig, run_dir: str | Path, datasets_dir: str | Path | None = None
    ) -> None:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, set_seed
        from lerobot.configs.types import FeatureType
        from lerobot.datasets import LeRobotDataset, LeRobotDatasetMetadata
        from lerobot.datasets.factory import resolve_delta_timestamps
        from lerobot.utils.feature_utils import dataset_to_policy_features

        from .adapters import apply_adapters
        from .backbones import load_base_policy, load_processors, resolve_backbone
        from .data import (
            EpochBatchSampler,
            check_features,
            loader_workers,
            resolve_dataset_path,
            split_episodes,
        )
        from .distributed import Ranks, share_random_draws
        from .frame_cache import FrameCache

        self.config = config
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cpu = config.device.split(":")[0] == "cpu" or not torch.cuda.is_available()
        if config.threads:
            torch.set_num_threads(config.threads)
        # Strategies leave some parameters without a gradient in a step (the VLM's unused head,
        # a router's unchosen experts): DDP must not wait for them.
        ddp = DistributedDataParallelKwargs(find_unused_parameters=True, broadcast_buffers=False)
        self.accelerator = Accelerator(
            mixed_precision=_mixed_precision(config), cpu=cpu, kwargs_handlers=[ddp]
        )
        self.ranks = Ranks(self.accelerator)
        self.workers = loader_workers(
            config.num_workers, self.accelerator.device.type, config.processes, len(os.sched_getaffinity(0))
        )
        if config.batch_size % self.ranks.world:
            raise ValueError(
                f"batch_size {config.batch_size} does not split over {self.ranks.world} processes: "
                "make it a multiple of the process count"
            )
        set_seed(config.seed)  # the same on every rank: random draws are global (train.distributed)

        dataset_path = resolve_dataset_path(config.dataset, datasets_dir)
        repo_id = f"local/{dataset_path.name}"
        meta = LeRobotDatasetMetadata(repo_id, root=dataset_path)
        check_features(meta)
        self.split = split_episodes(meta, config.tasks, config.val_episodes_per_task)

        self.backbone = resolve_backbone(config.backbone, config.backbone_cache)
        features = dataset_to_policy_features(meta.features)
        outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
        inputs = {k: f for k, f in features.items() if k not in outputs}
        self.policy = load_base_policy(self.backbone, inputs, outputs, **config.policy)
        self.handle = apply_adapters(self.policy, adapter_config(config), config.targets)
        share_random_draws(self.policy.model, self.ranks)
        self.counts = self.handle.parameter_counts()
        device = self.accelerator.device
        self.preprocessor, self.postprocessor = load_processors(
            self.backbone, self.policy.config, meta.stats, device=device.type
        )

        delta = resolve_delta_timestamps(self.policy.config, meta)
        self.train_set = LeRobotDataset(
            repo_id, root=dataset_path, episodes=self.split.train, delta_timestamps=delta
        )
        self.val_sets = {
            task: LeRobotDataset(repo_id, root=dataset_path, episodes=eps, delta_timestamps=delta)
            for task, eps in self.split.val.items()
        }
        cache = FrameCache.open_or_build(
            dataset_path, meta, self.train_set._video_backend, config.frame_cache_gb
        )
        if cache is not None:  # the same frames, read instead of decoded per sample
            for dataset in (self.train_set, *self.val_sets.values()):
                cache.attach(dataset)
        self.sampler = EpochBatchSampler(
            len(self.train_set),
            config.batch_size,
            config.seed,
            rank=self.ranks.rank,
            world=self.ranks.world,
        )

        from .objectives import LossModule, build_objectives

        self.objectives = build_objectives(
            config, self.policy, self.handle, self.train_set, self.backbone.path, self.accelerator.device
        )
        params = self.handle.trainable_parameters() + self.objectives.parameters()
        # torch's fused AdamW updates every tensor in one kernel: LoRA-SP has six per layer, and on
        # mini-smolvla the per-tensor loop took 62 ms a step on this 2-core CPU, fused 16
        # (`bench_train.py --study-policy`)
        fused = self.accelerator.device.type in ("cpu", "cuda")
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))
        step_module = LossModule(self.policy, self.handle, self.objectives)
        self.step_module, self.optimizer, self.scheduler = self.accelerator.prepare(
            step_module, optimizer, scheduler
        )
        self.model = self.policy  # on the device now; validation and checkpoints use it unwrapped
        self.step = 0
        self.batches_done = 0  # micro-batches taken from the sampler (where a resume restarts it)
        self.metrics = MetricsWriter(self.run_dir)

    # ---------------------------------------------------------------- data

    def _loader(self, dataset, batch_sampler=None, batch_size=None, workers: int = 0):
        import torch

        kwargs = dict(
            num_workers=workers,
            pin_memory=self.accelerator.device.type == "cuda",
            # its own generator: creating an iterator must not draw from the training RNG
            generator=torch.Generator().manual_seed(self.config.seed),
        )
        if batch_sampler is not None:
            return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, **kwargs)
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, **kwargs)

    def batches(self):
        """Training batches forever (epoch after epoch), already through the preprocessor."""
        while True:
            for raw in self._loader(self.train_set, batch_sampler=self.sampler, workers=self.workers):
                self.batches_done += 1
                yield self._augment(self.preprocessor(raw))

    def _augment(self, batch: dict) -> dict:
        """Training-only noise on the normalised state (`TrainConfig.state_noise`)."""
        from lerobot.utils.constants import OBS_STATE

        if self.config.state_noise > 0 and OBS_STATE in batch:
            from .distributed import global_randn_like

            state = batch[OBS_STATE]
            batch[OBS_STATE] = state + self.config.state_noise * global_randn_like(state, self.ranks)
        return batch

    # ---------------------------------------------------------------- steps

    def train_step(self, micro_batches) -> dict[str, Any]:
        """One optimiser step over `grad_accum` micro-batches; returns the logged terms as
        detached 0-dim tensors (read on the host once per logging window, not per step)."""
        import torch

        from .distributed import task_loss_scale

        module, acc = self.step_module, self.accelerator
        if not self.model.training:  # train() walks every module (~30 ms on SmolVLA): once, not per step
            module.train()
        sums: dict[str, Any] = {}
        n = len(micro_batches)
        for i, batch in enumerate(micro_batches):
            sync = contextlib.nullcontext() if i == n - 1 else acc.no_sync(module)
            with sync, acc.autocast():
                task_loss, aux, extra = module(batch, task_loss_scale(self.policy, batch, self.ranks))
                loss = task_loss + aux["total"] + sum(extra.values())
            acc.backward(loss / n)
            terms = {"loss": loss, "task_loss": task_loss, **{f"aux/{k}": v for k, v in extra.items()}}
            terms.update({f"aux/{k}": v for k, v in aux.items() if k != "total" and torch.is_tensor(v)})
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value.detach() / n
        if self.config.grad_clip > 0:
            acc.clip_grad_norm_(self.handle.trainable_parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.handle.set_step(self.step)  # after optimizer.step, before zero_grad (AdaLoRA reads grads)
        self.optimizer.zero_grad(set_to_none=True)
        return sums

    def validate(self) -> dict[str, float]:
        """Mean task loss per held-out task on `val_batches` batches of frames spread over its
        held-out episodes, with fixed noise (comparable across steps and runs)."""
        import torch

        from .data import spread_indices

        if not self.val_sets:
            return {}
        self.model.eval()
        out = {}
        with _isolated_rng(VAL_SEED), torch.no_grad():
            for task, dataset in self.val_sets.items():
                losses = []
                frames = spread_indices(len(dataset), self.config.val_batches * self.config.batch_size)
                loader = self._loader(
                    torch.utils.data.Subset(dataset, frames), batch_size=self.config.batch_size
                )
                for raw in loader:
                    with self.accelerator.autocast():
                        loss, _ = self.model(self.preprocessor(raw))
                    losses.append(float(loss))
                out[task] = sum(losses) / len(losses)
        self.handle.aux_losses()  # consume what validation forwards left behind
        self.handle.active_rank(reset=True)
        return out

    # ---------------------------------------------------------------- checkpoints

    def _resume_point_due(self, last_save: float) -> bool:
        """Whether `resume_every_s` of training passed since the last save, on every rank alike.
        Asked at logging steps only: agreeing across ranks takes a collective."""
        every = self.config.resume_every_s
        if not every or self.step % self.config.log_every:
            return False
        return self.ranks.any(time.perf_counter() - last_save >= every)

    def save(self, resume_point: bool = False) -> Path | None:
        from .checkpoint import rng_state, save_checkpoint

        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return None
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "batches_done": self.batches_done,
        }
        path = save_checkpoint(
            self.run_dir,
            self.step,
            self.accelerator.unwrap_model(self.model),
            self.handle,
            self.preprocessor,
            self.postprocessor,
            self.backbone,
            state,
            resume_point=resume_point,
        )
        self.metrics.write("event", self.step, event="checkpoint", path=str(path), resume_point=resume_point)
        return path

    def restore(self, checkpoint: str | int = "last") -> int:
        """Load model weights, optimiser, scheduler, RNG and step from a checkpoint."""
        from safetensors.torch import load_file

        from .checkpoint import checkpoint_dir, load_training_state, set_rng_state
        from .layout import PRETRAINED

        path = checkpoint_dir(self.run_dir, checkpoint)
        weights_dir = path / PRETRAINED
        device = self.accelerator.device
        if self.handle.strategy == "full":
            state = load_file(str(weights_dir / "model.safetensors"), device=str(device))
            self.accelerator.unwrap_model(self.model).load_state_dict(state, strict=False)
        else:
            state = load_file(str(weights_dir / "adapter_model.safetensors"), device=str(device))
            self.handle.load_adapter_state_dict(state)
        training = load_training_state(path)
        self.optimizer.load_state_dict(training["optimizer"])
        self.scheduler.load_state_dict(training["scheduler"])
        self.step = int(training["step"])
        if self.handle.strategy == "adalora":
            self.handle.step = self.step  # its allocator already ran for these steps; do not re-run it
        else:
            self.handle.set_step(self.step)
        self.batches_done = int(training["batches_done"])
        self.sampler.start_at(self.batches_done)
        set_rng_state(training["rng"])  # rank 0's: every rank's is the same (set_seed, global draws)
        if self.accelerator.is_main_process:
            self.metrics.truncate_after(self.step)
        return self.step

    # ---------------------------------------------------------------- the run

    def fit(
        self, should_stop: Callable[[], bool] = lambda: False, stop_at_step: int | None = None
    ) -> TrainResult:
        import torch

        cfg = self.config
        per_step = cfg.batch_size * cfg.grad_accum
        main = self.accelerator.is_main_process
        event = "resumed" if self.step else "started"
        if main:
            self.metrics.write(
                "event",
                self.step,
                event=event,
                strategy=self.handle.strategy,
                trainable=self.counts.trainable,
                total=self.counts.total,
                trainable_percent=self.counts.percent,
                train_episodes=len(self.split.train),
                val_episodes={t: len(e) for t, e in self.split.val.items()},
                loader_workers=self.workers,
            )
        log.info(
            "%s at step %d/%d: %s on %s, %s trainable of %s (%.2f%%), %d train frames, device %s, %d threads, "
            "%d loader workers",
            event, self.step, cfg.steps, self.handle.strategy, self.backbone.name, f"{self.counts.trainable:,}",
            f"{self.counts.total:,}", self.counts.percent, len(self.train_set), self.accelerator.device,
            torch.get_num_threads(), self.workers,
        )  # fmt: skip
        batches = self.batches()
        window_start, window_steps, window_sums = time.perf_counter(), 0, {}
        last_save = window_start
        last_loss, last_val, checkpoint, state = None, {}, None, "completed"
        diverged = False  # a loss went NaN: the weights are not worth a checkpoint
        saved_step = self.step if self.step else None  # alike on every rank; a resume starts on disk
        while self.step < cfg.steps:
            if self.ranks.any(should_stop()):  # every rank stops at the same step
                state = "canceled"
                break
            if stop_at_step is not None and self.step >= stop_at_step:
                state = "stopped"
                break
            terms = self.train_step([next(batches) for _ in range(cfg.grad_accum)])
            window_steps += 1
            for key, value in terms.items():
                window_sums[key] = window_sums.get(key, 0.0) + value
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                elapsed = time.perf_counter() - window_start
                step_time = elapsed / window_steps
                values = torch.stack([torch.as_tensor(v).float() for v in window_sums.values()])
                values = self.ranks.mean(values / window_steps)
                means = dict(zip(window_sums, values.tolist(), strict=True))  # one host read
                last_loss = means["loss"]
                full = self.handle.strategy == "full"
                stats = None if full else self.handle.active_rank(reset=True, reduce=self.ranks.sum)
                ranks = stats.as_log() if stats else {}
                if main:
                    self.metrics.write(
                        "train",
                        self.step,
                        total_steps=cfg.steps,
                        lr=self.scheduler.get_last_lr()[0],
                        samples_per_s=per_step / step_time,
                        steps_per_s=1 / step_time,
                        peak_memory_mb=peak_memory_mb(self.accelerator.device),
                        eta_s=step_time * (cfg.steps - self.step),
                        **means,
                        **ranks,
                    )
                if main and stats and self.step == cfg.steps:  # the paper's end-of-training distribution
                    self.metrics.write(
                        "event", self.step, event="active_rank_distribution", histogram=stats.histogram
                    )
                log.info(
                    "step %d/%d loss %.4f (%.2f steps/s)", self.step, cfg.steps, last_loss, 1 / step_time
                )
                window_start, window_steps, window_sums = time.perf_counter(), 0, {}
                if not math.isfinite(last_loss):  # reduced above, so alike on every rank
                    log.warning("training loss is %s at step %d: stopping", last_loss, self.step)
                    state, diverged = "unstable", True
                    break
            if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                last_val = self.validate()
                mean = sum(last_val.values()) / len(last_val) if last_val else None
                if main and last_val:
                    self.metrics.write(
                        "val", self.step, **{f"val/{t}": v for t, v in last_val.items()}, **{"val/mean": mean}
                    )
                window_start = time.perf_counter()  # validation time is not training speed
                diverged = self.ranks.any(mean is not None and not math.isfinite(mean))
                over = self.ranks.any(
                    cfg.max_val_loss is not None and mean is not None and mean > cfg.max_val_loss
                )
                if diverged or over:
                    log.warning("validation loss %s (max_val_loss %s): stopping", mean, cfg.max_val_loss)
                    state = "unstable"
                    break
            if self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                checkpoint, saved_step = self.save(), self.step
                window_start = last_save = time.perf_counter()
            elif self.step < cfg.steps and self._resume_point_due(last_save):
                checkpoint, saved_step = self.save(resume_point=True), self.step
                window_start = last_save = time.perf_counter()
        # A run that stops short saves to be continued (a resume point: once continued, not
        # kept), unless its step is on disk already: re-saving a cadence checkpoint, or the
        # one a resumed run started from, as a resume point would get it deleted later. A run
        # gone NaN does not save: its last save before is what to evaluate or go back to.
        if diverged:
            log.warning("step %d is not saved: its loss is not finite", self.step)
        elif saved_step != self.step:
            checkpoint = self.save(resume_point=state != "completed")
        elif checkpoint is None and main:  # resumed at its last step: the checkpoint it resumed from
            from .checkpoint import checkpoint_dir

            checkpoint = checkpoint_dir(self.run_dir, self.step)
        if main:
            self.metrics.write("event", self.step, event=state)
        return TrainResult(state, self.step, last_loss, last_val, self.counts.percent, checkpoint)


def run_training(
    config: TrainConfig,
    run_dir: str | Path,
    datasets_dir: str | Path | None = None,
    resume: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    stop_at_step: int | None = None,
) -> TrainResult:
    """Build, optionally resume from the last checkpoint, and train. Saves the resolved config."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("RANK", "0")) == 0:  # one writer when several processes train
        config.save(run_dir / RUN_CONFIG)
    trainer = Trainer(config, run_dir, datasets_dir)
    if resume:
        trainer.restore("last")
    return trainer.fit(should_stop=should_stop, stop_at_step=stop_at_step)
