"""`AppContext`: what every page of the workstation window shares.

How to write a page (and register it with one line in `app/gui/pages/__init__.py`):

    class RecordPage(QWidget):
        def __init__(self, context: AppContext, parent: QWidget | None = None):
            super().__init__(parent)
            self.context = context
            context.station.state_changed.connect(self._on_arm_state)   # "ready", "enabled", "estop", ...
            context.station.snapshot.connect(self._on_snapshot)         # joints + camera frames
            context.estop_triggered.connect(self._abort_my_run)         # stop your loop at once
            context.hardware_changed.connect(self._on_hardware)         # the operator re-assigned ports

What the context offers:

- `workspace` (`collect.workspace.Workspace`): datasets/, runs/, results.sqlite.
- `hardware` (`HardwareConfig`) and `save_hardware(config)`: the saved port/camera
  assignment; saving emits `hardware_changed`.
- `station_config(**overrides)`: a `collect.station.StationConfig` built from `hardware`.
- `station` (`app.gui.workers.station_worker.StationWorker`): owns the open station on its
  own thread. `station.station` is the live `Station` for use from YOUR worker thread;
  `station.set_preview_enabled(False)` while your loop reads the arm, and
  `station.publish(obs, action)` to keep the previews alive from your loop. The worker
  reads and renders previews only while a page showing them asks with
  `station.set_preview_wanted(True)` (the Station page, while on screen).
- `open_station(**overrides)` / `backend_chosen(backend, reason)`: (re)open on the saved
  set-up, overrides going to `StationConfig` (e.g. `task="pick_grape"`, `image_size=(240, 320)`);
  `backend` is what actually runs ("sim" when no CAN port is up).
- `estop()`: stops the arm from anywhere, never blocks, and emits `estop_triggered`.
- `run_in_background(fn, *args, on_result=..., on_error=...)`: one slow call on the thread
  pool, with its outcome delivered on the GUI thread.
- `status_message(str)`: show a line in the window's status bar.

Rules: never call hardware, rendering, torch or disk-heavy work in a slot on the GUI
thread; import torch/lerobot inside functions that run off it (start-up must stay fast).
Long jobs (training) run in a child process; poll their files with a QTimer. A page may
define `shutdown()`: the window calls it on close (stop your threads there).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.gui.workers.background import BackgroundTask, run_in_background
from app.gui.workers.station_worker import StationWorker
from collect.workspace import HardwareConfig, Workspace


class AppContext(QObject):
    hardware_changed = Signal(object)  # HardwareConfig
    backend_chosen = Signal(str, str)  # backend opened ("sim"/"piper"), why (for the operator)
    estop_triggered = Signal()
    status_message = Signal(str)

    def __init__(
        self, workspace: Workspace, station_worker: StationWorker | None = None, parent: QObject | None = None
    ):
        super().__init__(parent)
        self.workspace = workspace
        self._hardware = workspace.load_hardware()
        self.station = station_worker or StationWorker()
        self.backend: str | None = None  # what the open station runs on, once chosen
        self._results_store: Any = None
        self._results_lock = threading.Lock()
        self.station.start()

    def results_store(self) -> Any:
        """The window's one connection to results.sqlite, shared by every page and worker.

        A second handle in this process (another connection, or anything that opens and
        closes the -wal/-shm files) drops the process's POSIX locks on them; an `eval` process
        closing its own connection then believes it is the last one and deletes -wal/-shm."""
        with self._results_lock:
            if self._results_store is None:
                from evaluate.store import ResultsStore

                self._results_store = ResultsStore(self.workspace.results_db)
            return self._results_store

    def has_results(self) -> bool:
        return self._results_store is not None or self.workspace.results_db.exists()

    @property
    def hardware(self) -> HardwareConfig:
        return replace(self._hardware, cameras=dict(self._hardware.cameras))

    def save_hardware(self, hardware: HardwareConfig) -> None:
        self.workspace.save_hardware(hardware)
        self._hardware = replace(hardware, cameras=dict(hardware.cameras))
        self.hardware_changed.emit(self.hardware)
        self.status_message.emit(f"hardware set-up saved to {self.workspace.config_path}")

    def station_config(self, **overrides: Any) -> Any:
        from collect.station import StationConfig  # light, but keep collect's SDK parts off start-up

        hw = self._hardware
        fields = dict(
            backend=hw.backend,
            follower_port=hw.follower_port,
            leader_port=hw.leader_port,
            cameras=dict(hw.cameras),
        )
        fields.update(overrides)
        return StationConfig(**fields)

    def open_station(self, **overrides: Any) -> None:
        """(Re)open the station from the saved hardware set-up; sim when its CAN ports are not up.

        Port discovery runs off the GUI thread; `backend_chosen` says what was picked and why.
        """
        hw = self._hardware

        def choose() -> tuple[str, str, Any]:
            from collect.can_ports import choose_backend

            backend, reason = choose_backend(hw.backend, hw.follower_port, hw.leader_port)
            return backend, reason, self.station_config(**({"backend": backend} | overrides))

        def opened(choice: tuple[str, str, Any]) -> None:
            backend, reason, config = choice
            self.backend = backend
            self.backend_chosen.emit(backend, reason)
            self.station.open(config)

        self.run_in_background(choose, on_result=opened, on_error=self.station.fail)

    def estop(self) -> None:
        self.station.estop()
        self.estop_triggered.emit()

    def run_in_background(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> BackgroundTask:
        return run_in_background(fn, *args, on_result=on_result, on_error=on_error, **kwargs)

    def shutdown(self) -> None:
        self.station.shutdown()
        with self._results_lock:
            if self._results_store is not None:
                self._results_store.close()
                self._results_store = None
