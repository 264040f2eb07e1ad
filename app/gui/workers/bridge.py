"""`EventBridge`: hands (name, payload) events from a worker thread to the GUI thread.

Emitting a Qt signal from another thread queues the call into the receiver's thread, so a
slot connected to `bridge.event` always runs on the GUI thread.
"""

from PySide6.QtCore import QObject, Signal


class EventBridge(QObject):
    event = Signal(str, object)
