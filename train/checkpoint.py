"""Checkpoints under `runs/<run>/checkpoints/<step>/`.

    pretrained_model/   what lerobot loads: config.json, policy_{pre,post}processor*.json
                        + model.safetensors (full fine-tune) or adapter_config.json +
                        adapter_model.safetensors (PEFT strategies: adapter-only)
                        + backbone.json (which base weights the adapters sit on)
    training_state.pt   optimiser, scheduler, RNG states, step: for an exact resume

A checkpoint is written into a temporary directory and renamed into place, and
`checkpoints/last` is then re-pointed, so a kill at any moment leaves the previous
checkpoint intact. A *resume point* (saved on a clock, not on the step cadence: what a
killed run continues from) carries a marker file and is deleted once a newer checkpoint is
in place, so only the cadence's checkpoints and the final one stay.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
from pathlib import Path

from .layout import BACKBONE_FILE, CHECKPOINTS, PRETRAINED, RESUME_POINT, TRAINING_STATE


class DiskFull(RuntimeError):
    """The disk filled while a checkpoint was written (the half-written one is removed, the
    last whole one kept); the message says what to do."""


def checkpoint_dir(run_dir: str | Path, checkpoint: str | int = "last") -> Path:
    root = Path(run_dir) / CHECKPOINTS
    if checkpoint == "last":
        last = root / "last"
        if not last.exists():
            raise FileNotFoundError(f"{root} has no checkpoint yet (no {last}); the run saved none")
        return root / last.read_text().strip()
    path = root / (f"{int(checkpoint):06d}" if str(checkpoint).isdigit() else str(checkpoint))
    if not path.is_dir():
        available = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise FileNotFoundError(f"no checkpoint {checkpoint!r} in {root}; available: {available or 'none'}")
    return path


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether the run saved one, a step-0 one included (a run canceled before its first step
    saves there): such a run is resumed, not started again under its name."""
    return (Path(run_dir) / CHECKPOINTS / "last").exists()


def last_step(run_dir: str | Path) -> int:
    """The step of the run's last checkpoint; 0 when it has none (a new or never-saved run)."""
    try:
        return int(checkpoint_dir(run_dir).name)
    except (FileNotFoundError, ValueError):
        return 0


def rng_state() -> dict:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir,
    step: int,
    policy,
    handle,
    preprocessor,
    postprocessor,
    backbone,
    training_state: dict,
    resume_point: bool = False,
) -> Path:
    root = Path(run_dir) / CHECKPOINTS
    final = root / f"{step:06d}"
    tmp = root / f".{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write(tmp, policy, handle, preprocessor, postprocessor, backbone, training_state, resume_point)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # the half-written checkpoint, not the last whole one
        if not _disk_full(exc):
            raise
        raise DiskFull(
            f"the disk filled while saving step {step} of run {Path(run_dir).name}: free space, then resume it "
            f"(`piper-ws train --resume --run {Path(run_dir).name}`, or the same pretrain or study command); "
            f"it continues from step {last_step(run_dir)}, which is intact",
        ) from exc
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    last_tmp = root / "last.tmp"
    last_tmp.write_text(final.name)
    os.replace(last_tmp, root / "last")
    for older in root.iterdir():  # only after `last` points past them
        if older != final and (older / RESUME_POINT).exists():
            shutil.rmtree(older, ignore_errors=True)
    return final


def _write(
    tmp: Path, policy, handle, preprocessor, postprocessor, backbone, training_state, resume_point
) -> None:
    import torch

    from .adapters import save_adapters

    pretrained = tmp / PRETRAINED
    pretrained.mkdir(parents=True)
    if handle.strategy == "full":
        policy.save_pretrained(pretrained)
    else:
        policy.config.save_pretrained(pretrained)
        save_adapters(handle, pretrained)
    preprocessor.save_pretrained(pretrained)
    postprocessor.save_pretrained(pretrained)
    backbone_info = {
        "name": backbone.name,
        "path": str(backbone.path),
        "policy_type": backbone.policy_type,
        "tiny": backbone.tiny,
    }
    (pretrained / BACKBONE_FILE).write_text(json.dumps(backbone_info, indent=2))
    marker = backbone.path / "tiny_backbone.json"
    if marker.exists():  # a full fine-tune of a tiny pi0 needs the tiny sizes to load
        shutil.copy(marker, pretrained / marker.name)
    with open(tmp / TRAINING_STATE, "wb") as file:  # a file object: a full disk raises ENOSPC, not a
        torch.save(training_state, file)  # RuntimeError about zip positions
    if resume_point:
        (tmp / RESUME_POINT).touch()


def _disk_full(exc: BaseException) -> bool:
    """ENOSPC anywhere in the chain; safetensors reports it only in its message."""
    while exc is not None:
        if getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def load_training_state(path: Path) -> dict:
    import torch

    return torch.load(path / TRAINING_STATE, weights_only=False)
