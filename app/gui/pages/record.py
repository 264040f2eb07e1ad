"""Record page: a recording plan, live cameras and joint traces, big Start/Stop/Keep/Discard.

Keys (anywhere in the window while this page shows): Space start/stop, Enter keep,
Backspace discard (a foot pedal that types these works too). The `RecordingSession` runs
its own loop thread; this page only posts commands (they return Futures) and polls
`session.snapshot()` on a timer, so the GUI thread never waits on the arm or the encoder.
"""

from __future__ import annotations

import shutil
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.context import AppContext
from app.gui.widgets.camera_view import CameraView
from app.gui.widgets.estop import EstopButton
from app.gui.widgets.wrap_label import WrapLabel
from app.gui.workers.bridge import EventBridge

IMAGE_SIZES = ("480x640", "240x320", "120x160", "96x128")
POLL_MS = 66
BIG = "QPushButton { font-size: 18px; font-weight: bold; padding: 10px 12px; }"


def task_title(task: str) -> str:
    from collect.recording.plan import TASK_INSTRUCTIONS

    words = TASK_INSTRUCTIONS.get(task, task).split()
    return " ".join(
        w if w in ("the", "into", "in", "up", "and", "it") and i else w.capitalize()
        for i, w in enumerate(words)
    )


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


class RecordPage(QWidget):
    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.session: Any = None
        self._opening = False
        self._dataset_bytes = 0
        self._bridge = EventBridge()
        self._bridge.event.connect(self._on_event)
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.refresh)
        context.estop_triggered.connect(self._on_estop)
        self._update_buttons()

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QHBoxLayout(self)
        left = QVBoxLayout()
        root.addLayout(left, 1)
        plan_box = QGroupBox("Recording plan")
        form = QFormLayout(plan_box)
        self.dataset_edit = QLineEdit("demos")
        self.dataset_edit.setObjectName("dataset_name")
        self.task_checks = {}
        tasks_widget = QWidget()
        tasks_layout = QVBoxLayout(tasks_widget)
        tasks_layout.setContentsMargins(0, 0, 0, 0)
        from collect.recording.plan import DEFAULT_TASKS

        for task in DEFAULT_TASKS:
            box = QCheckBox(task_title(task))
            box.setChecked(True)
            self.task_checks[task] = box
            tasks_layout.addWidget(box)
        self.episodes_spin = QSpinBox(minimum=1, maximum=10_000, value=120)
        self.max_len_spin = QDoubleSpinBox(minimum=1.0, maximum=600.0, value=30.0, suffix=" s")
        self.reset_spin = QDoubleSpinBox(minimum=0.0, maximum=120.0, value=5.0, suffix=" s")
        self.size_combo = QComboBox()
        self.size_combo.addItems(IMAGE_SIZES)
        self.operator_edit = QLineEdit(self.context.hardware.operator)
        form.addRow("Dataset", self.dataset_edit)
        form.addRow(QLabel("Tasks"))  # the task names span the form: the plan column stays narrow
        form.addRow(tasks_widget)
        form.addRow("Episodes per task", self.episodes_spin)
        form.addRow("Max episode length", self.max_len_spin)
        form.addRow("Reset time", self.reset_spin)
        form.addRow("Image size", self.size_combo)
        form.addRow("Operator", self.operator_edit)
        self.open_button = QPushButton("Open / resume")
        self.open_button.clicked.connect(self.open_session)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close_session)
        row = QHBoxLayout()
        row.addWidget(self.open_button)
        row.addWidget(self.close_button)
        form.addRow(row)
        left.addWidget(plan_box)
        self.task_list = QListWidget()
        self.task_list.setObjectName("task_counters")
        self.task_list.itemClicked.connect(self._switch_to_item)
        left.addWidget(QLabel("Tasks (click to switch)"))
        left.addWidget(self.task_list, 1)
        self.eta_label = WrapLabel("ETA -")
        self.disk_label = WrapLabel("")
        self.save_label = WrapLabel("")  # kept episodes still on their way to the disk
        self.save_label.setObjectName("saving")
        self.encoder_label = WrapLabel("")  # GPU h264 or libx264; the tooltip says why
        self.encoder_label.setObjectName("encoder")
        for label in (self.eta_label, self.disk_label, self.save_label, self.encoder_label):
            left.addWidget(label)

        middle = QVBoxLayout()
        root.addLayout(middle, 3)
        cams = QHBoxLayout()
        self.views = {name: CameraView(name) for name in ("side", "wrist")}
        for view in self.views.values():
            cams.addWidget(view)
        middle.addLayout(cams, 3)
        self._build_plot(middle)
        self.timing_label = WrapLabel("")  # a "recording is behind" warning can be long
        self.timing_label.setObjectName("timing")
        middle.addWidget(self.timing_label)
        self.state_label = WrapLabel("Open a plan to start", max_lines=2)
        self.state_label.setObjectName("state")
        self.state_label.setStyleSheet("font-size: 22px; font-weight: bold;")
        middle.addWidget(self.state_label)

        # Three rows so that the page fits a 1280 px screen: the verbs, the arm, the review.
        verbs = QHBoxLayout()
        self.start_button = QPushButton("Start  [Space]")
        self.keep_button = QPushButton("Keep  [Enter]")
        self.discard_button = QPushButton("Discard  [Backspace]")
        for button in (self.start_button, self.keep_button, self.discard_button):
            button.setStyleSheet(BIG)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys go to the shortcuts, not a focused button
            verbs.addWidget(button)
        self.start_button.clicked.connect(self.start_or_stop)
        self.keep_button.clicked.connect(self.keep)
        self.discard_button.clicked.connect(self.discard)
        middle.addLayout(verbs)
        self.success_combo = QComboBox()
        self.success_combo.addItems(["success: auto", "success", "failure"])
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("review note (optional)")
        self.auto_check = QCheckBox("Auto (virtual operator)")
        self.auto_check.setToolTip("sim only: the virtual operator records the whole plan")
        self.auto_check.toggled.connect(lambda on: self.session is not None and self.session.set_auto(on))
        self.estop_button = EstopButton(22)
        self.estop_button.pressed.connect(self.context.estop)
        self.resume_button = QPushButton("Release e-stop")
        self.resume_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.resume_button.clicked.connect(
            lambda: self.session is not None and self._watch(self.session.resume_arm())
        )
        # Every episode starts where evaluation trials start (collect.episode_start).
        self.home_button = QPushButton("Home")
        self.home_button.setToolTip("bring the arm to the episode start pose (sim: reset the scene)")
        self.home_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.home_button.clicked.connect(
            lambda: self.session is not None and self._watch(self.session.home())
        )
        arm = QHBoxLayout()
        for widget in (self.estop_button, self.resume_button, self.home_button):
            arm.addWidget(widget)
        arm.addStretch(1)
        arm.addWidget(self.auto_check)
        middle.addLayout(arm)
        review = QHBoxLayout()
        review.addWidget(self.success_combo)
        review.addWidget(self.note_edit, 1)
        middle.addLayout(review)
        for key, slot in (
            ("Space", self.start_or_stop),
            ("Return", self.keep),
            ("Enter", self.keep),
            ("Backspace", self.discard),
        ):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(slot)

    def _build_plot(self, layout) -> None:
        import pyqtgraph as pg

        self.plot = pg.PlotWidget(title="joints: leader (dashed) / follower")
        self.plot.setMinimumHeight(140)
        self.leader_curves, self.follower_curves = [], []
        for j in range(7):
            color = pg.intColor(j, 7)
            self.leader_curves.append(self.plot.plot(pen=pg.mkPen(color, style=Qt.PenStyle.DashLine)))
            self.follower_curves.append(self.plot.plot(pen=pg.mkPen(color, width=2)))
        layout.addWidget(self.plot, 2)

    # -- plan and session ---------------------------------------------------------------------
    def build_plan(self):
        from collect.recording.plan import RecordingPlan

        height, width = (int(v) for v in self.size_combo.currentText().split("x"))
        backend = self.context.backend or self.context.hardware.backend or "sim"
        return RecordingPlan(
            dataset=self.dataset_edit.text().strip(),
            tasks=[t for t, box in self.task_checks.items() if box.isChecked()],
            episodes_per_task=self.episodes_spin.value(),
            max_episode_s=self.max_len_spin.value(),
            reset_s=self.reset_spin.value(),
            image_size=(height, width),
            backend=backend,
            operator=self.operator_edit.text().strip() or ("virtual operator" if backend == "sim" else ""),
        )

    def open_session(self) -> None:
        if self.session is not None or self._opening:
            return
        try:
            plan = self.build_plan()
        except ValueError as exc:
            self._show(str(exc))
            return
        from collect.recording.plan import is_dataset
        from collect.recording.session import RecordingSession

        datasets_dir = self.context.workspace.datasets_dir
        resume = is_dataset(plan.root(datasets_dir))
        borrowed = None
        if plan.backend == "piper":
            borrowed = self.context.station.station
            if borrowed is None:
                self._show("open the station on the Station page first: recording uses the real arm")
                return
            self.context.station.set_preview_enabled(False)
        session = RecordingSession(
            plan,
            datasets_dir,
            resume=resume,
            auto=self.auto_check.isChecked(),
            borrowed_station=borrowed,
            on_event=self._bridge.event.emit,
        )
        self._opening = True
        self._show(("resuming" if resume else "creating") + f" {plan.dataset}: opening the station...")
        self._update_buttons()

        def check_then_open():
            if resume:  # a damaged file is named with the fix, not as lerobot's bare traceback
                from collect.recording.writer import ensure_not_recording
                from train.data import check_dataset_files

                # first: a file another session is writing is not damage
                ensure_not_recording(plan.root(datasets_dir))
                check_dataset_files(plan.root(datasets_dir))
            return session.open()

        self.context.run_in_background(check_then_open, on_result=self._opened, on_error=self._open_failed)

    def _opened(self, session) -> None:
        self._opening = False
        self.session = session
        self._timer.start()
        self._refresh_disk()
        self.refresh()
        self.encoder_label.setText(session.writer.encoder.label)
        self.encoder_label.setToolTip(session.writer.encoder.summary)  # why not the GPU's
        self.context.status_message.emit(f"recording into {session.writer.root}")

    def _open_failed(self, message: str) -> None:
        self._opening = False
        self.context.station.set_preview_enabled(True)
        self._show(f"cannot open the plan: {message}")
        self._update_buttons()

    def close_session(self) -> None:
        session, self.session = self.session, None
        self._timer.stop()
        if session is not None:
            self.context.run_in_background(session.close, on_result=lambda _: self._show("closed"))
            self.context.station.set_preview_enabled(True)
        self._update_buttons()

    # -- operator verbs -----------------------------------------------------------------------
    def start_or_stop(self) -> None:
        from collect.recording.session import SessionState

        if self.session is None:
            return
        if self.session.state == SessionState.RECORDING:
            self._watch(self.session.stop())
        elif self.session.state == SessionState.REVIEW:
            self._watch(self.session.rerecord())
        else:
            self._watch(self.session.start())

    def keep(self) -> None:
        from collect.recording.session import SessionState

        if self.session is None or self.session.state != SessionState.REVIEW:
            return
        success = {0: None, 1: True, 2: False}[self.success_combo.currentIndex()]
        self._watch(self.session.keep(success=success, note=self.note_edit.text().strip()))
        self.note_edit.clear()
        self.success_combo.setCurrentIndex(0)

    def discard(self) -> None:
        from collect.recording.session import SessionState

        if self.session is None or self.session.state not in (SessionState.REVIEW, SessionState.RECORDING):
            return
        self._watch(self.session.discard())

    def _switch_to_item(self, item: QListWidgetItem) -> None:
        if self.session is not None:
            self._watch(self.session.switch_task(item.data(Qt.ItemDataRole.UserRole)))

    def _watch(self, future) -> None:
        future.add_done_callback(
            lambda f: f.exception() and self._bridge.event.emit("error", str(f.exception()))
        )

    def _on_estop(self) -> None:
        if self.session is not None:
            self.session.estop()

    # -- display ------------------------------------------------------------------------------
    def _on_event(self, event: str, info: Any) -> None:
        if event == "error":
            self._show(str(info))
        elif event == "kept":
            self.context.status_message.emit(
                f"kept {info['task']} episode {info['episode_index']} ({info['frames']} frames, "
                f"on disk {info['keep_s']:.2f} s after Keep)"
            )
            self._refresh_disk()
        elif event == "save_failed":
            self._show(f"the {info['task']} episode was NOT saved: {info['error']}; record it again")
        elif event == "failed":
            self._show(f"recording stopped: {info.get('error')}")

    def _refresh_disk(self) -> None:
        if self.session is None or self.session.writer is None:
            return
        root = self.session.writer.root

        def measure():
            from collect.recording.library import folder_size

            return folder_size(root), shutil.disk_usage(root).free

        def show(result) -> None:
            self._dataset_bytes, free = result
            self.disk_label.setText(
                f"dataset {self._dataset_bytes / 1e6:.1f} MB, disk free {free / 1e9:.1f} GB"
            )

        self.context.run_in_background(measure, on_result=show)

    def refresh(self) -> None:
        if self.session is None:
            return
        snap = self.session.snapshot()
        self._refresh_tasks(snap)
        if self.isVisible():  # recording goes on behind another page; drawing it would be wasted
            self._show_live(snap)
        text = {
            "recording": f"RECORDING {task_title(snap.task)}: {snap.frames / self.session.plan.fps:.1f} s",
            "review": f"REVIEW: {snap.frames} frames"
            + ("" if snap.last_success is None else (" (success)" if snap.last_success else " (failure)"))
            + ": Keep or Discard",
            "resetting": _resetting_text(snap, self.session.plan.fps),
            "ready": f"READY: {task_title(snap.task)} (Space to start){_start_pose_hint(snap.start_gap)}",
            "finished": "PLAN COMPLETE",
        }.get(snap.state.value, snap.message)
        if snap.estopped:
            text = "E-STOP: the arm is stopped; press Release e-stop when it is safe"
        self.state_label.setText(text)
        timing = snap.timing
        if timing is not None:
            warning = timing.warning()
            cams = ", ".join(f"{k} {v:.0f}" for k, v in timing.camera_fps.items())
            self.timing_label.setText(
                f"{timing.achieved_fps:.1f} fps (target {timing.target_fps:.0f}), cameras {cams}, "
                f"dropped {timing.dropped_frames}, late {timing.late_ticks}, p99 period {timing.p99_period_ms:.0f} ms"
                + (f", encoder backlog {snap.backlog} frames" if snap.backlog > self.session.plan.fps else "")
                + (f"  WARNING {warning}" if warning else "")
            )
            self.timing_label.setStyleSheet("color: #c62828;" if warning else "")
        self.eta_label.setText(f"ETA for the plan: {format_duration(self.session.eta_s())}")
        self.save_label.setText(
            f"saving {snap.saving} kept episode{'s' if snap.saving > 1 else ''}..." if snap.saving else ""
        )
        self._update_buttons()

    def _show_live(self, snap) -> None:
        for name, view in self.views.items():
            frame = snap.images.get(name)
            if frame is not None:
                view.set_frame(frame)
        if snap.leader:
            import numpy as np

            leader, follower = np.asarray(snap.leader), np.asarray(snap.follower)
            for j in range(7):
                self.leader_curves[j].setData(leader[:, j])
                self.follower_curves[j].setData(follower[:, j])

    def _refresh_tasks(self, snap) -> None:
        target = self.session.plan.episodes_per_task
        lines = [
            (
                task,
                f"{'> ' if task == snap.task else '   '}{task_title(task)} {snap.counts.get(task, 0)}/{target}",
            )
            for task in self.session.plan.tasks
        ]
        if self.task_list.count() != len(lines):
            self.task_list.clear()
            for task, text in lines:
                item = QListWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, task)
                self.task_list.addItem(item)
        for row, (_, text) in enumerate(lines):
            if self.task_list.item(row).text() != text:
                self.task_list.item(row).setText(text)

    def counter_texts(self) -> list[str]:
        return [self.task_list.item(i).text().strip("> ").strip() for i in range(self.task_list.count())]

    def _update_buttons(self) -> None:
        from collect.recording.session import SessionState

        state = self.session.state if self.session is not None else None
        self.open_button.setEnabled(self.session is None and not self._opening)
        self.close_button.setEnabled(self.session is not None)
        self.start_button.setEnabled(
            state in (SessionState.READY, SessionState.RESETTING, SessionState.RECORDING, SessionState.REVIEW)
        )
        self.start_button.setText(
            "Stop  [Space]"
            if state == SessionState.RECORDING
            else "Re-record  [Space]"
            if state == SessionState.REVIEW
            else "Start  [Space]"
        )
        self.keep_button.setEnabled(state == SessionState.REVIEW)
        self.home_button.setEnabled(
            state in (SessionState.READY, SessionState.RESETTING, SessionState.REVIEW)
        )
        self.resume_button.setEnabled(self.session is not None)
        self.discard_button.setEnabled(state in (SessionState.REVIEW, SessionState.RECORDING))

    def _show(self, message: str) -> None:
        self.state_label.setText(message)
        self.context.status_message.emit(message)

    def shutdown(self) -> None:
        self._timer.stop()
        session, self.session = self.session, None
        if session is not None:
            session.close()


def _resetting_text(snap, fps: int) -> str:
    """The countdown, then what the next episode still waits for (the plan's last saves, the encoder)."""
    if snap.countdown_s > 0:
        return f"RESET the scene: {snap.countdown_s:.1f} s"
    if "plan is complete" in snap.message:
        return "PLAN COMPLETE: saving the last episodes..."
    if snap.saving > 1 or snap.backlog > fps:
        return "WAITING for the video encoder to catch up..."
    return "RESET the scene: 0.0 s"


def _start_pose_hint(gap: float | None) -> str:
    """Where the arm is against the episode start pose, for the READY line."""
    from collect.episode_start import EPISODE_START

    if gap is None or gap <= EPISODE_START.tolerance:
        return ""
    return f"; the arm is {gap:.2f} from the start pose: Home"
