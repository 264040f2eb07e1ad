"""Load a trained policy from a run for evaluation.

    policy, preprocessor, postprocessor = load_trained_policy("runs/my-run")
    action = postprocessor(policy.select_action(preprocessor(observation)))

Full fine-tunes load with lerobot's own `from_pretrained`; PEFT strategies load the base
backbone with lerobot's loader (config from the checkpoint) and then the adapter-only
weights with `train.adapters.load_adapters`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .checkpoint import checkpoint_dir
from .layout import BACKBONE_FILE, PRETRAINED

if TYPE_CHECKING:
    import torch


def lora_sp_inference_path(device: str | torch.device) -> str:
    """LoRA-SP's eval forward for a trained policy; every path gives the same numbers. On the
    CPU "auto": multiply by the kept vectors alone where the rows of a call keep at most half
    the bank between them (benchmarks/bench_adapters.py). On a GPU "dense": finding those
    vectors reads the kept set on the host, which stalls the GPU's queue once per layer (an
    H200, SmolVLA-sized policy: 1.64 s per action chunk on "auto" against LoRA's 0.66 s)."""
    return "auto" if str(device).split(":")[0] == "cpu" else "dense"


def load_trained_policy(run_dir: str | Path, checkpoint: str | int = "last", device: str = "cpu"):
    """(policy in eval mode, preprocessor, postprocessor) from `runs/<run>/checkpoints/<checkpoint>`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory {run_dir}; list runs with `piper-ws train --list`")
    weights_dir = checkpoint_dir(run_dir, checkpoint) / PRETRAINED
    try:
        return _load(weights_dir, device)
    except Exception:
        # A running run deletes the resume point `last` named once a newer checkpoint lands,
        # which can happen during the seconds of a load: load the newer one.
        if checkpoint != "last" or weights_dir.parent.exists():
            raise
        return _load(checkpoint_dir(run_dir, "last") / PRETRAINED, device)


def _load(weights_dir: Path, device: str):
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    from .adapters import load_adapters
    from .backbones import load_policy_config, loading_context

    config = load_policy_config(weights_dir)
    config.device = device
    policy_cls = get_policy_class(config.type)
    if (weights_dir / "model.safetensors").exists():  # full fine-tune: a complete lerobot policy
        with loading_context(weights_dir):
            policy = policy_cls.from_pretrained(str(weights_dir), config=config)
    else:
        backbone = json.loads((weights_dir / BACKBONE_FILE).read_text())
        base_dir = Path(backbone["path"])
        if not (base_dir / "model.safetensors").exists():
            raise FileNotFoundError(
                f"the run's adapters sit on backbone {backbone['name']!r} at {base_dir}, which is missing: "
                "restore that directory (tiny backbones are rebuilt by `piper-ws train` with the same cache)"
            )
        with loading_context(base_dir):
            policy = policy_cls.from_pretrained(str(base_dir), config=config)
        handle = load_adapters(policy, weights_dir)
        if getattr(handle.config, "eta_inference", None) is not None:
            handle.set_inference_eta(handle.config.eta_inference)
        if handle.strategy == "lora_sp":
            handle.set_inference_path(lora_sp_inference_path(device))
    policy.to(device)
    policy.eval()
    overrides = {"device_processor": {"device": device}}
    preprocessor, postprocessor = make_pre_post_processors(
        config, pretrained_path=str(weights_dir), preprocessor_overrides=overrides
    )
    return policy, preprocessor, postprocessor
