"""The Station page: live cameras and joints, arm controls, and the hardware set-up.

All arm and camera work goes through `context.station` (its own thread) and discovery
through `context.run_in_background`; this page only shows and forwards clicks.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.gui.context import AppContext
from app.gui.widgets.camera_view import CameraView
from app.gui.widgets.estop import EstopButton
from app.gui.widgets.joint_table import JointTable
from app.gui.widgets.wrap_label import WrapLabel
from app.gui.workers import station_worker as sw
from app.gui.workers.station_worker import StationSnapshot
from collect.cameras import grab_one_frame
from collect.discovery import discover_hardware
from collect.limits import CAMERA_NAMES
from collect.workspace import HardwareConfig

BARE_TABLE = "(bare table)"
SINGLE_BUS = "(single bus)"  # the leader is linked to the follower in firmware on its port


# PiPER status codes (0x2A1 frame) in the operator's words.
CTRL_MODES = {0: "standby", 1: "CAN", 2: "teach", 6: "leader", 7: "offline"}
ARM_STATUS = {
    0: "normal",
    1: "E-STOP",
    2: "no solution",
    3: "singularity",
    4: "joint limit",
    5: "joint comm error",
}
_SHOWN_ELSEWHERE = {"backend", "connected", "sim", "can_fps", "camera_fps", "arm", "preview_hz"}


def _bus_name(name: str) -> str:
    return name.split(" (piper-sim-")[0] + " (virtual)" if "(piper-sim-" in name else name


def format_health(report: dict[str, Any]) -> list[str]:
    """`Station.health()` plus the preview rate as a few lines for the operator."""
    lines = []
    if "preview_hz" in report:
        lines.append(f"Preview: {report['preview_hz']:.1f} Hz")
    if report.get("can_fps"):
        buses = " · ".join(f"{_bus_name(k)} {v:.0f}" for k, v in report["can_fps"].items())
        lines.append(f"CAN frames/s: {buses}")
    if report.get("camera_fps"):
        lines.append("Cameras: " + " · ".join(f"{k} {v:.1f} fps" for k, v in report["camera_fps"].items()))
    arm = report.get("arm") or {}
    if arm:
        words = []
        if "ctrl_mode" in arm:
            words.append(f"mode {CTRL_MODES.get(arm['ctrl_mode'], arm['ctrl_mode'])}")
        if "arm_status" in arm:
            words.append(f"status {ARM_STATUS.get(arm['arm_status'], arm['arm_status'])}")
        for key in ("enabled", "estop"):
            if key in arm:
                words.append(f"{key.replace('estop', 'e-stop')} {'yes' if arm[key] else 'no'}")
        if "error" in arm:
            words.append(f"error: {arm['error']}")
        lines.append("Arm: " + " · ".join(words))
    for key, value in report.items():  # anything new the station reports
        if key not in _SHOWN_ELSEWHERE and not isinstance(value, dict | list | tuple):
            lines.append(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")
    return lines


class StationPage(QWidget):
    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.banner = QLabel("The station is not open yet.")
        self.banner.setObjectName("backend_banner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel { background: #e3f2fd; padding: 6px; font-size: 14px; }")

        self.cameras = {role: CameraView(role) for role in CAMERA_NAMES}
        self.joints = JointTable()
        self.message_label = WrapLabel("", max_lines=2)  # the last answer of the arm (enable refused, ...)
        self.message_label.setObjectName("arm_message")
        self.health_label = WrapLabel("CAN and camera rates appear once the station is open.", max_lines=4)
        self.health_label.setObjectName("health")

        self.enable_button = QPushButton("Enable")
        self.disable_button = QPushButton("Disable")
        self.resume_button = QPushButton("Resume")
        self.estop_button = EstopButton(font_px=22)
        self._backend_reason = ""
        self.enable_button.clicked.connect(context.station.enable)
        self.disable_button.clicked.connect(context.station.disable)
        self.resume_button.clicked.connect(context.station.resume)
        self.estop_button.pressed.connect(context.estop)

        self.setup_box = self._build_setup()

        # Cameras stacked on the left (they keep their aspect ratio); everything else on the right.
        cameras = QVBoxLayout()
        for view in self.cameras.values():
            cameras.addWidget(view)
        cameras.addStretch(1)
        buttons = QHBoxLayout()
        for button in (self.enable_button, self.disable_button, self.resume_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.estop_button)
        right = QVBoxLayout()
        for widget in (self.joints, self.message_label, self.health_label):
            right.addWidget(widget)
        right.insertLayout(1, buttons)
        # The set-up scrolls on a short screen; the live view and the arm buttons never do.
        setup_scroll = QScrollArea()
        setup_scroll.setWidget(self.setup_box)
        setup_scroll.setWidgetResizable(True)
        setup_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        right.addWidget(setup_scroll, 1)
        grid = QGridLayout(self)
        grid.addWidget(self.banner, 0, 0, 1, 2)
        grid.addLayout(cameras, 1, 0)
        grid.addLayout(right, 1, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(1, 1)

        context.station.snapshot.connect(self._on_snapshot)
        context.station.health.connect(self._on_health)
        context.station.state_changed.connect(self._on_state)
        context.backend_chosen.connect(self._on_backend_chosen)
        self._on_state(context.station.state, "")
        self.refresh_hardware()

    # ---- live view -----------------------------------------------------------------

    # The worker renders previews only while this page is on screen (hidden behind another
    # page or minimised: nothing is rendered).
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.context.station.set_preview_wanted(True)

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 - Qt's name
        super().hideEvent(event)
        self.context.station.set_preview_wanted(False)

    def _on_snapshot(self, snap: StationSnapshot) -> None:
        for role, view in self.cameras.items():
            if role in snap.frames:
                view.set_frame(snap.frames[role])
        self.joints.set_values("follower", snap.follower)
        self.joints.set_values("leader", snap.leader)

    def _on_health(self, report: dict) -> None:
        self.health_label.setText("<br>".join(format_health(report)))

    def _on_state(self, state: str, message: str) -> None:
        is_open = state in (sw.READY, sw.ENABLED, sw.ESTOP)
        self.enable_button.setEnabled(state == sw.READY)
        self.disable_button.setEnabled(state == sw.ENABLED)
        self.resume_button.setEnabled(state == sw.ESTOP)
        self.estop_button.setEnabled(True)  # always: even when we think the arm is off
        if state == sw.READY and self.context.station.station is not None:
            task = self.context.station.station.config.task  # plain data: no hardware call
            self.scene_combo.setCurrentText(task or BARE_TABLE)
        if message:
            colour = "#c62828" if state in (sw.ERROR, sw.ESTOP) or "failed" in message else "#424242"
            self.message_label.setText(f"<span style='color:{colour}'>{message}</span>")
        if state == sw.ERROR and message:
            self.banner.setText(f"<b style='color:#c62828'>{message}</b>")
        elif state == sw.OPENING:
            self.banner.setText(f"{self._backend_reason}<br><i>opening the station ...</i>")
        elif is_open or state == sw.CLOSED:
            self.banner.setText(self._backend_reason or message)

    def _on_backend_chosen(self, backend: str, reason: str) -> None:
        prefix = "Simulated PiPER" if backend == "sim" else "Real PiPER"
        self._backend_reason = f"<b>{prefix}</b>: {reason}"
        self.banner.setText(self._backend_reason)

    # ---- hardware set-up -----------------------------------------------------------

    def _build_setup(self) -> QGroupBox:
        box = QGroupBox("Hardware set-up (saved in the workspace, used by every page and command)")
        self.backend_combo = QComboBox()
        self.backend_combo.addItems(["sim", "piper"])
        self.scene_combo = QComboBox()
        self.scene_combo.setEditable(True)  # sim only; task keys arrive with discovery (they import MuJoCo)
        self.scene_combo.addItem(BARE_TABLE)
        self.follower_combo = QComboBox()
        self.leader_combo = QComboBox()
        self.camera_combos = {role: QComboBox() for role in CAMERA_NAMES}
        for combo in (self.follower_combo, self.leader_combo, *self.camera_combos.values()):
            combo.setEditable(True)  # a port or device path not plugged in yet can still be typed
            combo.setMinimumContentsLength(18)
        self.refresh_button = QPushButton("Discover ports and cameras")
        self.refresh_button.clicked.connect(self.refresh_hardware)
        self.save_button = QPushButton("Save and reopen the station")
        self.save_button.clicked.connect(self.save_and_reopen)
        self.discovery_label = QLabel("")
        self.discovery_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Backend", self.backend_combo)
        form.addRow("Sim scene", self.scene_combo)
        form.addRow("Follower CAN port", self.follower_combo)
        form.addRow("Leader CAN port", self.leader_combo)
        self.camera_thumbs: dict[str, CameraView] = {}
        thumbs = QHBoxLayout()
        for role, combo in self.camera_combos.items():
            thumb = CameraView(f"{role} device")
            thumb.setFixedSize(160, 120)  # one still frame to check the device: small keeps Save on screen
            preview = QPushButton("Preview")
            preview.clicked.connect(lambda _checked=False, r=role: self.preview_camera(r))
            self.camera_thumbs[role] = thumb
            pick = QHBoxLayout()
            pick.addWidget(combo, 1)
            pick.addWidget(preview)
            form.addRow(f"{role.capitalize()} camera", pick)
            thumbs.addWidget(thumb)
        form.addRow("", thumbs)
        actions = QHBoxLayout()
        actions.addWidget(self.refresh_button)
        actions.addWidget(self.save_button)
        form.addRow(actions)
        form.addRow(self.discovery_label)
        box.setLayout(form)
        self._show_hardware(self.context.hardware, ports=[], cameras=[])
        return box

    def refresh_hardware(self) -> None:
        """Discover CAN ports and cameras off the GUI thread, then fill the combos."""
        self.refresh_button.setEnabled(False)
        self.discovery_label.setText("discovering ...")
        self.context.run_in_background(
            discover_hardware, on_result=self._on_discovered, on_error=self._on_discovery_error
        )

    def _on_discovery_error(self, message: str) -> None:
        self.refresh_button.setEnabled(True)
        self.discovery_label.setText(f"discovery failed: {message}")

    def _on_discovered(self, found: dict) -> None:
        self.refresh_button.setEnabled(True)
        self._show_hardware(self.context.hardware, found["ports"], found["cameras"])
        current = self.scene_combo.currentText()
        _fill(self.scene_combo, [BARE_TABLE, *found["tasks"]], current)
        notes = [
            f"{len(found['ports'])} CAN port(s), {len(found['cameras'])} camera(s) found",
            *found["notes"],
        ]
        self.discovery_label.setText("<br>".join(notes))

    def _show_hardware(self, hw: HardwareConfig, ports: list, cameras: list) -> None:
        self.backend_combo.setCurrentText(hw.backend)
        port_names = [p.name for p in ports]
        _fill(self.follower_combo, port_names, hw.follower_port)
        _fill(self.leader_combo, [SINGLE_BUS, *port_names], hw.leader_port or SINGLE_BUS)
        # Prefer the stable device path (survives re-plugging) over the index.
        camera_ids = [str(cam.get("stable_path") or cam.get("device") or cam.get("index")) for cam in cameras]
        for role, combo in self.camera_combos.items():
            _fill(combo, ["", *camera_ids], hw.cameras.get(role, ""))

    def preview_camera(self, role: str) -> None:
        """Grab one frame from the device chosen for `role` (off the GUI thread) into its thumbnail."""
        device = self.camera_combos[role].currentText().strip()
        if not device:
            self.discovery_label.setText(f"choose a device for the {role} camera first")
            return
        self.discovery_label.setText(f"opening {device} ...")
        self.context.run_in_background(
            grab_one_frame,
            device,
            on_result=lambda frame: (
                self.camera_thumbs[role].set_frame(frame),
                self.discovery_label.setText(""),
            ),
            on_error=lambda message: self.discovery_label.setText(f"{role} camera: {message}"),
        )

    def hardware_from_form(self) -> HardwareConfig:
        leader = self.leader_combo.currentText().strip()
        cameras = {role: combo.currentText().strip() for role, combo in self.camera_combos.items()}
        return HardwareConfig(
            backend=self.backend_combo.currentText(),
            follower_port=self.follower_combo.currentText().strip() or "can0",
            leader_port=None if leader in ("", SINGLE_BUS) else leader,
            cameras={role: value for role, value in cameras.items() if value},
            operator=self.context.hardware.operator,
        )

    def sim_task(self) -> str | None:
        scene = self.scene_combo.currentText()
        return None if scene == BARE_TABLE else scene

    def save_and_reopen(self) -> None:
        self.context.save_hardware(self.hardware_from_form())
        self.context.open_station(task=self.sim_task())


def _fill(combo: QComboBox, items: list[str], current: str) -> None:
    combo.clear()
    combo.addItems(items)
    combo.setCurrentText(current)
