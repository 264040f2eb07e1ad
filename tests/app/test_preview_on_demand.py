"""An open window on another page than the Station page costs next to nothing.

On the simulated station every preview tick renders both cameras (most of a core), and the
simulated arm's emulators fill the bus for the SDK's readers; an idle window on another
page must render nothing and let the arm idle, so that training beside it keeps its CPU.
"""

import pytest

from app.gui.pages import PAGES
from app.gui.workers import station_worker as sw


def _index(title: str) -> int:
    return [t for t, _m, _c in PAGES].index(title)


@pytest.fixture
def window_on_the_sim(qtbot, workspace):
    """The window, its simulated station open and ready, the Station page on screen."""
    from app.gui.context import AppContext
    from app.gui.main_window import MainWindow

    context = AppContext(workspace)
    window = MainWindow(context)
    qtbot.addWidget(window)
    window.show()
    try:
        context.open_station(image_size=(96, 128))
        qtbot.waitUntil(lambda: context.station.state == sw.READY, timeout=60_000)
        yield window, context.station
    finally:
        window.close()


def test_previews_render_only_while_the_station_page_is_shown(qtbot, window_on_the_sim):
    window, worker = window_on_the_sim
    cameras = worker.station.cameras
    station_page = window.page(_index("Station"))
    qtbot.waitUntil(lambda: worker.frames_read >= 3, timeout=10_000)  # the Station page shows them
    assert all(view.frames_shown > 0 for view in station_page.cameras.values())

    window.show_page(_index("Results"))
    qtbot.wait(300)  # a read already under way may finish
    frames, shown = worker.frames_read, station_page.cameras["side"].frames_shown
    with qtbot.waitSignal(worker.health, timeout=3000):  # health still comes, once a second
        qtbot.wait(1200)
    assert worker.frames_read == frames, "the worker read the station with no preview on screen"
    assert station_page.cameras["side"].frames_shown == shown
    for camera in cameras.values():  # nothing rendered in the last second, by anyone
        with pytest.raises(TimeoutError):
            camera.read_latest(max_age_ms=1000)

    window.show_page(_index("Station"))
    qtbot.waitUntil(lambda: worker.frames_read >= frames + 3, timeout=5000)


def test_the_simulated_arm_idles_while_nobody_watches_or_drives_it(qtbot, window_on_the_sim):
    """An open window on another page, with the arm off, costs most of a core in frames
    nobody reads unless the simulated arm slows to a heartbeat; it is at full rate again the
    moment a page shows it, a loop borrows it, or the arm is enabled or stopped."""
    import time

    from collect.emulator import KICK_POLL_S
    from collect.sim.runtime import EMULATOR_HZ, IDLE_EMULATOR_HZ, IDLE_WAKE_S

    def ticks_per_s(emulator, seconds=0.6):
        start = emulator.ticks
        time.sleep(seconds)
        return (emulator.ticks - start) / seconds

    window, worker = window_on_the_sim
    follower = worker.station.sim.emulators["follower"]
    assert follower.rate_hz == EMULATOR_HZ  # the Station page is on screen

    window.show_page(_index("Results"))
    assert worker.station.sim.idle and follower.rate_hz == IDLE_EMULATOR_HZ
    assert ticks_per_s(follower) <= 2 * IDLE_EMULATOR_HZ
    assert follower.kick_poll_s == IDLE_WAKE_S  # and wakes less often between its ticks
    worker.set_preview_enabled(False)  # a loop borrows the arm: full rate before it reads
    assert follower.rate_hz == EMULATOR_HZ and ticks_per_s(follower) > 4 * IDLE_EMULATOR_HZ
    assert follower.kick_poll_s == KICK_POLL_S
    worker.set_preview_enabled(True)
    assert follower.rate_hz == IDLE_EMULATOR_HZ

    worker.enable()  # from the status bar, say: the arm is driven
    qtbot.waitUntil(lambda: worker.state == sw.ENABLED, timeout=10_000)
    assert follower.rate_hz == EMULATOR_HZ
    worker.disable()
    qtbot.waitUntil(lambda: worker.state == sw.READY, timeout=10_000)
    assert follower.rate_hz == IDLE_EMULATOR_HZ
    worker.estop()
    qtbot.waitUntil(lambda: worker.state == sw.ESTOP, timeout=10_000)
    assert follower.rate_hz == EMULATOR_HZ and worker.station.follower.estopped
