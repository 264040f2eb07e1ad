"""Adapter-only checkpoints: `adapter_model.safetensors` (the handle's adapter tensors) and
`adapter_config.json` (strategy, config, wrapped modules and their groups, step).

Loading applies the same adapters to a freshly built backbone and fills in the saved
tensors, so the adapted model's outputs are reproduced bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from ..layout import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from .apply import apply_adapters
from .config import config_from_dict, config_to_dict, strategy_name
from .handle import AdapterHandle
from .layer import AdapterLinear
from .targets import names_targets

FORMAT_VERSION = 1


def save_adapters(handle: AdapterHandle, directory: str | Path) -> Path:
    """Write the adapter weights and config into `directory` (created); returns it."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Clones so that tied or shared storages (full fine-tune) save as plain tensors.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in handle.adapter_state_dict().items()}
    etas = [m.eta for m in handle.modules.values() if isinstance(m, AdapterLinear) and hasattr(m, "eta")]
    meta = {
        "format": FORMAT_VERSION,
        "config": config_to_dict(handle.config),
        "modules": handle.groups,
        "step": handle.step,
        "eta": etas[0] if etas else None,
    }
    # Write the weights first and the config last: a directory with a config is complete.
    save_file(state, str(directory / ADAPTER_WEIGHTS), metadata={"strategy": handle.strategy})
    (directory / ADAPTER_CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return directory


def read_adapter_config(directory: str | Path) -> dict:
    directory = Path(directory)
    path = directory / ADAPTER_CONFIG
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: point at a directory written by save_adapters (it holds {ADAPTER_CONFIG} "
            f"and {ADAPTER_WEIGHTS})"
        )
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); the checkpoint is damaged") from err
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: adapter format {meta.get('format')!r}, this version reads {FORMAT_VERSION}"
        )
    return meta


def load_adapters(model: nn.Module, directory: str | Path) -> AdapterHandle:
    """Apply the saved adapters to `model` (a freshly built backbone) and load their weights."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    meta = read_adapter_config(directory)
    weights = directory / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found next to {ADAPTER_CONFIG}; the checkpoint is incomplete")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{weights} cannot be read ({err}); the checkpoint is damaged") from err
    config = config_from_dict(meta["config"])
    if strategy_name(config) == "adalora":
        # AdaLoRA's rank_pattern is its allocator's output (masked E entries, saved as zeros),
        # not a shape: the tensors keep init_r, so rebuild at init_r.
        config.rank_pattern = None
    handle = apply_adapters(model, config, names_targets(meta["modules"]))
    device = next(model.parameters()).device
    handle.load_adapter_state_dict({k: v.to(device) for k, v in state.items()})
    handle.step = int(meta.get("step", 0))
    if meta.get("eta") is not None:
        for module in handle.modules.values():
            if hasattr(module, "eta"):
                module.eta = meta["eta"]
    return handle
