"""Datasets page: the workspace's datasets, their episodes, replay, and safe episode deletion.

Everything that reads files (sizes, parquet) or rewrites a dataset runs through
`context.run_in_background`; slots only fill widgets with the results. Replay decodes on
the `EpisodePlayer`'s own thread, a little ahead of the playhead: the first frames show
within a fraction of a second of the click, playback keeps the recorded fps by the wall
clock, and the views say "loading..." (the status line "buffering...") while frames are
not decoded yet.
"""

from __future__ import annotations

import time
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

POLL_MS = 10  # playback and "is it decoded yet" checks; frames change at the recorded fps
PLOT_MIN_HEIGHT = 150  # px: seven joint curves stay apart at 1280x800


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
        self.replay: dict[str, Any] | None = None  # episode_index, fps, length, state, action
        self.player: Any = None  # collect.recording.replay.EpisodePlayer of the selected episode
        self.busy = False
        self.confirm = self._ask  # replaced in tests
        self._build()
        self._play_timer = QTimer(self)
        self._play_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._play_timer.setInterval(POLL_MS)
        self._play_timer.timeout.connect(self._advance)
        self._play_origin = (0.0, 0)  # (wall time, frame) playback counts from
        self._frame_timer = QTimer(self)  # shows the wanted frame once the player has decoded it
        self._frame_timer.setInterval(POLL_MS)
        self._frame_timer.timeout.connect(self._show_wanted)
        self._wanted = 0
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
        self.plot.setMinimumHeight(PLOT_MIN_HEIGHT)  # else the cameras' size hint leaves it a sliver
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
        from collect.recording.library import episode_signals
        from collect.recording.replay import EpisodePlayer

        summary, episode = self.selected_dataset(), self.selected_episode()
        self._update_buttons()
        if summary is None or episode is None:
            return
        self._stop_replay()
        index = episode["episode_index"]
        self.player = EpisodePlayer(summary.root, episode, CAMERAS)  # decodes on its own thread
        self.replay = {"episode_index": index, "fps": summary.fps, "length": int(episode["length"])}
        self.replay["clicked_at"] = time.monotonic()
        self.plot.clear()
        self.plot.addItem(self.cursor)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, self.replay["length"] - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        for view in self.views.values():
            view.placeholder = "loading..."
            view.set_frame(None)
        self.status_label.setText(f"loading episode {index}...")
        self.show_frame(0)
        self.context.run_in_background(
            episode_signals,
            summary.root,
            index,
            on_result=lambda signals: self._show_signals(index, signals),
            on_error=self._error,
        )
        self._update_buttons()

    def _show_signals(self, index: int, signals: tuple[Any, Any]) -> None:
        import pyqtgraph as pg

        if self.replay is None or self.replay["episode_index"] != index:
            return  # another episode was clicked meanwhile
        state, action = signals
        self.replay["state"], self.replay["action"] = state, action
        for j in range(state.shape[1] if state.size else 0):
            color = pg.intColor(j, 7)
            self.plot.plot(state[:, j], pen=pg.mkPen(color, width=2))
            self.plot.plot(action[:, j], pen=pg.mkPen(color, style=Qt.PenStyle.DashLine))

    def _stop_replay(self) -> None:
        self._play_timer.stop()
        self._frame_timer.stop()
        self.play_button.setText("Play")
        if self.player is not None:
            self.player.close()
        self.player, self.replay = None, None

    # -- replay -----------------------------------------------------------------------------------
    def show_frame(self, index: int) -> None:
        """Show frame `index` now if it is decoded, else as soon as it is."""
        if self.player is None:
            return
        self._wanted = index
        self.player.seek(index)
        self.cursor.setPos(index)
        if not self._show_wanted():
            self._frame_timer.start()

    def _show_wanted(self) -> bool:
        player = self.player
        frames = player.frames_at(self._wanted) if player is not None else None
        if frames is None:
            if player is not None and player.error:
                self._frame_timer.stop()
                self._error(f"episode {player.episode_index} cannot be replayed: {player.error}")
            return False
        self._frame_timer.stop()
        for cam, frame in frames.items():
            self.views[cam].set_frame(frame)
        if "first_frame_s" not in self.replay:
            self.replay["first_frame_s"] = time.monotonic() - self.replay["clicked_at"]
            self.status_label.setText(
                f"episode {self.replay['episode_index']}: {self.replay['length']} frames"
            )
        return True

    def toggle_play(self) -> None:
        if self._play_timer.isActive():
            self._play_timer.stop()
            self.play_button.setText("Play")
        elif self.player is not None:
            if self.slider.value() >= self.slider.maximum():
                self.slider.setValue(0)
            self._play_origin = (time.monotonic(), self.slider.value())
            self._play_timer.start()
            self.play_button.setText("Pause")

    def _advance(self) -> None:
        """Playback by the wall clock at the recorded fps; it waits while frames are decoded."""
        started, first = self._play_origin
        target = min(self.slider.maximum(), first + int((time.monotonic() - started) * self.replay["fps"]))
        if target == self.slider.value():
            return
        if self.player.frames_at(target) is None:
            self.player.seek(target)
            self._play_origin = (time.monotonic(), self.slider.value())  # go on from here once decoded
            self.status_label.setText(f"episode {self.replay['episode_index']}: buffering...")
            return
        self.slider.setValue(target)
        if self.status_label.text().endswith("buffering..."):
            self.status_label.setText(
                f"episode {self.replay['episode_index']}: {self.replay['length']} frames"
            )
        if target >= self.slider.maximum():
            self.toggle_play()

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
        self._stop_replay()  # its files are about to be rewritten
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
        self.play_button.setEnabled(self.player is not None)

    def shutdown(self) -> None:
        self._stop_replay()
