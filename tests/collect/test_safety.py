"""Nothing outside the joint limits or the step bound ever reaches the bus."""

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collect import can_protocol as p
from collect.limits import MOTOR_KEYS, MOTOR_LIMITS
from collect.safety import SafetyFilter

from .conftest import wait_until

pytestmark = pytest.mark.timeout(120)

adversarial = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 0.0, 10.0, -10.0]),
    st.floats(-4.0, 4.0),
)
actions = st.lists(adversarial, min_size=7, max_size=7)
# What a buggy policy or a corrupt dataset could hand send_action: junk values, keys missing.
junk = st.one_of(adversarial, st.none(), st.sampled_from(["nan", "1e400", "abc", "0.5", "", [1.0]]))
action_dicts = st.builds(
    lambda values, dropped: {k: v for k, v in zip(MOTOR_KEYS, values, strict=True) if k not in dropped},
    st.lists(junk, min_size=7, max_size=7),
    st.sets(st.sampled_from(MOTOR_KEYS), max_size=3),
)


def test_filter_clamps_steps_and_holds_on_nan():
    safety = SafetyFilter(max_step_rad=0.1, max_step_m=0.01)
    safety.reset([0.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.02])
    out = safety.filter([5.0, math.nan, -math.inf, 0.05, -0.5, 1e308, 0.5])
    assert out == pytest.approx((0.1, 1.0, -1.0, 0.05, -0.1, 0.1, 0.03))  # NaN and inf hold
    with pytest.raises(ValueError, match="7 values"):
        safety.filter([0.0] * 6)
    with pytest.raises(RuntimeError, match="reset"):
        SafetyFilter().filter([0.0] * 7)


@settings(max_examples=300, deadline=None)
@given(st.lists(actions, min_size=1, max_size=20))
def test_filter_output_is_always_within_limits_and_step(sequence):
    safety = SafetyFilter(max_step_rad=0.05, max_step_m=0.005)
    previous = [0.0, 1.57, -1.3485, 0.0, 0.0, 0.0, 0.0]
    safety.reset(previous)
    for action in sequence:
        out = safety.filter(action)
        for i, (value, (lo, hi)) in enumerate(zip(out, MOTOR_LIMITS, strict=True)):
            assert math.isfinite(value) and lo <= value <= hi
            assert abs(value - previous[i]) <= (0.005 if i == 6 else 0.05) + 1e-12
        previous = list(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(action_dicts, min_size=5, max_size=15))
def test_every_frame_on_the_bus_is_within_limits_and_step_bounds(follower, follower_emulator, sequence):
    """Random and adversarial actions through the real follower; audited at the emulator."""
    if not follower.enabled:
        follower.enable()
        time.sleep(0.05)  # the enable's own gripper frame is not part of this example
    mark = follower_emulator.control_frame_count
    returned = []
    for action in sequence:
        if all(isinstance(v, float) for v in action.values()):  # numbers, NaN and inf included
            returned.append(follower.send_action(action))
        else:  # junk is refused before the filter: no frame, the filter's state unchanged
            with pytest.raises(ValueError, match="is not a number"):
                follower.send_action(action)
    assert wait_until(lambda: follower_emulator.control_frame_count >= mark + 5 * len(returned))
    frames = follower_emulator.control_frames(since=mark)
    audit_frames(frames, follower.safety.max_step_rad, follower.safety.max_step_m)
    # send_action returns what reached the arm (the frames carry it rounded into the integer limits).
    joint_frames = [f for f in frames if f.arbitration_id in p.JOINT_CTRL]
    gripper_frames = [f for f in frames if f.arbitration_id == p.GRIPPER_CTRL]
    for k, sent in enumerate(returned):
        on_bus = [v for f in joint_frames[3 * k : 3 * k + 3] for v in p.unpack_i32_pair(f.data)]
        assert on_bus == list(p.joint_targets_mdeg([sent[key] for key in MOTOR_KEYS[:6]]))
        assert p.unpack_gripper_ctrl(gripper_frames[k].data)[0] == p.gripper_target_um(sent["gripper.pos"])
    assert follower_emulator.limit_error_bits == 0  # the arm never saw a target beyond a limit


