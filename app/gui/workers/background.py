"""Run one slow call on Qt's thread pool and get its result back on the GUI thread.

    task = run_in_background(find_cameras, on_result=self._show_cameras, on_error=self._show_error)

`on_result(value)` / `on_error(message)` run on the GUI thread (queued signals), so they
may touch widgets. Keep a reference to the returned task only if you want to wait on it.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class _Relay(QObject):
    """Lives on the GUI thread; its signals carry the outcome across threads."""

    result = Signal(object)
    error = Signal(str)


class BackgroundTask(QRunnable):
    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict):
        super().__init__()
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self.relay = _Relay()
        self.done = threading.Event()
        self.setAutoDelete(False)  # the caller may still hold it after run()

    def run(self) -> None:
        try:
            value = self._fn(*self._args, **self._kwargs)
        except Exception as exc:  # reported to the page, never swallowed
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self._deliver(self.relay.error, detail)
        else:
            self._deliver(self.relay.result, value)
        finally:
            self.done.set()

    @staticmethod
    def _deliver(signal, value) -> None:
        try:
            signal.emit(value)
        except RuntimeError:  # the application is shutting down: nobody is left to tell
            pass


# Tasks in flight, so that Python does not collect them (and their relays) early.
_in_flight: set[BackgroundTask] = set()


def run_in_background(
    fn: Callable[..., Any],
    *args: Any,
    on_result: Callable[[Any], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> BackgroundTask:
    task = BackgroundTask(fn, args, kwargs)
    if on_result is not None:
        task.relay.result.connect(on_result)
    if on_error is not None:
        task.relay.error.connect(on_error)
    task.relay.result.connect(lambda _value: _in_flight.discard(task))
    task.relay.error.connect(lambda _message: _in_flight.discard(task))
    _in_flight.add(task)
    QThreadPool.globalInstance().start(task)
    return task
