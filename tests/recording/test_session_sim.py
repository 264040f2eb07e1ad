"""End to end on the simulated PiPER: the session records a plan with the virtual operator."""

import gc
import sys
import time

import numpy as np
import pytest

from collect.recording.session import RecordingSession, SessionState
from collect.recording.writer import read_sidecar


def wait_for(session, *states, timeout_s=240.0):
    deadline = time.monotonic() + timeout_s
    while session.state not in states:
        assert session.state != SessionState.FAILED, session.snapshot().message
        assert time.monotonic() < deadline, f"stuck in {session.state}"
        time.sleep(0.05)


@pytest.mark.slow
def test_auto_records_two_tasks_by_two_episodes_then_resume_discard_and_rerecord(make_plan, datasets_dir):
    plan = make_plan("sim22", max_episode_s=1.5, seed=3)
    events = []
    switch_interval = sys.getswitchinterval()
    with RecordingSession(
        plan, datasets_dir, auto=True, on_event=lambda e, i: events.append((e, i))
    ) as session:
        assert session.state == SessionState.READY and session.task == "open_pot"
        # while open: what existed is out of the collector's full passes, the GIL switches fast
        assert gc.get_freeze_count() > 100_000 and sys.getswitchinterval() <= 0.001
        session.station.sim.lockstep_misses += 5  # counted before any episode: none of theirs
        session.start().result(60)
        wait_for(session, SessionState.FINISHED)
        assert session.counts == {"open_pot": 2, "press_button": 2}
        snap = session.snapshot()
        assert len(snap.leader) > 10 and set(snap.images) == {"side", "wrist"}
    assert gc.get_freeze_count() == 0 and sys.getswitchinterval() == switch_interval  # restored
    kept = [i for e, i in events if e == "kept"]
    assert [k["task"] for k in kept] == ["open_pot", "open_pot", "press_button", "press_button"]
    assert all(k["frames"] == 45 for k in kept)
    assert max(k["keep_s"] for k in kept) < 5.0  # < 1 s on an idle machine (benchmarks/bench_record.py)

    from lerobot.datasets import LeRobotDataset

    ds = LeRobotDataset(plan.repo_id, root=plan.root(datasets_dir))
    assert ds.num_episodes == 4 and ds.num_frames == 180
    assert list(ds.meta.episodes["length"]) == [45] * 4
    assert ds.meta.robot_type == "piper" and ds.fps == 30
    assert [ds[i]["task"] for i in (0, 45, 90, 135)] == ["open the pot"] * 2 + ["press the button"] * 2
    frame = ds[100]
    assert tuple(frame["observation.images.side"].shape) == (3, 96, 128)
    assert tuple(frame["observation.images.wrist"].shape) == (3, 96, 128)
    assert float(frame["observation.images.side"].std()) > 0.01  # a rendered scene, not a blank
    state = np.stack([ds.hf_dataset[i]["observation.state"] for i in range(45)])
    action = np.stack([ds.hf_dataset[i]["action"] for i in range(45)])
    assert np.ptp(action[:, :6], axis=0).max() > 0.05, "the virtual operator moved the leader"
    assert not np.allclose(state, action, atol=1e-3), "the follower lags the leader"
    assert np.abs(state - action)[:, :6].max() < 0.5, "the follower tracks the leader"
    sidecar = read_sidecar(plan.root(datasets_dir))
    assert [r["seed"] for r in sidecar.values()] == [3, 4, 1003, 1004]
    assert all(r["backend"] == "sim" and r["timing"]["ticks"] == 45 for r in sidecar.values())
    assert all(r["timing"]["lockstep_misses"] == 0 for r in sidecar.values())  # each episode's own

    bigger = make_plan("sim22", max_episode_s=1.5, seed=3, episodes_per_task=3)
    with RecordingSession(bigger, datasets_dir, resume=True) as session:
        assert session.counts == {"open_pot": 2, "press_button": 2} and session.task == "open_pot"
        assert session._kept_seeds == {"open_pot": {3, 4}, "press_button": {1003, 1004}}  # from the sidecar
        session.start().result(60)
        session.stop().result(60)
        session.discard().result(60)
        wait_for(session, SessionState.READY)
        session.start().result(60)
        session.stop().result(60)
        session.rerecord().result(60)
        assert session.state == SessionState.RECORDING
        session.stop().result(60)
        info = session.keep(success=True, note="re-recorded").result(60)
        assert info["episode_index"] == 4 and session.counts["open_pot"] == 3
        assert session.task == "press_button"  # open_pot reached its target: the task advanced
        session.switch_task("open_pot").result(60)
        assert session.task == "open_pot"

        session.start().result(60)  # E-STOP mid-episode: the arm stops, the episode waits for review
        session.estop()
        wait_for(session, SessionState.REVIEW, timeout_s=30)
        assert session.snapshot().estopped
        session.discard().result(60)
        wait_for(session, SessionState.READY)
        with pytest.raises(RuntimeError, match="e-stop"):
            session.start().result(60)
        session.resume_arm().result(60)
        session.start().result(60)
        session.discard().result(60)
    ds = LeRobotDataset(plan.repo_id, root=plan.root(datasets_dir))
    assert ds.num_episodes == 5
    last = read_sidecar(plan.root(datasets_dir))[4]
    assert (
        last["note"] == "re-recorded"
        and last["success"] is True
        and last["frames"] == ds.meta.episodes["length"][4]
        and last["seed"] == 3 + 2 + 2 * 100  # the third open_pot episode after two discarded tries
    )


