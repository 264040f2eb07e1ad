"""The frame cache: the same samples lerobot's reader builds (frames, delta windows, padding,
task), without decoding; rebuilt when the videos change; frames over the limit decoded while
the columns are still held; a killed build leaves nothing that is read."""

import logging
import os

import pytest
import torch
from train_fixtures import make_dataset

from train.frame_cache import CACHE_FOLDER, FrameCache, cache_root

# what a policy's delta_timestamps ask for: earlier frames (padded at an episode's start),
# the current frame of the other camera, and an action chunk
DELTA = {
    "observation.images.side": [-2 / 30, -1 / 30, 0.0],
    "observation.images.wrist": [0.0],
    "action": [i / 30 for i in range(4)],
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    # every frame of every episode and camera different: one read from the wrong episode,
    # time or camera cannot match
    root = tmp_path_factory.mktemp("frame_cache") / "noisy"
    return make_dataset(root, episodes_per_task=2, frames=12, image=(24, 32, 3), noisy=True)


def _open(root, episodes=None):
    from lerobot.datasets import LeRobotDataset, LeRobotDatasetMetadata

    meta = LeRobotDatasetMetadata("local/noisy", root=root)
    return meta, LeRobotDataset("local/noisy", root=root, episodes=episodes, delta_timestamps=DELTA)


def _build(root, max_gb=1.0):
    meta, plain = _open(root)
    return FrameCache.open_or_build(root, meta, plain._video_backend, max_gb)


def test_cached_samples_are_exactly_lerobots_samples(dataset, monkeypatch):
    cache = _build(dataset)
    assert cache is not None and (cache.directory / "done.json").is_file()
    expected_actions = []
    for episodes in (None, [1, 3]):  # the whole dataset, and a validation-like subset
        _, plain = _open(dataset, episodes)
        _, cached = _open(dataset, episodes)
        cache.attach(cached)
        for i in range(len(plain)):
            expected, got = plain[i], cached[i]
            if episodes is None:
                expected_actions.append(expected["action"])
            assert expected.keys() == got.keys()
            for key, value in expected.items():
                if isinstance(value, torch.Tensor):
                    assert value.dtype == got[key].dtype and torch.equal(value, got[key]), (i, key)
                else:
                    assert value == got[key], (i, key)
    # the cache really serves them: nothing is decoded, and no row goes through the HF dataset
    import lerobot.datasets.dataset_reader

    def refuse(*args, **kwargs):
        raise AssertionError("decoded or read a row, though cached")

    monkeypatch.setattr(lerobot.datasets.dataset_reader, "decode_video_frames", refuse)
    _, cached = _open(dataset)
    cache.attach(cached)
    monkeypatch.setattr(type(cached.reader.hf_dataset), "__getitem__", refuse)
    assert all(torch.equal(cached[i]["action"], expected_actions[i]) for i in range(len(cached)))


def test_a_second_open_reuses_the_cache_and_changed_videos_rebuild_it(dataset, tmp_path):
    import shutil

    root = shutil.copytree(dataset, tmp_path / "noisy")
    first = _build(root)
    built_at = (first.directory / "done.json").stat().st_mtime_ns
    again = _build(root)
    assert again.directory == first.directory
    assert (again.directory / "done.json").stat().st_mtime_ns == built_at  # not decoded again
    video = next((root / "videos").rglob("*.mp4"))
    os.utime(video, ns=(built_at + 10**9, built_at + 10**9))  # as a re-recorded dataset's would
    rebuilt = _build(root)
    assert rebuilt.directory != first.directory and (rebuilt.directory / "done.json").is_file()
    assert not first.directory.exists()  # the stale cache is removed
    assert cache_root(root) == tmp_path / CACHE_FOLDER / "noisy"  # beside the dataset, not in it


def test_a_killed_build_is_never_read_and_is_cleaned_up(dataset, tmp_path):
    import shutil

    root = shutil.copytree(dataset, tmp_path / "noisy")
    meta, plain = _open(root)
    from train.frame_cache import fingerprint

    directory = cache_root(root) / fingerprint(root, meta, plain._video_backend)
    leftover = directory.with_name(directory.name + ".building")
    leftover.mkdir(parents=True)
    (leftover / "observation.images.side.npy").write_bytes(b"half written")
    cache = _build(root)
    assert cache.directory == directory and not leftover.exists()
    _, cached = _open(root)
    cache.attach(cached)
    assert torch.equal(cached[3]["observation.images.side"], plain[3]["observation.images.side"])


def test_frames_over_the_limit_are_decoded_and_the_columns_still_held(dataset, tmp_path, caplog):
    import shutil

    root = shutil.copytree(dataset, tmp_path / "noisy")
    with caplog.at_level(logging.INFO, logger="train"):
        cache = _build(root, max_gb=1e-6)
    assert "decoded per sample" in caplog.text and "frame_cache_gb" in caplog.text
    assert cache.keys == [] and cache.columns is not None
    assert not any(cache_root(root).glob("*/done.json"))
    _, plain = _open(root)
    _, cached = _open(root)
    cache.attach(cached)
    for i in (0, 7, len(plain) - 1):
        expected, got = plain[i], cached[i]
        assert all(
            torch.equal(v, got[k]) if isinstance(v, torch.Tensor) else v == got[k]
            for k, v in expected.items()
        )
    assert _build(root, max_gb=0) is None  # 0 turns it off: lerobot's reader
