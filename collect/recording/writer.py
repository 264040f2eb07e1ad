"""`EpisodeWriter`: one LeRobotDataset v3 holding every task of a plan.

    writer = EpisodeWriter.open(plan, datasets_dir, resume=True)   # match-checked on resume
    writer.add_frame(state, action, images, instruction)           # returns at once
    saved = writer.keep_async(EpisodeRecord(...))                   # returns at once: a Future
    writer.discard_async()                                          # returns at once
    writer.keep(...), writer.discard()                              # the same, waiting for the disk
    writer.close()                                                  # waits for every save

Frames go to a single writer thread, so encoding never runs on the control loop. The
video is encoded while the episode is recorded (streaming h264), so the end of an episode
only flushes what is left. `keep_async` hands the episode over and returns at once: its
save, and the reopen for the next episode, run on the writer thread while the next
episode's frames queue behind them (one thread, FIFO), so the operator never waits for
the disk. The Future resolves when the episode is on disk (after the swap below); an
episode is safe from a crash from that instant, not from the hand-over.

Crash safety: the dataset folder only ever holds a finalized dataset, whatever instant
the process dies. lerobot writes into a staging copy (`<datasets>/.piper-staging/<name>`:
meta and sidecar copied, data and videos hard-linked, as lerobot never rewrites them once
finalized); "keep" saves and finalizes the episode there, appends the sidecar row there,
then swaps the staging folder and the dataset folder in one atomic rename
(`renameat2(RENAME_EXCHANGE)`), and deletes the old copy. A kill before the swap leaves the
dataset as it was (the staging copy is removed on the next open), a kill after it leaves
the new one. The staging copy is made again for the next episode (on the writer thread,
during the reset countdown), so each episode has its own data/video files, which also
keeps "keep" from re-muxing a growing video file.

Per-episode facts lerobot has no column for (operator, backend, seed, success, review
note, timing) go to `<dataset>/piper/episodes.jsonl`, one JSON object per kept episode,
keyed by `episode_index`; lerobot ignores the folder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from collect.limits import MOTOR_KEYS
from collect.recording.plan import SIDECAR_DIR, RecordingPlan, is_dataset

log = logging.getLogger(__name__)

ROBOT_TYPE = "piper"
EPISODES_SIDECAR = "episodes.jsonl"
STAGING_DIR = ".piper-staging"  # beside the datasets, hidden from the Library and the trainer
_LINKED_DIRS = ("data", "videos")  # immutable once finalized: hard-linked into the staging copy
ENCODER_WAIT_S = 30.0  # give up waiting for the encoder (it is stuck) and let lerobot drop
_DEFAULT_KEYS = {"timestamp", "frame_index", "episode_index", "index", "task_index"}


class DatasetMismatch(ValueError):
    """Resuming a dataset recorded with other settings (fps, features, cameras, robot)."""


@dataclass
class EpisodeRecord:
    """What the lab wants to know about one kept episode (the sidecar row)."""

    task: str
    instruction: str
    operator: str = ""
    backend: str = "sim"
    seed: int | None = None
    success: bool | None = None
    note: str = ""
    started_at: str = ""  # ISO time
    frames: int = 0
    timing: dict[str, Any] = field(default_factory=dict)
    episode_index: int = -1  # set by the writer


def dataset_features(cameras: tuple[str, ...], image_size: tuple[int, int]) -> dict[str, dict]:
    """The dataset schema: follower state, leader action, one video per camera."""
    names = list(MOTOR_KEYS)
    features: dict[str, dict] = {
        "observation.state": {"dtype": "float32", "shape": (len(names),), "names": names},
        "action": {"dtype": "float32", "shape": (len(names),), "names": names},
    }
    height, width = image_size
    for camera in cameras:
        features[f"observation.images.{camera}"] = {
            "dtype": "video",
            "shape": (height, width, 3),
            "names": ["height", "width", "channels"],
        }
    return features


def check_matches(dataset_root: Path, plan: RecordingPlan) -> None:
    """Refuse to append to a dataset recorded with different settings; say which and what to do."""
    info_path = Path(dataset_root) / "meta" / "info.json"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetMismatch(
            f"{info_path} cannot be read ({exc}); is {dataset_root} a LeRobot dataset?"
        ) from exc
    fix = f"record with the same settings, or choose a new dataset name instead of {plan.dataset!r}"
    problems = []
    if info.get("fps") != plan.fps:
        problems.append(f"fps: dataset {info.get('fps')}, plan {plan.fps}")
    if info.get("robot_type") != ROBOT_TYPE:
        problems.append(f"robot type: dataset {info.get('robot_type')!r}, plan {ROBOT_TYPE!r}")
    have = {k: v for k, v in info.get("features", {}).items() if k not in _DEFAULT_KEYS}
    want = dataset_features(plan.cameras, plan.image_size)
    have_cams = sorted(k.rsplit(".", 1)[-1] for k in have if k.startswith("observation.images."))
    want_cams = sorted(plan.cameras)
    if have_cams != want_cams:
        problems.append(f"cameras: dataset {have_cams}, plan {want_cams}")
    for key in sorted(set(have) | set(want)):
        if key.startswith("observation.images.") and have_cams != want_cams:
            continue
        if key not in have or key not in want:
            problems.append(
                f"feature {key!r}: {'only in the plan' if key in want else 'only in the dataset'}"
            )
            continue
        if (
            tuple(have[key].get("shape", ())) != tuple(want[key]["shape"])
            or have[key].get("dtype") != want[key]["dtype"]
        ):
            problems.append(
                f"feature {key!r}: dataset {have[key].get('dtype')} {tuple(have[key].get('shape', ()))}, "
                f"plan {want[key]['dtype']} {tuple(want[key]['shape'])}"
            )
    if problems:
        raise DatasetMismatch(
            f"cannot resume dataset {plan.dataset!r}: " + "; ".join(problems) + f". To go on, {fix}."
        )


def remove_partial_episode(dataset_root: Path) -> list[Path]:
    """Delete what an interrupted episode left: the streaming encoder's temp dirs, temp images."""
    removed = []
    for path in Path(dataset_root).glob("tmp*"):
        if not path.is_dir():
            continue
        if any(path.glob("*_streaming.mp4")) or not any(path.iterdir()):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    images = Path(dataset_root) / "images"
    if images.is_dir():
        shutil.rmtree(images, ignore_errors=True)
        removed.append(images)
    return removed


