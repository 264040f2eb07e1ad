import threading

import pytest

from evaluate.campaign import Campaign, CampaignError, CampaignSpec, RolloutResult, State, run_campaign
from evaluate.store import ResultsStore, ResultsStoreError, RunInfo


class PatternExecutor:
    """Succeeds on even trial indices: a deterministic stand-in for a sim rollout."""

    def __init__(self, stop_after=None):
        self.resets, self.stop_after = [], stop_after

    def reset(self, slot):
        self.resets.append(slot)

    def run(self, slot, stop):
        if self.stop_after is not None and len(self.resets) > self.stop_after:
            stop.set()
            return RolloutResult(0.1, aborted=True)
        return RolloutResult(0.5, success=slot.trial_index % 2 == 0, episode_ref=f"ep{len(self.resets)}")


def _spec(**kw):
    return CampaignSpec(
        **({"name": "c", "runs": ("a", "b"), "tasks": ("open_pot", "press_button"), "trials": 3} | kw)
    )


def test_headless_sim_campaign_writes_every_slot(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    campaign = Campaign.create(store, _spec(), [RunInfo("c", "a", strategy="lora_sp"), RunInfo("c", "b")])
    run_campaign(campaign, PatternExecutor())
    rows = store.trials("c")
    assert len(rows) == 12 and campaign.state is State.DONE
    assert {(r.run, r.task, r.trial_index) for r in rows} == {s.key for s in _spec().slots()}
    assert all(r.scorer == "predicate" and r.outcome == r.predicate_outcome for r in rows)
    assert [r.outcome for r in rows[:3]] == ["success", "failure", "success"]
    assert rows[0].strategy == "lora_sp" and rows[0].seed == _spec().seed_for("open_pot", 0)
    assert store.campaign("c").status == "done"


def test_seeds_are_shared_across_runs_and_differ_across_trials():
    spec = _spec()
    by_run = {}
    for s in spec.slots():
        by_run.setdefault(s.run, []).append(s.seed)
    assert by_run["a"] == by_run["b"] and len(set(by_run["a"])) == len(by_run["a"])


def test_stop_mid_campaign_then_resume_from_database(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    run_campaign(Campaign.create(store, _spec()), PatternExecutor(stop_after=4))
    assert len(store.trials("c")) == 4
    assert len(store.trials("c", include_aborted=True)) == 5  # the stopped trial is on record
    resumed = Campaign.open_or_create(ResultsStore(tmp_path / "r.sqlite"), _spec())
    assert resumed.progress() == (4, 12)
    executor = PatternExecutor()
    run_campaign(resumed, executor)
    assert executor.resets[0].key == ("b", "open_pot", 1)  # picks up where it stopped
    assert len(store.trials("c")) == 12


def test_resume_with_other_settings_is_refused(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    Campaign.create(store, _spec())
    with pytest.raises(ResultsStoreError, match="trials: 3 vs 5"):
        Campaign.open_or_create(store, _spec(trials=5))


def test_operator_flow_on_real_arm(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    campaign = Campaign.create(store, _spec(backend="piper", runs=("a",), tasks=("open_pot",), trials=2))
    slot = campaign.start_trial()
    campaign.mark_running()
    assert campaign.finish_run(RolloutResult(4.0)) is None and campaign.state is State.AWAITING_SCORE
    assert store.trials("c") == []
    record = campaign.score(False, note="lid slipped")
    assert (record.outcome, record.scorer, record.note, record.seed) == (
        "failure",
        "operator",
        "lid slipped",
        None,
    )
    assert record.duration_s == 4.0 and record.trial_index == slot.trial_index
    with pytest.raises(CampaignError):
        campaign.score(True)  # nothing awaiting a score
    with pytest.raises(CampaignError, match="operator"):
        run_campaign(campaign, PatternExecutor())


def test_abort_rerun_override_and_pause(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    campaign = Campaign.create(store, _spec(runs=("a",), tasks=("open_pot",), trials=3))
    first = campaign.start_trial()
    campaign.mark_running()
    campaign.abort()
    assert campaign.state is State.READY and campaign.start_trial() == first  # aborted slot comes back
    campaign.mark_running()
    campaign.finish_run(RolloutResult(1.0, success=False))
    over = campaign.override(first.key, True, note="predicate missed the lid")
    assert (over.outcome, over.scorer, over.predicate_outcome) == ("success", "override", "failure")
    assert [t.outcome for t in store.trials("c")] == ["success"]

    campaign.pause()
    assert campaign.state is State.PAUSED and campaign.start_trial() is None
    assert Campaign.open(store, "c").state is State.PAUSED
    campaign.resume()
    run_campaign(campaign, PatternExecutor())
    assert campaign.state is State.DONE and len(store.trials("c")) == 3
    campaign.rerun(first.key)
    assert campaign.pending()[0].key == first.key and len(store.trials("c")) == 2
    assert len(store.trials("c", include_superseded=True, include_aborted=True)) == 5


def test_pause_requested_during_a_trial_stops_after_it(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    campaign = Campaign.create(store, _spec())

    class PausingExecutor(PatternExecutor):
        def run(self, slot, stop):
            campaign.pause()
            return super().run(slot, stop)

    run_campaign(campaign, PausingExecutor())
    assert len(store.trials("c")) == 1 and campaign.state is State.PAUSED


def test_bad_spec_messages():
    with pytest.raises(ValueError, match="backend"):
        _spec(backend="gazebo")
    with pytest.raises(ValueError, match="eta"):
        _spec(eta=1.5)
    with pytest.raises(ValueError, match="at least one"):
        _spec(runs=())


def test_listeners_see_state_changes(tmp_path):
    seen = []
    campaign = Campaign.create(
        ResultsStore(tmp_path / "r.sqlite"), _spec(trials=1, runs=("a",), tasks=("open_pot",))
    )
    campaign.listeners.append(lambda c: seen.append(c.state))
    run_campaign(campaign, PatternExecutor(), stop=threading.Event())
    assert seen == [State.RESETTING, State.RUNNING, State.READY, State.DONE]


def test_perturbation_preset_is_checked_and_canonical():
    assert _spec(perturbation="camera+lighting").perturbation == "lighting+camera"
    assert _spec(perturbation="").perturbation == "none"
    with pytest.raises(ValueError, match="lighting"):
        _spec(perturbation="lightning")


def test_estop_aborts_pauses_and_holds_until_the_arm_is_released(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    campaign = Campaign.create(store, _spec(runs=("a",), tasks=("open_pot",), trials=2))
    first = campaign.start_trial()
    campaign.mark_running()
    campaign.estop()  # the rollout then ends (even 'successfully'): it is void, not scored
    record = campaign.finish_run(RolloutResult(1.0, success=True))
    assert (record.outcome, record.note) == ("aborted", "E-STOP")
    assert campaign.state is State.PAUSED and campaign.start_trial() is None  # no re-run at once
    assert store.campaign("c").status == "paused" and store.trials("c") == []
    with pytest.raises(CampaignError, match="Resume on the Station page"):
        campaign.resume()
    campaign.release_estop()
    assert campaign.state is State.PAUSED  # released is not resumed
    campaign.resume()
    assert campaign.start_trial() == first
    assert campaign.summary() == "0 / 2 trials scored, 1 aborted"
    assert store.counts("c") == {"scored": 0, "aborted": 1}


def test_estop_between_trials_and_after_the_end_pauses_too(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    campaign = Campaign.create(store, _spec(runs=("a",), tasks=("open_pot",), trials=1))
    run_campaign(campaign, PatternExecutor())
    assert campaign.state is State.DONE
    campaign.estop()
    campaign.rerun(("a", "open_pot", 0))
    assert campaign.state is State.PAUSED and campaign.start_trial() is None
