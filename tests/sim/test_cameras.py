"""Sim cameras behave as lerobot Cameras and show the world: distinct, non-blank frames."""

import numpy as np
import pytest
from lerobot.cameras.camera import Camera
from lerobot.utils.errors import DeviceNotConnectedError

from collect.episode_start import EpisodeStart
from collect.sim.camera import SimCamera, SimCameraConfig
from collect.sim.runtime import SimRuntime


@pytest.fixture(scope="module")
def runtime():
    with SimRuntime(image_size=(240, 320), start_emulators=False) as rt:
        yield rt


@pytest.fixture
def cameras(runtime):
    cams = {n: SimCamera(SimCameraConfig(name=n, width=320, height=240), runtime) for n in ("side", "wrist")}
    for cam in cams.values():
        cam.connect()
    yield cams
    for cam in cams.values():
        if cam.is_connected:
            cam.disconnect()


def test_both_cameras_give_distinct_non_blank_frames(cameras):
    side, wrist = cameras["side"].read(), cameras["wrist"].async_read(timeout_ms=2000)
    assert isinstance(cameras["side"], Camera)
    for frame in (side, wrist):
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
        assert frame.std() > 10, "frame is (nearly) one colour"
    assert np.abs(side.astype(int) - wrist.astype(int)).mean() > 20, "side and wrist show the same image"


def test_frames_follow_the_arm(runtime, cameras):
    runtime.reset(start=EpisodeStart(arm_q=(0.0, 1.57, -1.3485, 0, 0, 0)))
    before = cameras["side"].read()
    runtime.reset(start=EpisodeStart(arm_q=(1.2, 1.2, -1.0, 0, 0.8, 0)))
    after = cameras["side"].read()
    assert np.abs(before.astype(int) - after.astype(int)).mean() > 1.0


def test_read_latest_and_errors(runtime, cameras):
    cam = cameras["wrist"]
    frame = cam.read()
    assert np.array_equal(cam.read_latest(max_age_ms=10_000), frame)
    cam.disconnect()
    with pytest.raises(DeviceNotConnectedError):
        cam.read()
    with pytest.raises(ValueError, match="side"):
        SimCameraConfig(name="top")
    assert [c["id"] for c in SimCamera.find_cameras()] == ["side", "wrist"]


def test_render_from_many_threads_goes_through_the_worker(runtime):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        frames = list(pool.map(lambda cam: runtime.render(cam, (60, 80)), ["side", "wrist"] * 4))
    assert all(f.shape == (60, 80, 3) for f in frames)


def test_async_read_times_out_when_the_simulation_stalls(runtime, cameras):
    import time

    stall = runtime.submit(lambda world: time.sleep(0.6))
    with pytest.raises(TimeoutError, match="wrist"):
        cameras["wrist"].async_read(timeout_ms=100)
    stall.result(5)
    assert cameras["wrist"].async_read(timeout_ms=2000).shape == (240, 320, 3)  # recovers
