import json
import subprocess
import sys

from app.commands import doctor
from collect.can_ports import CanPort, choose_backend, list_can_ports, parse_ip_link

# `ip -details -json link show dev can0` from a PEAK USB adapter (trimmed), up at 1 Mbit/s.
CAN0_UP = {
    "ifname": "can0",
    "flags": ["NOARP", "UP", "LOWER_UP", "ECHO"],
    "operstate": "UP",
    "linkinfo": {
        "info_kind": "can",
        "info_data": {"state": "ERROR-ACTIVE", "bittiming": {"bitrate": 1000000, "sample_point": "0.875"}},
    },
}
CAN1_DOWN = {
    "ifname": "can1",
    "flags": ["NOARP", "ECHO"],
    "operstate": "DOWN",
    "linkinfo": {"info_kind": "can", "info_data": {"state": "STOPPED"}},
}


def test_parse_ip_link_reads_state_and_bitrate():
    up, down = parse_ip_link(CAN0_UP), parse_ip_link(CAN1_DOWN)
    assert (up.name, up.state, up.bitrate, up.admin_up, up.usable) == ("can0", "up", 1_000_000, True, True)
    assert up.fix() is None
    assert (down.admin_up, down.bitrate, down.usable) == (False, None, False)
    assert down.fix() == "sudo ip link set can1 down; sudo ip link set can1 up type can bitrate 1000000"


def test_wrong_bitrate_is_not_usable():
    port = CanPort("can0", "up", 500_000, "can", True)
    assert not port.usable and "bitrate 1000000" in port.fix()


def test_choose_backend_falls_back_to_sim_and_says_why():
    up, down = parse_ip_link(CAN0_UP), parse_ip_link(CAN1_DOWN)
    assert choose_backend("piper", "can0", None, [up])[0] == "piper"
    backend, why = choose_backend("piper", "can0", "can1", [up, down])
    assert backend == "sim" and "can1" in why and "bitrate 1000000" in why
    backend, why = choose_backend("piper", "can7", None, [up])
    assert backend == "sim" and "can7" in why and "can0" in why
    backend, why = choose_backend("sim", "can0", None, [up])
    assert backend == "sim" and "can0 is up" in why
    backend, why = choose_backend("sim", "can0", None, [down])
    assert backend == "sim" and "no CAN interface is up" in why


def test_list_can_ports_finds_can_type_interfaces_in_sysfs(tmp_path):
    for name, kind, state, flags in (
        ("eth0", "1", "up", "0x1003"),
        ("canx9", "280", "down", "0x80"),
        ("vcanx8", "280", "unknown", "0xc1"),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "type").write_text(kind + "\n")
        (tmp_path / name / "operstate").write_text(state + "\n")
        (tmp_path / name / "flags").write_text(flags + "\n")
    ports = {p.name: p for p in list_can_ports(tmp_path)}  # `ip` does not know these: sysfs fallback
    assert set(ports) == {"canx9", "vcanx8"}
    assert not ports["canx9"].admin_up and ports["canx9"].fix().startswith("sudo ip link set canx9 down")
    assert ports["vcanx8"].admin_up and ports["vcanx8"].kind == "vcan" and ports["vcanx8"].usable


def test_this_machine_has_no_can_and_doctor_says_how_to_fix_it(workspace):
    sections = {s.name: s for s in doctor.collect_report(workspace.root, skip=("gpu", "mujoco_gl", "video"))}
    assert set(sections) == {"can", "cameras", "encoder", "disk"}
    if not list_can_ports():
        assert sections["can"].status == doctor.WARN and "USB-CAN" in sections["can"].fixes[0]
    from collect.cameras import find_cameras

    if not find_cameras(probe=False):
        assert sections["cameras"].status == doctor.WARN and "plug in" in sections["cameras"].fixes[0]
    assert sections["disk"].items[0]["free_gb"] > 0
    assert sections["disk"].items[0]["path"] == str(workspace.root)
    encoder = sections["encoder"]  # the GPU's h264 where PyAV opens it, else libx264 and why not
    assert encoder.status == doctor.OK and encoder.items[0]["chosen"] in (
        "h264_nvenc",
        "h264_vaapi",
        "libx264",
    )
    if encoder.items[0]["chosen"] == "libx264":
        assert [item["passed_over"] for item in encoder.items[1:]] and encoder.items[0]["on"] == "CPU"


def test_low_disk_is_a_failure_with_a_fix(workspace, monkeypatch):
    monkeypatch.setattr(doctor, "MIN_FREE_DISK_GB", 1e9)
    section = doctor.check_disk(workspace.root)
    assert section.status == doctor.FAIL and "--workspace" in section.fixes[0]


def test_a_crashing_check_is_reported_not_raised(workspace, monkeypatch):
    def broken():
        raise OSError("sysfs unreadable")

    monkeypatch.setattr(doctor, "check_can", broken)
    sections = {
        s.name: s for s in doctor.collect_report(workspace.root, skip=("gpu", "mujoco_gl", "cameras"))
    }
    assert sections["can"].status == doctor.FAIL and "sysfs unreadable" in sections["can"].fixes[0]


def test_doctor_json_end_to_end(workspace):
    """All five checks for real (GL probes and torch in child processes)."""
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "--workspace", str(workspace.root), "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(proc.stdout)
    assert set(report) == set(doctor.CHECKS)
    assert report["mujoco_gl"]["status"] == "ok"  # EGL works on these machines (tests render with it)
    assert report["mujoco_gl"]["items"][0]["chosen"] in ("egl", "osmesa")
    assert report["gpu"]["items"][0]["torch"]
    assert report["encoder"]["items"][0]["chosen"] in ("h264_nvenc", "h264_vaapi", "libx264")
    assert proc.returncode == (1 if any(s["status"] == "fail" for s in report.values()) else 0)
    text = subprocess.run(
        [sys.executable, "-m", "app.cli", "--workspace", str(workspace.root), "doctor", "--skip", "gpu"],
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    for name in ("can", "cameras", "mujoco_gl", "encoder", "disk"):
        assert name in text
