"""The Evaluate page: choose runs, tasks and trials, watch each trial live, score it.

Left: the campaign set-up. Middle: the cameras during the trial. Right: big Success /
Failure buttons (keys S / F), a note, Run trial (Space, after resetting the scene on
the real arm), Abort (Esc), Pause / Resume, and the running tally per run and task.

The campaign runs in an `evaluate.driver.CampaignDriver` (its own thread); this page
only forwards clicks and shows what the driver reports. Sim trials run on the gym envs
in lockstep and are scored by the task predicate (Success / Failure then override the
last trial); real-arm trials run through the open station's safety-clamped follower.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui.context import AppContext
from app.gui.widgets.camera_view import CameraView
from app.gui.widgets.wrap_label import WrapLabel
from app.gui.workers.bridge import EventBridge
from collect.limits import CAMERA_NAMES
from evaluate.campaign import ESTOP_NOTE

TASKS = ("open_pot", "pour_block", "press_button", "pick_grape")  # the paper's four, as in collect.sim.tasks
PERTURBATIONS = ("none", "lighting", "camera", "distractors", "color", "size", "all")
ESTOP_TEXT = (
    "E-STOP: the trial was aborted and kept on record; the campaign is paused. "
    "Release the arm (Resume on the Station page), then Resume campaign."
)
PREVIEW_INTERVAL_S = 0.1  # live views at ~10 Hz: the rollout thread must not wait on painting


class EvaluatePage(QWidget):
    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.driver: Any = None
        self.store: Any = None
        self.last_scored: Any = None  # the trial Success/Failure overrides in sim
        self._awaiting_score = False
        self._last_preview = 0.0
        self._sim_image_size = (480, 640)  # set per campaign: the size its runs were trained on
        self._bridge = EventBridge()
        self._bridge.event.connect(self._on_event, Qt.ConnectionType.QueuedConnection)
        # Tests (and other front ends) may replace these two factories.
        self.make_agents = self._load_agents
        self.make_executor = self._default_executor

        self._build_setup()
        self._build_live()
        self._build_scoring()
        layout = QHBoxLayout(self)
        layout.addWidget(self.setup_box, 0)
        layout.addWidget(self.live_box, 1)
        layout.addWidget(self.score_box, 0)
        self._shortcuts()
        context.estop_triggered.connect(self.on_estop)
        context.station.state_changed.connect(self._on_arm_state)
        self._set_running(False)
        self.refresh_runs()

    # -- widgets ---------------------------------------------------------------------

    def _build_setup(self) -> None:
        self.setup_box = QGroupBox("Campaign")
        self.runs_list = QListWidget()
        self.refresh_runs_button = QPushButton("Refresh runs")
        self.refresh_runs_button.clicked.connect(self.refresh_runs)
        self.task_checks = {task: QCheckBox(task) for task in TASKS}
        for check in self.task_checks.values():
            check.setChecked(True)
        self.trials_spin = QSpinBox(minimum=1, maximum=500, value=15)
        self.seed_spin = QSpinBox(minimum=0, maximum=1_000_000, value=0)
        self.eta_spin = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2, value=0.0)
        self.eta_spin.setSpecialValueText("as trained")
        self.duration_spin = QDoubleSpinBox(minimum=1.0, maximum=600.0, value=30.0, suffix=" s")
        self.backend_combo = QComboBox()
        self.backend_combo.addItems(["sim", "piper"])
        self.backend_combo.setCurrentText(context_backend(self.context))
        self.perturbation_combo = QComboBox()
        self.perturbation_combo.addItems(PERTURBATIONS)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("(automatic)")
        self.save_episodes_check = QCheckBox("save trials as episodes")
        self.start_button = QPushButton("Start / resume campaign")
        self.start_button.clicked.connect(self.start_campaign)

        form = QFormLayout()
        form.addRow("Trials per task", self.trials_spin)
        form.addRow("Backend", self.backend_combo)
        form.addRow("Seed (sim)", self.seed_spin)
        form.addRow("Perturbation (sim)", self.perturbation_combo)
        form.addRow("LoRA-SP eta", self.eta_spin)
        form.addRow("Max duration", self.duration_spin)
        form.addRow("Name", self.name_edit)
        layout = QVBoxLayout(self.setup_box)
        layout.addWidget(QLabel("Runs"))
        layout.addWidget(self.runs_list, 1)
        layout.addWidget(self.refresh_runs_button)
        layout.addWidget(QLabel("Tasks"))
        for check in self.task_checks.values():
            layout.addWidget(check)
        layout.addLayout(form)
        layout.addWidget(self.save_episodes_check)
        layout.addWidget(self.start_button)

    def _build_live(self) -> None:
        self.live_box = QGroupBox("Trial")
        self.trial_label = QLabel("No campaign running.")
        self.trial_label.setStyleSheet("QLabel { font-size: 16px; padding: 4px; }")
        self.trial_label.setWordWrap(True)
        self.cameras = {name: CameraView(name) for name in CAMERA_NAMES}
        cams = QHBoxLayout()
        for view in self.cameras.values():
            cams.addWidget(view)
        self.recent = QTableWidget(0, 5)
        self.recent.setHorizontalHeaderLabels(["Run", "Task", "#", "Outcome", "By"])
        self.recent.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.recent.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.rerun_button = QPushButton("Re-run selected trial")
        self.rerun_button.clicked.connect(self.rerun_selected)
        layout = QVBoxLayout(self.live_box)
        layout.addWidget(self.trial_label)
        layout.addLayout(cams, 3)
        layout.addWidget(QLabel("Scored trials (newest first)"))
        layout.addWidget(self.recent, 2)
        layout.addWidget(self.rerun_button)

    def _build_scoring(self) -> None:
        self.score_box = QGroupBox("Score")
        self.success_button = QPushButton("Success  (S)")
        self.failure_button = QPushButton("Failure  (F)")
        for button, colour in ((self.success_button, "#2e7d32"), (self.failure_button, "#c62828")):
            button.setMinimumHeight(72)
            button.setStyleSheet(
                f"QPushButton {{ background: {colour}; color: white; font-size: 20px; }}"
                "QPushButton:disabled { background: #9e9e9e; }"
            )
        self.success_button.clicked.connect(lambda: self.score(True))
        self.failure_button.clicked.connect(lambda: self.score(False))
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("note (optional)")
        self.go_button = QPushButton("Run trial  (Space)")
        self.go_button.clicked.connect(self.run_trial)
        self.abort_button = QPushButton("Abort trial  (Esc)")
        self.abort_button.clicked.connect(self.abort_trial)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._toggle_pause)
        self.progress_label = WrapLabel("", max_lines=4)
        self.tally = QTableWidget(0, 3)
        self.tally.setHorizontalHeaderLabels(["Run / task", "Successes", "Rate [95% CI]"])
        self.tally.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.tally.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.score_box.setMinimumWidth(260)  # the tally's columns, within a 1280 px window
        layout = QVBoxLayout(self.score_box)
        for widget in (
            self.success_button,
            self.failure_button,
            self.note_edit,
            self.go_button,
            self.abort_button,
            self.pause_button,
            self.progress_label,
        ):
            layout.addWidget(widget)
        layout.addWidget(QLabel("Tally"))
        layout.addWidget(self.tally, 1)

    def _shortcuts(self) -> None:
        for key, slot in (
            ("S", lambda: self.score(True)),
            ("F", lambda: self.score(False)),
            ("Space", self.run_trial),
            ("Esc", self.abort_trial),
        ):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

    # -- set-up ----------------------------------------------------------------------

    def refresh_runs(self) -> None:
        from evaluate.runs import list_runs

        checked = set(self.selected_runs())
        self.runs_list.clear()
        for name in list_runs(self.context.workspace.runs_dir):
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in checked else Qt.CheckState.Unchecked)
            self.runs_list.addItem(item)

    def selected_runs(self) -> list[str]:
        return [
            self.runs_list.item(i).text()
            for i in range(self.runs_list.count())
            if self.runs_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def build_spec(self):
        from evaluate.campaign import CampaignSpec

        runs = tuple(self.selected_runs())
        tasks = tuple(t for t, check in self.task_checks.items() if check.isChecked())
        backend = self.backend_combo.currentText()
        eta = self.eta_spin.value() or None
        name = self.name_edit.text().strip() or f"{'+'.join(runs)}-{backend}-{self.trials_spin.value()}x" + (
            f"-eta{eta:g}" if eta else ""
        )
        return CampaignSpec(
            name=name,
            runs=runs,
            tasks=tasks,
            trials=self.trials_spin.value(),
            backend=backend,
            seed=self.seed_spin.value(),
            perturbation=self.perturbation_combo.currentText(),
            eta=eta,
            max_duration_s=self.duration_spin.value(),
            save_episodes=self.save_episodes_check.isChecked(),
        )

    def start_campaign(self) -> None:
        from evaluate.campaign import Campaign
        from evaluate.driver import CampaignDriver
        from evaluate.executors import trained_image_size
        from evaluate.runs import describe_run

        if self.driver is not None:
            self.driver.shutdown()  # a finished or failed campaign's worker
            self.driver = None
        try:
            spec = self.build_spec()
            self.store = self.context.results_store()  # the window's one connection
            runs_dir = self.context.workspace.runs_dir
            if spec.backend == "sim":  # before the campaign is written: refuse runs of mixed sizes
                self._sim_image_size = trained_image_size(runs_dir, spec.runs, spec.checkpoint)
            infos = [describe_run(runs_dir / r, spec.name, spec.checkpoint, spec.eta) for r in spec.runs]
            campaign = Campaign.open_or_create(self.store, spec, infos)
        except Exception as exc:  # bad settings or a campaign of that name with others: say so
            self.trial_label.setText(f"Cannot start: {exc}")
            return
        self.campaign = campaign
        agents = self.make_agents(spec)
        self.driver = CampaignDriver(
            campaign, lambda on_tick: self.make_executor(spec, agents, on_tick), self._bridge.event.emit
        )
        self._set_running(True)
        self._refresh_tally()
        self.trial_label.setText(f"Campaign {spec.name!r} starting...")
        self.driver.start()

    def _load_agents(self, spec) -> dict[str, Any]:
        from evaluate.executors import policy_agents

        return policy_agents(spec, self.context.workspace.runs_dir)

    def _default_executor(self, spec, agents, on_tick):
        from evaluate.executors import build_executor

        worker = self.context.station
        datasets_dir = self.context.workspace.datasets_dir
        if spec.backend == "sim":  # rendered at the size the runs were trained on
            return build_executor(
                spec, agents, datasets_dir, image_size=self._sim_image_size, on_tick=on_tick
            )

        def tick(info) -> None:  # this loop reads the arm: it feeds the previews itself
            worker.publish(info.observation, info.action)
            on_tick(info)

        worker.set_preview_enabled(False)
        return build_executor(
            spec, agents, datasets_dir, station=worker.station, on_tick=tick,
            on_close=lambda: worker.set_preview_enabled(True),
        )  # fmt: skip

    # -- operator verbs --------------------------------------------------------------

    def score(self, success: bool) -> None:
        if self.driver is None:
            return
        note = self.note_edit.text().strip()
        if self._awaiting_score:
            self._awaiting_score = False
            self.driver.score(success, note)
        elif self.campaign.spec.auto_scored and self.last_scored is not None:
            self.driver.override(self.last_scored.slot, success, note or "operator override")
        else:
            return
        self.note_edit.clear()
        self._update_buttons()

    def run_trial(self) -> None:
        if self.driver is not None and self.go_button.isEnabled():
            self.go_button.setEnabled(False)
            self.driver.go()

    def abort_trial(self) -> None:
        if self.driver is not None:
            self._awaiting_score = False
            self.driver.abort_trial()

    def rerun_selected(self) -> None:
        row = self.recent.currentRow()
        if self.driver is None or row < 0:
            return
        key = self.recent.item(row, 0).data(Qt.ItemDataRole.UserRole)
        self.driver.rerun(key)

    def _toggle_pause(self, paused: bool) -> None:
        from evaluate.campaign import CampaignError

        if self.driver is None:
            return
        try:
            (self.driver.pause if paused else self.driver.resume)()
        except CampaignError as exc:  # e-stopped: the campaign stays paused
            self.trial_label.setText(f"Cannot resume: {exc}")
            paused = True
        self._show_paused(paused)

    def _show_paused(self, paused: bool) -> None:
        blocked = self.pause_button.blockSignals(True)  # showing the state is not a click
        self.pause_button.setChecked(paused)
        self.pause_button.blockSignals(blocked)
        self.pause_button.setText("Resume campaign" if paused else "Pause")

    # -- E-STOP ----------------------------------------------------------------------

    def on_estop(self) -> None:
        """E-STOP: abort the trial in flight (kept as aborted) and pause; nothing resumes by itself."""
        if self.driver is None or not self.driver.running:
            return
        self._hold_for_estop()
        if self.context.station.station is None:  # no arm to release (sim env campaign, no station)
            self.driver.release_estop()

    def _hold_for_estop(self) -> None:
        self._awaiting_score = False
        self.driver.estop()
        self._show_paused(True)
        self.trial_label.setText(ESTOP_TEXT)
        self._update_buttons()

    def _on_arm_state(self, state: str, message: str = "") -> None:
        from app.gui.workers.station_worker import CLOSED, ENABLED, ESTOP, READY

        if self.driver is None or not self.driver.running:
            return
        if state == ESTOP:
            self._hold_for_estop()  # the arm reports it (e.g. sent from another page)
        elif state in (READY, ENABLED, CLOSED) and self.campaign.estop_held and not self._arm_estopped():
            self.driver.release_estop()
            self.trial_label.setText("The arm was released. Resume the campaign when the scene is safe.")

    def _arm_estopped(self) -> bool:
        station = self.context.station.station
        follower = getattr(station, "follower", None)
        return bool(getattr(follower, "estopped", False))

    # -- driver events (GUI thread) --------------------------------------------------

    def _on_event(self, kind: str, payload: Any) -> None:
        if kind == "tick":
            now = time.monotonic()
            if now - self._last_preview >= PREVIEW_INTERVAL_S:
                self._last_preview = now
                for name, view in self.cameras.items():
                    if name in payload.observation:
                        view.set_frame(payload.observation[name])
            return
        if kind == "trial":
            self._awaiting_score = False
            what = f"{payload.run} / {payload.task} #{payload.trial_index + 1}"
            if self.campaign.spec.auto_scored:
                self.trial_label.setText(f"Running {what} (seed {payload.seed})")
            else:
                self.trial_label.setText(f"Reset the scene for {what}, then Run trial (Space)")
            self.go_button.setEnabled(not self.campaign.spec.auto_scored)
        elif kind == "await":
            self._awaiting_score = True
            self.trial_label.setText(
                f"Trial over after {payload.duration_s:.1f} s: Success (S) or Failure (F)?"
            )
        elif kind == "scored":
            self.last_scored = payload
            self._add_recent(payload)
            self._refresh_tally()
        elif kind == "aborted":
            self.go_button.setEnabled(False)
            self._add_recent(payload)
            self._refresh_tally()
            paused = self.campaign.estop_held or self.campaign.pause_requested
            self.trial_label.setText(
                ESTOP_TEXT
                if payload.note == ESTOP_NOTE
                else (
                    "Trial aborted (kept on record); "
                    + ("the campaign is paused." if paused else "it runs again next.")
                )
            )
        elif kind == "state":
            from evaluate.campaign import State

            self._show_paused(payload is State.PAUSED or self.campaign.pause_requested)
        elif kind == "done":
            self.trial_label.setText(f"Campaign {self.campaign.name!r} complete. See the Results page.")
            self.go_button.setEnabled(False)
            self.setup_box.setEnabled(True)  # a new campaign may start; re-runs still work
        elif kind == "error":
            self.trial_label.setText(f"Evaluation stopped: {payload}")
            self._set_running(False)
        self._update_buttons()

    def _add_recent(self, record) -> None:
        self.recent.insertRow(0)
        values = (record.run, record.task, str(record.trial_index + 1), record.outcome, record.scorer)
        for column, text in enumerate(values):
            item = QTableWidgetItem(text)
            if column == 0:
                item.setData(Qt.ItemDataRole.UserRole, record.slot)
            self.recent.setItem(0, column, item)

    def _refresh_tally(self) -> None:
        from evaluate.tables import tally

        rates = tally(self.campaign.scored())
        self.progress_label.setText(self.campaign.summary())
        keys = [(r, t) for t in self.campaign.spec.tasks for r in self.campaign.spec.runs]
        self.tally.setRowCount(len(keys))
        for row, key in enumerate(keys):
            rate = rates.get(key)
            cells = (
                f"{key[0]} / {key[1]}",
                f"{rate.successes}/{rate.trials}" if rate else "0/0",
                rate.percent() if rate else "-",
            )
            for column, text in enumerate(cells):
                self.tally.setItem(row, column, QTableWidgetItem(text))

    def tally_text(self) -> dict[tuple[str, str], str]:
        """What the tally shows, by (run, task): 'k/n'."""
        out = {}
        for row in range(self.tally.rowCount()):
            run, task = self.tally.item(row, 0).text().split(" / ")
            out[(run, task)] = self.tally.item(row, 1).text()
        return out

    # -- state -----------------------------------------------------------------------

    def _set_running(self, running: bool) -> None:
        self.setup_box.setEnabled(not running)
        self._update_buttons()

    def _update_buttons(self) -> None:
        active = self.driver is not None and self.driver.running
        auto = active and self.campaign.spec.auto_scored
        can_score = active and (self._awaiting_score or (auto and self.last_scored is not None))
        self.success_button.setEnabled(can_score)
        self.failure_button.setEnabled(can_score)
        self.abort_button.setEnabled(active)
        self.pause_button.setEnabled(active)
        self.rerun_button.setEnabled(active)
        if not active:
            self.go_button.setEnabled(False)

    def shutdown(self) -> None:
        if self.driver is not None:
            self.driver.shutdown()
            self.driver = None
        self.store = None  # the context closes the shared connection


def context_backend(context: AppContext) -> str:
    return context.backend or context.hardware.backend or "sim"
