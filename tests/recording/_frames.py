"""Synthetic frames for writer tests (also used by the kill -9 child process)."""

import numpy as np

SMALL = (96, 128)


def synthetic_episode(writer, frames: int, level: float, instruction: str) -> None:
    """Frames whose state/action/pixels encode (level, frame index) so reads can be checked."""
    height, width = writer.plan.image_size
    for i in range(frames):
        state = np.full(7, level + 0.001 * i, dtype=np.float32)
        images = {
            cam: np.full((height, width, 3), (40 * level + 3 * i) % 250, np.uint8)
            for cam in writer.plan.cameras
        }
        writer.add_frame(state, state + 0.5, images, instruction)


def episode_length(index: int) -> int:
    """Frames of episode `index` in the kill-at-any-instant test (varied, so each is checked)."""
    return 6 + index % 4