# -- staging and the atomic swap ---------------------------------------------------------------
def staging_path(dataset_root: Path) -> Path:
    return Path(dataset_root).parent / STAGING_DIR / Path(dataset_root).name


class DatasetBusy(RuntimeError):
    """Another session records into the dataset (two writers would destroy each other's saves)."""


def lock_dataset(dataset_root: Path) -> int:
    """Take the dataset's recording lock: an exclusive flock on `.piper-staging/<name>.lock`,
    held while the returned descriptor is open and dropped by the OS when the process ends,
    however it ends (kill -9 included). Raises DatasetBusy when another writer holds it."""
    root = Path(dataset_root)
    path = root.parent / STAGING_DIR / f"{root.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise DatasetBusy(
            f"dataset {root.name!r} is open for recording elsewhere (pid {holder}): stop that "
            "recording first, or record under another name"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)  # for the message above, nothing else
    return fd


def ensure_not_recording(dataset_root: Path) -> None:
    """Raise DatasetBusy if a session elsewhere records into the dataset (check before reading
    its files: a file that session is half-way through writing is not damage)."""
    os.close(lock_dataset(dataset_root))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # no hard links on this file system: a copy is slower, as safe
        shutil.copy2(src, dst)


def stage_copy(dataset_root: Path) -> Path:
    """A fresh staging copy of the dataset (without the leftovers of an interrupted episode)."""
    root, staging = Path(dataset_root), staging_path(dataset_root)
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.mkdir()
    for child in root.iterdir():
        if child.name.startswith("tmp") or child.name == "images":
            continue
        if child.is_dir():
            copy = _link_or_copy if child.name in _LINKED_DIRS else shutil.copy2
            shutil.copytree(child, staging / child.name, copy_function=copy)
        else:
            shutil.copy2(child, staging / child.name)
    return staging


