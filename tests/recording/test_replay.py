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
def test_an_episode_inside_a_shared_video_file_starts_at_its_own_first_frame(make_plan, datasets_dir):
    """lerobot's tools (delete_episodes) may pack several episodes into one mp4."""
    from collect.recording.library import delete_episode

    root = record(make_plan("packed", tasks=["open_pot"]), datasets_dir, [10, 14, 12])
    delete_episode(root, 0)
    rows = episode_rows(root)
    assert [r["length"] for r in rows] == [14, 12]
    assert any(r["videos/observation.images.wrist/from_timestamp"] > 0 for r in rows), "not packed: test moot"
    for row, recorded in zip(rows, (1, 2), strict=True):
        player = EpisodePlayer(root, row, ("wrist",))
        try:
            for index in (0, row["length"] - 1):
                player.seek(index)
                frames = wait_frames(player, index)
                assert abs(int(frames["wrist"].mean()) - level(recorded, index)) <= 2, (recorded, index)
        finally:
            player.close()
