"""Capability vectors (arXiv 2605.10903): fine-tune one backbone twice on a small task set,
once with plain SFT and once with an auxiliary objective; their weight difference is the
capability vector; the backbone plus the vector is a new local backbone directory, on which
SFT runs with the orthogonality regulariser (`TrainConfig.orth_weight`, train/objectives.py).

    build_capvector_backbone("mini-smolvla", "source-mini", steps=300, name="mini-smolvla-capvector")
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch

from .backbones import CARD_FILE, PRETRAINED_NAMES, TINY_MARKER, TINY_NAMES, _repoint, default_cache_dir
from .objectives import VECTOR_FILE

WEIGHTS = "model.safetensors"


def capability_vector(aux: dict[str, torch.Tensor], sft: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """aux - sft for every floating-point tensor (float32); both must hold the same tensors."""
    if aux.keys() != sft.keys():
        diff = sorted(aux.keys() ^ sft.keys())
        raise ValueError(
            f"the two runs hold different tensors (e.g. {diff[:3]}): train the same backbone twice"
        )
    vector = {}
    for key, value in aux.items():
        if value.shape != sft[key].shape:
            raise ValueError(f"{key}: shapes {tuple(value.shape)} and {tuple(sft[key].shape)} differ")
        if value.is_floating_point():
            vector[key] = value.float() - sft[key].float()
    return vector


def apply_vector(
    weights: dict[str, torch.Tensor], vector: dict[str, torch.Tensor], scale: float = 1.0
) -> dict[str, torch.Tensor]:
    """weights + scale * vector, each tensor back in its own dtype; tensors off the vector stay."""
    missing = sorted(vector.keys() - weights.keys())
    if missing:
        raise ValueError(
            f"the vector has tensors this backbone lacks (e.g. {missing[:3]}): another backbone?"
        )
    out = dict(weights)
    for key, delta in vector.items():
        if delta.shape != weights[key].shape:
            raise ValueError(
                f"{key}: vector {tuple(delta.shape)} does not fit the backbone's {tuple(weights[key].shape)}"
            )
        out[key] = (weights[key].float() + scale * delta).to(weights[key].dtype)
    return out


def write_backbone(
    source: Path, weights: dict[str, torch.Tensor], vector: dict[str, torch.Tensor], card: dict, out: Path
) -> Path:
    """A copy of backbone dir `source` at `out` with `weights`, the vector and a card; atomic."""
    from safetensors.torch import save_file

    work = out.with_name(out.name + f".writing-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work)
    marker = work / TINY_MARKER
    if marker.exists() and json.loads(marker.read_text()).get("name") != "tiny-pi0":
        marker.unlink()  # only tiny pi0 needs its marker (its sizes) to load
    _repoint(work, out, old=source)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(work / WEIGHTS), metadata={"format": "pt"})
    save_file({k: v.contiguous() for k, v in vector.items()}, str(work / VECTOR_FILE))
    (work / CARD_FILE).write_text(json.dumps(card, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)
    return out


def check_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or name in (*TINY_NAMES, *PRETRAINED_NAMES):
        raise ValueError(
            f"backbone name {name!r}: give a new plain name (no '/', not one of "
            f"{', '.join((*TINY_NAMES, *PRETRAINED_NAMES))}), e.g. mini-smolvla-capvector"
        )


def build_capvector_backbone(
    backbone: str,
    dataset: str,
    steps: int,
    name: str,
    *,
    datasets_dir: str | Path | None = None,
    work_dir: str | Path | None = None,
    backbone_cache: str | Path | None = None,
    aux_horizon: int = 10,
    aux_weight: float = 1.0,
    scale: float = 1.0,
    **train_overrides,
) -> Path:
    """Train `backbone` on `dataset` twice for `steps` (full fine-tune: SFT, then SFT + the
    future-state objective), and write backbone + scale * (aux - sft) as backbone dir
    `<cache>/<name>` with the vector and a card. Returns the new directory (pass it as
    `backbone` to train on it; `orth_weight` > 0 there keeps the update orthogonal to it).
    `train_overrides` go to both runs' TrainConfig (batch_size, lr, seed, device, tasks...)."""
    from safetensors.torch import load_file

    from .backbones import resolve_backbone
    from .checkpoint import checkpoint_dir
    from .layout import PRETRAINED
    from .loop import run_training
    from .presets import get_preset

    check_name(name)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    cache = Path(backbone_cache) if backbone_cache else default_cache_dir()
    base = resolve_backbone(backbone, cache)
    work = Path(work_dir) if work_dir else cache / f"{name}.runs"
    started = time.perf_counter()
    common = dict(
        dataset=dataset, backbone=backbone, backbone_cache=str(cache), steps=steps, checkpoint_every=steps
    )
    sft = get_preset(f"{base.policy_type}-full", **{**common, **train_overrides}, run_name=f"{name}-sft")
    configs = {  # both built (and so checked) before either run starts
        "sft": sft,
        "aux": sft.with_overrides(
            aux_objective="future_state",
            aux_horizon=aux_horizon,
            aux_weight=aux_weight,
            run_name=f"{name}-aux",
        ),
    }
    states = {}
    for run, config in configs.items():
        run_training(config, work / run, datasets_dir)
        states[run] = load_file(str(checkpoint_dir(work / run, "last") / PRETRAINED / WEIGHTS))
    vector = capability_vector(states["aux"], states["sft"])
    weights = apply_vector(load_file(str(base.path / WEIGHTS)), vector, scale)
    card = {
        **(json.loads((base.path / CARD_FILE).read_text()) if (base.path / CARD_FILE).is_file() else {}),
        "capability_vector": {
            "from_backbone": base.name,
            "dataset": dataset,
            "steps": steps,
            "aux_objective": "future_state",
            "aux_horizon": aux_horizon,
            "aux_weight": aux_weight,
            "scale": scale,
            "norm": float(torch.sqrt(sum((v.double() ** 2).sum() for v in vector.values()))),
            "runs": str(work),
            "wall_s": round(time.perf_counter() - started, 1),
        },
    }
    return write_backbone(base.path, weights, vector, card, cache / name)
