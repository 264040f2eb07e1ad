"""Training samples built from memory: a dataset's frames decoded once, its columns held.

lerobot's reader builds every sample it is asked for from the files: it seeks each camera's
video to the key frame before the timestamp and decodes forward, and formats rows of the
Hugging Face dataset (a copy of its feature tree per row). On the 2-core CPU that was about
a third of a tiny policy's training step, half of it each, in our loop and `lerobot-train`
alike. The cache decodes each episode once, in order, with lerobot's own decoder and the
same timestamps (so the same pixels), into one uint8 array per camera indexed by absolute
frame index, and holds the data files' numeric columns as arrays. Training maps the frame
arrays from disk: a sample is a few row reads, the same item lerobot's reader gives.

    cache = FrameCache.open_or_build(dataset_root, meta, backend, max_gb=16)
    cache.attach(lerobot_dataset)   # its reader builds samples from the cache from now on

Frames that would take more than `max_gb` (or leave under 2 GB of disk) are not cached and
are decoded per sample; the numeric columns are always held (a few MB).

Where: `<datasets>/.frame_cache/<dataset name>/<fingerprint>/<camera key>.npy`, beside the
dataset and not in it (a resumed recording copies the dataset's folder at every keep). The
fingerprint covers the frame and episode counts, the video and data files' sizes and times,
and the decoder, so a dataset that grew gets a new cache and the old one is removed. A cache is
built in a temporary folder and renamed into place, under a file lock that makes a second
process (another rank, another run) wait and then read it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

log = logging.getLogger("train")

CACHE_FOLDER = ".frame_cache"
DECODE_CHUNK = 64  # frames per decode call while building (bounds memory at high resolutions)
FREE_DISK_MARGIN_GB = 2.0  # the cache never leaves less than this free


def cache_root(dataset_root: Path) -> Path:
    """Where the caches of the dataset at `dataset_root` live (every fingerprint of it)."""
    dataset_root = Path(dataset_root)
    return dataset_root.parent / CACHE_FOLDER / dataset_root.name


def fingerprint(dataset_root: Path, meta, backend: str) -> str:
    """Changes whenever the frames the dataset holds could have changed."""
    root = Path(dataset_root)
    files = sorted([*(root / "videos").rglob("*.mp4"), *(root / "data").rglob("*.parquet")])
    parts = [meta.total_frames, meta.total_episodes, meta.fps, backend]
    parts += [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:16]


def _frame_positions(dataset_root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(absolute index, episode index, timestamp) of every frame, from the data files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((Path(dataset_root) / "data").rglob("*.parquet"))
    table = pa.concat_tables(pq.read_table(f, columns=["index", "episode_index", "timestamp"]) for f in files)
    return (
        table["index"].to_numpy(),
        table["episode_index"].to_numpy(),
        table["timestamp"].to_numpy(),
    )


def _numeric_columns(dataset_root: Path) -> dict[str, np.ndarray] | None:
    """Every column of the data files as an array indexed by absolute frame index, in the
    dtypes lerobot's reader gives them (floats float32, integers int64); None when a column
    is not numeric (a language column, say): then lerobot's reader builds the items."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((Path(dataset_root) / "data").rglob("*.parquet"))
    table = pa.concat_tables(pq.read_table(f) for f in files)
    order = np.argsort(table["index"].to_numpy())
    columns = {}
    for name in table.column_names:
        column = table[name].combine_chunks()
        kind = column.type
        width = kind.list_size if pa.types.is_fixed_size_list(kind) else None
        scalar = kind.value_type if width else kind
        if column.null_count or not (pa.types.is_floating(scalar) or pa.types.is_integer(scalar)):
            return None
        values = column.flatten().to_numpy() if width else column.to_numpy()
        values = values.reshape(len(column), width) if width else values
        dtype = np.float32 if pa.types.is_floating(scalar) else np.int64
        columns[name] = values[order].astype(dtype)
    return columns


def _regular(positions, meta) -> bool:
    """Every frame sits at its episode's first index + round(timestamp x fps), indices 0..N-1:
    the mapping the cache reads by (a recorder writes it so)."""
    index, episode, timestamp = positions
    if len(index) != meta.total_frames or not np.array_equal(np.sort(index), np.arange(meta.total_frames)):
        return False
    first = np.asarray(meta.episodes["dataset_from_index"])[episode]
    return bool(np.array_equal(index, first + np.round(timestamp.astype(np.float64) * meta.fps)))


