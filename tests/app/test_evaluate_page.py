import json
import threading

from PySide6.QtCore import Qt

from app.gui.pages.evaluate import EvaluatePage
from app.gui.pages.results import ResultsPage
from collect.limits import MOTOR_KEYS
from evaluate.campaign import RolloutResult
from evaluate.store import ResultsStore


class OperatorArm:
    """The real arm's rollout as the page sees it: lasts until aborted or 50 ms."""

    def reset(self, slot):
        pass

    def run(self, slot, stop: threading.Event):
        return RolloutResult(0.05, aborted=stop.wait(0.05))


class HoldStill:
    def __init__(self):
        self.frame_shapes = set()

    def reset(self, seed=None):
        pass

    def act(self, observation, instruction):
        self.frame_shapes |= {v.shape for k, v in observation.items() if k in ("side", "wrist")}
        return {k: observation[k] for k in MOTOR_KEYS}


def _trained_at(run_dir, height, width):
    """The part of a checkpoint the sim render size is read from (lerobot's config.json)."""
    model = run_dir / "checkpoints" / "000001" / "pretrained_model"
    model.mkdir(parents=True)
    camera = {"type": "VISUAL", "shape": [3, height, width]}
    features = {"observation.state": {"type": "STATE", "shape": [7]}, "observation.images.side": camera}
    (model / "config.json").write_text(json.dumps({"input_features": features}))
    (run_dir / "checkpoints" / "last").write_text("000001")


def _page(qtbot, app_context, workspace, runs=("r1",)):
    for run in runs:
        (workspace.runs_dir / run).mkdir(parents=True, exist_ok=True)
    page = EvaluatePage(app_context)
    qtbot.addWidget(page)
    page.show()
    page.refresh_runs()
    for i in range(page.runs_list.count()):
        page.runs_list.item(i).setCheckState(Qt.CheckState.Checked)
    for task, check in page.task_checks.items():
        check.setChecked(task == "press_button")
    return page


