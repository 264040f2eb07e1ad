"""The seven motor values of follower and leader, live, beside their limits.

Joints in rad, gripper in m (the project's units, `collect.limits`). A value within 5 %
of a joint limit turns orange, so the operator sees an arm about to hit a stop (not the
gripper: closed is its normal resting state).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from collect.limits import MOTOR_KEYS, MOTOR_LIMITS

COLUMNS = ("follower", "leader", "min", "max")
_NEAR_LIMIT = QBrush(QColor("#ffb74d"))
_NORMAL = QBrush()


def _fmt(value: float, key: str) -> str:
    return f"{value * 1000:.1f} mm" if key.startswith("gripper") else f"{value:+.3f}"


def near_limit(value: float, limits: tuple[float, float], margin: float = 0.05) -> bool:
    low, high = limits
    band = (high - low) * margin
    return value <= low + band or value >= high - band


class JointTable(QTableWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(len(MOTOR_KEYS), len(COLUMNS), parent)
        self.setObjectName("joint_table")
        self.setHorizontalHeaderLabels([c.capitalize() for c in COLUMNS])
        self.setVerticalHeaderLabels([key.replace(".pos", "") for key in MOTOR_KEYS])
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        for row, (key, (low, high)) in enumerate(zip(MOTOR_KEYS, MOTOR_LIMITS, strict=True)):
            for col, text in enumerate(("-", "-", _fmt(low, key), _fmt(high, key))):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if col >= 2:
                    item.setForeground(QBrush(QColor("#757575")))
                self.setItem(row, col, item)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)  # compact: fits 800 px
        self.setMinimumHeight(self.verticalHeader().length() + self.horizontalHeader().height() + 4)

    def set_values(self, column: str, values: Sequence[float] | None) -> None:
        col = COLUMNS.index(column)
        for row, key in enumerate(MOTOR_KEYS):
            item = self.item(row, col)
            if values is None:
                item.setText("-")
                item.setBackground(_NORMAL)
                continue
            item.setText(_fmt(values[row], key))
            warn = not key.startswith("gripper") and near_limit(values[row], MOTOR_LIMITS[row])
            item.setBackground(_NEAR_LIMIT if warn else _NORMAL)

    def values_text(self, column: str) -> list[str]:
        col = COLUMNS.index(column)
        return [self.item(row, col).text() for row in range(len(MOTOR_KEYS))]
