"""What the results table shows about a training run, read from its files under `runs/<run>/`
(no torch): strategy, trainable %, active rank (the paper's Table I columns).

The trainer writes a run config (`config.json`) and one JSON object per logging step in
`metrics.jsonl`; adapter checkpoints carry `adapter_config.json`. Missing files or keys
leave the field empty: the table shows '-', it never guesses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evaluate.store import RunInfo

CONFIG_FILES = ("config.json", "run_config.json", "train_config.json")
METRICS_FILE = "metrics.jsonl"
TRAINABLE_KEYS = ("trainable_percent", "trainable_pct", "params/trainable_pct")
ACTIVE_RANK_KEYS = ("active_rank/mean", "active_rank", "active_rank_mean")
STRATEGY_KEYS = ("strategy", "adapter.strategy", "adapter.kind", "adapter.name", "preset")


def list_runs(runs_dir: Path) -> list[str]:
    """Run names under `runs_dir` that hold something loadable (newest first)."""
    if not runs_dir.is_dir():
        return []
    runs = [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return [p.name for p in sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)]


def describe_run(run_dir: Path, campaign: str = "", checkpoint: str = "last", eta: float | None = None) -> RunInfo:
    config = _first_json(run_dir / name for name in CONFIG_FILES)
    metrics = _last_values(run_dir / METRICS_FILE, TRAINABLE_KEYS + ACTIVE_RANK_KEYS)
    adapter = _first_json(sorted(run_dir.rglob("adapter_config.json"), reverse=True))
    strategy = _lookup(config, STRATEGY_KEYS) or _lookup(adapter, ("config.strategy", "strategy")) or ""
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


def _first_json(paths: Iterable[Path]) -> dict[str, Any]:
    for path in paths:
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
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
