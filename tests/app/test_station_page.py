import json

import numpy as np
from PySide6.QtCore import Qt

from app.gui.pages.station import SINGLE_BUS, StationPage, format_health
from app.gui.widgets.camera_view import CameraView
from app.gui.widgets.joint_table import JointTable, near_limit
from app.gui.workers.station_worker import StationSnapshot
from collect.limits import HOME_JOINTS_RAD, MOTOR_LIMITS


def _page(qtbot, app_context) -> StationPage:
    page = StationPage(app_context)
    qtbot.addWidget(page)
    qtbot.waitUntil(lambda: page.refresh_button.isEnabled(), timeout=10_000)  # discovery finished
    return page


def test_hardware_setup_is_saved_to_the_workspace(qtbot, app_context, workspace):
    page = _page(qtbot, app_context)
    page.backend_combo.setCurrentText("piper")
    page.follower_combo.setCurrentText("can1")
    page.leader_combo.setCurrentText("can2")
    page.camera_combos["side"].setCurrentText("/dev/v4l/by-id/usb-side-video-index0")
    page.camera_combos["wrist"].setCurrentText("2")
    with qtbot.waitSignal(app_context.hardware_changed, timeout=2000):
        page.save_button.click()
    saved = json.loads(workspace.config_path.read_text())["hardware"]
    assert saved["backend"] == "piper" and saved["follower_port"] == "can1" and saved["leader_port"] == "can2"
    assert saved["cameras"] == {"side": "/dev/v4l/by-id/usb-side-video-index0", "wrist": "2"}
    assert workspace.load_hardware().follower_port == "can1"  # what every CLI command reads
    # The station reopens on the saved set-up: no can1 here, so the sim, and the banner says why.
    qtbot.waitUntil(lambda: "can1" in page.banner.text(), timeout=10_000)
    assert "Simulated PiPER" in page.banner.text()
    # A new page (e.g. after a restart) shows the saved set-up.
    again = _page(qtbot, app_context)
    assert again.follower_combo.currentText() == "can1" and again.camera_combos["wrist"].currentText() == "2"


def test_sim_scenes_are_offered_after_discovery(qtbot, app_context):
    page = _page(qtbot, app_context)
    scenes = [page.scene_combo.itemText(i) for i in range(page.scene_combo.count())]
    assert scenes == ["(bare table)", "open_pot", "pour_block", "press_button", "pick_grape"]
    assert page.sim_task() is None
    page.scene_combo.setCurrentText("pick_grape")
    assert page.sim_task() == "pick_grape"


def test_single_bus_is_saved_as_no_leader_port(qtbot, app_context, workspace):
    page = _page(qtbot, app_context)
    page.leader_combo.setCurrentText(SINGLE_BUS)
    page.camera_combos["side"].setCurrentText("")
    assert page.hardware_from_form().leader_port is None
    assert page.hardware_from_form().cameras.get("side") is None


def test_previewing_a_missing_camera_says_what_to_check(qtbot, app_context):
    page = _page(qtbot, app_context)
    page.camera_combos["side"].setCurrentText("/dev/v4l/by-id/no-such-camera")
    page.preview_camera("side")
    qtbot.waitUntil(lambda: "does not exist" in page.discovery_label.text(), timeout=10_000)
    assert (
        "no-such-camera" in page.discovery_label.text()
        and "plug the camera in" in page.discovery_label.text()
    )
    assert page.camera_thumbs["side"].last_frame is None


