"""Lockstep in simulation, the reading side: what the SDK reports is the simulation *now*.

The emulated arms answer on their own threads and the SDK decodes frames on its own, so
right after a physics step (or after the virtual operator moved the leader) the SDK may
still hold the previous values, by a tick or more on a loaded CPU. A recording would then
pair an image of this instant with a state of an older one, irregularly. `sync_reports`
waits until the follower's feedback equals the simulated arm and the leader's command
equals where the leader was told to be, so every recorded or evaluated frame is one
instant of simulated time, whatever the CPU. The values compared are integers on the bus
(1 mdeg, 1 um), so the match is exact.

On the real arm (no `station.sim`) and in real-time sim there is nothing to wait for.
"""

from __future__ import annotations

import time

from collect.can_protocol import as_reported

# Lockstep has no deadline: a report or a command late because the CPU is busy (a niced
# recording beside a training run waits seconds for a core) is still the right one, so every
# lockstep wait (here, the simulation's wait for the leader's command, the leader's and the
# cameras' staleness limits) gives up only at a stall this long. Giving up sooner records a
# frame of two instants, or steps a tick before the leader's command arrived: with 0.5 s,
# 10 of 480 episodes recorded niced beside training and tests missed 29 waits between them.
LOCKSTEP_STALL_S = 30.0
POLL_S = 0.0005


def sync_reports(station, timeout_s: float = LOCKSTEP_STALL_S) -> bool:
    """Block until the SDK reports the simulation's current state; False on timeout (counted)."""
    sim = getattr(station, "sim", None)
    if sim is None or sim.realtime:
        return True
    state = sim.follower_source.read()
    follower_expected = as_reported([*state.positions_rad, state.gripper_m])
    leader_target = sim.commanding_leader_target()
    leader_expected = as_reported(leader_target) if leader_target is not None else None
    deadline = time.monotonic() + timeout_s
    while True:
        follower_ok = station.follower.read_joints() == follower_expected
        leader_ok = leader_expected is None or list(station.leader.get_action().values()) == leader_expected
        if follower_ok and leader_ok:
            return True
        if time.monotonic() >= deadline:
            sim.lockstep_misses += 1
            return False
        time.sleep(POLL_S)
