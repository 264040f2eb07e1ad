import subprocess
import sys
import threading
import time

import pytest
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


@pytest.mark.slow
def test_window_runs_the_sim_station_previews_and_estop_reaches_the_emulator(qtbot, workspace):
    """The whole path on the real stack: piper_sdk on a virtual bus, emulators, MuJoCo cameras.

    The saved set-up asks for the real arm on can0, which this machine does not have: the
    window must fall back to the simulated PiPER and say why.
    """
    import numpy as np

    from app.gui.context import AppContext
    from app.gui.main_window import MainWindow
    from app.gui.workers import station_worker as sw
    from collect.workspace import HardwareConfig

    workspace.save_hardware(HardwareConfig(backend="piper", follower_port="can0"))
    context = AppContext(workspace)
    window = MainWindow(context)
    qtbot.addWidget(window)
    window.show()
    try:
        context.open_station(image_size=(96, 128))
        qtbot.waitUntil(lambda: context.station.state == sw.READY, timeout=60_000)
        page = window.page(0)
        assert "Simulated PiPER" in page.banner.text() and "can0" in page.banner.text()
        assert "sim" in window.backend_label.text()

        qtbot.waitUntil(lambda: all(v.frames_shown >= 3 for v in page.cameras.values()), timeout=20_000)
        side, wrist = (page.cameras[r].last_frame for r in ("side", "wrist"))
        assert side.shape == (96, 128, 3) and side.std() > 1 and wrist.std() > 1  # rendered, not blank
        assert np.abs(side.astype(int) - wrist.astype(int)).mean() > 1  # two different viewpoints
        assert page.joints.values_text("follower")[1] == "+1.570"  # home pose, joint_2
        assert page.joints.values_text("leader")[1] != "-"
        qtbot.waitUntil(lambda: "CAN frames/s" in page.health_label.text(), timeout=5000)

        emulator = context.station.station.sim.emulators["follower"]
        qtbot.mouseClick(page.enable_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: context.station.state == sw.ENABLED, timeout=10_000)
        assert emulator.motion_allowed and not emulator.estop

        window.estop_button.pressed.emit()  # the status-bar button, as a press
        qtbot.waitUntil(lambda: emulator.estop, timeout=5000)
        qtbot.waitUntil(lambda: context.station.state == sw.ESTOP, timeout=5000)
        assert not emulator.motion_allowed
        qtbot.waitUntil(page.resume_button.isEnabled, timeout=5000)
        assert not page.enable_button.isEnabled()

        qtbot.mouseClick(page.resume_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not emulator.estop, timeout=10_000)
        qtbot.keyClick(page.joints, Qt.Key.Key_Escape)  # Esc from inside a page
        qtbot.waitUntil(lambda: emulator.estop, timeout=5000)

        # A worker stuck in a slow read (a camera hanging) must not delay the stop.
        qtbot.waitUntil(page.resume_button.isEnabled, timeout=5000)
        qtbot.mouseClick(page.resume_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not emulator.estop, timeout=10_000)
        follower = context.station.station.follower
        real_read, stuck = follower.get_observation, threading.Event()

        def hanging_read():
            stuck.set()
            time.sleep(4.0)
            return real_read()

        follower.get_observation = hanging_read
        assert stuck.wait(5.0)  # the worker thread is now inside the 4 s read
        window.estop_button.pressed.emit()
        qtbot.waitUntil(lambda: emulator.estop, timeout=2000)
    finally:
        window.close()
    assert context.station.station is None  # closing the window closed the station


def test_run_in_background_delivers_results_and_errors_on_the_gui_thread(qtbot, app_context):
    from PySide6.QtCore import QThread

    gui_thread = QThread.currentThread()
    seen = {}

    def work(x):
        seen["worker_thread"] = QThread.currentThread()
        return x * 2

    def fail():
        raise FileNotFoundError("datasets/demo is missing: record one first")

    app_context.run_in_background(
        work, 21, on_result=lambda v: seen.update(result=v, on=QThread.currentThread())
    )
    app_context.run_in_background(fail, on_error=lambda m: seen.update(error=m))
    qtbot.waitUntil(lambda: "result" in seen and "error" in seen, timeout=5000)
    assert seen["result"] == 42 and seen["on"] is gui_thread and seen["worker_thread"] is not gui_thread
    assert seen["error"] == "FileNotFoundError: datasets/demo is missing: record one first"
