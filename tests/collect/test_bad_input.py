"""Bad hardware input: a clear error that says what to do, and no hang."""

import pytest

from collect.cameras import CameraNotFound, make_cameras, parse_source
from collect.sdk import CanPortError, check_socketcan_port, open_sdk

pytestmark = pytest.mark.timeout(30)


def test_a_can_port_that_does_not_exist(tmp_path):
    (tmp_path / "eth0").mkdir()  # a /sys/class/net with no CAN interface
    with pytest.raises(
        CanPortError, match=r"'can7' does not exist.*ip link set can7 up type can bitrate 1000000"
    ):
        check_socketcan_port("can7", sys_net=tmp_path)


def test_opening_the_sdk_on_a_missing_socketcan_port_fails_fast():
    with pytest.raises(CanPortError, match="does not exist"):
        open_sdk("can-nonexistent-9", interface="socketcan")


def test_a_camera_path_that_does_not_exist():
    with pytest.raises(CameraNotFound, match="does not exist: plug the camera in"):
        make_cameras({"side": "/dev/v4l/by-id/usb-no-such-camera-video-index0"}, 640, 480, 30)
    assert parse_source("2") == 2


def test_no_cameras_assigned_says_where_to_assign_them():
    with pytest.raises(CameraNotFound, match="Station page"):
        make_cameras({}, 640, 480, 30)


def test_a_can_port_that_is_down_or_at_the_wrong_bitrate_says_the_command_that_fixes_it():
    from collect.can_ports import parse_ip_link

    def link(name, flags, bitrate):  # `ip -details -json link show dev NAME`, trimmed
        info = (
            {"state": "ERROR-ACTIVE", "bittiming": {"bitrate": bitrate}} if bitrate else {"state": "STOPPED"}
        )
        return parse_ip_link(
            {
                "ifname": name,
                "flags": flags,
                "operstate": "UP" if "UP" in flags else "DOWN",
                "linkinfo": {"info_kind": "can", "info_data": info},
            }
        )

    found = [
        link("can0", ["NOARP", "ECHO"], None),
        link("can1", ["NOARP", "UP", "LOWER_UP"], 500_000),
        link("can2", ["NOARP", "UP", "LOWER_UP"], 1_000_000),
    ]
    with pytest.raises(
        CanPortError, match=r"'can0' is down: `sudo ip link set can0 up type can bitrate 1000000`"
    ):
        check_socketcan_port("can0", found=found)
    with pytest.raises(CanPortError, match=r"'can1' runs at 500000 bit/s; the PiPER needs 1000000"):
        check_socketcan_port("can1", found=found)
    check_socketcan_port("can2", found=found)  # ready: no error
    with pytest.raises(CanPortError, match=r"CAN ports here: can0, can1, can2"):
        check_socketcan_port("can5", found=found)


def test_a_port_that_vanishes_between_the_check_and_the_open_is_a_clear_error(monkeypatch):
    """piper_sdk reports a failed socket open only as a status code; we turn it into an error."""
    import collect.sdk

    monkeypatch.setattr(collect.sdk, "check_socketcan_port", lambda port: None)  # it was there a moment ago
    with pytest.raises(CanPortError, match=r"cannot open CAN port 'can-gone-3' \(socketcan\): it vanished"):
        open_sdk("can-gone-3", interface="socketcan")
    from piper_sdk import C_PiperInterface_V2

    assert "can-gone-3" not in C_PiperInterface_V2._instances  # the name can be opened again later
