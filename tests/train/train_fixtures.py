"""A small LeRobot v3 dataset shaped like the recorder's, for training tests (tests/train, tests/app)."""

from __future__ import annotations

import numpy as np

TASKS = ("open the pot", "press the button")
EPISODES_PER_TASK = 3
FRAMES = 16
IMAGE = (64, 80, 3)


def make_dataset(
    root, tasks=TASKS, episodes_per_task=EPISODES_PER_TASK, frames=FRAMES, seed=0, image=IMAGE, noisy=False
):
    """A LeRobotDataset v3 shaped like the recorder's: 7-d state/action, two h264 cameras.

    Each task moves the joints along its own smooth path so that a policy can learn something.
    `noisy`: random pixels instead, every frame of every episode and camera different.
    """
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets import LeRobotDataset

    names = [f"joint_{i}.pos" for i in range(1, 7)] + ["gripper.pos"]
    camera = {"dtype": "video", "shape": image, "names": ["height", "width", "channels"]}
    features = {
        "observation.state": {"dtype": "float32", "shape": (7,), "names": names},
        "action": {"dtype": "float32", "shape": (7,), "names": names},
        "observation.images.side": camera,
        "observation.images.wrist": camera,
    }
    ds = LeRobotDataset.create(
        "local/train_fixture",
        fps=30,
        features=features,
        root=root,
        robot_type="piper",
        use_videos=True,
        image_writer_threads=0,
        rgb_encoder=RGBEncoderConfig(vcodec="h264"),
    )
    rng = np.random.default_rng(seed)
    for task_index, task in enumerate(tasks):
        for _ in range(episodes_per_task):
            phase = rng.uniform(0, 1)
            for t in range(frames):
                angle = np.sin(np.linspace(0, 1, 7) * (task_index + 1) + t / frames + phase).astype(
                    np.float32
                )
                frame = np.full(image, 40 + 80 * task_index, dtype=np.uint8)
                frame[:, (4 * t) % image[1]] = 255
                wrist = frame[::-1].copy()
                if noisy:
                    frame, wrist = rng.integers(0, 256, (2, *image), dtype=np.uint8)
                ds.add_frame(
                    {
                        "observation.state": angle,
                        "action": angle + 0.05 * (task_index + 1),
                        "observation.images.side": frame,
                        "observation.images.wrist": wrist,
                        "task": task,
                    }
                )
            ds.save_episode()
    ds.finalize()
    return root