@pytest.mark.slow
def test_auto_holds_an_episode_ended_by_estop_and_home_restores_the_start(make_plan, datasets_dir):
    from collect.episode_start import EPISODE_START

    plan = make_plan("estop_auto", tasks=["pick_grape"], episodes_per_task=2, max_episode_s=20.0)
    with RecordingSession(plan, datasets_dir, auto=True) as session:
        session.start().result(60)
        while session.snapshot().frames < 40:  # the operator has moved the arm away from the start
            time.sleep(0.02)
        session.estop()
        wait_for(session, SessionState.REVIEW, timeout_s=30)
        time.sleep(1.0)  # Auto keeps a finished episode within a tick: this one must wait for the operator
        snap = session.snapshot()
        assert session.state == SessionState.REVIEW and session.counts["pick_grape"] == 0
        assert "E-STOP" in snap.message and snap.start_gap > EPISODE_START.tolerance
        session.resume_arm().result(30)
        session.home().result(30)  # sim: the scene and the arm back to the start state
        time.sleep(0.5)
        assert session.snapshot().start_gap == pytest.approx(0.0, abs=1e-4)
        # The held arm never carries the leader's whole command: no tick waited for it.
        assert session.station.sim.lockstep_misses == 0
        session.discard().result(30)


@pytest.mark.slow
def test_a_wall_clock_loop_that_falls_behind_is_held_for_review_not_auto_kept(make_plan, datasets_dir):
    """The real arm's loop keeps the wall clock: one that cannot keep its fps is never auto-kept.
    A real-time sim station stands in for the arm, at an fps no 2-core PC renders two cameras at."""
    from collect.station import StationConfig, open_station

    def wall_clock_station(plan, task):
        return open_station(StationConfig(backend="sim", image_size=plan.image_size, fps=plan.fps, task=task))

    plan = make_plan("behind", tasks=["press_button"], episodes_per_task=1, max_episode_s=0.5, fps=600)
    with RecordingSession(plan, datasets_dir, auto=True, station_factory=wall_clock_station) as session:
        session.start().result(60)
        wait_for(session, SessionState.REVIEW, timeout_s=60)
        time.sleep(1.0)  # Auto keeps a finished episode within a tick
        assert session.state == SessionState.REVIEW and session.counts["press_button"] == 0
        assert "fell behind" in session.snapshot().message
        info = session.keep(note="kept by hand").result(60)
    row = read_sidecar(plan.root(datasets_dir))[info["episode_index"]]
    assert row["timing"]["fell_behind"] and not row["timing"]["lockstep"]


def test_a_session_that_cannot_open_in_time_says_so_in_one_line_and_stops(make_plan, datasets_dir):
    """On a starved CPU the station can take minutes to open: a clear error, not a traceback,
    and the loop thread stops once the station is up instead of recording unattended."""
    import threading

    from collect.recording.session import default_station_factory

    release = threading.Event()
    opened = []

    def slow_station(plan, task):
        release.wait(30)
        station = default_station_factory(plan, task)
        opened.append(station)
        return station

    plan = make_plan("starved", tasks=["press_button"], episodes_per_task=1)
    session = RecordingSession(plan, datasets_dir, auto=True, station_factory=slow_station)
    with pytest.raises(RuntimeError, match=r"did not open within 1 s .* run the same command again"):
        session.open(timeout_s=1.0)
    release.set()
    session._thread.join(60)
    assert opened and not session._thread.is_alive()
    assert session.counts["press_button"] == 0
