"""The Results page: the comparison table across runs (paper layout, Wilson intervals),
sortable, a bar chart per task with the intervals as error bars, and CSV/Markdown export.
The table is the chart's legend: each run's colour is a swatch beside its name, and the
chart shows the selected rows (every row when none is selected), since a legend drawn
over the bars hides them once a study has a dozen rows.

The table is read from results.sqlite off the GUI thread and re-read every few seconds
when the database changed, so trials scored on the Evaluate page (or by `piper-ws eval`
in a terminal) appear by themselves. A study run on this workspace (`piper-ws study`) is
one more source: its rows are read from the ledger beside its tables, which also holds
the rows it adopted from another machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui.context import AppContext
from app.gui.widgets.wrap_label import WrapLabel
from evaluate.tables import TASK_HEADERS, ComparisonTable

ALL_CAMPAIGNS = "All campaigns"
STUDY_PREFIX = "Study: "  # a study's source in the selector, before its name
POLL_MS = 3000
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


# one colour per run, in loaded order: matplotlib's default cycle (the study's paper_table.png's),
# then its lighter pairs (tab20's), so that a study's twenty rows never share a colour
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
                 "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
                 "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5")  # fmt: skip
SWATCH_PX = 12


class _SortableItem(QTableWidgetItem):
    """Sorts by the number behind the text (missing values last)."""

    def __init__(self, text: str, value: float | str | None):
        super().__init__(text)
        self.setData(SORT_ROLE, value)
        self.setFlags(self.flags() & ~Qt.ItemFlag.ItemIsEditable)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if a is None or b is None:
            return b is None and a is not None  # values before blanks, ascending
        if isinstance(a, str) or isinstance(b, str):
            return str(a) < str(b)
        return a < b


@dataclass(frozen=True)
class LoadedResults:
    table: ComparisonTable
    sources: list[str]  # the selector's entries after ALL_CAMPAIGNS: campaigns, then studies
    stamp: object  # changes when the data shown changes
    where: Path  # the file or folder the table was read from


def load_results(context: AppContext, source: str | None) -> LoadedResults:
    """The table of `source` (a campaign, `Study: <name>`, or None for every campaign); runs on
    a worker thread, on the window's one connection."""
    from evaluate.study import ledger_stamp, study_comparison
    from evaluate.tables import comparison_from_store, comparison_table

    studies = context.workspace.studies()
    store = context.results_store() if context.has_results() else None  # looking must not create it
    campaigns = [c.name for c in store.campaigns()] if store else []
    sources = campaigns + [STUDY_PREFIX + name for name in studies]
    study = source[len(STUDY_PREFIX) :] if source and source.startswith(STUDY_PREFIX) else None
    if study in studies:
        out = studies[study]
        return LoadedResults(study_comparison(study, out), sources, ledger_stamp(out), out)
    db = context.workspace.results_db
    if store is None:
        return LoadedResults(comparison_table([]), sources, None, db)
    table = comparison_from_store(store, source if source in campaigns else None)
    return LoadedResults(table, sources, store.change_stamp(), db)


