"""`SimCamera`: lerobot's `Camera` whose frames MuJoCo renders from the simulated world.

The recorder, the follower and the GUI cannot tell it from `OpenCVCamera`: RGB HxWx3
uint8 frames at the configured size, `read` / `async_read` / `read_latest`, the same
errors. Frames are rendered on the `SimRuntime` worker on request, so a frame always
shows the physics state at the moment it was asked for (nothing is rendered unread).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from lerobot.cameras.camera import Camera
from lerobot.cameras.configs import CameraConfig
from lerobot.utils.errors import DeviceAlreadyConnectedError, DeviceNotConnectedError

from collect.limits import CAMERA_NAMES


@CameraConfig.register_subclass("piper_sim")
@dataclass(kw_only=True)
class SimCameraConfig(CameraConfig):
    """`name`: the MuJoCo camera ("side" or "wrist"); width/height default to 640x480."""

    name: str = "side"
    fps: int | None = 30
    width: int | None = 640
    height: int | None = 480

    def __post_init__(self) -> None:
        if self.name not in CAMERA_NAMES:
            raise ValueError(f"sim camera name must be one of {CAMERA_NAMES}, got {self.name!r}")


class SimCamera(Camera):
    """A camera of a running `SimRuntime`."""

    def __init__(self, config: SimCameraConfig, runtime):
        super().__init__(config)
        self.config = config
        self.runtime = runtime
        self._connected = False
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._latest_at = 0.0
        self._frame_times: deque[float] = deque(maxlen=60)

    def __str__(self) -> str:
        return f"SimCamera({self.config.name})"

    @property
    def is_connected(self) -> bool:
        return self._connected and self.runtime.running

    @staticmethod
    def find_cameras() -> list[dict[str, Any]]:
        return [
            {"type": "piper_sim", "id": name, "name": f"simulated {name} camera"} for name in CAMERA_NAMES
        ]

    def connect(self, warmup: bool = True) -> None:
        if self._connected:
            raise DeviceAlreadyConnectedError(f"{self} is already connected")
        if not self.runtime.running:
            raise DeviceNotConnectedError(
                f"{self}: the simulation is not running; start the sim station first"
            )
        self._connected = True
        if warmup:
            self.read()

    def read(self) -> np.ndarray:
        return self._capture(timeout_s=5.0)

    def async_read(self, timeout_ms: float = 200) -> np.ndarray:
        """A new frame, rendered now; TimeoutError if the simulation cannot give one in time."""
        return self._capture(timeout_s=timeout_ms / 1000.0)

    def _capture(self, timeout_s: float) -> np.ndarray:
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self} is not connected")
        size = (self.config.height, self.config.width)
        future = self.runtime.submit(lambda world: world.render(self.config.name, size))
        try:
            frame = future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(
                f"{self}: no frame within {timeout_s * 1000:.0f} ms (simulation busy or stalled)"
            ) from None
        now = time.perf_counter()
        with self._lock:
            self._latest, self._latest_at = frame, now
            self._frame_times.append(now)
        return frame

    def read_latest(self, max_age_ms: int = 500) -> np.ndarray:
        """The last frame read, without rendering; TimeoutError if it is older than `max_age_ms`."""
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self} is not connected")
        with self._lock:
            frame, at = self._latest, self._latest_at
        if frame is None:
            raise RuntimeError(f"{self} has not captured a frame yet")
        age_ms = (time.perf_counter() - at) * 1000.0
        if age_ms > max_age_ms:
            raise TimeoutError(f"{self}: latest frame is {age_ms:.0f} ms old (max {max_age_ms} ms)")
        return frame

    @property
    def measured_fps(self) -> float:
        """Frames delivered per second over the last (up to) 60 frames."""
        with self._lock:
            times = list(self._frame_times)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def disconnect(self) -> None:
        if not self._connected:
            raise DeviceNotConnectedError(f"{self} is not connected")
        self._connected = False
