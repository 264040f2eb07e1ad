"""`EpisodePlayer`: one episode's camera frames, decoded ahead on a worker thread.

    player = EpisodePlayer(root, row, cameras)  # returns at once: no file is touched here
    player.seek(i)                              # the playhead (Play, the slider)
    frames = player.frames_at(i)                # {camera: HxWx3 uint8}, or None while decoding
    player.close()

The worker opens each camera's mp4 with PyAV and seeks to the keyframe at or before the
episode's first timestamp (lerobot may concatenate episodes into one file; our recordings
have a GOP of 2), so the first frames come within tens of milliseconds instead of after
the whole episode. It then keeps up to `ahead` frames decoded past the playhead and drops
those far behind it, so memory stays bounded however long the episode. A seek outside the
decoded window restarts decoding from the keyframe before the new playhead.

The first frames of recently opened episodes are cached (`FIRST_FRAMES`), so going back to
an episode shows its first frame at once. Reads only the dataset's files: no lerobot import.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

AHEAD_FRAMES = 45  # decoded past the playhead (1.5 s at 30 fps)
BEHIND_FRAMES = 15  # kept behind it, for a short step back
FIRST_FRAMES_CACHED = 32  # episodes whose first frames stay in memory

_first_frames: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
_first_lock = threading.Lock()


def cached_first_frames(key: tuple) -> dict[str, Any] | None:
    with _first_lock:
        frames = _first_frames.get(key)
        if frames is not None:
            _first_frames.move_to_end(key)
        return frames


def _cache_first_frames(key: tuple, frames: dict[str, Any]) -> None:
    with _first_lock:
        _first_frames[key] = frames
        _first_frames.move_to_end(key)
        while len(_first_frames) > FIRST_FRAMES_CACHED:
            _first_frames.popitem(last=False)


class _CameraDecoder:
    """Frames of one camera's episode span, by episode frame index, from one mp4."""

    def __init__(self, path: Path, start_s: float, fps: float):
        import av

        self.container = av.open(str(path))
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"  # frame threads: decoding keeps ahead of playback
        self.start_s, self.fps = start_s, fps
        self._frames = None

    def seek(self, index: int) -> None:
        """Decode from the keyframe at or before frame `index` of the episode."""
        target = self.start_s + index / self.fps
        self.container.seek(max(0, int(target / self.stream.time_base)), stream=self.stream, backward=True)
        self._frames = self.container.decode(self.stream)

    def next(self) -> tuple[int, Any] | None:
        """(episode frame index, frame) of the next decoded frame; None at the end of the file."""
        for frame in self._frames:
            t = float(frame.pts * self.stream.time_base) if frame.pts is not None else self.start_s
            index = round((t - self.start_s) * self.fps)
            if index >= 0:
                return index, frame
        return None

    def close(self) -> None:
        self.container.close()


class EpisodePlayer:
    def __init__(
        self,
        root: str | Path,
        row: dict[str, Any],
        cameras: tuple[str, ...] | list[str],
        *,
        ahead: int = AHEAD_FRAMES,
        behind: int = BEHIND_FRAMES,
    ):
        self.root = Path(root)
        self.episode_index = int(row["episode_index"])
        self.length = int(row["length"])
        self.cameras = tuple(cameras)
        self.error: str | None = None  # why decoding stopped, in one line
        self._row = row
        self._ahead, self._behind = ahead, behind
        self._frames: dict[int, dict[str, Any]] = {}
        self._playhead = 0
        self._closed = False
        self._changed = threading.Condition()
        self._key = (str(self.root), self.episode_index, self.length, self.cameras, _files_stamp(row))
        first = cached_first_frames(self._key)
        if first is not None:
            self._frames[0] = first
        self._thread = threading.Thread(target=self._run, name=f"replay-{self.episode_index}", daemon=True)
        self._thread.start()

    # -- the GUI side -----------------------------------------------------------------------------
    def frames_at(self, index: int) -> dict[str, Any] | None:
        with self._changed:
            return self._frames.get(index)

    def seek(self, index: int) -> None:
        with self._changed:
            self._playhead = max(0, min(index, self.length - 1))
            self._changed.notify()

    @property
    def decoded(self) -> int:
        """Frames decoded and held now (for a progress indicator)."""
        with self._changed:
            return len(self._frames)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()

    # -- the worker ---------------------------------------------------------------------------------
    def _run(self) -> None:
        decoders: dict[str, _CameraDecoder] = {}
        try:
            decoders = self._open()
            position = None  # the episode frame index the decoders deliver next
            while True:
                with self._changed:
                    want = self._next_missing()
                    while want is None and not self._closed:
                        self._changed.wait()
                        want = self._next_missing()
                    if self._closed:
                        return
                if position != want:  # a jump (or the start): from the keyframe before it
                    for decoder in decoders.values():
                        decoder.seek(want)
                position = self._decode_one(decoders, want)
        except Exception as exc:  # a damaged or missing file: the page says which, decoding stops
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            for decoder in decoders.values():
                decoder.close()

    def _open(self) -> dict[str, _CameraDecoder]:
        from collect.recording.library import read_info

        info = read_info(self.root)
        fps = float(info["fps"])
        decoders = {}
        for camera in self.cameras:
            key = f"observation.images.{camera}"
            path = self.root / info["video_path"].format(
                video_key=key,
                chunk_index=self._row[f"videos/{key}/chunk_index"],
                file_index=self._row[f"videos/{key}/file_index"],
            )
            decoders[camera] = _CameraDecoder(path, float(self._row[f"videos/{key}/from_timestamp"]), fps)
        return decoders

    def _next_missing(self) -> int | None:
        """The first frame in [playhead, playhead + ahead) not decoded yet (lock held)."""
        for index in range(self._playhead, min(self.length, self._playhead + self._ahead)):
            if index not in self._frames:
                return index
        return None

    def _decode_one(self, decoders: dict[str, _CameraDecoder], want: int) -> int | None:
        """Decode the next frame of every camera (frames before `want` are skipped)."""
        frames, index = {}, None
        for camera, decoder in decoders.items():
            while True:
                got = decoder.next()
                if got is None:
                    raise EOFError(f"{camera}: the video ends before frame {want} of {self.length}")
                index, frame = got
                if index >= want:
                    break
            frames[camera] = frame.to_ndarray(format="rgb24")
        with self._changed:
            self._frames[want] = frames  # a frame missing from the file shows the next one
            if index < self.length:
                self._frames[index] = frames
            low = self._playhead - self._behind
            for old in [i for i in self._frames if i < low or i >= self._playhead + 2 * self._ahead]:
                if old != 0:  # the first frames stay: going back to the start is common
                    del self._frames[old]
        if index == 0:
            _cache_first_frames(self._key, frames)
        return index + 1


def _files_stamp(row: dict[str, Any]) -> tuple:
    """Where the episode's frames are: a rewritten dataset (episode deleted) gets new keys."""
    return tuple(sorted((k, str(v)) for k, v in row.items() if k.startswith("videos/")))
