"""Arms on python-can virtual buses: the real piper_sdk against our emulator."""

import itertools
import os
import time

import pytest

from collect.emulator import PiperEmulator
from collect.joint_source import FirstOrderJoints

_ids = itertools.count()


def unique_channel(label: str) -> str:
    # piper_sdk keeps one object per CAN name and python-can virtual channels are per
    # process: a fresh name per test keeps tests independent.
    return f"test-{os.getpid()}-{next(_ids)}-{label}"


def wait_until(predicate, timeout_s=3.0):
    """Poll until `predicate()` holds (bus traffic is asynchronous); its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def follower_emulator():
    with PiperEmulator(
        unique_channel("follower"), role="follower", joint_source=FirstOrderJoints(tau_s=0.02)
    ) as emu:
        yield emu


@pytest.fixture
def follower(follower_emulator):
    from collect.follower import PiperFollower, PiperFollowerConfig

    arm = PiperFollower(PiperFollowerConfig(port=follower_emulator.channel, interface="virtual"), cameras={})
    arm.connect()
    yield arm
    arm.disconnect()
