"""The training data: which dataset, which episodes train and which validate, in which order.

Validation episodes are held out per task (the last ones of each task), so the per-task
validation loss measures each task on episodes the model never saw. The batch order is a
pure function of (seed, epoch), which makes resuming exact without replaying batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class DatasetError(ValueError):
    """A dataset that cannot be trained on; the message says what to do."""


REQUIRED_FEATURES = ("observation.state", "action")


def resolve_dataset_path(dataset: str, datasets_dir: str | Path | None) -> Path:
    """A dataset name under `datasets_dir`, or a path; must hold a LeRobot v3 `meta/info.json`."""
    candidates = [Path(dataset).expanduser()]
    if datasets_dir is not None:
        candidates.insert(0, Path(datasets_dir) / dataset)
    for path in candidates:
        if (path / "meta" / "info.json").is_file():
            return path.resolve()
    where = f" in {datasets_dir}" if datasets_dir else ""
    available = (
        sorted(p.name for p in Path(datasets_dir).iterdir() if (p / "meta").is_dir())
        if datasets_dir and Path(datasets_dir).is_dir()
        else []
    )
    hint = (
        f"; datasets there: {', '.join(available)}" if available else "; record one first (piper-ws record)"
    )
    raise DatasetError(f"no LeRobot dataset {dataset!r}{where} (expected DIR/meta/info.json){hint}")


def check_dataset_files(root: str | Path) -> dict:
    """Open every metadata JSON and the footer of every parquet file of the dataset at `root`
    (no lerobot, no torch); returns info.json. A damaged file raises DatasetError naming it
    and the fix, instead of lerobot's bare JSONDecodeError or DatasetGenerationError."""
    import json

    import pyarrow.parquet as pq

    root = Path(root)
    fix = f"restore it from a backup, or delete {root} and record the dataset again"
    info = {}
    for path in sorted((root / "meta").glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{path} is damaged ({exc}): {fix}") from None
        if path.name == "info.json":
            info = data
    for path in sorted(root.glob("meta/**/*.parquet")) + sorted(root.glob("data/**/*.parquet")):
        try:
            pq.read_metadata(path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise DatasetError(f"{path} is damaged ({exc}): {fix}") from None
    return info


@dataclass
class EpisodeSplit:
    train: list[int]
    val: dict[str, list[int]]  # task -> held-out episode indices
    tasks: list[str]  # the tasks trained on


def episode_tasks(meta) -> dict[int, str]:
    """episode index -> its task (the first task string of the episode)."""
    episodes = meta.episodes
    return {int(i): tasks[0] for i, tasks in zip(episodes["episode_index"], episodes["tasks"], strict=True)}


def split_episodes(meta, tasks: list[str] | None, val_per_task: int) -> EpisodeSplit:
    by_episode = episode_tasks(meta)
    available = sorted(set(by_episode.values()))
    chosen = available if not tasks else list(tasks)
    missing = [t for t in chosen if t not in available]
    if missing:
        raise DatasetError(f"tasks {missing} are not in the dataset; its tasks: {available}")
    train, val = [], {}
    for task in chosen:
        episodes = sorted(e for e, t in by_episode.items() if t == task)
        # Keep at least one training episode per task: hold out only what can be spared.
        held = min(val_per_task, len(episodes) - 1)
        if held > 0:
            val[task] = episodes[-held:]
        train.extend(episodes[: len(episodes) - held])
    return EpisodeSplit(sorted(train), val, chosen)


def check_features(meta) -> None:
    missing = [k for k in REQUIRED_FEATURES if k not in meta.features]
    cameras = [k for k in meta.features if k.startswith("observation.images.")]
    if missing or not cameras:
        raise DatasetError(
            f"dataset at {meta.root} lacks {missing + ([] if cameras else ['observation.images.*'])}: "
            "the trainer needs observation.state, action and at least one camera (record with piper-ws record)"
        )


def loader_workers(requested: int | None, device_type: str, processes: int, cores: int) -> int:
    """Data-loading processes per training process: as asked, else none on a CPU (decoding
    there takes the training's own cores) and on a GPU up to 4, lerobot-train's default,
    leaving one core per training process (frames decoded per sample, 480x640 recordings
    above all, otherwise keep the GPU waiting)."""
    if requested is not None:
        return requested
    if device_type == "cpu":
        return 0
    return max(0, min(4, cores // processes - 1))


def spread_indices(num_items: int, count: int) -> list[int]:
    """`count` indices spread evenly over `num_items` frames, first and last included (every
    frame when count >= num_items): validation frames from the whole of each held-out
    episode, not only its first second, the same frames at every step and in every run."""
    if count >= num_items:
        return list(range(num_items))
    if count == 1:
        return [num_items // 2]
    return [round(i * (num_items - 1) / (count - 1)) for i in range(count)]


class EpochBatchSampler:
    """Shuffled, drop-last batches of dataset indices; epoch e's order comes from seed + e.

    `start_at(batches_done)` positions it so that iteration continues exactly where a run
    that had done that many batches stopped, whatever its process count. Under several
    processes each global batch of `batch_size` items is cut into `world` equal slices
    (rank r takes the r-th).
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if batch_size % world:
            raise DatasetError(f"batch size {batch_size} does not split into {world} equal slices")
        self.rank, self.world = rank, world
        self.per_process = batch_size // world
        if num_items < batch_size:
            raise DatasetError(
                f"only {num_items} training frames for batch size {batch_size}: lower the batch size "
                "or record more episodes"
            )
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.batches_per_epoch = num_items // batch_size
        self.epoch = 0
        self.offset = 0  # batches to skip in the current epoch

    def start_at(self, batches_done: int) -> None:
        self.epoch, self.offset = divmod(batches_done, self.batches_per_epoch)

    def __len__(self) -> int:
        return self.batches_per_epoch - self.offset

    def __iter__(self):
        import torch

        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.num_items, generator=generator).tolist()
        for b in range(self.offset, self.batches_per_epoch):
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield batch[self.rank * self.per_process : (self.rank + 1) * self.per_process]
        self.epoch += 1
        self.offset = 0