def test_operator_scores_trials_by_clicking_and_the_tables_update(qtbot, app_context, workspace):
    page = _page(qtbot, app_context, workspace)
    page.make_agents = lambda spec: {}
    page.make_executor = lambda spec, agents, on_tick: OperatorArm()
    page.backend_combo.setCurrentText("piper")
    page.trials_spin.setValue(2)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    try:
        qtbot.waitUntil(page.go_button.isEnabled, timeout=10_000)
        assert "Reset the scene" in page.trial_label.text()
        assert not page.success_button.isEnabled()  # nothing to score before the trial ran
        qtbot.mouseClick(page.go_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(page.success_button.isEnabled, timeout=10_000)
        page.note_edit.setText("clean grasp")
        qtbot.mouseClick(page.success_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: page.tally_text()[("r1", "press_button")] == "1/1", timeout=10_000)

        qtbot.waitUntil(page.go_button.isEnabled, timeout=10_000)
        qtbot.keyClick(page, Qt.Key.Key_Space)  # keyboard: run, then F for failure
        qtbot.waitUntil(page.failure_button.isEnabled, timeout=10_000)
        qtbot.keyClick(page, Qt.Key.Key_F)
        qtbot.waitUntil(lambda: page.tally_text()[("r1", "press_button")] == "1/2", timeout=10_000)
        qtbot.waitUntil(lambda: "complete" in page.trial_label.text(), timeout=10_000)
        assert page.progress_label.text() == "2 / 2 trials scored"
    finally:
        page.shutdown()

    rows = ResultsStore(workspace.results_db).trials()
    assert [(t.outcome, t.scorer, t.note) for t in rows] == [
        ("success", "operator", "clean grasp"),
        ("failure", "operator", ""),
    ]
    results = ResultsPage(app_context)
    qtbot.addWidget(results)
    qtbot.waitUntil(lambda: results.table.rowCount() == 1, timeout=10_000)
    assert results.table.item(0, 5).text().startswith("50.0 [")
    results.shutdown()


def test_sim_trial_scored_by_predicate_then_overridden_by_click(qtbot, app_context, workspace):
    _trained_at(workspace.runs_dir / "hold", 48, 64)
    page = _page(qtbot, app_context, workspace, runs=("hold",))
    agent = HoldStill()
    page.make_agents = lambda spec: {"hold": agent}
    page.backend_combo.setCurrentText("sim")
    page.trials_spin.setValue(1)
    page.duration_spin.setValue(1.0)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    try:
        qtbot.waitUntil(lambda: "complete" in page.trial_label.text(), timeout=30_000)
        assert page.tally_text()[("hold", "press_button")] == "0/1"  # the predicate: nothing pressed
        assert page.cameras["side"].frames_shown > 0  # live view during the trial
        qtbot.mouseClick(page.success_button, Qt.MouseButton.LeftButton)  # operator override
        qtbot.waitUntil(lambda: page.tally_text()[("hold", "press_button")] == "1/1", timeout=10_000)
    finally:
        page.shutdown()
    (row,) = ResultsStore(workspace.results_db).trials()
    assert (row.outcome, row.scorer, row.predicate_outcome) == ("success", "override", "failure")
    assert agent.frame_shapes == {(48, 64, 3)}  # rendered at the size the run was trained on


def test_sim_runs_trained_at_different_sizes_are_refused_before_a_campaign(qtbot, app_context, workspace):
    _trained_at(workspace.runs_dir / "small", 48, 64)
    _trained_at(workspace.runs_dir / "large", 96, 128)
    page = _page(qtbot, app_context, workspace, runs=("small", "large"))
    page.backend_combo.setCurrentText("sim")
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    try:
        text = page.trial_label.text()
        assert text.startswith("Cannot start:") and "48x64" in text and "96x128" in text
        assert page.driver is None
    finally:
        page.shutdown()
    assert ResultsStore(workspace.results_db).campaigns() == []


def test_real_arm_without_an_open_station_says_what_to_do(qtbot, app_context, workspace):
    page = _page(qtbot, app_context, workspace)
    page.backend_combo.setCurrentText("piper")
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    try:
        qtbot.waitUntil(lambda: "Station page" in page.trial_label.text(), timeout=10_000)
    finally:
        page.shutdown()


def test_estop_pauses_the_campaign_keeps_the_aborted_row_and_resumes_only_when_released(
    qtbot, app_context, workspace
):
    page = _page(qtbot, app_context, workspace)
    page.make_agents = lambda spec: {}
    page.make_executor = lambda spec, agents, on_tick: OperatorArm()
    page.backend_combo.setCurrentText("piper")
    page.trials_spin.setValue(2)
    page.start_campaign()
    try:
        qtbot.waitUntil(page.go_button.isEnabled, timeout=10_000)
        page.run_trial()
        qtbot.waitUntil(page.success_button.isEnabled, timeout=10_000)
        page.score(True)
        qtbot.waitUntil(page.go_button.isEnabled, timeout=10_000)  # trial 2: waiting for the scene
        app_context.station.state_changed.emit("estop", "E-STOP sent")  # what the station worker reports
        qtbot.waitUntil(lambda: page.recent.rowCount() == 2, timeout=10_000)
        assert page.recent.item(0, 3).text() == "aborted"  # the aborted trial is listed
        assert page.progress_label.text() == "1 / 2 trials scored, 1 aborted"
        assert "E-STOP" in page.trial_label.text() and page.pause_button.text() == "Resume campaign"
        qtbot.wait(500)
        assert not page.go_button.isEnabled() and "E-STOP" in page.trial_label.text()  # nothing re-runs

        page.pause_button.click()  # Resume campaign while the arm is still e-stopped: refused
        assert "Station page" in page.trial_label.text() and page.pause_button.isChecked()
        app_context.station.state_changed.emit("ready", "resume: done")  # Resume on the Station
        qtbot.wait(500)
        assert not page.go_button.isEnabled() and page.pause_button.isChecked()  # released is not resumed
        page.pause_button.click()
        qtbot.waitUntil(page.go_button.isEnabled, timeout=10_000)
        assert "Reset the scene" in page.trial_label.text() and "#2" in page.trial_label.text()
    finally:
        page.shutdown()
    store = ResultsStore(workspace.results_db)
    assert [(t.trial_index, t.outcome, t.note) for t in store.trials(include_aborted=True)][1] == (
        1,
        "aborted",
        "E-STOP",
    )
    assert store.counts(page.campaign.name) == {"scored": 1, "aborted": 2}  # + the shutdown's own abort
