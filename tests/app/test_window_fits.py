"""Every page fits a 1280x800 screen, with its main buttons and the status-bar E-STOP on it."""

import pytest
from PySide6.QtCore import QRect, QSize

from app.gui.pages import PAGES

SCREEN = QSize(1280, 800)
LONG_WARNING = (
    "WARNING recording is behind: " + "the encoder backlog grows, lower the image size or fps; " * 20
)

# The buttons an operator must reach on each page (attribute names on the page).
MAIN_BUTTONS = {
    "Station": ("enable_button", "disable_button", "resume_button", "estop_button", "save_button"),
    "Record": (
        "open_button",
        "start_button",
        "keep_button",
        "discard_button",
        "estop_button",
        "resume_button",
        "home_button",
        "auto_check",
    ),
    "Datasets": ("refresh_button", "play_button", "delete_button"),
    "Train": ("finetune_button", "cancel_button", "resume_button"),
    "Evaluate": (
        "start_button",
        "success_button",
        "failure_button",
        "go_button",
        "abort_button",
        "pause_button",
    ),
    "Results": ("refresh_button", "export_csv_button", "export_md_button"),
}

# Plots and tables that must keep a readable height at 1280x800 (attribute: pixels).
READABLE_HEIGHTS = {
    "Datasets": {"plot": 140},  # the replayed episode's joint curves
    "Results": {"table": 250, "chart": 250},  # a study's dozen rows, and their bars
}


def assert_on_screen(window, widget, name):
    assert widget.isVisible(), f"{name} is hidden"
    rect = QRect(widget.mapTo(window, widget.rect().topLeft()), widget.size())
    assert window.rect().contains(rect), f"{name} at {rect} is outside the {window.size()} window"
    assert widget.visibleRegion().boundingRect() == widget.rect(), f"{name} is clipped by its parent"


def fits(size: QSize) -> bool:
    return size.width() <= SCREEN.width() and size.height() <= SCREEN.height()


def show_at_screen_size(qtbot, window, index):
    window.show_page(index)
    qtbot.wait(10)  # let the layouts settle
    assert fits(window.minimumSizeHint()), f"{PAGES[index][0]}: needs {window.minimumSizeHint()}"
    window.resize(SCREEN)
    qtbot.waitUntil(lambda: window.size() == SCREEN, timeout=2000)
    qtbot.wait(10)  # the layouts follow the new size


def test_every_page_fits_1280x800_with_the_estop_and_its_buttons_on_screen(qtbot, main_window):
    assert [title for title, _m, _c in PAGES] == list(MAIN_BUTTONS)  # a new page: list its buttons here
    for index, (title, _m, _c) in enumerate(PAGES):
        show_at_screen_size(qtbot, main_window, index)
        page = main_window.stack.currentWidget()
        assert_on_screen(main_window, main_window.estop_button, f"{title}: status-bar E-STOP")
        for name in MAIN_BUTTONS[title]:
            assert_on_screen(main_window, getattr(page, name), f"{title}.{name}")
        for name, pixels in READABLE_HEIGHTS.get(title, {}).items():
            height = getattr(page, name).height()
            assert height >= pixels, f"{title}.{name} is {height} px high at 1280x800"
    # Every page has been built: the stack asks for the largest of them all, which still fits.
    assert fits(main_window.minimumSizeHint())


@pytest.mark.parametrize("title", ["Record", "Station", "Train", "Datasets", "Results", "Evaluate"])
def test_long_messages_wrap_instead_of_widening_the_window(qtbot, main_window, title):
    index = [t for t, _m, _c in PAGES].index(title)
    page = main_window.page(index)
    labels = {
        "Record": ("timing_label", "state_label", "disk_label"),
        "Station": ("message_label", "health_label"),
        "Train": ("status_label",),
        "Datasets": ("status_label",),
        "Results": ("status",),
        "Evaluate": ("progress_label",),
    }[title]
    main_window.show_page(index)
    qtbot.wait(500)  # the page's first refresh (off the GUI thread) writes its own status first
    for name in labels:
        getattr(page, name).setText(LONG_WARNING)
    main_window.statusBar().showMessage(LONG_WARNING)
    show_at_screen_size(qtbot, main_window, index)
    assert_on_screen(main_window, main_window.estop_button, "status-bar E-STOP")
    for name in MAIN_BUTTONS[title]:
        assert_on_screen(main_window, getattr(page, name), f"{title}.{name}")
    for name in labels:
        assert getattr(page, name).text() == LONG_WARNING  # still shown while the layout was checked
        assert getattr(page, name).toolTip() == LONG_WARNING  # the whole text is one hover away
