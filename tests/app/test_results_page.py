import csv
import io

import pyqtgraph as pg
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QColor

from app.gui.pages.results import ResultsPage
from evaluate.store import ResultsStore, RunInfo, TrialRecord


def _add(store, run, task, outcomes, campaign="c"):
    start = len([t for t in store.trials(campaign) if t.run == run and t.task == task])
    for i, ok in enumerate(outcomes, start):
        store.add_trial(TrialRecord(campaign, run, task, i, "success" if ok else "failure", "predicate"))


def _page(qtbot, app_context):
    page = ResultsPage(app_context)
    qtbot.addWidget(page)
    return page


def test_table_fills_from_the_database_and_updates(qtbot, app_context, workspace, tmp_path):
    store = ResultsStore(workspace.results_db)
    store.create_campaign("c", "sim", {})
    store.register_run(RunInfo("c", "sp", strategy="lora_sp", trainable_pct=17.1, active_rank=60))
    store.register_run(RunInfo("c", "lora", strategy="lora", trainable_pct=20.0, active_rank=128))
    _add(store, "sp", "open_pot", [1, 1, 1, 0])
    _add(store, "lora", "open_pot", [1, 0, 0, 0])
    page = _page(qtbot, app_context)
    qtbot.waitUntil(lambda: page.table.rowCount() == 2, timeout=5000)
    headers = [page.table.horizontalHeaderItem(c).text() for c in range(page.table.columnCount())]
    assert headers[:6] == ["Campaign", "Run", "Strategy", "Trainable %", "Active rank", "Open"]
    open_col = headers.index("Open")

    # sort by Open ascending: lora (25%) first
    page.table.sortItems(open_col)
    assert page.table.item(0, 1).text() == "lora"
    assert page.table.item(0, open_col).text().startswith("25.0 [")
    # export follows the view order
    target = page.export_to(tmp_path / "out.csv", "csv")
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["run"] for r in rows] == ["lora", "sp"] and rows[1]["open_pot_successes"] == "3"
    assert "| lora (c) | lora |" in page.export_to(tmp_path / "out.md", "md").read_text()

    # a new trial scored elsewhere shows up on the next refresh
    _add(store, "lora", "press_button", [1])
    page.refresh()
    qtbot.waitUntil(
        lambda: (
            "Press" in [page.table.horizontalHeaderItem(c).text() for c in range(page.table.columnCount())]
        ),
        timeout=5000,
    )
    assert page.table_data.rows[1].per_task["press_button"].successes == 1
    # the campaign filter lists the campaign
    assert page.source_combo.findText("c") >= 0
    page.shutdown()


def test_empty_workspace_shows_empty_table(qtbot, app_context):
    page = _page(qtbot, app_context)
    qtbot.waitUntil(lambda: page.table_data is not None, timeout=5000)
    assert page.table.rowCount() == 0
    page.shutdown()


def _open_fds(path) -> int:
    import os

    fds = os.listdir("/proc/self/fd")
    return sum(1 for fd in fds if os.path.realpath(f"/proc/self/fd/{fd}") == str(path.resolve()))


def test_the_window_reads_results_on_its_one_connection_and_exports_away_from_them(
    qtbot, app_context, workspace
):
    """A second handle on results.sqlite in the GUI process drops its POSIX locks, and the
    next `eval` process closing its connection then deletes -wal/-shm (see AppContext)."""
    from app.gui.pages.results import export_dir

    writer = ResultsStore(workspace.results_db)  # another process's work, as far as the page knows
    writer.create_campaign("c", "sim", {})
    writer.register_run(RunInfo("c", "sp", strategy="lora_sp"))
    _add(writer, "sp", "open_pot", [1])
    writer.close()
    page = _page(qtbot, app_context)
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=5000)
    page.refresh(force=True)
    qtbot.waitUntil(lambda: not page._loading, timeout=5000)
    shared = app_context.results_store()
    assert shared is app_context.results_store()  # every page and worker gets the same one
    assert _open_fds(workspace.results_db) == 1  # held open for the window's life, not reopened per refresh
    folder = export_dir(workspace)
    assert folder != workspace.root and not list(folder.glob("results.sqlite*"))


