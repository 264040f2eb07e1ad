"""Evaluation trials saved as episodes of a LeRobotDataset v3, for review.

`datasets/eval_<campaign>/` gets one episode per finished trial (cameras, joints, the
actions actually sent); aborted trials are dropped. The episode reference stored with the
trial is `eval_<campaign>#<episode_index>`. A resumed campaign appends to the same
dataset (`LeRobotDataset.resume`). Streaming h264 encoding keeps `end()` short.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collect.limits import CAMERA_NAMES, MOTOR_KEYS
from collect.recording.plan import is_dataset

REPO_PREFIX = "local/"


def eval_features(image_size: tuple[int, int]) -> dict[str, dict]:
    height, width = image_size
    names = list(MOTOR_KEYS)
    features = {
        "observation.state": {"dtype": "float32", "shape": (7,), "names": names},
        "action": {"dtype": "float32", "shape": (7,), "names": names},
    }
    for camera in CAMERA_NAMES:
        features[f"observation.images.{camera}"] = {
            "dtype": "video",
            "shape": (height, width, 3),
            "names": ["height", "width", "channels"],
        }
    return features


class EvalEpisodeWriter:
    def __init__(self, datasets_dir: Path, name: str, *, fps: int, image_size: tuple[int, int]):
        self.root = Path(datasets_dir) / name
        self.name = name
        self.fps = fps
        self.image_size = tuple(image_size)
        self._dataset: Any = None
        self._instruction = ""
        self._frames = 0

    def _open(self):
        if self._dataset is not None:
            return self._dataset
        from lerobot.configs.video import RGBEncoderConfig
        from lerobot.datasets import LeRobotDataset

        encoder = RGBEncoderConfig(vcodec="h264")
        if is_dataset(self.root):
            self._dataset = LeRobotDataset.resume(
                REPO_PREFIX + self.name, root=self.root, rgb_encoder=encoder, streaming_encoding=True
            )
        else:
            self._dataset = LeRobotDataset.create(
                REPO_PREFIX + self.name,
                fps=self.fps,
                features=eval_features(self.image_size),
                root=self.root,
                robot_type="piper",
                use_videos=True,
                rgb_encoder=encoder,
                streaming_encoding=True,
            )
        return self._dataset

    def begin(self, slot: Any, instruction: str) -> None:
        self._open()
        self._instruction = instruction
        self._frames = 0

    def add(self, observation: dict[str, Any], action: dict[str, float]) -> None:
        import numpy as np

        frame = {
            "observation.state": np.asarray([observation[k] for k in MOTOR_KEYS], dtype=np.float32),
            "action": np.asarray([action[k] for k in MOTOR_KEYS], dtype=np.float32),
            "task": self._instruction,
        }
        for camera in CAMERA_NAMES:
            frame[f"observation.images.{camera}"] = observation[camera]
        self._dataset.add_frame(frame)
        self._frames += 1

    def end(self, keep: bool = True) -> str:
        """Save (or drop) the trial's episode; returns its reference ('' when dropped)."""
        dataset = self._dataset
        if dataset is None or self._frames == 0:
            return ""
        if not keep:
            dataset.clear_episode_buffer()
            return ""
        index = dataset.meta.total_episodes
        dataset.save_episode()
        return f"{self.name}#{index}"

    def close(self) -> None:
        if self._dataset is not None:
            self._dataset.finalize()
            self._dataset = None
