"""The LeRobotDataset writer: what plain lerobot reads back, discard, resume, match check, kill -9."""

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collect.recording.writer import (
    DatasetMismatch,
    EpisodeRecord,
    EpisodeWriter,
    episode_instructions,
    read_sidecar,
    staging_path,
)

from ._frames import SMALL, episode_length, synthetic_episode

HERE = Path(__file__).parent


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def load(plan, datasets_dir):
    from lerobot.datasets import LeRobotDataset

    return LeRobotDataset(plan.repo_id, root=plan.root(datasets_dir))


def keep(writer, task, **extra):
    plan = writer.plan
    return writer.keep(
        EpisodeRecord(task=task, instruction=plan.instruction(task), operator=plan.operator, **extra)
    )


def test_kept_episodes_read_back_with_plain_lerobot_and_discard_leaves_no_trace(make_plan, datasets_dir):
    plan = make_plan("rt")
    writer = EpisodeWriter.open(plan, datasets_dir)
    synthetic_episode(writer, 12, 1.0, plan.instruction("open_pot"))
    first = keep(writer, "open_pot", success=True, note="clean grasp", seed=7)
    assert first.episode_index == 0 and first.frames == 12
    writer.close()
    before = tree_digest(plan.root(datasets_dir))

    writer = EpisodeWriter.open(plan, datasets_dir, resume=True)
    synthetic_episode(writer, 9, 3.0, plan.instruction("press_button"))
    writer.discard()  # a bad take
    synthetic_episode(writer, 15, 2.0, plan.instruction("press_button"))
    second = keep(writer, "press_button", success=False)
    writer.close()
    assert second.episode_index == 1

    ds = load(plan, datasets_dir)
    assert ds.num_episodes == 2 and ds.num_frames == 27
    assert list(ds.meta.episodes["length"]) == [12, 15]
    assert episode_instructions(plan.root(datasets_dir)) == ["open the pot", "press the button"]
    assert set(ds.meta.video_keys) == {"observation.images.side", "observation.images.wrist"}
    frame = ds[12]  # first frame of the kept press_button take, not the discarded one
    assert frame["task"] == "press the button"
    assert np.allclose(frame["observation.state"].numpy(), 2.0)
    assert np.allclose(frame["action"].numpy(), 2.5)
    image = frame["observation.images.side"]
    assert tuple(image.shape) == (3, 96, 128)
    assert abs(float(image.mean()) * 255 - 80) < 4  # pixels of level 2.0, frame 0 (h264 is lossy)

    from collect.recording.library import episode_video

    for camera in plan.cameras:  # every recorded frame is in the video, none dropped by the encoder
        assert len(episode_video(plan.root(datasets_dir), 1, camera)) == 15
    sidecar = read_sidecar(plan.root(datasets_dir))
    assert sidecar[1]["timing"]["video_frames_dropped"] == 0
    assert sidecar[0]["success"] is True and sidecar[0]["note"] == "clean grasp" and sidecar[0]["seed"] == 7
    assert (
        sidecar[1]["task"] == "press_button"
        and sidecar[1]["frames"] == 15
        and sidecar[1]["operator"] == "tester"
    )
    after = tree_digest(plan.root(datasets_dir))
    for path, digest in before.items():  # the first episode's files were never rewritten
        if path.startswith(("videos/", "data/")):
            assert after[path] == digest, path


def test_resume_refuses_other_settings_and_names_the_mismatch(make_plan, datasets_dir):
    plan = make_plan("mm")
    writer = EpisodeWriter.open(plan, datasets_dir)
    synthetic_episode(writer, 5, 0.0, plan.instruction("open_pot"))
    keep(writer, "open_pot")
    writer.close()
    with pytest.raises(FileExistsError, match="resume"):
        EpisodeWriter.open(plan, datasets_dir)
    with pytest.raises(DatasetMismatch, match=r"fps: dataset 30, plan 15"):
        EpisodeWriter.open(make_plan("mm", fps=15), datasets_dir, resume=True)
    with pytest.raises(DatasetMismatch, match=r"cameras: dataset \['side', 'wrist'\], plan \['side'\]"):
        EpisodeWriter.open(make_plan("mm", cameras=("side",)), datasets_dir, resume=True)
    with pytest.raises(DatasetMismatch, match=r"observation.images.side.*\(96, 128, 3\).*\(120, 160, 3\)"):
        EpisodeWriter.open(make_plan("mm", image_size=(120, 160)), datasets_dir, resume=True)
    info = plan.root(datasets_dir) / "meta" / "info.json"
    raw = json.loads(info.read_text())
    raw["robot_type"] = "so100"
    info.write_text(json.dumps(raw))
    with pytest.raises(DatasetMismatch, match="robot type: dataset 'so100', plan 'piper'.*new dataset name"):
        EpisodeWriter.open(plan, datasets_dir, resume=True)


