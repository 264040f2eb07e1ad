"""What the results table shows about a training run, read from its files under `runs/<run>/`
(no torch): strategy, trainable %, active rank (the paper's Table I columns).

The trainer writes a run config and one JSON object per logging step (metrics.jsonl);
adapter checkpoints carry `checkpoints/<step>/pretrained_model/adapter_config.json`. The
names are `train.layout`'s, never repeated here. Missing files or keys
leave the field empty: the table shows '-', it never guesses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evaluate.store import RunInfo
from train.checkpoint import checkpoint_dir
from train.layout import ADAPTER_CONFIG, METRICS_NAME, PRETRAINED, RUN_CONFIG

TRAINABLE_KEYS = ("trainable_percent", "trainable_pct", "params/trainable_pct")
ACTIVE_RANK_KEYS = ("active_rank/mean", "active_rank", "active_rank_mean")
STRATEGY_KEYS = ("strategy", "adapter.strategy", "adapter.kind", "adapter.name", "preset")
# What a preset's strategy is (beside its rate, steps and data): a run that changed one of these
# trained something else than its preset, and is not named after it.
STRATEGY_FIELDS = ("strategy", "adapter", "targets", "aux_objective", "orth_weight")


def list_runs(runs_dir: Path) -> list[str]:
    """Run names under `runs_dir` that hold something loadable (newest first)."""
    if not runs_dir.is_dir():
        return []
    runs = [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return [p.name for p in sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)]


def describe_run(
    run_dir: Path, campaign: str = "", checkpoint: str = "last", eta: float | None = None
) -> RunInfo:
    config = _read_json(run_dir / RUN_CONFIG)
    metrics = _last_values(run_dir / METRICS_NAME, TRAINABLE_KEYS + ACTIVE_RANK_KEYS)
    adapter = _read_json(_adapter_config(run_dir, checkpoint))
    strategy = _lookup(config, STRATEGY_KEYS) or _lookup(adapter, ("config.strategy", "strategy")) or ""
    strategy = strategy_label(str(strategy), config, adapter.get("config") or {})
    trainable = _lookup(metrics, TRAINABLE_KEYS) or _lookup(config, TRAINABLE_KEYS)
    rank = _lookup(metrics, ACTIVE_RANK_KEYS)
    return RunInfo(
        campaign=campaign,
        run=run_dir.name,
        strategy=str(strategy),
        checkpoint=checkpoint,
        trainable_pct=_float(trainable),
        active_rank=_float(rank),
        eta=eta,
    )


def strategy_label(strategy: str, config: dict[str, Any], adapter: dict[str, Any]) -> str:
    """What the Strategy column calls a run: its preset's name without the family (`mini-lora8`
    -> `lora8`, the name a study gives the row) when the run trains what its preset trains;
    otherwise the strategy and its rank (`lora r=16`), so that two ranks never read as one.
    `adapter` is the evaluated checkpoint's adapter config, for a run whose config is gone."""
    from train.presets import PRESETS

    preset = PRESETS.get(config.get("preset") or "")
    if preset is not None and all(config.get(f) == getattr(preset, f) for f in STRATEGY_FIELDS):
        return preset.preset.split("-", 1)[1]
    settings = config.get("adapter") if isinstance(config.get("adapter"), dict) else adapter
    rank = settings.get("r") or settings.get("init_r")
    return f"{strategy} r={rank}" if strategy and strategy != "full" and rank else strategy


def _adapter_config(run_dir: Path, checkpoint: str) -> Path | None:
    """The adapter config of the checkpoint evaluated; None when the run has no such checkpoint."""
    try:
        return checkpoint_dir(run_dir, checkpoint) / PRETRAINED / ADAPTER_CONFIG
    except (OSError, ValueError):
        return None


def _read_json(path: Path | None) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path is not None else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _last_values(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """The last logged value of each key (a metrics file is appended to while training)."""
    found: dict[str, Any] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a half-written last line
        for key in keys:
            value = _lookup(record, (key,))
            if value is not None:
                found[key] = value
    return found


def _lookup(data: dict[str, Any], keys: Iterable[str]) -> Any:
    """First present key; dotted keys walk nested dicts, flat keys with dots are tried first."""
    for key in keys:
        if key in data:
            return data[key]
        node: Any = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return node
    return None


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
