"""USB cameras by stable device path: discovery, configuration, clear errors without a hang."""

from pathlib import Path

import pytest

from collect.cameras import (
    CameraNotFound,
    CameraUnavailable,
    connect_camera,
    find_cameras,
    make_cameras,
    parse_source,
    stable_paths,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def fake_dev(tmp_path):
    """A /dev with three video nodes and the udev links of two cameras (no real hardware here)."""
    dev = tmp_path / "dev"
    dev.mkdir()
    for index in (0, 1, 10, 2):
        (dev / f"video{index}").write_bytes(b"")
    by_id, by_path = dev / "v4l" / "by-id", dev / "v4l" / "by-path"
    by_id.mkdir(parents=True)
    by_path.mkdir(parents=True)
    (by_id / "usb-Logitech_C920_ABC123-video-index0").symlink_to(dev / "video0")
    (by_path / "pci-0000:00:14.0-usb-0:2:1.0-video-index0").symlink_to(dev / "video0")
    (by_path / "pci-0000:00:14.0-usb-0:3:1.0-video-index0").symlink_to(dev / "video2")
    return dev, (by_id, by_path)


def test_discovery_lists_devices_in_index_order_with_their_stable_path(fake_dev):
    dev, dirs = fake_dev
    found = find_cameras(dev, probe=False, stable_dirs=dirs)
    assert [c["index"] for c in found] == [0, 1, 2, 10]  # numeric, not lexical, order
    by_index = {c["index"]: c for c in found}
    # by-id (model + serial) wins over by-path (USB port) when a device has both
    assert by_index[0]["stable_path"].endswith("by-id/usb-Logitech_C920_ABC123-video-index0")
    assert by_index[2]["stable_path"].endswith("by-path/pci-0000:00:14.0-usb-0:3:1.0-video-index0")
    assert by_index[1]["stable_path"] is None
    assert by_index[10]["device"] == str(dev / "video10")


def test_probing_skips_nodes_that_are_not_capture_devices(fake_dev):
    dev, dirs = fake_dev
    assert find_cameras(dev, probe=True, stable_dirs=dirs) == []  # empty files: OpenCV opens none
    assert stable_paths((dev / "no-such-dir",)) == {}


def test_a_stable_path_configures_lerobots_opencv_camera(fake_dev):
    from lerobot.cameras.opencv import OpenCVCamera

    dev, (by_id, _) = fake_dev
    link = by_id / "usb-Logitech_C920_ABC123-video-index0"
    cameras = make_cameras({"side": str(link), "wrist": "2"}, width=320, height=240, fps=30)
    assert all(isinstance(cam, OpenCVCamera) for cam in cameras.values())
    side, wrist = cameras["side"].config, cameras["wrist"].config
    assert Path(side.index_or_path) == link  # the link itself, not the /dev/videoN it points at today
    assert wrist.index_or_path == 2
    assert (side.width, side.height, side.fps) == (320, 240, 30)
    assert parse_source(" 3 ") == 3 and parse_source(4) == 4


def test_a_path_that_is_not_a_camera_is_a_clear_error_naming_the_role(fake_dev):
    dev, _ = fake_dev
    cameras = make_cameras({"wrist": str(dev / "video1")}, width=640, height=480, fps=30)
    with pytest.raises(CameraUnavailable, match=r"the wrist camera .* did not open.*Station page"):
        connect_camera("wrist", cameras["wrist"])
    assert not cameras["wrist"].is_connected


def test_a_missing_camera_path_fails_before_anything_opens():
    with pytest.raises(CameraNotFound, match="does not exist"):
        make_cameras({"side": "/dev/v4l/by-path/pci-0000:00:14.0-usb-0:9:1.0-video-index0"}, 640, 480, 30)


def test_follower_connect_with_a_broken_camera_releases_the_bus(follower_emulator, fake_dev):
    """A camera that will not open: a clear error, the SDK's threads stopped, the port free again."""
    import threading

    from collect.follower import PiperFollower, PiperFollowerConfig

    dev, _ = fake_dev
    cameras = make_cameras({"side": str(dev / "video1")}, width=640, height=480, fps=30)
    config = PiperFollowerConfig(port=follower_emulator.channel, interface="virtual")
    threads_before = set(threading.enumerate())
    arm = PiperFollower(config, cameras=cameras)
    with pytest.raises(CameraUnavailable, match="side camera"):
        arm.connect()
    assert not arm.is_connected
    assert {t for t in threading.enumerate() if t.is_alive()} <= threads_before
    arm = PiperFollower(config, cameras={})  # same port, opens cleanly
    arm.connect()
    arm.disconnect()