def test_a_second_writer_is_refused_while_one_records_and_a_killed_one_frees_the_dataset(
    make_plan, datasets_dir
):
    """Two sessions on one dataset once removed each other's staged saves and truncated a
    kept episode's parquet file: one writer per dataset, the lock dropped however it ends."""
    from collect.recording.library import delete_episode
    from collect.recording.writer import DatasetBusy

    plan = make_plan("busy")
    root = plan.root(datasets_dir)
    writer = EpisodeWriter.open(plan, datasets_dir)
    synthetic_episode(writer, 5, 0.0, plan.instruction("open_pot"))
    keep(writer, "open_pot")
    before = tree_digest(root)
    with pytest.raises(DatasetBusy, match=rf"'busy' is open for recording elsewhere \(pid {os.getpid()}\)"):
        EpisodeWriter.open(plan, datasets_dir, resume=True)
    with pytest.raises(DatasetBusy):
        delete_episode(root, 0)
    assert tree_digest(root) == before  # the refused writer touched nothing
    synthetic_episode(writer, 4, 1.0, plan.instruction("open_pot"))  # the first one records on
    keep(writer, "open_pot")
    writer.close()
    assert load(plan, datasets_dir).meta.total_episodes == 2

    holder = subprocess.Popen(
        [sys.executable, "-c", f"import time; from collect.recording.writer import lock_dataset; "
         f"lock_dataset({str(root)!r}); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=HERE.parent.parent,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DatasetBusy, match=f"pid {holder.pid}"):
            EpisodeWriter.open(plan, datasets_dir, resume=True)
    finally:  # kill -9: the lock's holder gets no chance to release it
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    EpisodeWriter.open(plan, datasets_dir, resume=True).close()  # the OS dropped the lock


@pytest.mark.slow
def test_kill_9_mid_episode_keeps_every_kept_episode(datasets_dir):
    env = dict(os.environ, PYTHONPATH=str(HERE.parent.parent))
    child = subprocess.Popen(
        [sys.executable, str(HERE / "_kill_child.py"), str(datasets_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines = []
    try:
        for line in child.stdout:
            lines.append(line.strip())
            if line.startswith("RECORDING"):
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait(30)
    assert lines == ["KEPT 0", "KEPT 1", "RECORDING"], lines
    root = datasets_dir / "crashy"
    assert any(staging_path(root).glob("tmp*/*_streaming.mp4")), "the killed episode was being encoded"
    assert not any(root.glob("tmp*")), "the dataset folder holds finalized files only"

    from lerobot.datasets import LeRobotDataset

    from collect.recording.plan import RecordingPlan

    ds = LeRobotDataset("local/crashy", root=root)
    assert ds.num_episodes == 2 and list(ds.meta.episodes["length"]) == [20, 21]
    assert ds[20]["task"] == "press the button" and np.allclose(ds[20]["observation.state"].numpy(), 1.0)
    assert tuple(ds[40]["observation.images.wrist"].shape) == (3, 96, 128)

    plan = RecordingPlan.load(root)  # resume: the plan was saved beside the dataset
    writer = EpisodeWriter.open(plan, datasets_dir, resume=True)
    assert not any(root.glob("tmp*")) and not any(staging_path(root).glob("tmp*")), (
        "the partial episode is gone"
    )
    assert writer.episode_tasks() == ["open the pot", "press the button"]
    synthetic_episode(writer, 8, 5.0, plan.instruction("open_pot"))
    assert keep(writer, "open_pot").episode_index == 2
    writer.close()
    assert LeRobotDataset("local/crashy", root=root).num_episodes == 3


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_kill_at_any_instant_leaves_every_kept_episode_loadable_by_plain_lerobot(datasets_dir, mode):
    """SIGKILL at random instants (opening, recording, saving, swapping, reopening), each run
    resuming the last one's dataset: plain lerobot loads every kept episode right after each kill.
    `async`: the next episode is recorded while the last one is saved (keep_async)."""
    import random
    import time

    from lerobot.datasets import LeRobotDataset

    env = dict(os.environ, PYTHONPATH=str(HERE.parent.parent))
    root, rng = datasets_dir / "anytime", random.Random(7)
    kept, loaded, instants = -1, 0, int(os.environ.get("PIPER_KILL_INSTANTS", "12"))
    for _ in range(instants):
        child = subprocess.Popen(
            [sys.executable, str(HERE / "_kill_anytime_child.py"), str(datasets_dir), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert child.stdout.readline().strip() == "OPEN", child.stderr.read()
            time.sleep(rng.uniform(0.0, 1.5))  # keeps take ~0.1-0.3 s here: most instants fall in one
        finally:
            child.send_signal(signal.SIGKILL)
            out, _ = child.communicate(timeout=30)
        kept = max([kept] + [int(line.split()[1]) for line in out.splitlines() if line.startswith("KEPT")])
        if kept < 0:
            continue  # nothing kept yet: nothing to load
        ds = LeRobotDataset("local/anytime", root=root)
        lengths = list(ds.meta.episodes["length"])
        assert ds.num_episodes >= kept + 1, (ds.num_episodes, kept)  # a keep may land just before the kill
        assert lengths == [episode_length(i) for i in range(ds.num_episodes)]
        assert tuple(ds[len(ds) - 1]["observation.images.wrist"].shape) == (
            3,
            *SMALL,
        )  # the last video decodes
        assert sorted(read_sidecar(root)) == list(range(ds.num_episodes))
        kept, loaded = ds.num_episodes - 1, loaded + 1
    print(f"kill instants: {instants}, loaded after the kill: {loaded}, episodes: {kept + 1}")
    assert loaded >= instants - 2 and kept >= 3