def swap_into_place(staging: Path, dataset_root: Path) -> None:
    """Make `staging` the dataset in one atomic step; the old dataset is removed afterwards."""
    staging, root = Path(staging), Path(dataset_root)
    if not root.exists():
        staging.rename(root)
    elif not _rename_exchange(staging, root):
        # No RENAME_EXCHANGE (old kernel or file system): a short window without the dataset.
        old = staging.with_name(staging.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        root.rename(old)
        staging.rename(root)
        staging = old
    shutil.rmtree(staging, ignore_errors=True)  # now the old version


def _rename_exchange(a: Path, b: Path) -> bool:
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported here
        return False
    raise OSError(errno, os.strerror(errno), str(b))


def remove_interrupted_save(dataset_root: Path) -> None:
    """What a killed keep left beside the dataset: its staging copy (the dataset itself is whole)."""
    staging = staging_path(dataset_root)
    old = staging.with_name(staging.name + ".old")
    if not is_dataset(dataset_root) and is_dataset(old):
        old.rename(dataset_root)  # killed inside the fallback swap, between its two renames
    for leftover in (staging, old):
        shutil.rmtree(leftover, ignore_errors=True)


# -- sidecar ----------------------------------------------------------------------------------
def sidecar_path(dataset_root: Path) -> Path:
    return Path(dataset_root) / SIDECAR_DIR / EPISODES_SIDECAR


def read_sidecar(dataset_root: Path) -> dict[int, dict]:
    """episode_index -> the sidecar row (a torn last line from a crash is skipped)."""
    path = sidecar_path(dataset_root)
    rows: dict[int, dict] = {}
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        rows[int(row["episode_index"])] = row
    return rows


def write_sidecar(dataset_root: Path, rows: dict[int, dict]) -> None:
    path = sidecar_path(dataset_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(rows[i]) + "\n" for i in sorted(rows)))
    tmp.replace(path)


