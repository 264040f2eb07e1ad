"""Datasets page: the workspace's datasets, their episodes, replay, and safe episode deletion.

Everything that reads files (sizes, parquet, video decoding) or rewrites a dataset runs
through `context.run_in_background`; slots only fill widgets with the results.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSlider,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui.context import AppContext
from app.gui.widgets.camera_view import CameraView
from app.gui.widgets.wrap_label import WrapLabel
from collect.limits import CAMERA_NAMES as CAMERAS


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def _fill(table: QTableWidget, rows: list[list[str]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(text))


class DatasetsPage(QWidget):
    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.summaries: list[Any] = []
        self.episodes: list[dict] = []
        self.replay: dict[str, Any] | None = None  # frames per camera, state, action
        self.busy = False
        self.confirm = self._ask  # replaced in tests
        self._build()
        self._play_timer = QTimer(self)
        self._play_timer.timeout.connect(self._advance)
        self.refresh()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.status_label = WrapLabel("", max_lines=2)  # a damaged file's path and fix can be long
        top.addWidget(QLabel("Datasets in the workspace"))
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        top.addWidget(self.status_label, 1)  # takes the free width (it asks for none)
        top.addWidget(self.refresh_button)
        layout.addLayout(top)
        splitter = QSplitter(Qt.Orientation.Vertical)
        layout.addWidget(splitter, 1)
        self.dataset_table = _table(["dataset", "episodes", "per task", "duration", "size"])
        self.dataset_table.itemSelectionChanged.connect(self._dataset_selected)
        splitter.addWidget(self.dataset_table)
        self.episode_table = _table(["episode", "task", "length", "success", "operator", "note"])
        self.episode_table.itemSelectionChanged.connect(self._episode_selected)
        splitter.addWidget(self.episode_table)

        replay = QWidget()
        replay_layout = QVBoxLayout(replay)
        cams = QHBoxLayout()
        self.views = {name: CameraView(name) for name in CAMERAS}
        for view in self.views.values():
            cams.addWidget(view)
        replay_layout.addLayout(cams, 2)
        import pyqtgraph as pg

        self.plot = pg.PlotWidget(title="follower state (solid) / leader action (dashed)")
        self.cursor = pg.InfiniteLine(pos=0, angle=90, movable=False)
        self.plot.addItem(self.cursor)
        replay_layout.addWidget(self.plot, 1)
        controls = QHBoxLayout()
        self.play_button = QPushButton("Play")
        self.play_button.clicked.connect(self.toggle_play)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.valueChanged.connect(self.show_frame)
        self.delete_button = QPushButton("Delete episode...")
        self.delete_button.clicked.connect(self.delete_selected)
        controls.addWidget(self.play_button)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.delete_button)
        replay_layout.addLayout(controls)
        splitter.addWidget(replay)
        self._update_buttons()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self.busy:
            self.refresh()  # episodes kept on the Record page since the last look

    # -- loading --------------------------------------------------------------------------------
    def refresh(self) -> None:
        from collect.recording.library import list_datasets

        datasets_dir = self.context.workspace.datasets_dir
        self._busy("reading datasets...")
        self.context.run_in_background(
            list_datasets, datasets_dir, on_result=self._show_datasets, on_error=self._error
        )

    def _show_datasets(self, summaries: list[Any]) -> None:
        selected = self.selected_dataset()
        self.summaries = summaries
        _fill(
            self.dataset_table,
            [
                [
                    s.name,
                    str(s.episodes),
                    ", ".join(f"{task}: {n}" for task, n in s.per_task.items()),
                    f"{s.duration_s / 60:.1f} min",
                    f"{s.size_bytes / 1e6:.1f} MB",
                ]
                for s in summaries
            ],
        )
        self._done(f"{len(summaries)} datasets")
        names = [s.name for s in summaries]
        row = names.index(selected.name) if selected is not None and selected.name in names else 0
        if summaries:
            self.dataset_table.blockSignals(True)  # reload its episodes once, even if the row stays selected
            self.dataset_table.selectRow(row)
            self.dataset_table.blockSignals(False)
            self._dataset_selected()

    def selected_dataset(self):
        rows = (
            self.dataset_table.selectionModel().selectedRows() if self.dataset_table.selectionModel() else []
        )
        return self.summaries[rows[0].row()] if rows and rows[0].row() < len(self.summaries) else None

    def selected_episode(self) -> dict | None:
        rows = self.episode_table.selectionModel().selectedRows()
        return self.episodes[rows[0].row()] if rows and rows[0].row() < len(self.episodes) else None

    def _dataset_selected(self) -> None:
        from collect.recording.library import episode_rows

        summary = self.selected_dataset()
        if summary is None:
            return
        self.context.run_in_background(
            episode_rows, summary.root, on_result=self._show_episodes, on_error=self._error
        )

    def _show_episodes(self, rows: list[dict]) -> None:
        self.episodes = rows
        fps = self.selected_dataset().fps if self.selected_dataset() else 30
        _fill(
            self.episode_table,
            [
                [
                    str(r["episode_index"]),
                    r["task"],
                    f"{r['length'] / fps:.1f} s",
                    {True: "yes", False: "no"}.get(r["sidecar"].get("success"), "-"),
                    r["sidecar"].get("operator", ""),
                    r["sidecar"].get("note", ""),
                ]
                for r in rows
            ],
        )
        self._update_buttons()

    def _episode_selected(self) -> None:
        summary, episode = self.selected_dataset(), self.selected_episode()
        self._update_buttons()
        if summary is None or episode is None:
            return
        index = episode["episode_index"]

        def load() -> dict[str, Any]:
            from collect.recording.library import episode_signals, episode_video

            state, action = episode_signals(summary.root, index)
            frames = {cam: episode_video(summary.root, index, cam) for cam in CAMERAS}
            return {
                "episode_index": index,
                "frames": frames,
                "state": state,
                "action": action,
                "fps": summary.fps,
            }

        self._busy(f"loading episode {index}...")
        self.context.run_in_background(load, on_result=self._show_replay, on_error=self._error)

    def _show_replay(self, replay: dict[str, Any]) -> None:
        import pyqtgraph as pg

        self.replay = replay
        self.plot.clear()
        self.plot.addItem(self.cursor)
        for j in range(replay["state"].shape[1] if replay["state"].size else 0):
            color = pg.intColor(j, 7)
            self.plot.plot(replay["state"][:, j], pen=pg.mkPen(color, width=2))
            self.plot.plot(replay["action"][:, j], pen=pg.mkPen(color, style=Qt.PenStyle.DashLine))
        length = max(len(f) for f in replay["frames"].values())
        self.slider.setRange(0, max(0, length - 1))
        self.slider.setValue(0)
        self.show_frame(0)
        self._done(f"episode {replay['episode_index']}: {length} frames")

    # -- replay -----------------------------------------------------------------------------------
    def show_frame(self, index: int) -> None:
        if self.replay is None:
            return
        for cam, frames in self.replay["frames"].items():
            if len(frames):
                self.views[cam].set_frame(frames[min(index, len(frames) - 1)])
        self.cursor.setPos(index)

    def toggle_play(self) -> None:
        if self._play_timer.isActive():
            self._play_timer.stop()
            self.play_button.setText("Play")
        elif self.replay is not None:
            self._play_timer.start(int(1000 / max(1, self.replay["fps"])))
            self.play_button.setText("Pause")

    def _advance(self) -> None:
        if self.slider.value() >= self.slider.maximum():
            self.toggle_play()
            return
        self.slider.setValue(self.slider.value() + 1)

    # -- delete -------------------------------------------------------------------------------------
    def _ask(self, text: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Delete episode",
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def delete_selected(self) -> None:
        from collect.recording.library import delete_episode

        summary, episode = self.selected_dataset(), self.selected_episode()
        if summary is None or episode is None or self.busy:
            return
        index = episode["episode_index"]
        text = (
            f"Delete episode {index} ({episode['task']}) from {summary.name}? Later episodes are renumbered. "
            "The dataset is rewritten to a copy, checked, then swapped in."
        )
        if not self.confirm(text):
            return
        self._play_timer.stop()
        self.replay = None
        self._busy(f"deleting episode {index} of {summary.name}...")
        self.context.run_in_background(
            delete_episode,
            summary.root,
            index,
            on_result=lambda _: self._deleted(summary.name, index),
            on_error=self._error,
        )

    def _deleted(self, name: str, index: int) -> None:
        self.busy = False
        self.context.status_message.emit(f"deleted episode {index} of {name}")
        self.refresh()

    # -- state ---------------------------------------------------------------------------------------
    def _busy(self, message: str) -> None:
        self.busy = True
        self.status_label.setText(message)
        self._update_buttons()

    def _done(self, message: str) -> None:
        self.busy = False
        self.status_label.setText(message)
        self._update_buttons()

    def _error(self, message: str) -> None:
        self.busy = False
        self.status_label.setText(f"error: {message}")
        self.context.status_message.emit(message)
        self._update_buttons()

    def _update_buttons(self) -> None:
        has_episode = (
            bool(self.episodes)
            and self.episode_table.selectionModel() is not None
            and bool(self.episode_table.selectionModel().selectedRows())
        )
        self.delete_button.setEnabled(has_episode and not self.busy)
        self.play_button.setEnabled(self.replay is not None)

    def shutdown(self) -> None:
        self._play_timer.stop()
