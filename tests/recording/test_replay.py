"""EpisodePlayer: an episode's frames decoded ahead on a thread, seekable, bounded in memory."""

import time

import numpy as np
import pytest

from collect.recording.library import episode_rows
from collect.recording.replay import EpisodePlayer, cached_first_frames
from collect.recording.writer import EpisodeRecord, EpisodeWriter

from ._frames import SMALL


def level(episode: int, frame: int) -> int:
    return (50 * episode + 2 * frame) % 250  # distinct per frame, far apart after h264


def record(plan, datasets_dir, lengths):
    writer = EpisodeWriter.open(plan, datasets_dir)
    for episode, length in enumerate(lengths):
        for i in range(length):
            images = {cam: np.full((*SMALL, 3), level(episode, i), np.uint8) for cam in plan.cameras}
            writer.add_frame(np.zeros(7), np.zeros(7), images, plan.instruction("open_pot"))
        writer.keep(EpisodeRecord(task="open_pot", instruction=plan.instruction("open_pot")))
    writer.close()
    return plan.root(datasets_dir)


def wait_frames(player, index, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while (frames := player.frames_at(index)) is None:
        assert player.error is None, player.error
        assert time.monotonic() < deadline, f"frame {index} never decoded"
        time.sleep(0.01)
    return frames


def test_frames_come_in_order_after_seeks_and_memory_stays_bounded(make_plan, datasets_dir):
    root = record(make_plan("replay", tasks=["open_pot"]), datasets_dir, [12, 60])
    row = episode_rows(root)[1]
    player = EpisodePlayer(root, row, ("side", "wrist"), ahead=8, behind=4)
    try:
        first = wait_frames(player, 0)
        assert set(first) == {"side", "wrist"} and first["side"].shape == (*SMALL, 3)
        for index in (0, 5, 50, 20, 59):  # forward, far jump, back, the last frame
            player.seek(index)
            frames = wait_frames(player, index)
            assert abs(int(frames["wrist"].mean()) - level(1, index)) <= 2, index
        time.sleep(0.3)  # the worker fills its window past the playhead, no further
        assert player.decoded <= 1 + 4 + 8 + 8  # frame 0, behind, ahead, a margin for the last jump
    finally:
        player.close()
    assert cached_first_frames(player._key) is not None  # a second click shows it at once
    again = EpisodePlayer(root, row, ("side", "wrist"))
    assert again.frames_at(0) is not None
    again.close()


def test_a_missing_video_is_reported_in_one_line(make_plan, datasets_dir):
    root = record(make_plan("gone", tasks=["open_pot"]), datasets_dir, [10])
    for video in (root / "videos").rglob("*.mp4"):
        video.unlink()
    player = EpisodePlayer(root, episode_rows(root)[0], ("side",))
    deadline = time.monotonic() + 20
    while player.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert player.error and "\n" not in player.error and player.frames_at(0) is None


@pytest.mark.slow
def test_an_episode_inside_a_shared_video_file_starts_at_its_own_first_frame(datasets_dir):
    """Plain lerobot packs a session's episodes into one mp4 (ours gives each its own file)."""
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets import LeRobotDataset

    from collect.recording.writer import dataset_features

    root = datasets_dir / "packed"
    dataset = LeRobotDataset.create(
        "local/packed",
        fps=30,
        features=dataset_features(("wrist",), SMALL),
        root=root,
        use_videos=True,
        rgb_encoder=RGBEncoderConfig(vcodec="h264", preset="veryfast"),
    )
    for episode, length in enumerate((10, 14, 12)):
        for i in range(length):
            image = np.full((*SMALL, 3), level(episode, i), np.uint8)
            dataset.add_frame(
                {
                    "observation.state": np.zeros(7, np.float32),
                    "action": np.zeros(7, np.float32),
                    "observation.images.wrist": image,
                    "task": "open the pot",
                }
            )
        dataset.save_episode()
    dataset.finalize()
    rows = episode_rows(root)
    key = "videos/observation.images.wrist"
    assert len({(r[f"{key}/chunk_index"], r[f"{key}/file_index"]) for r in rows}) == 1, "not packed"
    for row in rows[1:]:
        player = EpisodePlayer(root, row, ("wrist",))
        try:
            for index in (0, row["length"] - 1):
                player.seek(index)
                frames = wait_frames(player, index)
                assert abs(int(frames["wrist"].mean()) - level(row["episode_index"], index)) <= 2, (
                    row,
                    index,
                )
        finally:
            player.close()
