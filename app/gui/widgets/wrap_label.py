"""A label for text of unknown length (warnings, errors, paths) that never widens the window.

A plain QLabel asks for the width of its whole text, so one long warning made the
window wider than the screen and pushed the E-STOP off it. This one takes the width
its layout gives, wraps in it, shows at most `max_lines` lines and keeps the full text
in its tooltip.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class WrapLabel(QLabel):
    def __init__(self, text: str = "", max_lines: int = 3, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setAlignment(
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
        )  # clip the end, not the start
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self._max_lines = max_lines
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self.setToolTip(text)
        self._limit_height()

    def setStyleSheet(self, sheet: str) -> None:  # noqa: N802 - a font size changes the line height
        super().setStyleSheet(sheet)
        self._limit_height()

    def _limit_height(self) -> None:
        self.ensurePolished()
        margins = self.contentsMargins()
        lines = self.fontMetrics().lineSpacing() * self._max_lines
        self.setMaximumHeight(lines + margins.top() + margins.bottom() + 2 * self.margin())