class FrameCache:
    """One dataset's decoded frames (memory-mapped, per camera) and numeric columns."""

    def __init__(self, directory: Path, keys: list[str], fps: int) -> None:
        self.directory = Path(directory)
        self.keys = list(keys)
        self.fps = fps
        self._arrays: dict[str, np.ndarray] = {}  # camera key -> its frames, memory-mapped
        self.columns: dict[str, np.ndarray] | None = None  # the data files' numeric columns

    # -------------------------------------------------------------- building

    @classmethod
    def open_or_build(cls, dataset_root: Path, meta, backend: str, max_gb: float) -> FrameCache | None:
        """The cache of this dataset, its frames decoded first if needed. Frames that would not
        fit are left out (logged, with the reason) and decoded per sample; None where nothing is
        cached (`max_gb` 0, depth videos, no frames and a non-numeric column): lerobot's reader."""
        dataset_root = Path(dataset_root)
        if max_gb <= 0 or meta.depth_keys:  # depth maps need lerobot's unit conversion
            return None
        directory = cache_root(dataset_root) / fingerprint(dataset_root, meta, backend)
        cache = cls(directory, list(meta.video_keys), meta.fps)
        cache.columns = _numeric_columns(dataset_root)
        if cache.keys and not cache._open_or_build_frames(dataset_root, meta, backend, max_gb):
            cache.keys = []  # every frame decoded per sample
        return cache if cache.keys or cache.columns is not None else None

    def _open_or_build_frames(self, dataset_root: Path, meta, backend: str, max_gb: float) -> bool:
        directory, root = self.directory, self.directory.parent
        if (directory / "done.json").is_file():
            return True
        size_gb = meta.total_frames * sum(int(np.prod(meta.shapes[k])) for k in self.keys) / 1e9
        root.mkdir(parents=True, exist_ok=True)
        free_gb = shutil.disk_usage(root).free / 1e9
        if size_gb > max_gb or size_gb > free_gb - FREE_DISK_MARGIN_GB:
            log.info(
                "frame cache: %.1f GB of frames (limit %.1f GB, %.1f GB free), decoded per sample "
                "instead (raise frame_cache_gb or free disk space to cache them)", size_gb, max_gb, free_gb,
            )  # fmt: skip
            return False
        with open(root / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process building it: wait, then read its cache
            if (directory / "done.json").is_file():
                return True
            positions = _frame_positions(dataset_root)
            if not _regular(positions, meta):
                log.info(
                    "frame cache: frame timestamps are not i/fps per episode, decoded per sample instead"
                )
                return False
            try:
                self._build(dataset_root, meta, backend, positions, size_gb)
            except OSError as exc:  # the disk filled up meanwhile, say: train without it
                shutil.rmtree(directory.with_name(directory.name + ".building"), ignore_errors=True)
                log.warning("frame cache not built (%s), frames decoded per sample instead", exc)
                return False
            for stale in root.iterdir():  # caches of earlier versions of the dataset
                if stale.is_dir() and stale != directory:
                    shutil.rmtree(stale, ignore_errors=True)
        return True

    def _build(self, dataset_root: Path, meta, backend: str, positions, size_gb: float) -> None:
        import time

        import torch

        started = time.perf_counter()
        threads = torch.get_num_threads()
        # small decode calls: a thread pool costs more than it gives (50x on 2 busy cores)
        torch.set_num_threads(1)
        try:
            self._decode_all(dataset_root, meta, backend, positions)
        finally:
            torch.set_num_threads(threads)
        log.info(
            "frame cache: %d frames x %d cameras (%.2f GB) decoded in %.0f s into %s",
            meta.total_frames, len(self.keys), size_gb, time.perf_counter() - started, self.directory,
        )  # fmt: skip

    def _decode_all(self, dataset_root: Path, meta, backend: str, positions) -> None:
        from lerobot.datasets.video_utils import decode_video_frames

        index, episode, timestamp = positions
        building = self.directory.with_name(self.directory.name + ".building")
        shutil.rmtree(building, ignore_errors=True)  # what a killed build left
        building.mkdir(parents=True)
        for key in self.keys:
            shape = (meta.total_frames, *self._chw(meta.shapes[key], meta.features[key]))
            array = np.lib.format.open_memmap(building / f"{key}.npy", mode="w+", dtype=np.uint8, shape=shape)
            for ep in range(meta.total_episodes):
                rows = np.flatnonzero(episode == ep)
                video = dataset_root / meta.get_video_file_path(ep, key)
                start = meta.episodes[ep][f"videos/{key}/from_timestamp"]
                for chunk in np.array_split(rows, max(1, -(-len(rows) // DECODE_CHUNK))):
                    # float32 timestamps through Python floats, as lerobot's reader passes them
                    times = [start + t for t in timestamp[chunk].tolist()]
                    frames = decode_video_frames(video, times, 1e-4, backend, return_uint8=True)
                    array[index[chunk]] = frames.numpy()
            array.flush()
            del array
        (building / "done.json").write_text(
            json.dumps({"frames": meta.total_frames, "keys": self.keys, "backend": backend})
        )
        os.rename(building, self.directory)

    @staticmethod
    def _chw(shape, feature) -> tuple[int, int, int]:
        """The (C, H, W) lerobot's decoder returns, from the feature's stored shape and names."""
        names = list(feature.get("names") or [])
        if names[:1] == ["channels"] or (not names and shape[0] in (1, 3)):
            return tuple(shape)
        height, width, channels = shape
        return channels, height, width

    # -------------------------------------------------------------- reading

    def _array(self, key: str) -> np.ndarray:
        if key not in self._arrays:
            self._arrays[key] = np.load(self.directory / f"{key}.npy", mmap_mode="r")
        return self._arrays[key]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": {}}  # dataloader workers map the files themselves

    def attach(self, dataset) -> None:
        """From now on `dataset` (a LeRobotDataset) reads its samples from this cache."""
        reader = dataset._ensure_reader()
        if reader.hf_dataset is None:
            reader.load_and_activate()
        reads = _CachedReads(self, reader, dataset.meta)
        reader._query_videos = reads.query_videos
        if self.columns is not None:
            reader.get_item = reads.get_item

    def frames(self, key: str, rows: list[int], uint8: bool):
        """Frames at absolute indices `rows`, (T, C, H, W), as lerobot's decoder returns them."""
        import torch

        frames = np.ascontiguousarray(self._array(key)[rows])
        if not uint8:
            # the same float32 values as lerobot's torch division, without torch's thread pool
            # (which costs milliseconds on a tensor this small when the cores are busy)
            frames = frames.astype(np.float32) / np.float32(255)
        return torch.from_numpy(frames)


class _CachedReads:
    """A DatasetReader's `get_item(idx)` and `_query_videos(...)`, served from the cache: the
    same item lerobot's reader builds (keys, values, dtypes, padding flags, task string)
    without its per-row Hugging Face dataset formatting, which cost as much as the decoding.
    A class, not closures: dataloader workers may pickle the dataset."""

    def __init__(self, cache: FrameCache, reader, meta) -> None:
        self.cache, self.reader = cache, reader
        self.decode = reader._query_videos  # lerobot's own, for a query outside an episode's frames
        episodes = meta.episodes
        starts, ends = episodes["dataset_from_index"], episodes["dataset_to_index"]
        self.bounds = dict(zip(episodes["episode_index"], zip(starts, ends, strict=True), strict=True))
        rows = reader.hf_dataset.with_format("numpy", columns=["index"])  # a view, not a copy
        self.absolute = np.asarray(rows["index"])  # the reader's row -> absolute frame index
        self.tasks = list(meta.tasks.index)  # task_index -> its instruction
        self.video_keys, self.camera_keys = list(meta.video_keys), list(meta.camera_keys)

    def query_videos(self, query_timestamps: dict[str, list[float]], ep_idx: int) -> dict:
        first, end = self.bounds[ep_idx]
        rows = {key: [first + round(t * self.cache.fps) for t in ts] for key, ts in query_timestamps.items()}
        if any(
            key not in self.cache.keys or not all(first <= r < end for r in r_) for key, r_ in rows.items()
        ):
            return self.decode(query_timestamps, ep_idx)
        uint8 = self.reader._return_uint8
        return {key: self.cache.frames(key, r_, uint8).squeeze(0) for key, r_ in rows.items()}

    def get_item(self, idx: int) -> dict:
        import torch

        columns = self.cache.columns
        row = int(self.absolute[idx])
        item = {name: torch.tensor(values[row]) for name, values in columns.items()}
        ep_idx = int(item["episode_index"])
        first, end = self.bounds[ep_idx]
        query = {}  # key -> absolute rows of its delta window, clamped to the episode
        for key, deltas in (self.reader.delta_indices or {}).items():
            query[key] = [max(first, min(end - 1, row + d)) for d in deltas]
            item[f"{key}_is_pad"] = torch.BoolTensor([not first <= row + d < end for d in deltas])
            if key not in self.video_keys:
                item[key] = torch.from_numpy(columns[key][query[key]])
        if self.video_keys:
            times = {
                key: columns["timestamp"][query[key]].tolist() if key in query else [item["timestamp"].item()]
                for key in self.video_keys
            }
            item = {**self.query_videos(times, ep_idx), **item}
        if self.reader._image_transforms is not None:
            for key in self.camera_keys:
                item[key] = self.reader._image_transforms(item[key])
        item["task"] = self.tasks[int(item["task_index"])]
        return item
