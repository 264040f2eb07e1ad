"""How the recording loop waits between ticks.

The real arm lives in wall-clock time: `WallClockPacer` sleeps to the next deadline and,
when a tick overran, skips the missed slots instead of racing to catch up (the timer
counts them as dropped). The simulated arm lives in sim time: `LockstepPacer` advances
physics by exactly one period per tick, so a slow render never changes the motion
recorded, only how long recording takes.
"""

from __future__ import annotations

import time


class WallClockPacer:
    lockstep = False

    def __init__(self, fps: float, clock=time.perf_counter, sleep=time.sleep):
        self.period = 1.0 / fps
        self._clock = clock
        self._sleep = sleep
        self._deadline: float | None = None

    def restart(self) -> None:
        self._deadline = None

    def wait(self) -> None:
        now = self._clock()
        if self._deadline is None:
            self._deadline = now
        self._deadline += self.period
        if self._deadline < now:  # overran: drop the missed slots
            missed = int((now - self._deadline) / self.period) + 1
            self._deadline += missed * self.period
        self._sleep(max(0.0, self._deadline - now))


class LockstepPacer:
    lockstep = True

    def __init__(self, fps: float, sim):
        self.period = 1.0 / fps
        self.sim = sim

    def restart(self) -> None:
        pass

    def wait(self) -> None:
        self.sim.advance(self.period)


def make_pacer(station, fps: float):
    """Lockstep on a sim station that is not in real-time mode; wall clock otherwise."""
    sim = getattr(station, "sim", None)
    if sim is not None and not sim.realtime:
        return LockstepPacer(fps, sim)
    return WallClockPacer(fps)
