"""The station worker: owns the open `collect.station.Station` on its own QThread.

Everything that touches the arm, the CAN buses, the cameras or MuJoCo happens here (or
in the station's own threads), never on the GUI thread. The GUI talks to it through
methods that only emit queued signals, and hears back through its signals:

- `state_changed(state, message)`: "closed", "opening", "ready" (connected, motors off),
  "enabled", "estop", "error".
- `snapshot(StationSnapshot)`: follower and leader joints + camera frames, emitted on the
  GUI thread with the newest data (older ticks the GUI had no time for are dropped).
- `health(dict)`: `Station.health()` once a second, plus the measured preview rate.

Previews cost a render of every camera per tick (most of a core in sim), so the worker
reads the station only while a page that shows them asks for them with
`set_preview_wanted(True)` (the Station page, while it is on screen), at `preview_hz`.
Otherwise it only reports health, once a second, and while the arm is also off (READY)
and no loop has borrowed the station, the station idles (`Station.set_idle`): the
simulated arm reports at a heartbeat rate instead of filling the bus for nobody.

E-STOP does not queue behind a busy worker: `estop()` sends from a fresh thread at once.
A page that runs its own control loop (recording, evaluation) can take the open station
with `station` and pause the preview with `set_preview_enabled(False)`; it may feed the
previews with `publish(observation, action)`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from collect.limits import CAMERA_NAMES, MOTOR_KEYS

CLOSED, OPENING, READY, ENABLED, ESTOP, ERROR = "closed", "opening", "ready", "enabled", "estop", "error"
PREVIEW_HZ = 15.0  # enough to watch the arm; each tick renders every camera in sim
HEALTH_INTERVAL_MS = 1000


@dataclass(frozen=True)
class StationSnapshot:
    follower: tuple[float, ...] | None  # 7 values in MOTOR_KEYS order
    leader: tuple[float, ...] | None
    frames: dict[str, Any] = field(default_factory=dict)  # camera role -> HxWx3 uint8
    time_s: float = 0.0


def _motor_vector(values: dict[str, Any] | None) -> tuple[float, ...] | None:
    if not values or any(key not in values for key in MOTOR_KEYS):
        return None
    return tuple(float(values[key]) for key in MOTOR_KEYS)


def _default_open_station(config: Any) -> Any:
    from collect.station import open_station  # heavy (SDK, MuJoCo): only in the worker

    return open_station(config)


class _LatestOnly(QObject):
    """Hands the newest snapshot to the GUI thread, dropping older ones it had no time to show.

    At most one wake-up is queued at a time, so a slow GUI never builds a backlog of frames.
    """

    _wake = Signal()

    def __init__(self, deliver: Callable[[StationSnapshot], None]):
        super().__init__()  # created on the GUI thread, so _wake runs there
        self._deliver = deliver
        self._lock = threading.Lock()
        self._latest: StationSnapshot | None = None
        self._wake.connect(self._flush)

    def post(self, snap: StationSnapshot) -> None:
        with self._lock:
            pending, self._latest = self._latest is not None, snap
        if not pending:
            self._wake.emit()

    @Slot()
    def _flush(self) -> None:
        with self._lock:
            snap, self._latest = self._latest, None
        if snap is not None:
            self._deliver(snap)


class StationWorker(QObject):
    state_changed = Signal(str, str)
    snapshot = Signal(object)
    health = Signal(dict)

    # GUI -> worker requests; queued because the worker lives on its own thread.
    _open_requested = Signal(object)
    _close_requested = Signal()
    _shutdown_requested = Signal()
    _arm_requested = Signal(str)
    _retime_requested = Signal()

    def __init__(
        self, open_station: Callable[[Any], Any] = _default_open_station, preview_hz: float = PREVIEW_HZ
    ):
        super().__init__()
        self._open_station = open_station
        self._preview_interval_ms = max(1, int(1000 / preview_hz))
        self._station: Any = None
        self._state = CLOSED
        self._preview_enabled = True  # False while another loop reads the arm
        self._preview_wanted = False  # True while a page that shows the previews is on screen
        self._arm_busy = False  # an enable/disable/resume is under way
        self._idle_lock = threading.Lock()  # _sync_idle runs on the GUI thread and on this worker's
        self._idle_applied: tuple[Any, bool] = (None, False)  # (station, idle) last told
        self.frames_read = 0  # station reads for the previews (each renders every camera in sim)
        self._closing = False
        self._last_read_error = ""
        self._ticks: list[float] = []
        self._last_health = 0.0
        self._latest = _LatestOnly(self.snapshot.emit)
        self._thread = QThread()
        self._thread.setObjectName("station-worker")
        self.moveToThread(self._thread)
        self._thread.started.connect(self._on_thread_started)
        self._open_requested.connect(self._open)
        self._close_requested.connect(self._close)
        self._shutdown_requested.connect(self._shutdown)
        self._arm_requested.connect(self._arm)
        self._retime_requested.connect(self._retime)

    # ---- GUI-side API (never blocks) -------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    @property
    def state(self) -> str:
        return self._state

    @property
    def station(self) -> Any:
        """The open Station, or None. Use it from your own worker thread, not the GUI's."""
        return self._station

    def open(self, config: Any) -> None:
        """Open a station for `config` (a `collect.station.StationConfig`), closing any open one."""
        self._open_requested.emit(config)

    def close(self) -> None:
        self._close_requested.emit()

    def enable(self) -> None:
        self._arm_requested.emit("enable")

    def disable(self) -> None:
        self._arm_requested.emit("disable")

    def resume(self) -> None:
        self._arm_requested.emit("resume")

    def fail(self, message: str) -> None:
        """Report a failure found outside the worker (e.g. while preparing the config)."""
        self._set_state(ERROR, f"could not open the station: {message}")

    def set_preview_enabled(self, enabled: bool) -> None:
        """False while your own loop reads the arm (the worker must not read it too)."""
        self._preview_enabled = enabled
        self._sync_idle()  # here, not queued: the arm is at full rate before your loop reads it

    def set_preview_wanted(self, wanted: bool) -> None:
        """True while a page showing the previews is on screen; otherwise nothing is read or rendered."""
        self._preview_wanted = wanted
        self._sync_idle()
        self._retime_requested.emit()  # the timer belongs to the worker thread

    def publish(self, observation: dict[str, Any], action: dict[str, Any] | None = None) -> None:
        """Feed the previews from another loop (any thread); the signal is queued to the GUI."""
        frames = {role: observation[role] for role in CAMERA_NAMES if role in observation}
        self._latest.post(
            StationSnapshot(_motor_vector(observation), _motor_vector(action), frames, time.monotonic())
        )

    def estop(self) -> None:
        """Stop the arm now, from whichever thread calls; does not wait for the worker."""
        station = self._station
        if station is None:
            self.state_changed.emit(self._state, "E-STOP: no station is open, nothing to stop")
            return

        def send() -> None:
            try:
                station.estop()
            except Exception as exc:  # say so loudly: the operator must use the hardware stop
                self.state_changed.emit(ERROR, f"E-STOP FAILED ({exc}): use the arm's hardware stop")
                return
            self._set_state(ESTOP, "E-STOP sent: the arm is stopped; press Resume to continue")

        threading.Thread(target=send, name="estop", daemon=True).start()

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Close the station and stop the thread (called when the window closes).

        Waits for a station still opening (MuJoCo, SDK) so that nothing is left running.
        """
        self._closing = True
        if self._thread.isRunning():
            self._shutdown_requested.emit()  # its slot closes the station, then ends the thread
            if not self._thread.wait(timeout_ms):
                self._thread.quit()

    # ---- worker thread -----------------------------------------------------------------

    def _set_state(self, state: str, message: str = "") -> None:
        self._state = state
        self._sync_idle()
        self.state_changed.emit(state, message)

    def _sync_idle(self) -> None:
        """Tell the open station whether anyone watches or drives the arm (any thread)."""
        with self._idle_lock:
            station = self._station
            idle = (
                station is not None
                and self._state == READY
                and not self._arm_busy
                and self._preview_enabled
                and not self._preview_wanted
            )
            if (station, idle) == self._idle_applied:
                return
            self._idle_applied = (station, idle)
            if station is not None:
                station.set_idle(idle)

    @Slot()
    def _on_thread_started(self) -> None:
        self._timer = QTimer(self)  # created here so that it ticks on the worker thread
        self._timer.timeout.connect(self._tick)
        self._retime()

    @Slot()
    def _retime(self) -> None:
        """Tick at the preview rate while previews are wanted, else once a second for health."""
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.setInterval(self._preview_interval_ms if self._preview_wanted else HEALTH_INTERVAL_MS)

    @Slot(object)
    def _open(self, config: Any) -> None:
        self._close()
        if self._closing:
            return
        self._set_state(OPENING, f"opening the {getattr(config, 'backend', '?')} station ...")
        try:
            station = self._open_station(config)
            station.connect()
        except Exception as exc:
            self._set_state(ERROR, f"could not open the station: {exc}")
            return
        self._station = station
        self._ticks.clear()
        self._set_state(READY, f"{config.backend} station open")
        self._timer.start()

    @Slot()
    def _close(self) -> None:
        if getattr(self, "_timer", None) is not None:
            self._timer.stop()
        station, self._station = self._station, None
        if station is None:
            return
        try:
            station.disconnect()
        except Exception as exc:
            self._set_state(ERROR, f"station did not close cleanly: {exc}")
            return
        self._set_state(CLOSED, "station closed")

    @Slot()
    def _shutdown(self) -> None:
        try:
            self._close()
        finally:
            self._timer.deleteLater()  # deleted on its own thread as that thread finishes
            self._timer = None
            self._thread.quit()  # from inside: a quit() from the GUI could skip queued requests

    @Slot(str)
    def _arm(self, verb: str) -> None:
        station = self._station
        if station is None:
            self.state_changed.emit(self._state, f"cannot {verb}: no station is open")
            return
        self._arm_busy = True  # the verb waits on the arm's reports: at full rate
        self._sync_idle()
        try:
            getattr(station, verb)()
        except Exception as exc:
            self._arm_busy = False
            self._sync_idle()
            self.state_changed.emit(self._state, f"{verb} failed: {exc}")
            return
        self._arm_busy = False
        self._set_state({"enable": ENABLED, "disable": READY, "resume": READY}[verb], f"{verb}: done")

    @Slot()
    def _tick(self) -> None:
        station = self._station
        if station is None:
            return
        now = time.monotonic()
        if self._preview_enabled and self._preview_wanted:
            try:
                observation = station.follower.get_observation()
                action = station.leader.get_action() if station.leader is not None else None
            except Exception as exc:
                message = f"station read failed: {exc}"
                if message != self._last_read_error:  # once per distinct failure, not 30 times a second
                    self._last_read_error = message
                    self.state_changed.emit(self._state, message)
                return
            self._last_read_error = ""
            self.frames_read += 1
            self.publish(observation, action)
            self._ticks.append(now)
        if now - self._last_health >= HEALTH_INTERVAL_MS / 1000 * 0.95:  # timers run a little early
            self._last_health = now
            self._emit_health(now)

    def _emit_health(self, now: float) -> None:
        self._ticks = [t for t in self._ticks if now - t <= 2.0]
        span = self._ticks[-1] - self._ticks[0] if len(self._ticks) > 1 else 0.0
        report: dict[str, Any] = {"preview_hz": (len(self._ticks) - 1) / span if span > 0 else 0.0}
        try:
            report.update(self._station.health())
        except Exception as exc:
            report["health_error"] = str(exc)
        self.health.emit(report)