def test_snapshots_reach_previews_and_joint_table(qtbot, app_context):
    page = _page(qtbot, app_context)
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :32] = (255, 0, 0)
    follower = (*HOME_JOINTS_RAD, 0.035)
    leader = (MOTOR_LIMITS[0][1], *HOME_JOINTS_RAD[1:], 0.0)  # joint_1 at its limit
    app_context.station.publish(
        {"side": frame, "wrist": frame[::-1], **dict(zip(_keys(), follower, strict=True))},
        dict(zip(_keys(), leader, strict=True)),
    )
    qtbot.waitUntil(lambda: page.cameras["wrist"].frames_shown == 1, timeout=2000)
    assert page.cameras["side"].last_frame[0, 0, 0] == 255
    assert page.joints.values_text("follower")[1] == f"{HOME_JOINTS_RAD[1]:+.3f}"
    assert page.joints.values_text("follower")[6] == "35.0 mm"
    assert page.joints.item(0, 1).background().color().name() == "#ffb74d"  # leader joint_1 near limit
    grabbed = page.cameras["side"].grab().toImage()
    assert len({grabbed.pixel(x, grabbed.height() // 2) for x in range(0, grabbed.width(), 8)}) > 1


def _keys():
    from collect.limits import MOTOR_KEYS

    return MOTOR_KEYS


def test_joint_table_limits_and_empty_values(qtbot):
    table = JointTable()
    qtbot.addWidget(table)
    assert table.values_text("min")[0] == f"{MOTOR_LIMITS[0][0]:+.3f}"
    assert table.values_text("max")[6] == "70.0 mm"
    table.set_values("leader", None)
    assert table.values_text("leader") == ["-"] * 7
    assert near_limit(0.0, (0.0, 3.14)) and not near_limit(1.5, (0.0, 3.14))
    table.set_values("follower", (0.0, 1.5, -1.5, 0.0, 0.0, 0.0, 0.0))  # gripper closed: normal
    assert table.item(6, 0).background().style() == Qt.BrushStyle.NoBrush


def test_camera_view_without_signal_and_fps(qtbot):
    view = CameraView("side")
    qtbot.addWidget(view)
    assert view.fps() == 0.0 and view.last_frame is None
    view.set_frame(np.full((10, 10, 3), 7, np.uint8))
    view.set_frame(None)
    assert view.last_frame is None and view.frames_shown == 1


def test_health_reads_in_the_operators_words():
    lines = format_health(
        {
            "backend": "sim",
            "preview_hz": 29.96,
            "can_fps": {"follower (can0)": 1203.44, "leader (piper-sim-1-0-l)": 900.0},
            "camera_fps": {"side": 30.04},
            "arm": {
                "ctrl_mode": 1,
                "arm_status": 1,
                "enabled": False,
                "estop": True,
                "motors_enabled": [True] * 6,
            },
            "sim": {"physics_steps": 3},
            "new_figure": 2.25,
        }
    )
    assert lines == [
        "Preview: 30.0 Hz",
        "CAN frames/s: follower (can0) 1203 · leader (virtual) 900",
        "Cameras: side 30.0 fps",
        "Arm: mode CAN · status E-STOP · enabled no · e-stop yes",
        "new_figure: 2.2",
    ]


def test_snapshot_is_plain_data():
    snap = StationSnapshot(None, None)
    assert snap.frames == {} and snap.follower is None


def test_a_slow_gui_gets_only_the_newest_snapshot(qtbot, app_context):
    import threading

    received = []
    app_context.station.snapshot.connect(received.append)
    sender = threading.Thread(
        target=lambda: [
            app_context.station.publish({"side": np.full((4, 4, 3), i, np.uint8)}) for i in range(50)
        ]
    )
    sender.start()
    sender.join()  # the GUI thread did not run meanwhile: 50 ticks, one pending delivery
    qtbot.waitUntil(lambda: len(received) >= 1, timeout=2000)
    qtbot.wait(50)
    assert len(received) == 1 and received[0].frames["side"][0, 0, 0] == 49


def test_a_station_that_cannot_open_is_reported_on_the_page(qtbot, app_context):
    page = _page(qtbot, app_context)
    app_context.open_station(backend="bogus")
    qtbot.waitUntil(lambda: app_context.station.state == "error", timeout=5000)
    qtbot.waitUntil(lambda: "unknown backend 'bogus'" in page.banner.text(), timeout=2000)
    assert "use 'sim'" in page.banner.text()
    assert page.estop_button.isEnabled() and not page.enable_button.isEnabled()
