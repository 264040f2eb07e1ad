"""Plan validation, loop timing and pacing (no hardware, no lerobot)."""

import pytest

from collect.recording.pacing import WallClockPacer
from collect.recording.plan import RecordingPlan
from collect.recording.timing import LoopTimer


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_plan_defaults_and_bad_input(tmp_path):
    plan = RecordingPlan("day1")
    assert plan.tasks == ["open_pot", "pour_block", "press_button", "pick_grape"]
    assert plan.total_episodes == 480 and plan.fps == 30 and plan.max_frames == 900
    assert plan.repo_id == "local/day1" and plan.instruction("open_pot") == "open the pot"
    assert plan.task_of_instruction("press the button") == "press_button"
    plan.save(tmp_path)
    assert RecordingPlan.load(tmp_path) == plan
    with pytest.raises(ValueError, match="unknown task.*open_pott"):
        RecordingPlan("x", tasks=["open_pott"])
    with pytest.raises(ValueError, match="folder name"):
        RecordingPlan("a/b")
    with pytest.raises(ValueError, match="sim"):
        RecordingPlan("x", backend="ros")


def test_scene_seeds_per_task_retry_and_never_repeat_a_kept_scene():
    plan = RecordingPlan("x", tasks=["open_pot", "press_button"], seed=3)
    assert plan.scene_seed("open_pot", 0, 0) == 3 and plan.scene_seed("press_button", 4, 0) == 1007
    assert plan.scene_seed("open_pot", 5, 1) == 108  # a discarded try moves on 100
    # a kept retry of episode 5 took 108: episode 105 must not record that scene again
    assert plan.scene_seed("open_pot", 105, 0, {3, 108}) == 208
    assert plan.scene_seed("open_pot", 105, 0, {108, 208}) == 308


def test_timer_counts_late_ticks_dropped_slots_and_repeated_frames():
    clock = FakeClock()
    timer = LoopTimer(30, clock=clock)
    fresh = object
    same = fresh()
    for i in range(200):
        timer.tick({"side": fresh(), "wrist": same if i >= 100 else fresh()})
        clock.now += 1 / 30 if i != 100 else 3.2 / 30  # one tick overran: two slots lost
    stats = timer.stats()
    assert stats.ticks == 200
    assert stats.late_ticks == 1 and stats.dropped_frames == 2
    assert stats.max_period_ms == pytest.approx(3200 / 30, rel=1e-6)
    assert stats.p99_period_ms == pytest.approx(1000 / 30, rel=1e-6)
    assert stats.camera_repeats == {"wrist": 99} and "side" not in stats.camera_repeats
    assert stats.camera_fps["side"] > stats.camera_fps["wrist"]
    assert not stats.behind and stats.warning() == ""


def test_timer_counts_frames_missing_against_the_clock_not_jitter():
    """A late tick the pacer catches up on loses no frame; a loop drifting 5% slow loses
    one frame in twenty, though no single period reaches 1.5 targets."""
    clock = FakeClock()
    caught_up = LoopTimer(30, clock=clock)
    for i in range(100):
        caught_up.tick()
        clock.now += {50: 1.6 / 30, 51: 0.4 / 30}.get(i, 1 / 30)
    stats = caught_up.stats()
    assert stats.late_ticks == 1 and stats.dropped_frames == 0

    drifting = LoopTimer(30, clock=clock)
    for _ in range(201):
        drifting.tick()
        clock.now += 1.05 / 30
    stats = drifting.stats()
    assert stats.late_ticks == 0 and stats.dropped_frames == 10


def test_timer_warns_when_behind():
    clock = FakeClock()
    timer = LoopTimer(30, clock=clock)
    for _ in range(40):
        timer.tick()
        clock.now += 1 / 20
    stats = timer.stats()
    assert stats.behind and stats.achieved_fps == pytest.approx(20, rel=0.01)
    assert "behind: 20.0 of 30 fps" in stats.warning()


def test_wall_clock_pacer_keeps_the_grid_and_skips_missed_slots():
    clock = FakeClock()
    pacer = WallClockPacer(10, clock=clock, sleep=clock.sleep)
    pacer.wait()
    assert clock.now == pytest.approx(0.1)
    clock.now += 0.03  # work inside the tick
    pacer.wait()
    assert clock.now == pytest.approx(0.2)
    clock.now += 0.25  # overran by two and a half periods
    pacer.wait()
    assert clock.now == pytest.approx(0.5)  # next slot on the grid, no catch-up burst


def test_instruction_table_matches_the_sim_tasks():
    """A plan records the four evaluated tasks and the pretraining corpus's source tasks."""
    from collect.recording.plan import TASK_INSTRUCTIONS
    from collect.sim.tasks import INSTRUCTIONS, SOURCE_INSTRUCTIONS

    assert TASK_INSTRUCTIONS == {**INSTRUCTIONS, **SOURCE_INSTRUCTIONS}


def test_commands_to_a_session_that_is_not_serving_fail_at_once(tmp_path):
    """A command posted when no loop serves it (not opened, closed, or failed) must not wait forever."""
    from collect.recording.session import RecordingSession

    session = RecordingSession(RecordingPlan("idle"), tmp_path)
    future = session.keep()
    assert future.done()
    with pytest.raises(RuntimeError, match="not open"):
        future.result(timeout=0)