def export_dir(workspace) -> Path:
    """Where the Export dialog opens: not beside results.sqlite, whose -wal/-shm files the
    dialog would open and close to guess their type (which drops this process's SQLite locks)."""
    folder = workspace.root / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class ResultsPage(QWidget):
    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.table_data: ComparisonTable | None = None
        self._stamp: object = -1
        self._loading = False

        self.source_combo = QComboBox()
        self.source_combo.addItem(ALL_CAMPAIGNS)
        self.source_combo.currentTextChanged.connect(lambda _: self.refresh(force=True))
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(lambda: self.refresh(force=True))
        self.export_csv_button = QPushButton("Export CSV...")
        self.export_csv_button.clicked.connect(lambda: self._export_dialog("csv"))
        self.export_md_button = QPushButton("Export Markdown...")
        self.export_md_button.clicked.connect(lambda: self._export_dialog("md"))
        self.status = WrapLabel("", max_lines=2)

        self.table = QTableWidget(0, 0)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.itemSelectionChanged.connect(self._draw_chart)
        self.charted: list[tuple[str, str]] = []  # (campaign, run) of the rows the chart shows

        import pyqtgraph as pg

        self.chart = pg.PlotWidget(background="w")
        self.chart.setLabel("left", "success %")
        self.chart.setYRange(0, 100)

        bar = QHBoxLayout()
        for widget in (QLabel("Show:"), self.source_combo, self.refresh_button):
            bar.addWidget(widget)
        bar.addStretch(1)
        bar.addWidget(self.export_csv_button)
        bar.addWidget(self.export_md_button)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.chart)
        splitter.setSizes([1, 1])  # halves: a study's rows need the table's height as much as the chart
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.status)

        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(POLL_MS)
        self.refresh(force=True)

    # -- loading ---------------------------------------------------------------------

    @property
    def selected_source(self) -> str | None:
        text = self.source_combo.currentText()
        return None if text == ALL_CAMPAIGNS else text

    def refresh(self, force: bool = False) -> None:
        if self._loading:
            return
        self._loading = True
        if force:
            self._stamp = -1
        self.context.run_in_background(
            load_results,
            self.context,
            self.selected_source,
            on_result=self._loaded,
            on_error=self._failed,
        )

    def _failed(self, message: str) -> None:
        self._loading = False
        self.status.setText(f"cannot read results: {message}")

    def _loaded(self, result: LoadedResults) -> None:
        self._loading = False
        self._sync_sources(result.sources)
        if result.stamp == self._stamp and self.table_data is not None:
            return
        self._stamp = result.stamp
        self.show_table(result.table, result.where)

    def _sync_sources(self, names: list[str]) -> None:
        have = [self.source_combo.itemText(i) for i in range(1, self.source_combo.count())]
        if have != names:
            current = self.source_combo.currentText()
            self.source_combo.blockSignals(True)
            self.source_combo.clear()
            self.source_combo.addItems([ALL_CAMPAIGNS, *names])
            self.source_combo.setCurrentText(current if current in names else ALL_CAMPAIGNS)
            self.source_combo.blockSignals(False)

    # -- display ---------------------------------------------------------------------

    def show_table(self, data: ComparisonTable, where: Path) -> None:
        selected = self._selected_keys()  # kept across a refresh, which rebuilds the table
        self.table_data = data
        headers = ["Campaign", "Run", "Strategy", "Trainable %", "Active rank"]
        headers += [TASK_HEADERS.get(t, t) for t in data.tasks] + ["Avg.", "Overall", "Trials"]
        self.table.setSortingEnabled(False)
        self.table.blockSignals(True)  # one chart drawing at the end, not one per cleared cell
        self.table.clear()
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(data.rows))
        for r, row in enumerate(data.rows):
            overall = row.overall
            run_item = _SortableItem(row.run, row.run)
            run_item.setIcon(_swatch(self.color_of(r)))
            cells = [
                _SortableItem(row.campaign, row.campaign),
                run_item,
                _SortableItem(row.strategy or "-", row.strategy),
                _number_item(row.trainable_pct),
                _number_item(row.active_rank, 0),
            ]
            for task in data.tasks:
                rate = row.per_task.get(task)
                item = _SortableItem(
                    rate.percent() if rate else "-", rate.value if rate and rate.trials else None
                )
                if rate and rate.trials:
                    item.setToolTip(f"{rate.successes}/{rate.trials} successes")
                cells.append(item)
            cells.append(_number_item(None if row.average is None else 100 * row.average))
            cells.append(_SortableItem(overall.percent(), overall.value))
            cells.append(_SortableItem(str(overall.trials), overall.trials))
            for c, item in enumerate(cells):
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        keep = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for r in range(self.table.rowCount()):
            if self._row_key(r) in selected:
                self.table.selectionModel().select(self.table.model().index(r, 0), keep)
        self.table.blockSignals(False)
        self._draw_chart()
        trials = sum(row.overall.trials for row in data.rows)
        self.status.setText(
            f"{len(data.rows)} run(s), {trials} scored trial(s) - {where}. "
            "The chart shows the selected rows, or all when none is selected."
        )

    def color_of(self, index: int) -> str:
        """The colour of the run at `index` in the loaded table (not the sorted view)."""
        return SERIES_COLORS[index % len(SERIES_COLORS)]

    def _row_key(self, view_row: int) -> tuple[str, str]:
        return self.table.item(view_row, 0).text(), self.table.item(view_row, 1).text()

    def _selected_keys(self) -> set[tuple[str, str]]:
        return {self._row_key(index.row()) for index in self.table.selectionModel().selectedRows()}

    def _draw_chart(self) -> None:
        import pyqtgraph as pg

        self.chart.clear()
        data = self.table_data
        if data is None:
            return
        selected = self._selected_keys()
        shown = [
            (i, row) for i, row in enumerate(data.rows) if not selected or (row.campaign, row.run) in selected
        ]
        self.charted = [(row.campaign, row.run) for _, row in shown]
        if not shown or not data.tasks:
            return
        width = 0.8 / len(shown)
        for i, (index, row) in enumerate(shown):
            color = self.color_of(index)
            xs, heights, lows, highs = [], [], [], []
            for t, task in enumerate(data.tasks):
                rate = row.per_task.get(task)
                if rate is None or not rate.trials:
                    continue
                xs.append(t - 0.4 + width * (i + 0.5))
                heights.append(100 * rate.value)
                lows.append(100 * (rate.value - rate.low))
                highs.append(100 * (rate.high - rate.value))
            if not xs:
                continue
            self.chart.addItem(pg.BarGraphItem(x=xs, height=heights, width=width * 0.9, brush=color))
            self.chart.addItem(
                pg.ErrorBarItem(
                    x=_arr(xs), y=_arr(heights), top=_arr(highs), bottom=_arr(lows), beam=width * 0.3
                )
            )
        axis = self.chart.getAxis("bottom")
        axis.setTicks([[(t, TASK_HEADERS.get(task, task)) for t, task in enumerate(data.tasks)]])

    # -- export ----------------------------------------------------------------------

    def export_to(self, path: str | Path, fmt: str) -> Path:
        """Write the table shown (in its current sort order) as 'csv' or 'md'."""
        if self.table_data is None:
            raise RuntimeError("no results loaded yet")
        path = Path(path)
        data = self._data_in_view_order()
        path.write_text(data.to_csv() if fmt == "csv" else data.to_markdown())
        self.context.status_message.emit(f"results exported to {path}")
        return path

    def _data_in_view_order(self) -> ComparisonTable:
        by_key = {(row.campaign, row.run): row for row in self.table_data.rows}
        ordered = []
        for r in range(self.table.rowCount()):
            key = self._row_key(r)
            if key in by_key:
                ordered.append(by_key[key])
        return ComparisonTable(self.table_data.tasks, ordered)

    def _export_dialog(self, fmt: str) -> None:
        suffix = {"csv": "CSV (*.csv)", "md": "Markdown (*.md)"}[fmt]
        default = str(export_dir(self.context.workspace) / f"results.{fmt}")
        path, _ = QFileDialog.getSaveFileName(self, "Export results", default, suffix)
        if path:
            self.export_to(path, fmt)

    def shutdown(self) -> None:
        self._timer.stop()


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(SWATCH_PX, SWATCH_PX)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


def _number_item(value: float | None, digits: int = 1) -> _SortableItem:
    return _SortableItem("-" if value is None else f"{value:.{digits}f}", value)


def _arr(values: list[float]):
    import numpy as np

    return np.asarray(values, dtype=float)
