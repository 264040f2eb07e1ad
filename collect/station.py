"""The one switch between the real PiPER and its simulated twin.

    with open_station(StationConfig(backend="sim", task="pick_grape")) as station:
        station.enable()
        obs = station.follower.get_observation()    # joints, gripper, side + wrist frames
        station.follower.send_action(station.leader.get_action())
        station.estop()                             # from any thread

`backend="piper"` opens SocketCAN ports (`can0` ...) and OpenCV cameras. `backend="sim"`
starts a `SimRuntime` (MuJoCo world + PiPER CAN emulators on python-can `virtual`
channels) and then builds *the same* `PiperFollower` / `PiperLeader` through the real
`piper_sdk` on those channels, with `SimCamera`s: everything above the SDK is identical.

This module imports nothing heavy at import time (the GUI builds `StationConfig`s at
start-up); the SDK, lerobot and MuJoCo load in `connect()`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from collect.sim.lockstep import LOCKSTEP_STALL_S

log = logging.getLogger(__name__)

BACKENDS = ("sim", "piper")
LOCKSTEP_CAMERA_TIMEOUT_MS = 1000 * LOCKSTEP_STALL_S
DEFAULT_MAX_STEP_RAD = 0.1  # per control tick (collect.safety's default; kept here to stay import-light)


@dataclass
class StationConfig:
    backend: str = "sim"  # "sim" | "piper"
    follower_port: str = "can0"  # SocketCAN name (piper); sim makes its own unique channels
    leader_port: str | None = None  # None: single bus (leader on follower_port); else two buses
    cameras: dict[str, str] = field(default_factory=dict)  # role -> device path or index (piper)
    image_size: tuple[int, int] = (480, 640)  # (height, width)
    fps: int = 30
    task: str | None = None  # sim scene: which task's objects to load (None: bare table)
    max_step_rad: float = DEFAULT_MAX_STEP_RAD
    realtime: bool = True  # sim: physics follows the wall clock; False = lockstep (station.sim.advance)
    seed: int | None = None  # sim: object placement

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(
                f"unknown backend {self.backend!r}: use 'sim' (no arm needed) or 'piper' (real arm)"
            )
        self.image_size = tuple(self.image_size)

    @property
    def single_bus(self) -> bool:
        return self.leader_port is None or self.leader_port == self.follower_port


class Station:
    """Follower, leader and cameras of one workstation, connected together."""

    def __init__(self, config: StationConfig):
        self.config = config
        self.follower: Any = None
        self.leader: Any = None
        self.cameras: dict[str, Any] = {}
        self.sim: Any = None  # SimRuntime on the sim backend
        self._connected = False
        self._lock = threading.RLock()  # connect/disconnect vs. estop from another thread

    # -- life cycle -----------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        """Open buses, cameras and both arms (arms stay disabled: call `enable()`)."""
        with self._lock:
            if self._connected:
                return
            try:
                if self.config.backend == "sim":
                    follower_port, leader_port, interface = self._start_sim()
                else:
                    follower_port, leader_port, interface = self._real_ports()
                self.cameras = self._make_cameras()
                self.follower, self.leader = self._make_arms(follower_port, leader_port, interface)
                self.follower.connect()
                self.leader.connect()
            except BaseException:
                self._teardown()
                raise
            self._connected = True

    def disconnect(self) -> None:
        """Disable nothing on the way out (the arm holds); close arms, cameras, the sim."""
        with self._lock:
            self._teardown()
            self._connected = False

    def __enter__(self) -> Station:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()

    # -- arm verbs --------------------------------------------------------------------------
    def enable(self) -> None:
        self._require_connected("enable").enable()

    def disable(self) -> None:
        self._require_connected("disable").disable()

    def estop(self) -> None:
        """Stop the follower now; safe from any thread and in any state (no-op when closed)."""
        follower = self.follower
        if follower is not None:
            follower.estop()

    def resume(self) -> None:
        self._require_connected("resume").resume()

    def set_idle(self, idle: bool) -> None:
        """Nobody watches or drives the arm (idle) or someone does again. The simulated arm
        then reports at a heartbeat rate; the real arm streams as it always does."""
        if self.sim is not None:
            self.sim.set_idle(idle)

    def _require_connected(self, verb: str):
        if not self._connected or self.follower is None:
            raise RuntimeError(f"cannot {verb}: the station is not connected (call connect() first)")
        return self.follower

    # -- health -----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """CAN frame rate per bus (frames/s received by the SDK), camera fps, arm status."""
        report: dict[str, Any] = {"backend": self.config.backend, "connected": self._connected}
        if not self._connected:
            return report
        buses = {}
        for role, arm in (("follower", self.follower), ("leader", self.leader)):
            port = getattr(arm, "port", None) or role
            buses[f"{role} ({port})"] = _can_fps(arm)
        report["can_fps"] = buses
        report["camera_fps"] = {name: round(_camera_fps(cam), 1) for name, cam in self.cameras.items()}
        report["arm"] = _arm_status(self.follower)
        if self.sim is not None:
            report["sim"] = {
                "realtime": self.sim.realtime,
                "idle": self.sim.idle,
                "physics_steps": self.sim.physics_steps,
            }
        return report

    # -- construction -----------------------------------------------------------------------
    def _start_sim(self) -> tuple[str, str | None, str]:
        from collect.sim.runtime import SimRuntime

        self.sim = SimRuntime(
            task=self.config.task,
            image_size=self.config.image_size,
            realtime=self.config.realtime,
            single_bus=self.config.single_bus,
            seed=self.config.seed,
        ).start()
        leader_port = None if self.config.single_bus else self.sim.leader_channel
        return self.sim.follower_channel, leader_port, "virtual"

    def _real_ports(self) -> tuple[str, str | None, str]:
        leader = None if self.config.single_bus else self.config.leader_port
        return self.config.follower_port, leader, "socketcan"

    def _make_cameras(self) -> dict[str, Any]:
        height, width = self.config.image_size
        if self.sim is not None:
            from collect.sim.camera import SimCamera, SimCameraConfig

            return {
                name: SimCamera(
                    SimCameraConfig(name=name, width=width, height=height, fps=self.config.fps), self.sim
                )
                for name in ("side", "wrist")
            }
        from collect.cameras import make_cameras

        return make_cameras(self.config.cameras, width=width, height=height, fps=self.config.fps)

    def _make_arms(self, follower_port: str, leader_port: str | None, interface: str):
        from collect.follower import PiperFollower, PiperFollowerConfig
        from collect.leader import PiperLeader, PiperLeaderConfig

        follower = PiperFollower(
            PiperFollowerConfig(
                port=follower_port,
                interface=interface,
                max_step_rad=self.config.max_step_rad,
                **({} if self.config.realtime else {"camera_timeout_ms": LOCKSTEP_CAMERA_TIMEOUT_MS}),
            ),
            cameras=self.cameras,
        )
        leader = PiperLeader(
            PiperLeaderConfig(
                port=leader_port or follower_port,
                interface=interface,
                two_bus=leader_port is not None,
                **({} if self.config.realtime else {"stale_after_s": LOCKSTEP_STALL_S}),
            )
        )
        return follower, leader

    def _teardown(self) -> None:
        """Close whatever is open, in reverse order; every step runs even if one fails."""
        for name, closer in (
            (
                "leader",
                lambda: self.leader is not None and self.leader.is_connected and self.leader.disconnect(),
            ),
            (
                "follower",
                lambda: (
                    self.follower is not None and self.follower.is_connected and self.follower.disconnect()
                ),
            ),
            ("cameras", self._close_cameras),
            ("sim", lambda: self.sim is not None and self.sim.stop()),
        ):
            try:
                closer()
            except Exception:
                log.exception("closing the station's %s failed", name)
        self.leader = self.follower = self.sim = None
        self.cameras = {}

    def _close_cameras(self) -> None:
        for cam in self.cameras.values():
            if cam.is_connected:
                cam.disconnect()


def open_station(config: StationConfig | None = None, **overrides: Any) -> Station:
    """A `Station` for `config` (not yet connected: `connect()` or use it as a context manager)."""
    if config is None:
        config = StationConfig(**overrides)
    elif overrides:
        from dataclasses import replace

        config = replace(config, **overrides)
    return Station(config)


def _can_fps(arm) -> float:
    sdk = getattr(arm, "sdk", None)
    try:
        return round(float(sdk.GetCanFps()), 1) if sdk is not None else 0.0
    except Exception:
        return 0.0


def _camera_fps(cam) -> float:
    return float(getattr(cam, "measured_fps", 0.0) or 0.0)


def _arm_status(follower) -> dict[str, Any]:
    status = getattr(follower, "status", None)
    try:
        return dict(status()) if callable(status) else {}
    except Exception as exc:
        return {"error": str(exc), "at": time.time()}
