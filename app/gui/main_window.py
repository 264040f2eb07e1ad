"""The workstation window: page navigation on the left, pages in a stack, and a status
bar with the backend, the arm state and an always-visible E-STOP.

Pages come from `app.gui.pages.PAGES` as (title, module, class). A page class is a
QWidget built as `PageClass(context, parent)` where `context` is the shared
`app.gui.context.AppContext` (read its docstring: signals, the station worker, how to run
work off the GUI thread). The first page is built with the window; the others are imported
and built the first time the operator opens them, so start-up stays fast. A page that
fails to import or build shows its error in place instead of taking the window down.
"""

from __future__ import annotations

import importlib
import traceback

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QPlainTextEdit,
    QStackedWidget,
    QWidget,
)

from app.gui.context import AppContext
from app.gui.pages import PAGES
from app.gui.widgets.estop import EstopButton
from app.gui.workers import station_worker as sw

_STATE_COLOURS = {
    sw.CLOSED: "#757575",
    sw.OPENING: "#f9a825",
    sw.READY: "#1565c0",
    sw.ENABLED: "#2e7d32",
    sw.ESTOP: "#c62828",
    sw.ERROR: "#c62828",
}


class MainWindow(QMainWindow):
    shown = Signal()  # first time the window is on screen (start-up benchmark, tests)

    def __init__(self, context: AppContext, pages: list[tuple[str, str, str]] | None = None):
        super().__init__()
        self.context = context
        self._page_specs = list(PAGES if pages is None else pages)
        self._pages: dict[int, QWidget] = {}
        self._announced = False
        self.setWindowTitle(f"PiPER Workstation - {context.workspace.root}")
        self.resize(1280, 800)

        self.nav = QListWidget()
        self.nav.setObjectName("navigation")
        self.nav.setFixedWidth(150)
        self.nav.setStyleSheet("QListWidget { font-size: 15px; } QListWidget::item { padding: 10px; }")
        self.stack = QStackedWidget()
        for title, _module, _cls in self._page_specs:
            self.nav.addItem(title)
            self.stack.addWidget(QWidget())  # placeholder until first opened
        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(4, 4, 4, 4)
        row.addWidget(self.nav)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self._build_status_bar()
        self.nav.currentRowChanged.connect(self.show_page)
        context.station.state_changed.connect(self._on_arm_state)
        context.status_message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        context.hardware_changed.connect(lambda _hw: self._refresh_backend())
        context.backend_chosen.connect(lambda backend, _why: self._refresh_backend(backend))
        # Esc stops the arm from any page: an application-wide shortcut. A page may bind Esc
        # too (e.g. abort); Qt then calls it ambiguous and fires neither `activated`, so the
        # e-stop listens to both (pages hear it through `estop_triggered`).
        self._estop_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self._estop_shortcut.setContext(Qt.ShortcutContext.ApplicationShortcut)
        self._estop_shortcut.activated.connect(context.estop)
        self._estop_shortcut.activatedAmbiguously.connect(context.estop)
        if self._page_specs:
            self.nav.setCurrentRow(0)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.backend_label = QLabel()
        self.backend_label.setObjectName("backend")
        self.arm_state_label = QLabel()
        self.arm_state_label.setObjectName("arm_state")
        self.estop_button = EstopButton(font_px=16)
        self.estop_button.pressed.connect(self.context.estop)
        for widget in (self.backend_label, self.arm_state_label, self.estop_button):
            bar.addPermanentWidget(widget)
        self._refresh_backend()
        self._on_arm_state(self.context.station.state, "")

    def _refresh_backend(self, backend: str | None = None) -> None:
        """Show the backend the station runs on once chosen (sim when no CAN port is up), else the saved one."""
        shown = backend or self.context.backend or self.context.hardware.backend
        self.backend_label.setText(f"backend: <b>{shown}</b>")

    def _on_arm_state(self, state: str, message: str) -> None:
        colour = _STATE_COLOURS.get(state, "#000")
        self.arm_state_label.setText(f"arm: <b style='color:{colour}'>{state}</b>")
        if message:
            self.statusBar().showMessage(message, 8000)

    def page(self, index: int) -> QWidget:
        """The page at `index`, importing and building it on first use."""
        if index not in self._pages:
            title, module_name, class_name = self._page_specs[index]
            try:
                page_class = getattr(importlib.import_module(module_name), class_name)
                widget = page_class(self.context, self.stack)
            except Exception:
                widget = QPlainTextEdit(f"The {title} page failed to load:\n\n{traceback.format_exc()}")
                widget.setReadOnly(True)
            old = self.stack.widget(index)
            self.stack.removeWidget(old)
            old.deleteLater()
            self.stack.insertWidget(index, widget)
            self._pages[index] = widget
        return self._pages[index]

    def page_by_title(self, title: str) -> QWidget:
        return self.page([spec[0] for spec in self._page_specs].index(title))

    def show_page(self, index: int) -> None:
        if 0 <= index < len(self._page_specs):
            self.stack.setCurrentWidget(self.page(index))
            if self.nav.currentRow() != index:
                self.nav.setCurrentRow(index)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._announced:
            self._announced = True
            self.shown.emit()

    def closeEvent(self, event: QCloseEvent) -> None:
        for widget in self._pages.values():
            shutdown = getattr(widget, "shutdown", None)
            if callable(shutdown):
                shutdown()
        self.context.shutdown()
        super().closeEvent(event)
