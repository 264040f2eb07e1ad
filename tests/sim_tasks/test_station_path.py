"""The virtual operator moves the simulated LEADER arm; the follower follows it over the CAN
teleop path (piper_sdk on a virtual bus, the emulators, MuJoCo), as in a recording."""

import time

import pytest


@pytest.mark.slow
def test_operator_drives_leader_and_follower_completes_the_task():
    from collect.sim.operator import VirtualOperator
    from collect.station import StationConfig, open_station

    seed = 3
    config = StationConfig(backend="sim", task="pick_grape", image_size=(48, 64), realtime=True, seed=seed)
    with open_station(config) as station:
        station.enable()
        sim = station.sim
        operator = VirtualOperator("pick_grape", seed)
        start = sim.sim_time
        success = False
        gaps = []
        while sim.sim_time - start < 20.0 and not success:
            t = sim.sim_time - start
            target = sim.call(lambda world, t=t: operator.act(world, t))
            sim.leader_source.command(tuple(target[:6]), float(target[6]))
            leader, follower = station.leader.get_action(), station.follower.get_observation()
            gaps.append(max(abs(leader[k] - follower[k]) for k in leader))
            success = sim.call(lambda world: sim.task.is_success(world))
            time.sleep(1 / 30)
        assert success, (
            f"not placed after {sim.sim_time - start:.1f} s (operator at {operator.current_move!r})"
        )
        assert max(gaps) > 0.02  # the follower really lagged the leader on the way