def test_a_study_on_the_workspace_shows_every_row_of_its_ledger(qtbot, app_context, workspace, tmp_path):
    """Rows adopted from another machine have no trials in results.sqlite; the study's source
    reads them from its ledger, with the campaigns' rows still one selection away."""
    from app.gui.pages.results import ALL_CAMPAIGNS, STUDY_PREFIX
    from tests.evaluate._ledger import write_row

    store = ResultsStore(workspace.results_db)
    store.create_campaign("big-lora128", "sim", {})
    _add(store, "big-lora128", "open_pot", [1, 0], campaign="big-lora128")
    out = tmp_path / "docs" / "big"
    write_row(out, "full", (7, 1, 11, 1), 100.0)  # adopted: scored on another machine
    write_row(out, "lora128", (7, 0, 9, 0), 17.3, 32.0)
    workspace.record_study("big", out)
    page = _page(qtbot, app_context)
    qtbot.waitUntil(lambda: page.source_combo.findText(STUDY_PREFIX + "big") >= 0, timeout=5000)
    assert page.source_combo.findText("big-lora128") >= 0 and page.table.rowCount() == 1

    page.source_combo.setCurrentText(STUDY_PREFIX + "big")
    qtbot.waitUntil(lambda: page.table.rowCount() == 2, timeout=5000)
    assert [page.table.item(r, 2).text() for r in range(2)] == ["full", "lora128"]
    headers = [page.table.horizontalHeaderItem(c).text() for c in range(page.table.columnCount())]
    assert page.table.item(0, headers.index("Press")).text() == "73.3 [48.0, 89.1]"
    assert page.table.item(1, headers.index("Trials")).text() == "60"
    assert str(out) in page.status.text()

    write_row(out, "lora32", (5, 0, 9, 0), 5.2, 8.0)  # the study scores a row: it appears
    page.refresh()
    qtbot.waitUntil(lambda: page.table.rowCount() == 3, timeout=5000)
    assert "| big-lora32 (study big) | lora32 |" in page.export_to(tmp_path / "t.md", "md").read_text()

    page.source_combo.setCurrentText(ALL_CAMPAIGNS)
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=5000)
    page.shutdown()


def _swatch_color(item) -> str:
    from PySide6.QtGui import QIcon

    icon = item.icon()
    assert isinstance(icon, QIcon) and not icon.isNull()
    return icon.pixmap(8, 8).toImage().pixelColor(4, 4).name()


def test_the_table_is_the_charts_legend_and_the_chart_shows_the_selected_rows(qtbot, app_context, workspace):
    """A study has a dozen rows or more: every run keeps a colour of its own, shown beside its
    name and on its bars, and selecting rows charts just those, across a refresh."""
    store = ResultsStore(workspace.results_db)
    store.create_campaign("c", "sim", {})
    runs = [f"run{i:02d}" for i in range(12)]
    for i, run in enumerate(runs):
        store.register_run(RunInfo("c", run, strategy="lora"))
        _add(store, run, "open_pot", [1] * i + [0] * (12 - i))
    page = _page(qtbot, app_context)
    qtbot.waitUntil(lambda: page.table.rowCount() == 12, timeout=5000)
    assert page.chart.plotItem.legend is None  # no legend drawn over the bars
    assert len(page.charted) == 12  # nothing selected: every row
    colors = {page.table.item(r, 1).text(): _swatch_color(page.table.item(r, 1)) for r in range(12)}
    assert len(set(colors.values())) == 12

    headers = [page.table.horizontalHeaderItem(c).text() for c in range(page.table.columnCount())]
    page.table.sortItems(headers.index("Open"), Qt.SortOrder.DescendingOrder)  # the swatch moves with its row
    assert page.table.item(0, 1).text() == "run11"
    assert {page.table.item(r, 1).text(): _swatch_color(page.table.item(r, 1)) for r in range(12)} == colors

    page.table.selectRow(0)
    page.table.selectionModel().select(
        page.table.model().index(3, 0),
        QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
    )
    assert page.charted == [("c", "run08"), ("c", "run11")]  # in loaded order, each in its colour
    bars = [item for item in page.chart.plotItem.items if isinstance(item, pg.BarGraphItem)]
    assert [QColor(bar.opts["brush"]).name() for bar in bars] == [colors["run08"], colors["run11"]]

    _add(store, "run03", "press_button", [1])  # scored elsewhere: the table is rebuilt
    page.refresh()
    qtbot.waitUntil(
        lambda: (
            "Press" in [page.table.horizontalHeaderItem(c).text() for c in range(page.table.columnCount())]
        ),
        timeout=5000,
    )
    assert page.charted == [("c", "run08"), ("c", "run11")]
    page.table.clearSelection()
    assert len(page.charted) == 12
    page.shutdown()
