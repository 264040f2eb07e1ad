"""How the recording loop waits between ticks.

The real arm lives in wall-clock time: `WallClockPacer` sleeps to the next deadline and,
when a tick overran, skips the missed slots instead of racing to catch up (the timer
counts them as dropped). The simulated arm lives in sim time: `LockstepPacer` advances
physics by exactly one period per tick, so a slow render never changes the motion
recorded, only how long recording takes.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time

# The loop thread waits for the GIL at most this long when the writer thread (a save
# overlapping the next episode) runs Python: CPython's default, 5 ms, made each of the
# loop's many small waits cost up to 5 ms, and ticks overran by 20-60 ms.
LOOP_SWITCH_INTERVAL_S = 0.001


@contextlib.contextmanager
def loop_friendly_interpreter():
    """While a recording session is open: short GIL switch interval, and the objects that
    exist at the start (torch, lerobot, the station: millions) frozen out of the garbage
    collector, whose full collections otherwise paused every thread for ~0.5 s mid-episode
    (16 frames dropped at 30 fps, benchmarks/bench_record.py). Both restored afterwards."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, LOOP_SWITCH_INTERVAL_S))
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)


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
