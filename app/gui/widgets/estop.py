"""The big red E-STOP button; the window and the Station page each show one."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton, QSizePolicy, QWidget

_STYLE = """
QPushButton { background: #c62828; color: white; font-weight: bold; font-size: %dpx;
              border: 3px solid #7f0000; border-radius: 6px; padding: 4px 18px; }
QPushButton:hover { background: #e53935; }
QPushButton:pressed { background: #7f0000; }
"""


class EstopButton(QPushButton):
    """Fires on press (not release): the fastest the operator can ask for a stop."""

    def __init__(self, font_px: int = 18, parent: QWidget | None = None):
        super().__init__("E-STOP", parent)
        self.setObjectName("estop")
        self.setStyleSheet(_STYLE % font_px)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space/Enter never press it by accident
        self.setToolTip("Emergency stop the arm (also: Esc in any page)")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(int(font_px * 2.2))
