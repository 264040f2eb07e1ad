"""Fixtures for the GUI and CLI tests: an AppContext on a throwaway workspace, shut down after."""

import pytest


@pytest.fixture
def app_context(qapp, workspace):
    from app.gui.context import AppContext

    context = AppContext(workspace)
    yield context
    context.shutdown()


@pytest.fixture
def main_window(qtbot, app_context):
    from app.gui.main_window import MainWindow

    window = MainWindow(app_context)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.close()
