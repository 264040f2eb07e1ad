"""The station worker renders camera previews only while the Station page is on screen.

On the simulated station every preview tick renders both cameras (most of a core); an idle
window on another page must render nothing, so that training beside it keeps its CPU.
"""

import pytest

from app.gui.pages import PAGES


def _index(title: str) -> int:
    return [t for t, _m, _c in PAGES].index(title)


def test_previews_render_only_while_the_station_page_is_shown(qtbot, workspace):
    from app.gui.context import AppContext
    from app.gui.main_window import MainWindow
    from app.gui.workers import station_worker as sw

    context = AppContext(workspace)
    window = MainWindow(context)
    qtbot.addWidget(window)
    window.show()
    worker = context.station
    try:
        context.open_station(image_size=(96, 128))
        qtbot.waitUntil(lambda: worker.state == sw.READY, timeout=60_000)
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
    finally:
        window.close()
