"""A live camera preview: paints the latest frame, scaled to fit, and measures its fps."""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget


class CameraView(QWidget):
    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = title
        self.setObjectName(f"camera_{title}")
        self._frame: np.ndarray | None = None  # kept alive: the QImage borrows its buffer
        self._image: QImage | None = None
        self._stamps: deque[float] = deque(maxlen=60)
        self.frames_shown = 0
        self.placeholder = "no signal"  # drawn while there is no frame ("loading..." on replay)
        self.setMinimumSize(QSize(200, 150))  # two side by side still leave room on a 1280 px screen
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)  # keep the 4:3 of the cameras instead of black bars
        self.setSizePolicy(policy)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        if self._frame is not None:
            height, frame_width = self._frame.shape[:2]
            return int(width * height / frame_width)
        return width * 3 // 4

    def sizeHint(self) -> QSize:
        return QSize(480, 360)

    @property
    def last_frame(self) -> np.ndarray | None:
        return self._frame

    def fps(self) -> float:
        if len(self._stamps) < 2:
            return 0.0
        span = self._stamps[-1] - self._stamps[0]
        return (len(self._stamps) - 1) / span if span > 0 else 0.0

    def set_frame(self, frame: np.ndarray | None) -> None:
        """An HxWx3 uint8 RGB frame (None: no signal). Cheap; painting happens on the next update."""
        if frame is None:
            self._frame, self._image = None, None
        else:
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            height, width = frame.shape[:2]
            self._frame = frame
            self._image = QImage(frame.data, width, height, frame.strides[0], QImage.Format.Format_RGB888)
            self._stamps.append(time.monotonic())
            self.frames_shown += 1
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#202020"))
        if self._image is not None:
            size = self._image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
            x = (self.width() - size.width()) / 2
            y = (self.height() - size.height()) / 2
            painter.drawImage(QRectF(x, y, size.width(), size.height()), self._image)
        else:
            painter.setPen(QColor("#bdbdbd"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
        painter.setPen(QColor("#ffffff"))
        label = f"{self.title}  {self.fps():.0f} fps" if self._image is not None else self.title
        painter.drawText(8, 18, label)
        painter.end()
