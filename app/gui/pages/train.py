"""The Train page: one "Fine-tune" button, an advanced panel, live progress of the job.

Training runs in a child process (train/jobs.py), never in this window: the page starts
it off the GUI thread, then a timer reads the run's small files (job.json, the new lines
of metrics.jsonl, the end of train.log). Closing the window leaves the job running; a
window opened later finds it in the run list and follows it again.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui.context import AppContext
from app.gui.widgets.job_target import JobTargetForm
from app.gui.widgets.wrap_label import WrapLabel
from collect.recording.plan import is_dataset
from train.backbones import PRETRAINED_NAMES, TINY_NAMES
from train.jobs import list_jobs, live_step
from train.layout import LOG_FILE
from train.metrics import MetricsFollower, format_eta
from train.presets import DEFAULT_PRESET, PRESETS, get_preset

OFFLINE_BACKBONES = (*PRETRAINED_NAMES, *TINY_NAMES)  # in-house first, then the ones built from scratch
POLL_MS = 1000
LOG_TAIL_BYTES = 6000
RUN_COLUMNS = ["Run", "State", "Strategy", "Step", "Trainable %", "Final loss", "Final val"]
CURVE_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]


def _read_tail(path: Path, size: int = LOG_TAIL_BYTES) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


class _Curves:
    """A pyqtgraph plot whose named curves grow point by point."""

    def __init__(self, title: str, y_label: str):
        import pyqtgraph as pg

        self.widget = pg.PlotWidget(title=title)
        self.widget.setLabel("bottom", "step")
        self.widget.setLabel("left", y_label)
        self.widget.addLegend(offset=(5, 5))
        self.widget.showGrid(x=True, y=True, alpha=0.2)
        self.data: dict[str, tuple[list, list]] = {}
        self.curves = {}

    def add(self, name: str, step: int, value) -> None:
        if value is None:
            return
        import pyqtgraph as pg

        if name not in self.curves:
            color = CURVE_COLORS[len(self.curves) % len(CURVE_COLORS)]
            self.curves[name] = self.widget.plot(name=name, pen=pg.mkPen(color, width=2))
            self.data[name] = ([], [])
        xs, ys = self.data[name]
        xs.append(step)
        ys.append(value)

    def redraw(self) -> None:
        for name, curve in self.curves.items():
            curve.setData(*self.data[name])

    def clear(self) -> None:
        self.widget.clear()
        self.data.clear()
        self.curves.clear()


class TrainPage(QWidget):
    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.runs_dir = context.workspace.runs_dir
        self.selected_run: str | None = None
        self.records = []
        self._follower: MetricsFollower | None = None
        self._pending = None  # the background task starting or canceling a job

        layout = QVBoxLayout(self)
        layout.addLayout(self._build_start_row())
        layout.addWidget(self._build_advanced())

        progress_row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status_label = WrapLabel("no run selected")  # errors can be long: never push Cancel off
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.resume_button = QPushButton("Resume")
        self.resume_button.clicked.connect(self.resume_selected)
        progress_row.addWidget(self.progress, 3)
        progress_row.addWidget(self.status_label, 2)
        progress_row.addWidget(self.cancel_button)
        progress_row.addWidget(self.resume_button)
        layout.addLayout(progress_row)

        self.loss_plot = _Curves("Loss and auxiliary terms", "loss")
        self.rank_plot = _Curves("Active rank per group", "rank")
        self.val_plot = _Curves("Validation loss per task", "val loss")
        plots = QSplitter(Qt.Orientation.Horizontal)
        for plot in (self.loss_plot, self.rank_plot, self.val_plot):
            plots.addWidget(plot.widget)

        self.runs_table = QTableWidget(0, len(RUN_COLUMNS))
        self.runs_table.setHorizontalHeaderLabels(RUN_COLUMNS)
        self.runs_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.runs_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.runs_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # the run's name takes the rest
        self.runs_table.setWordWrap(False)  # a study's names share their start: cut the middle instead
        self.runs_table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.runs_table.itemSelectionChanged.connect(self._on_run_clicked)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(400)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.runs_table)
        bottom.addWidget(self.log_view)
        bottom.setStretchFactor(0, 3)  # the runs' names need the width more than the log's lines
        bottom.setStretchFactor(1, 2)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(plots)
        body.addWidget(bottom)
        layout.addWidget(body, 1)

        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(POLL_MS)
        self.refresh_datasets()
        self.refresh()

    # ---------------------------------------------------------------- widgets

    def _build_start_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel("Dataset:"))
        self.dataset_combo = QComboBox()
        self.dataset_combo.setMinimumWidth(200)
        row.addWidget(self.dataset_combo)
        refresh = QPushButton("↻")
        refresh.setToolTip("re-read the datasets folder")
        refresh.clicked.connect(self.refresh_datasets)
        row.addWidget(refresh)
        self.finetune_button = QPushButton("Fine-tune")
        self.finetune_button.setToolTip(f"{DEFAULT_PRESET}: LoRA-SP on SmolVLA, all tasks of the dataset")
        self.finetune_button.setStyleSheet("font-weight: bold; padding: 6px 18px;")
        self.finetune_button.clicked.connect(self.start_finetune)
        row.addWidget(self.finetune_button)
        self.advanced_button = QPushButton("Advanced ▸")
        self.advanced_button.setCheckable(True)
        self.advanced_button.toggled.connect(self._toggle_advanced)
        row.addWidget(self.advanced_button)
        row.addStretch(1)
        return row

    def _build_advanced(self) -> QGroupBox:
        box = QGroupBox("Advanced")
        form = QFormLayout(box)
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(PRESETS))
        self.preset_combo.setCurrentText(DEFAULT_PRESET)
        self.preset_combo.currentTextChanged.connect(self._load_preset_fields)
        # the offline names to pick from (mini-smolvla once `piper-ws pretrain` made it); or type a hub id or a path
        self.backbone_edit = QComboBox(editable=True)
        self.backbone_edit.addItems(OFFLINE_BACKBONES)
        self.backbone_edit.lineEdit().setPlaceholderText(
            "a name above, a hub id (lerobot/smolvla_base), or a snapshot directory"
        )
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 10_000_000)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 4096)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setSingleStep(1e-4)
        self.rank_spin = QSpinBox()
        self.rank_spin.setRange(1, 1024)
        self.processes_spin = QSpinBox()
        self.processes_spin.setRange(1, 64)
        self.processes_spin.setToolTip(
            "training processes (one GPU each); the batch size is split between them"
        )
        self.tasks_edit = QLineEdit()
        self.tasks_edit.setPlaceholderText("all tasks (or instructions separated by ';')")
        self.run_edit = QLineEdit()
        self.run_edit.setPlaceholderText("automatic")
        form.addRow("Preset", self.preset_combo)
        form.addRow("Backbone", self.backbone_edit)
        form.addRow("Steps", self.steps_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Rank r", self.rank_spin)
        form.addRow("Processes", self.processes_spin)
        form.addRow("Tasks", self.tasks_edit)
        form.addRow("Run name", self.run_edit)
        self.where = JobTargetForm()  # this machine (a device) or a Slurm cluster; Resume uses it too
        form.addRow("Where", self.where)
        self.advanced_box = box
        box.setVisible(False)
        self._load_preset_fields(DEFAULT_PRESET)
        return box

    def _toggle_advanced(self, shown: bool) -> None:
        self.advanced_box.setVisible(shown)
        self.advanced_button.setText("Advanced ▾" if shown else "Advanced ▸")

    def _load_preset_fields(self, name: str) -> None:
        cfg = PRESETS[name]
        self.backbone_edit.setCurrentText(cfg.backbone)
        self.steps_spin.setValue(cfg.steps)
        self.batch_spin.setValue(cfg.batch_size)
        self.lr_spin.setValue(cfg.lr)
        rank = cfg.adapter.get("r", cfg.adapter.get("init_r"))
        self.rank_spin.setEnabled(rank is not None)
        self.rank_spin.setValue(rank or 1)

    def refresh_datasets(self) -> None:
        current = self.dataset_combo.currentText()
        root = self.context.workspace.datasets_dir
        names = sorted(p.name for p in root.iterdir() if is_dataset(p)) if root.is_dir() else []
        self.dataset_combo.clear()
        self.dataset_combo.addItems(names)
        if current in names:
            self.dataset_combo.setCurrentText(current)

    # ---------------------------------------------------------------- actions

    def config_from_form(self):
        """The config the Fine-tune button starts: the preset plus the advanced fields."""
        name = self.preset_combo.currentText()
        cfg = PRESETS[name]
        overrides = dict(
            dataset=self.dataset_combo.currentText(),
            backbone=self.backbone_edit.currentText().strip() or cfg.backbone,
            steps=self.steps_spin.value(),
            batch_size=self.batch_spin.value(),
            lr=self.lr_spin.value(),
            processes=self.processes_spin.value(),
        )
        tasks = [t.strip() for t in self.tasks_edit.text().split(";") if t.strip()]
        if tasks:
            overrides["tasks"] = tasks
        if self.rank_spin.isEnabled():
            key = "init_r" if "init_r" in cfg.adapter else "r"
            overrides["adapter"] = {key: self.rank_spin.value()}
        run = self.run_edit.text().strip()
        if run:
            overrides["run_name"] = run
        return get_preset(name, **overrides)

    def start_finetune(self) -> None:
        if not self.dataset_combo.currentText():
            self._say("No dataset yet: record one on the Record page (or `piper-ws record`)")
            return
        try:
            config = self.config_from_form()
            device, slurm = self.where.target()
        except (KeyError, ValueError) as exc:
            self._say(f"Cannot start: {exc}")
            return
        if not config.run_name:
            import time

            config = config.with_overrides(
                run_name=f"{config.dataset}-{config.preset}-{time.strftime('%m%d-%H%M%S')}"
            )
        self._run_job_call(
            "start", config=config, runs_dir=self.runs_dir, datasets_dir=self.context.workspace.datasets_dir,
            device=device, slurm=slurm,
        )  # fmt: skip
        self.selected_run = config.run_name

    def cancel_selected(self) -> None:
        if self.selected_run:
            self._run_job_call("cancel", run_dir=self.runs_dir / self.selected_run)

    def resume_selected(self) -> None:
        """Continue the selected run from its last checkpoint, where the Where row says."""
        if not self.selected_run:
            return
        try:
            device, slurm = self.where.target()
        except ValueError as exc:
            self._say(f"Cannot resume: {exc}")
            return
        self._run_job_call(
            "resume", config=None, runs_dir=self.runs_dir, datasets_dir=self.context.workspace.datasets_dir,
            run_name=self.selected_run, device=device, slurm=slurm,
        )  # fmt: skip

    def _run_job_call(self, action: str, **kwargs) -> None:
        from train import jobs

        calls = {
            "start": jobs.start_job,
            "resume": lambda **kw: jobs.start_job(resume=True, **kw),
            "cancel": lambda run_dir: jobs.cancel_job(run_dir),
        }
        self.finetune_button.setEnabled(False)
        self._say(f"{action}: asking the job ...")
        self._pending = self.context.run_in_background(
            calls[action], on_result=lambda record: self._job_called(action, record),
            on_error=lambda message: self._job_failed(action, message), **kwargs,
        )  # fmt: skip

    def _job_called(self, action: str, record) -> None:
        self.finetune_button.setEnabled(True)
        self._say(f"{action}: run {record.run_name} is {record.status}")
        if action in ("start", "resume"):
            self._select(record.run_name, reload=True)
        self.refresh()

    def _job_failed(self, action: str, message: str) -> None:
        self.finetune_button.setEnabled(True)
        self._say(f"{action} failed: {message}")

    def _say(self, text: str) -> None:
        self.status_label.setText(text)
        self.context.status_message.emit(text)

    # ---------------------------------------------------------------- polling

    def refresh(self) -> None:
        """Re-read the run list and the selected run's new metrics (small files only)."""
        self.records = list_jobs(self.runs_dir)
        self._fill_runs_table()
        if self.selected_run is None and self.records:
            active = [r for r in self.records if r.active]
            self._select((active or self.records)[0].run_name, reload=True)
        self._update_selected()

    def _fill_runs_table(self) -> None:
        table = self.runs_table
        table.blockSignals(True)
        table.setRowCount(len(self.records))
        for row, r in enumerate(self.records):
            val = sum(r.final_val.values()) / len(r.final_val) if r.final_val else None
            cells = [
                r.run_name,
                r.status,
                r.strategy,
                f"{live_step(r)}/{r.total_steps}",
                f"{r.trainable_percent:.1f}" if r.trainable_percent is not None else "",
                f"{r.final_loss:.4f}" if r.final_loss is not None else "",
                f"{val:.4f}" if val is not None else "",
            ]
            for col, text in enumerate(cells):
                table.setItem(row, col, QTableWidgetItem(text))
            table.item(row, 0).setToolTip(r.run_name)
            if r.run_name == self.selected_run:
                table.selectRow(row)
        table.blockSignals(False)

    def _on_run_clicked(self) -> None:
        rows = self.runs_table.selectionModel().selectedRows()
        if rows:
            self._select(self.runs_table.item(rows[0].row(), 0).text(), reload=True)

    def _select(self, run_name: str, reload: bool = False) -> None:
        if run_name == self.selected_run and not reload and self._follower is not None:
            return
        self.selected_run = run_name
        self._follower = MetricsFollower(self.runs_dir / run_name)
        for plot in (self.loss_plot, self.rank_plot, self.val_plot):
            plot.clear()
        self._last_train = {}
        self._update_selected()

    def _update_selected(self) -> None:
        record = next((r for r in self.records if r.run_name == self.selected_run), None)
        if record is None or self._follower is None:
            self.cancel_button.setEnabled(False)
            self.resume_button.setEnabled(False)
            return
        for entry in self._follower.poll():
            self._add_record(entry)
        for plot in (self.loss_plot, self.rank_plot, self.val_plot):
            plot.redraw()
        last = self._last_train
        total = last.get("total_steps") or record.total_steps or 1
        step = last.get("step", record.step)
        self.progress.setValue(int(1000 * min(1.0, step / total)))
        text = f"{record.run_name}: {record.status}, step {step}/{total}"
        if record.state in ("starting", "running"):
            text += f", ETA {format_eta(last.get('eta_s'))}"
        if record.state == "failed" and record.error:
            text += f" — {record.error}"
        self.status_label.setText(text)
        self.cancel_button.setEnabled(record.active)
        self.resume_button.setEnabled(record.state in ("canceled", "failed") and not record.active)
        self.log_view.setPlainText(_read_tail(Path(record.run_dir) / LOG_FILE))
        self.log_view.verticalScrollBar().setValue(self.log_view.verticalScrollBar().maximum())

    def _add_record(self, entry: dict) -> None:
        step = entry.get("step", 0)
        if entry.get("kind") == "train":
            self._last_train = entry
            self.loss_plot.add("loss", step, entry.get("loss"))
            for key, value in entry.items():
                if key.startswith("aux/"):
                    self.loss_plot.add(key[4:], step, value)
                elif key.startswith("active_rank/") and key != "active_rank/mean":
                    self.rank_plot.add(key.split("/", 1)[1], step, value)
        elif entry.get("kind") == "val":
            for key, value in entry.items():
                if key.startswith("val/"):
                    self.val_plot.add(key[4:], step, value)

    def shutdown(self) -> None:
        """Closing the window leaves the job running (it re-attaches next time)."""
        self.timer.stop()
