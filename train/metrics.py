"""`runs/<run>/metrics.jsonl`: one JSON object per line, the one source of progress.

Records carry a `kind`: "train" (step, loss, task_loss, aux/<term>, lr, samples_per_s,
steps_per_s, peak_memory_mb, eta_s, active_rank/<group>, total_steps), "val" (step, val/<task>, val/mean) and "event"
(step, event: started|resumed|checkpoint|completed|canceled|failed). Readers (the GUI, the
CLI progress bar) tolerate a half-written last line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .layout import METRICS_NAME


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; None plots as a gap
    return value


def peak_memory_mb(device) -> float:
    """The run's peak memory so far: allocated tensors on a GPU, the process's peak RSS on CPU."""
    import torch

    if getattr(device, "type", str(device)).startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class MetricsWriter:
    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / METRICS_NAME

    def write(self, kind: str, step: int, **fields: Any) -> dict:
        record = {"kind": kind, "step": int(step), **{k: _clean(v) for k, v in fields.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        return record

    def truncate_after(self, step: int) -> None:
        """On resume: drop what a killed run logged after its last checkpoint (it is redone)."""
        kept = [r for r in read_metrics(self.path.parent) if r["step"] <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)


def read_metrics(run_dir: str | Path, kind: str | None = None, start_line: int = 0) -> list[dict]:
    path = Path(run_dir) / METRICS_NAME
    if not path.exists():
        return []
    records = []
    marker = None if kind is None else f'"{kind}"'  # a record of that kind holds it: others are not parsed
    for line in path.read_text().splitlines()[start_line:]:
        if marker is not None and marker not in line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line being written right now
        if kind is None or record.get("kind") == kind:
            records.append(record)
    return records


def last_record(run_dir: str | Path, kind: str, tail_bytes: int = 16_384) -> dict | None:
    """The newest record of `kind`, read from the file's last `tail_bytes` only: cheap enough
    for a GUI poll per run (a record is about 600 bytes; a long run's file, megabytes)."""
    path = Path(run_dir) / METRICS_NAME
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, 2) - tail_bytes))
            lines = f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):  # the first may be cut by the seek, the last half-written
        if f'"{kind}"' not in line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("kind") == kind:
            return record
    return None


class MetricsFollower:
    """Reads only the new lines of metrics.jsonl on each poll (for a GUI timer)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / METRICS_NAME
        self._offset = 0
        self._partial = ""

    def poll(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open() as f:
            f.seek(self._offset)
            chunk = f.read()
            self._offset = f.tell()
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()  # incomplete last line (or "")
        out = []
        for line in lines:
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out


def format_eta(seconds) -> str:
    """h:mm:ss, or --:-- when unknown."""
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress(run_dir: str | Path) -> dict:
    """The latest training record and validation record: what a progress bar needs."""
    last_train, last_val = {}, {}
    for record in read_metrics(run_dir):
        if record["kind"] == "train":
            last_train = record
        elif record["kind"] == "val":
            last_val = record
    total = last_train.get("total_steps") or 0
    step = last_train.get("step", 0)
    return {
        "step": step,
        "total_steps": total,
        "fraction": step / total if total else 0.0,
        "eta_s": last_train.get("eta_s"),
        "loss": last_train.get("loss"),
        "val": {k[4:]: v for k, v in last_val.items() if k.startswith("val/")},
    }
