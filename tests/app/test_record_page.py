"""Record page, offscreen: record one sim episode with the keyboard and the Keep button."""

import pytest
from PySide6.QtCore import Qt

pytestmark = pytest.mark.gui


@pytest.fixture
def record_page(qtbot, app_context):
    from app.gui.pages.record import RecordPage

    page = RecordPage(app_context)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitExposed(page)
    yield page
    page.shutdown()


def test_plan_form_builds_the_plan_and_refuses_bad_names(record_page):
    page = record_page
    page.dataset_edit.setText("bad/name")
    page.open_session()
    assert page.session is None and "folder name" in page.state_label.text()
    page.dataset_edit.setText("day1")
    page.task_checks["pour_block"].setChecked(False)
    page.size_combo.setCurrentText("240x320")
    plan = page.build_plan()
    assert plan.tasks == ["open_pot", "press_button", "pick_grape"] and plan.image_size == (240, 320)
    assert plan.episodes_per_task == 120 and plan.backend == "sim"


@pytest.mark.slow
def test_record_one_sim_episode_by_keys_and_clicks_and_the_counter_moves(qtbot, record_page, app_context):
    from collect.recording.session import SessionState

    page = record_page
    page.dataset_edit.setText("clicked")
    for task, box in page.task_checks.items():
        box.setChecked(task == "press_button")
    page.episodes_spin.setValue(2)
    page.max_len_spin.setValue(1.0)
    page.reset_spin.setValue(0.0)
    page.size_combo.setCurrentText("96x128")
    qtbot.mouseClick(page.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: page.session is not None and page.session.state == SessionState.READY, timeout=180_000
    )
    assert page.counter_texts() == ["Press the Button 0/2"]
    assert page.encoder_label.text().startswith("video encoder: ")  # the GPU's, or libx264
    assert page.encoder_label.toolTip().startswith("video encoder ")  # and why

    qtbot.keyClick(page, Qt.Key.Key_Space)  # Space: start
    qtbot.waitUntil(lambda: page.session.state == SessionState.REVIEW, timeout=120_000)  # stops at 1 s
    qtbot.waitUntil(lambda: page.views["side"].last_frame is not None, timeout=5_000)
    qtbot.waitUntil(lambda: "REVIEW: 30 frames" in page.state_label.text(), timeout=2_000)  # next poll
    assert page.keep_button.isEnabled()
    qtbot.mouseClick(page.keep_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.counter_texts() == ["Press the Button 1/2"], timeout=60_000)
    # Keep hands the episode over at once; the page says so until it is on disk.
    qtbot.waitUntil(lambda: page.session.writer.total_episodes == 1, timeout=60_000)
    qtbot.waitUntil(lambda: page.save_label.text() == "", timeout=5_000)
    assert "fps" in page.timing_label.text() and "ETA" in page.eta_label.text()

    qtbot.waitUntil(lambda: page.session.state == SessionState.READY, timeout=10_000)
    qtbot.keyClick(page, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: page.session.state == SessionState.REVIEW, timeout=120_000)
    qtbot.keyClick(page, Qt.Key.Key_Backspace)  # Backspace: discard
    qtbot.waitUntil(
        lambda: page.session.state in (SessionState.READY, SessionState.RESETTING), timeout=30_000
    )
    assert page.counter_texts() == ["Press the Button 1/2"] and page.session.writer.total_episodes == 1
