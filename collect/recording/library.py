"""The workspace's datasets as the Datasets page sees them: summaries, episodes, replay, delete.

Reads LeRobot v3 files directly (info.json, meta/episodes/*.parquet, data/*.parquet and the
mp4s) with pyarrow and PyAV, so listing datasets never imports lerobot or torch. Deleting
an episode goes through lerobot's own `dataset_tools.delete_episodes` into a new folder,
which is loaded back before it replaces the old one: a failure at any step leaves the
original dataset as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collect.recording.plan import REPO_PREFIX, is_dataset
from collect.recording.writer import lock_dataset, read_sidecar, write_sidecar


@dataclass
class DatasetSummary:
    name: str
    root: Path
    episodes: int
    frames: int
    fps: int
    size_bytes: int
    per_task: dict[str, int] = field(default_factory=dict)  # instruction -> episodes

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps if self.fps else 0.0


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def damaged(path: Path, root: Path, exc: Exception) -> ValueError:
    """The one-line error for an unreadable dataset file: which file, and what to do."""
    return ValueError(
        f"{path} is damaged ({exc}): restore it from a backup, or delete {root} and record it again"
    )


def read_info(root: Path) -> dict:
    path = Path(root) / "meta" / "info.json"
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(path, Path(root), exc) from None


def _read_table(path: Path, root: Path, **kwargs):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, **kwargs)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise damaged(path, Path(root), exc) from None


def list_datasets(datasets_dir: str | Path) -> list[DatasetSummary]:
    """Every LeRobot dataset under `datasets_dir` (a folder with meta/info.json), by name."""
    summaries = []
    base = Path(datasets_dir)
    if not base.is_dir():
        return summaries
    for root in sorted(p for p in base.iterdir() if is_dataset(p)):
        try:
            info = read_info(root)
            per_task: dict[str, int] = {}
            for row in episode_rows(root):
                per_task[row["task"]] = per_task.get(row["task"], 0) + 1
        except (OSError, ValueError, KeyError) as exc:  # one broken dataset must not hide the rest
            summaries.append(
                DatasetSummary(root.name, root, 0, 0, 0, folder_size(root), {f"unreadable: {exc}": 0})
            )
            continue
        summaries.append(
            DatasetSummary(
                root.name,
                root,
                int(info.get("total_episodes", 0)),
                int(info.get("total_frames", 0)),
                int(info.get("fps", 0)),
                folder_size(root),
                per_task,
            )
        )
    return summaries


def episode_rows(root: Path) -> list[dict[str, Any]]:
    """One dict per episode (lerobot's episode metadata + our sidecar row), by episode index."""
    sidecar = read_sidecar(root)
    rows = []
    for path in sorted((Path(root) / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        table = _read_table(path, root)
        names = [n for n in table.column_names if not n.startswith("stats/")]
        for raw in table.select(names).to_pylist():
            index = int(raw["episode_index"])
            tasks = raw.get("tasks") or [""]
            rows.append({**raw, "episode_index": index, "task": tasks[0], "sidecar": sidecar.get(index, {})})
    return sorted(rows, key=lambda r: r["episode_index"])


def scene_seeds(root: str | Path) -> dict[str, list[int]]:
    """Task -> the sim scene seeds of its kept episodes, in episode order (evaluate on the
    recorded scenes). Raises ValueError when the dataset holds no seeded sim episode."""
    root = Path(root)
    if not is_dataset(root):
        raise ValueError(
            f"{root} is not a recorded dataset (no meta/info.json); list them with `piper-ws datasets`"
        )
    seeds: dict[str, list[int]] = {}
    for _, row in sorted(read_sidecar(root).items()):
        if row.get("backend") == "sim" and row.get("seed") is not None:
            seeds.setdefault(row["task"], []).append(int(row["seed"]))
    if not seeds:
        raise ValueError(
            f"{root.name} has no simulated episodes with a scene seed (recorded on the real arm?)"
        )
    return seeds


def episode_signals(root: Path, episode_index: int) -> tuple[Any, Any]:
    """(state, action) of one episode as (N, 7) float arrays."""
    import numpy as np

    row = _episode_row(root, episode_index)
    info = read_info(root)
    path = Path(root) / info["data_path"].format(
        chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
    )
    table = _read_table(
        path,
        root,
        columns=["episode_index", "observation.state", "action"],
        filters=[("episode_index", "=", episode_index)],
    )
    state = np.asarray(table.column("observation.state").to_pylist(), dtype=np.float32)
    action = np.asarray(table.column("action").to_pylist(), dtype=np.float32)
    return state, action


def episode_video(root: Path, episode_index: int, camera: str, max_frames: int | None = None):
    """Decoded frames (N, H, W, 3 uint8) of one camera for one episode, with PyAV."""
    import av
    import numpy as np

    row = _episode_row(root, episode_index)
    info = read_info(root)
    key = f"observation.images.{camera}"
    path = Path(root) / info["video_path"].format(
        video_key=key,
        chunk_index=row[f"videos/{key}/chunk_index"],
        file_index=row[f"videos/{key}/file_index"],
    )
    start, end = row[f"videos/{key}/from_timestamp"], row[f"videos/{key}/to_timestamp"]
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else 0.0
            if t < start - 1e-3:
                continue
            if t >= end - 1e-3 or (max_frames and len(frames) >= max_frames):
                break
            frames.append(frame.to_ndarray(format="rgb24"))
    return np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)


def _episode_row(root: Path, episode_index: int) -> dict:
    for row in episode_rows(root):
        if row["episode_index"] == episode_index:
            return row
    raise KeyError(f"episode {episode_index} is not in {root}")


def delete_episode(root: str | Path, episode_index: int) -> Path:
    """Remove one episode safely; later episodes move down by one (sidecar re-keyed to match).

    The edited copy is written beside the dataset and loaded back with lerobot before it
    takes the dataset's place; the old copy is removed only after the swap. Refused
    (DatasetBusy) while the dataset is being recorded into.
    """
    lock = lock_dataset(Path(root))
    try:
        return _delete_episode(Path(root), episode_index)
    finally:
        os.close(lock)


def _delete_episode(root: Path, episode_index: int) -> Path:
    from lerobot.datasets import LeRobotDataset
    from lerobot.datasets.dataset_tools import delete_episodes

    total = int(read_info(root).get("total_episodes", 0))
    if not 0 <= episode_index < total:
        raise ValueError(f"episode {episode_index} is not in {root.name} (it has {total})")
    if total == 1:
        raise ValueError(f"{root.name} has only this episode: delete the whole dataset folder instead")
    repo_id = REPO_PREFIX + root.name
    staging = root.with_name(f".{root.name}.editing")
    old = root.with_name(f".{root.name}.old")
    for leftover in (staging, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    delete_episodes(LeRobotDataset(repo_id, root=root), [episode_index], output_dir=staging, repo_id=repo_id)
    check = LeRobotDataset(repo_id, root=staging)
    if check.meta.total_episodes != total - 1:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(
            f"the edited copy of {root.name} has {check.meta.total_episodes} episodes, expected {total - 1}"
        )
    rows = read_sidecar(root)
    moved = {
        (i if i < episode_index else i - 1): {**row, "episode_index": i if i < episode_index else i - 1}
        for i, row in rows.items()
        if i != episode_index
    }
    for extra in (p for p in root.iterdir() if p.name == "piper"):
        shutil.copytree(extra, staging / extra.name, dirs_exist_ok=True)
    write_sidecar(staging, moved)
    root.rename(old)
    staging.rename(root)
    shutil.rmtree(old, ignore_errors=True)
    return root