@pytest.mark.parametrize(
    ("action", "message"),
    [({"J1": 0.1}, r"unknown action key\(s\) \['J1'\]: an action uses joint_1.pos"),
     ({"joint_1.pos": "1e9"}, "action joint_1.pos='1e9' is not a number"),
     ({"joint_1.pos": True}, "action joint_1.pos=True is not a number"),
     ({"gripper.pos": None}, "action gripper.pos=None is not a number")],
)  # fmt: skip
def test_unknown_keys_and_non_numbers_are_refused_with_nothing_sent(
    follower, follower_emulator, action, message
):
    if not follower.enabled:
        follower.enable()
        time.sleep(0.05)
    mark = follower_emulator.control_frame_count
    before = follower.safety.last
    with pytest.raises(ValueError, match=message):
        follower.send_action(action)
    time.sleep(0.05)
    assert follower_emulator.control_frame_count == mark and follower.safety.last == before
    # numpy numbers (what policies return) stay welcome
    import numpy as np

    sent = follower.send_action({"joint_1.pos": np.float32(0.0), "gripper.pos": np.float64(0.01)})
    assert set(sent) == set(MOTOR_KEYS)


def test_commands_at_the_limits_stay_inside_them_on_the_bus(follower, follower_emulator):
    """1.22 rad is 69900.85 mdeg: rounding alone would put 69901 on the bus, past the 69900 limit."""
    follower.enable()
    mark = follower_emulator.control_frame_count
    corners = ([hi for _, hi in MOTOR_LIMITS], [lo for lo, _ in MOTOR_LIMITS])
    for corner in corners:
        for _ in range(80):  # enough steps to walk there from home at the step bound
            sent = follower.send_action(dict(zip(MOTOR_KEYS, corner, strict=True)))
        assert all(lo <= v <= hi for v, (lo, hi) in zip(sent.values(), MOTOR_LIMITS, strict=True))
        assert list(sent.values()) == pytest.approx(corner)  # got there
    assert wait_until(lambda: follower_emulator.control_frame_count >= mark + 5 * 160)
    audit_frames(
        follower_emulator.control_frames(since=mark), follower.safety.max_step_rad, follower.safety.max_step_m
    )
    assert follower_emulator.limit_error_bits == 0


def audit_frames(frames, max_step_rad, max_step_m):
    """Every joint/gripper control frame inside the integer limits and within one step of the last."""
    step_mdeg = math.degrees(max_step_rad) * 1000 + 1  # +1: rounding to whole mdeg
    step_um = max_step_m * 1e6 + 1
    last: dict[int, tuple[int, ...]] = {}
    for frame in frames:
        if frame.arbitration_id in p.JOINT_CTRL:
            first = p.JOINT_CTRL.index(frame.arbitration_id) * 2
            values = p.unpack_i32_pair(frame.data)
            for joint, value in zip((first, first + 1), values, strict=True):
                lo, hi = p.JOINT_LIMITS_MDEG[joint]
                assert lo <= value <= hi, f"joint {joint + 1} sent {value} mdeg outside [{lo}, {hi}]"
        elif frame.arbitration_id == p.GRIPPER_CTRL:
            values = p.unpack_gripper_ctrl(frame.data)[:1]
            assert 0 <= values[0] <= p.GRIPPER_MAX_UM, f"gripper sent {values[0]} um"
        else:
            continue
        step = step_um if frame.arbitration_id == p.GRIPPER_CTRL else step_mdeg
        if frame.arbitration_id in last:
            previous = last[frame.arbitration_id]
            assert all(abs(a - b) <= step for a, b in zip(values, previous, strict=True)), (
                f"frame 0x{frame.arbitration_id:X} jumped from {previous} to {values}"
            )
        last[frame.arbitration_id] = values
