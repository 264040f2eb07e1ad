import queue
import threading

import pytest

from collect.limits import MOTOR_KEYS
from evaluate.campaign import Campaign, CampaignSpec, RolloutResult, State
from evaluate.driver import CampaignDriver
from evaluate.rollout import GymSimExecutor
from evaluate.store import ResultsStore


class OperatorArm:
    """Stands in for the real arm: each rollout lasts until stopped or 50 ms."""

    def reset(self, slot):
        pass

    def run(self, slot, stop: threading.Event):
        aborted = stop.wait(0.05)
        return RolloutResult(0.05, aborted=aborted)


class HoldStill:
    """A trivially 'trained' agent: commands the pose it observes."""

    def reset(self, seed=None):
        pass

    def act(self, observation, instruction):
        return {k: observation[k] for k in MOTOR_KEYS}


def _events():
    events: queue.Queue = queue.Queue()

    def expect(kind, timeout=60):
        while True:
            got, payload = events.get(timeout=timeout)
            if got == kind:
                return payload
            if got == "error":
                raise AssertionError(payload)

    return (lambda kind, payload: events.put((kind, payload))), expect


def test_operator_scores_abort_and_rerun_on_the_real_arm_flow(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    spec = CampaignSpec(name="c", runs=("r",), tasks=("open_pot",), trials=2, backend="piper")
    emit, expect = _events()
    driver = CampaignDriver(Campaign.create(store, spec), lambda on_tick: OperatorArm(), emit).start()
    try:
        assert expect("trial").trial_index == 0
        driver.score(True)  # stale: nothing has run yet -> ignored
        driver.go()
        expect("await")
        driver.score(True, "clean")
        assert expect("scored").note == "clean"
        assert expect("trial").trial_index == 1
        driver.abort_trial()  # abort while waiting for the scene reset
        assert expect("aborted").outcome == "aborted"
        assert expect("trial").trial_index == 1
        driver.go()
        expect("await")
        driver.score(False)
        expect("scored")
        expect("done")
        driver.rerun(("r", "open_pot", 0))
        assert expect("trial").trial_index == 0
        driver.go()
        expect("await")
        driver.score(False, "re-run: lid slipped")
        expect("scored")
        expect("done")
    finally:
        driver.shutdown()
    assert [(t.trial_index, t.outcome) for t in store.trials("c")] == [(1, "failure"), (0, "failure")]
    assert len(store.trials("c", include_superseded=True, include_aborted=True)) == 4


def test_sim_campaign_on_the_gym_env_is_scored_by_the_predicate_and_overridable(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    spec = CampaignSpec(name="s", runs=("hold",), tasks=("press_button",), trials=2, max_duration_s=0.3)
    emit, expect = _events()
    ticks = []

    def make_executor(on_tick):
        return GymSimExecutor(
            {"hold": HoldStill()},
            image_size=(48, 64),
            max_duration_s=0.3,
            on_tick=lambda t: (ticks.append(t.step), on_tick(t)),
        )

    driver = CampaignDriver(Campaign.create(store, spec), make_executor, emit).start()
    try:
        first = expect("scored")
        assert (first.scorer, first.outcome) == ("predicate", "failure")  # holding still presses nothing
        expect("done")
        driver.override(first.slot, True, "pressed by hand")
        over = expect("scored")
        assert (over.scorer, over.outcome, over.predicate_outcome) == ("override", "success", "failure")
    finally:
        driver.shutdown()
    assert len(ticks) == 2 * 9 and max(ticks) == 9  # 0.3 s at 30 fps per trial
    rows = store.trials("s")
    assert sorted((t.trial_index, t.outcome) for t in rows) == [(0, "success"), (1, "failure")]
    assert all(t.seed == spec.seed_for("press_button", t.trial_index) for t in rows)


def test_pause_between_trials_and_shutdown_mid_trial_keeps_the_record(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    spec = CampaignSpec(name="p", runs=("r",), tasks=("open_pot",), trials=3, backend="piper")
    emit, expect = _events()
    campaign = Campaign.create(store, spec)
    driver = CampaignDriver(campaign, lambda on_tick: OperatorArm(), emit).start()
    expect("trial")
    driver.pause()  # takes effect after this trial
    driver.go()
    expect("await")
    driver.score(True)
    expect("scored")
    with pytest.raises(queue.Empty):
        expect("trial", timeout=0.5)
    assert campaign.state is State.PAUSED
    driver.resume()
    expect("trial")
    driver.shutdown()  # waiting for the scene reset: the trial is recorded as aborted
    assert not driver.running
    assert [t.outcome for t in store.trials("p", include_aborted=True)] == ["success", "aborted"]


@pytest.fixture(scope="module")
def sim_station():
    from collect.station import StationConfig, open_station

    with open_station(
        StationConfig(
            backend="sim", task="press_button", image_size=(48, 64), realtime=False, leader_port="leader"
        )
    ) as station:
        station.enable()
        yield station


@pytest.mark.parametrize("arm_first", [False, True], ids=["driver-first", "arm-first"])
def test_estop_mid_trial_pauses_the_campaign_until_released_and_resumed(tmp_path, sim_station, arm_first):
    """The seen bug: the e-stopped trial was re-run and scored at once while the arm was still stopped."""
    from collect.sim.tasks import INSTRUCTIONS
    from evaluate.campaign import CampaignError
    from evaluate.rollout import StationExecutor

    store = ResultsStore(tmp_path / "r.sqlite")
    spec = CampaignSpec(name="e", runs=("hold",), tasks=("press_button",), trials=2, max_duration_s=2.0)
    emit, expect = _events()
    holder = {}

    def on_tick(tick):  # the E-STOP button: it reaches the arm and the driver in either order
        if tick.slot.trial_index == 1 and tick.step == 5 and not holder.get("fired"):
            holder["fired"] = True
            sim_station.estop()
            if not arm_first:
                holder["driver"].estop()

    def make_executor(on_tick_):
        return StationExecutor(
            sim_station, {"hold": HoldStill()}, INSTRUCTIONS, max_duration_s=2.0, on_tick=on_tick
        )

    campaign = Campaign.create(store, spec)
    driver = holder["driver"] = CampaignDriver(campaign, make_executor, emit).start()
    try:
        assert expect("scored").trial_index == 0
        aborted = expect("aborted")
        assert (aborted.trial_index, aborted.outcome, aborted.note) == (1, "aborted", "E-STOP")
        with pytest.raises(queue.Empty):  # no re-run, no score while e-stopped
            expect("trial", timeout=1.0)
        assert campaign.state is State.PAUSED and store.campaign("e").status == "paused"
        with pytest.raises(CampaignError, match="Station page"):
            driver.resume()
        sim_station.resume()  # Resume on the Station, then Enable
        sim_station.enable()
        driver.release_estop()
        with pytest.raises(queue.Empty):  # released is not resumed: nothing starts by itself
            expect("trial", timeout=1.0)
        driver.resume()
        assert expect("trial").trial_index == 1
        assert expect("scored").trial_index == 1
        expect("done")
    finally:
        driver.shutdown()
        if sim_station.follower.estopped:
            sim_station.resume()
            sim_station.enable()
    rows = store.trials("e", include_aborted=True)
    assert [(t.trial_index, t.outcome) for t in rows] == [(0, "failure"), (1, "aborted"), (1, "failure")]
    assert (
        store.counts("e") == {"scored": 2, "aborted": 1}
        and campaign.summary() == "2 / 2 trials scored, 1 aborted"
    )
