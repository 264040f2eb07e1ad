"""Live timing of the recording loop: period, per-camera fps, late ticks and dropped frames.

A recorder samples at a fixed rate, so the frames an episode lacks for the wall time it
lasted are lost: `dropped` is round(elapsed / target period) + 1 - ticks. A tick that takes
2.4 periods loses two slots; a late tick the pacer catches up on (1.6 periods, then 0.4)
loses none, only jitter; a loop that drifts slow loses frames without one long gap.
`late` counts ticks over 1.5 target periods. A camera whose frame did not change since the
last tick (the same array object, the way lerobot's async readers hand out their latest
frame) counts a repeated frame for that camera. `behind` turns on when the last second fell short.

In lockstep simulation (`lockstep = True`) a frame is a period of simulated time however
long it took, so no frame slot can be lost: dropped and late stay 0 and the periods
measured are the recording's wall-clock speed only.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

LATE_FACTOR = 1.5
BEHIND_FPS_FRACTION = 0.9  # achieved fps over the last second below this x target: warn


@dataclass
class TimingStats:
    target_fps: float
    ticks: int = 0
    achieved_fps: float = 0.0
    mean_period_ms: float = 0.0
    p99_period_ms: float = 0.0
    max_period_ms: float = 0.0
    late_ticks: int = 0
    dropped_frames: int = 0
    camera_fps: dict[str, float] = field(default_factory=dict)
    camera_repeats: dict[str, int] = field(default_factory=dict)
    behind: bool = False
    lockstep: bool = False  # sim: frames are periods of simulated time, none can be dropped

    def warning(self) -> str:
        if not self.behind:
            return ""
        return (
            f"recording is behind: {self.achieved_fps:.1f} of {self.target_fps:.0f} fps, "
            f"{self.dropped_frames} frames dropped; close other programs or lower the image size"
        )

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


class LoopTimer:
    """Call `tick(frames)` once per loop iteration, with the camera frames read in it."""

    def __init__(self, fps: float, clock=time.perf_counter, lockstep: bool = False):
        self.fps = float(fps)
        self.period = 1.0 / self.fps
        self._clock = clock
        self.lockstep = lockstep
        self.reset()

    def reset(self) -> None:
        self._start: float | None = None
        self._last: float | None = None
        self._periods: list[float] = []
        self._recent: deque[float] = deque()
        self._late = 0
        self._previous: dict[str, object] = {}
        self._camera_new: dict[str, int] = {}
        self._camera_repeats: dict[str, int] = {}

    def tick(self, frames: dict[str, object] | None = None) -> None:
        now = self._clock()
        if self._start is None:
            self._start = now
        if self._last is not None:
            period = now - self._last
            self._periods.append(period)
            if not self.lockstep:
                if period > LATE_FACTOR * self.period:
                    self._late += 1
        self._last = now
        self._recent.append(now)
        while self._recent and now - self._recent[0] > 1.0:
            self._recent.popleft()
        for name, frame in (frames or {}).items():
            if self._previous.get(name) is frame:
                self._camera_repeats[name] = self._camera_repeats.get(name, 0) + 1
            else:
                self._camera_new[name] = self._camera_new.get(name, 0) + 1
            self._previous[name] = frame

    def stats(self) -> TimingStats:
        stats = TimingStats(
            target_fps=self.fps, ticks=len(self._periods) + (self._start is not None), lockstep=self.lockstep
        )
        if not self._periods:
            return stats
        ordered = sorted(self._periods)
        elapsed = self._last - self._start
        stats.achieved_fps = len(self._periods) / elapsed if elapsed > 0 else 0.0
        stats.mean_period_ms = 1000 * sum(ordered) / len(ordered)
        stats.p99_period_ms = 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        stats.max_period_ms = 1000 * ordered[-1]
        stats.late_ticks = self._late
        if not self.lockstep:
            stats.dropped_frames = max(0, round(elapsed / self.period) + 1 - stats.ticks)
        stats.camera_fps = {name: n / elapsed for name, n in self._camera_new.items()} if elapsed > 0 else {}
        stats.camera_repeats = dict(self._camera_repeats)
        window = self._recent[-1] - self._recent[0] if len(self._recent) > 1 else 0.0
        recent_fps = (len(self._recent) - 1) / window if window > 0.5 else stats.achieved_fps
        stats.behind = not self.lockstep and recent_fps < BEHIND_FPS_FRACTION * self.fps
        return stats