def _append_sidecar(dataset_root: Path, row: dict) -> None:
    path = sidecar_path(dataset_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def total_episodes(dataset_root: Path) -> int:
    info = json.loads((Path(dataset_root) / "meta" / "info.json").read_text())
    return int(info.get("total_episodes", 0))


class EpisodeWriter:
    """Appends episodes to one LeRobotDataset; all dataset calls run on one writer thread."""

    def __init__(self, plan: RecordingPlan, root: Path, dataset: Any, lock_fd: int | None = None):
        self.plan = plan
        self._lock_fd = lock_fd  # the dataset's recording lock (`lock_dataset`), released by close()
        self.root = Path(root)
        self._dataset = dataset
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="episode-writer")
        self._pending = 0  # frames queued but not yet handed to lerobot
        self._lock = threading.Lock()
        self._frames = 0
        # Errors belong to one episode (its generation): a failed frame of a discarded or
        # handed-over episode must not stop the next one, which is already being recorded.
        self._generation = 0
        self._errors: dict[int, BaseException] = {}
        self._saving = 0  # episodes handed over, not yet on disk
        self._reopening = False  # the staging copy for the next episode is being made
        self._next_index = self.total_episodes

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, plan: RecordingPlan, datasets_dir: str | Path, *, resume: bool = False) -> EpisodeWriter:
        """Create the dataset, or (with `resume`) reopen it after the match check. Refused
        (DatasetBusy) while another process records into it."""
        root = plan.root(datasets_dir)
        if is_dataset(root) and not resume:
            raise FileExistsError(
                f"dataset {plan.dataset!r} already exists in {root.parent}: resume it (--resume / the Resume "
                "button) or choose a new name"
            )
        lock_fd = lock_dataset(root)
        try:
            return cls._open_locked(plan, root, lock_fd)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def _open_locked(cls, plan: RecordingPlan, root: Path, lock_fd: int) -> EpisodeWriter:
        remove_interrupted_save(root)
        exists = is_dataset(root)
        if exists:
            check_matches(root, plan)
            remove_partial_episode(root)  # from versions that recorded in place
            cls._reconcile_sidecar(root)
            plan.save(root)
            dataset = cls._resume_dataset(plan, stage_copy(root))
        else:
            if root.exists() and any(p.name != SIDECAR_DIR for p in root.iterdir()):
                raise FileExistsError(
                    f"{root} exists but is not a LeRobot dataset (no meta/info.json); move it away or choose another name"
                )
            plan.save(root)
            staging = staging_path(root)
            staging.parent.mkdir(parents=True, exist_ok=True)
            dataset = cls._create_dataset(plan, staging)  # the first keep puts it in place
            plan.save(staging)
        writer = cls(plan, root, dataset, lock_fd)
        log.log(logging.INFO if writer.encoder.hardware else logging.WARNING, writer.encoder.summary)
        return writer

    @staticmethod
    def _encoder():
        """h264 from the GPU when one opens here, else x264 (`collect.recording.encoder`); GOP 2
        as lerobot's default for random access in training."""
        from lerobot.configs.video import RGBEncoderConfig

        from collect.recording.encoder import choose_h264

        choice = choose_h264()
        return RGBEncoderConfig(vcodec=choice.vcodec, preset=choice.preset)

    @property
    def encoder(self):
        """The `EncoderChoice` the videos are written with (shown on the Record page)."""
        from collect.recording.encoder import choose_h264

        return choose_h264()

    @classmethod
    def _create_dataset(cls, plan: RecordingPlan, root: Path):
        from lerobot.datasets import LeRobotDataset

        return LeRobotDataset.create(
            plan.repo_id,
            fps=plan.fps,
            features=dataset_features(plan.cameras, plan.image_size),
            root=root,
            robot_type=ROBOT_TYPE,
            use_videos=True,
            rgb_encoder=cls._encoder(),
            streaming_encoding=True,
            encoder_queue_maxsize=2 * plan.fps,
        )

    @classmethod
    def _resume_dataset(cls, plan: RecordingPlan, root: Path):
        from lerobot.datasets import LeRobotDataset

        return LeRobotDataset.resume(
            plan.repo_id,
            root=root,
            rgb_encoder=cls._encoder(),
            streaming_encoding=True,
            encoder_queue_maxsize=2 * plan.fps,
        )

    @staticmethod
    def _reconcile_sidecar(root: Path) -> None:
        """Drop sidecar rows of episodes the dataset does not hold (a crash between the two writes)."""
        rows = read_sidecar(root)
        total = total_episodes(root)
        if any(i >= total for i in rows):
            write_sidecar(root, {i: r for i, r in rows.items() if i < total})

    # -- counts -------------------------------------------------------------------------------
    def episode_tasks(self) -> list[str]:
        """Instruction of every kept episode, in order (from the dataset's own metadata)."""
        return episode_instructions(self.root)

    @property
    def total_episodes(self) -> int:
        """Episodes on disk (0 before the first keep of a new dataset lands)."""
        return total_episodes(self.root) if is_dataset(self.root) else 0

    # -- recording ----------------------------------------------------------------------------
    @property
    def pending_frames(self) -> int:
        return self._pending

    @property
    def frames(self) -> int:
        return self._frames

    def add_frame(self, state, action, images: dict[str, Any], instruction: str) -> None:
        """Queue one frame (7-vectors in MOTOR_KEYS order, HxWx3 uint8 per camera)."""
        import numpy as np

        self._raise_pending_error()
        frame = {
            "observation.state": np.asarray(state, dtype=np.float32),
            "action": np.asarray(action, dtype=np.float32),
            "task": instruction,
        }
        for camera in self.plan.cameras:
            frame[f"observation.images.{camera}"] = images[camera]
        with self._lock:
            self._pending += 1
            self._frames += 1
        self._executor.submit(self._add, frame, self._generation)

    def _add(self, frame: dict, generation: int) -> None:
        try:
            if generation not in self._errors:
                if self._dataset is None:
                    raise RuntimeError("the dataset could not be reopened after the last save")
                self._wait_for_encoder_room()
                self._dataset.add_frame(frame)
        except BaseException as exc:  # reported on the next call from the loop
            self._errors[generation] = exc
        finally:
            with self._lock:
                self._pending -= 1

    def _wait_for_encoder_room(self, timeout_s: float = ENCODER_WAIT_S) -> None:
        """lerobot's streaming encoder drops a frame when its queue stays full for 0.1 s; a frame
        waits here instead (the backlog grows in our queue, and keep waits for it to drain)."""
        queues = _encoder_queues(self._dataset)
        deadline = time.monotonic() + timeout_s
        while any(q.full() for q in queues) and time.monotonic() < deadline:
            time.sleep(0.005)

    def video_frames_dropped(self) -> int:
        encoder = getattr(getattr(self._dataset, "writer", None), "_streaming_encoder", None)
        return sum(getattr(encoder, "_dropped_frames", {}).values()) if encoder is not None else 0

    @property
    def saving(self) -> int:
        """Episodes handed over by `keep_async` that are not on disk yet."""
        return self._saving

    @property
    def settled(self) -> bool:
        """Nothing of an earlier episode is still being written (no save, reopen or frame backlog)."""
        return self._saving == 0 and not self._reopening and self._pending == 0

    def keep(self, record: EpisodeRecord, timeout_s: float = 120.0) -> EpisodeRecord:
        """Save the episode; returns when it is on disk, finalized."""
        return self.keep_async(record).result(timeout_s)

    def keep_async(self, record: EpisodeRecord) -> Future:
        """Hand the episode over and return at once; the next episode can start right away.

        The Future's result is the record (with its episode_index) once the episode is on disk;
        its exception says why it was not saved (the dataset is then as it was before)."""
        self._raise_pending_error()
        if self._frames == 0:
            raise ValueError("nothing recorded: start an episode before keeping it")
        record.frames = self._frames
        record.episode_index = self._next_index  # the index it gets unless an earlier save fails
        generation = self._next_episode()
        with self._lock:
            self._saving += 1
            self._next_index += 1
            self._reopening = True
        saved = self._executor.submit(self._save, record, generation)
        self._executor.submit(self._reopen_dataset)  # runs before the next frame (one thread, FIFO)
        saved.add_done_callback(self._save_done)
        return saved

    def _next_episode(self) -> int:
        generation = self._generation
        self._generation += 1
        self._frames = 0
        return generation

    def _save_done(self, future: Future) -> None:
        with self._lock:
            self._saving -= 1
            if future.exception() is not None:
                self._next_index -= 1  # the later episodes move down by one

    def _save(self, record: EpisodeRecord, generation: int) -> EpisodeRecord:
        error = self._errors.pop(generation, None)
        if error is not None:
            raise RuntimeError(f"writing the episode failed: {error}") from error
        if self._dataset is None:
            raise RuntimeError("the dataset could not be reopened after the last save")
        started = time.perf_counter()
        record.episode_index = self._dataset.meta.total_episodes
        record.timing = {**record.timing, "video_frames_dropped": self.video_frames_dropped()}
        staging = Path(self._dataset.root)
        dataset, self._dataset = self._dataset, None  # reopened from the disk whatever happens
        dataset.save_episode()
        dataset.finalize()
        remove_partial_episode(staging)
        record.timing["save_s"] = round(time.perf_counter() - started, 3)
        _append_sidecar(staging, asdict(record))
        swap_into_place(staging, self.root)  # the one instant the dataset changes
        return record

    def _reopen_dataset(self) -> BaseException | None:
        """A fresh staging copy of the dataset on disk, for the next episode."""
        try:
            if self._dataset is not None:  # the save was refused before it touched the dataset
                self._dataset.clear_episode_buffer()
                remove_partial_episode(Path(self._dataset.root))
                return None
            self._dataset = self._resume_dataset(self.plan, stage_copy(self.root))
            return None
        except BaseException as exc:  # the next frame reports it; discard tries again
            log.exception("reopening the dataset after a save")
            return exc
        finally:
            self._reopening = False

    def discard(self, timeout_s: float = 60.0) -> None:
        """Drop the episode in progress; the dataset on disk is untouched."""
        self.discard_async().result(timeout_s)

    def discard_async(self) -> Future:
        """Drop the episode in progress without waiting (after any save still running)."""
        generation = self._next_episode()
        return self._executor.submit(self._clear, generation)

    def _clear(self, generation: int) -> None:
        self._errors.pop(generation, None)
        if self._dataset is None:  # a failed reopen: try again now
            error = self._reopen_dataset()
            if error is not None:
                raise error
        if self._dataset.writer is not None and self._dataset.has_pending_frames():
            self._dataset.clear_episode_buffer()
        remove_partial_episode(Path(self._dataset.root))

    def close(self, timeout_s: float = 60.0) -> None:
        """Discard an unkept episode and release the dataset (it stays loadable)."""
        try:
            self._executor.submit(self._close).result(timeout_s)
        finally:
            self._executor.shutdown(wait=True)
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # another process may record into it now
                self._lock_fd = None

    def _close(self) -> None:
        if self._dataset is not None:
            if self._dataset.writer is not None and self._dataset.has_pending_frames():
                self._dataset.clear_episode_buffer()
            self._dataset.finalize()
            self._dataset = None
        remove_interrupted_save(self.root)  # the staging copy of the unkept episode

    def _raise_pending_error(self) -> None:
        error = self._errors.pop(self._generation, None)
        if error is not None:
            raise RuntimeError(f"writing the episode failed: {error}; discard it and record again") from error


def _encoder_queues(dataset: Any) -> list:
    """The streaming encoder's per-camera frame queues (empty when there is none yet)."""
    encoder = getattr(getattr(dataset, "writer", None), "_streaming_encoder", None)
    return list(getattr(encoder, "_frame_queues", {}).values()) if encoder is not None else []


def episode_instructions(dataset_root: Path) -> list[str]:
    """The instruction of each episode, read from meta/episodes/*.parquet (pyarrow, no lerobot)."""
    import pyarrow.parquet as pq

    files = sorted((Path(dataset_root) / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    pairs: list[tuple[int, str]] = []
    for path in files:
        table = pq.read_table(path, columns=["episode_index", "tasks"])
        for index, tasks in zip(
            table.column("episode_index").to_pylist(), table.column("tasks").to_pylist(), strict=True
        ):
            pairs.append((int(index), tasks[0] if tasks else ""))
    return [task for _, task in sorted(pairs)]
