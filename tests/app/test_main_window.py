import subprocess
import sys

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPlainTextEdit

from app.gui.pages import PAGES


def test_importing_the_gui_loads_neither_torch_nor_lerobot():
    code = (
        "import sys, app, collect, app.cli, app.gui.launch, app.gui.main_window, app.gui.pages.station\n"
        "heavy = [m for m in ('torch', 'lerobot', 'mujoco', 'piper_sdk') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported at start-up: {proc.stdout.strip()}"


def test_window_lists_every_registered_page_and_opens_on_the_station(main_window):
    titles = [main_window.nav.item(i).text() for i in range(main_window.nav.count())]
    assert titles == [title for title, _m, _c in PAGES]
    assert type(main_window.stack.currentWidget()).__name__ == "StationPage"
    assert main_window.estop_button.isVisible()
    assert "backend" in main_window.backend_label.text()


def test_a_page_that_fails_to_load_shows_its_error_in_place(qtbot, app_context):
    from app.gui.main_window import MainWindow

    window = MainWindow(app_context, pages=[*PAGES, ("Broken", "app.gui.pages.no_such_page", "Nope")])
    qtbot.addWidget(window)
    window.show_page(len(PAGES))
    shown = window.stack.currentWidget()
    assert isinstance(shown, QPlainTextEdit)
    assert "Broken page failed to load" in shown.toPlainText()
    assert "no_such_page" in shown.toPlainText()
    window.show_page(0)  # the other pages still work
    assert type(window.stack.currentWidget()).__name__ == "StationPage"


def test_estop_without_a_station_says_so_and_does_not_block(qtbot, main_window):
    with qtbot.waitSignal(main_window.context.station.state_changed, timeout=2000) as blocker:
        qtbot.mouseClick(main_window.estop_button, Qt.MouseButton.LeftButton)
    assert "no station is open" in blocker.args[1]


def test_escape_is_an_estop_from_any_page(qtbot, main_window):
    with qtbot.waitSignal(main_window.context.estop_triggered, timeout=2000):
        qtbot.keyClick(main_window.nav, Qt.Key.Key_Escape)
