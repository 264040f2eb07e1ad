"""Which CAN interfaces this machine has, whether they are up, and at what bitrate.

CAN interfaces are the entries of /sys/class/net whose link type is 280 (ARPHRD_CAN:
USB-CAN adapters as can0, can1, ..., and vcan). State and bitrate come from
`ip -details -json link show dev NAME` (iproute2); without `ip`, from sysfs alone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

SYS_NET = Path("/sys/class/net")
ARPHRD_CAN = "280"
PIPER_BITRATE = 1_000_000


@dataclass(frozen=True)
class CanPort:
    name: str
    state: str  # "up", "down", "unknown" (operstate; vcan reports "unknown" when up)
    bitrate: int | None  # None for vcan or when `ip` cannot tell
    kind: str  # "can", "vcan", ... (iproute2 info_kind)
    admin_up: bool  # `ip link set NAME up` was done

    @property
    def usable(self) -> bool:
        return self.admin_up and (self.bitrate in (None, PIPER_BITRATE))

    def fix(self) -> str | None:
        """What to run so that a PiPER can talk on this port, or None if it is ready."""
        if self.kind == "vcan":
            return None if self.admin_up else f"sudo ip link set {self.name} up"
        if not self.admin_up or self.bitrate != PIPER_BITRATE:
            return (
                f"sudo ip link set {self.name} down; "
                f"sudo ip link set {self.name} up type can bitrate {PIPER_BITRATE}"
            )
        return None

    def to_dict(self) -> dict:
        return asdict(self) | {"usable": self.usable, "fix": self.fix()}


def parse_ip_link(entry: dict) -> CanPort:
    """One object of `ip -details -json link` output -> CanPort."""
    info = entry.get("linkinfo", {})
    bitrate = info.get("info_data", {}).get("bittiming", {}).get("bitrate")
    flags = entry.get("flags", [])
    return CanPort(
        name=entry["ifname"],
        state=str(entry.get("operstate", "unknown")).lower(),
        bitrate=int(bitrate) if bitrate is not None else None,
        kind=info.get("info_kind", "can"),
        admin_up="UP" in flags,
    )


def _can_names(sys_net: Path) -> list[str]:
    if not sys_net.is_dir():
        return []
    names = []
    for iface in sorted(sys_net.iterdir()):
        try:
            if (iface / "type").read_text().strip() == ARPHRD_CAN:
                names.append(iface.name)
        except OSError:  # interface vanished while listing
            continue
    return names


def _from_sysfs(sys_net: Path, name: str) -> CanPort:
    def read(attr: str, default: str) -> str:
        try:
            return (sys_net / name / attr).read_text().strip()
        except OSError:
            return default

    flags = int(read("flags", "0x0"), 16)
    kind = "vcan" if name.startswith("vcan") else "can"
    return CanPort(name, read("operstate", "unknown").lower(), None, kind, bool(flags & 0x1))


def list_can_ports(sys_net: Path = SYS_NET) -> list[CanPort]:
    """All CAN interfaces, sorted by name; [] on a machine without any."""
    names = _can_names(sys_net)
    if not names:
        return []
    ip = shutil.which("ip")
    ports = []
    for name in names:
        port = None
        if ip:
            try:
                out = subprocess.run(
                    [ip, "-details", "-json", "link", "show", "dev", name],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=True,
                ).stdout
                port = parse_ip_link(json.loads(out)[0])
            except (subprocess.SubprocessError, json.JSONDecodeError, IndexError, KeyError):
                port = None
        ports.append(port or _from_sysfs(sys_net, name))
    return ports


def choose_backend(
    backend: str, follower_port: str, leader_port: str | None, ports: list[CanPort] | None = None
) -> tuple[str, str]:
    """The backend to open and a sentence for the operator saying why.

    The real arm is used only when asked for and when its ports are up at the PiPER's
    bitrate; otherwise the simulated PiPER, with the command that would fix the port.
    """
    ports = list_can_ports() if ports is None else ports
    if backend != "piper":
        up = [port.name for port in ports if port.usable]
        if up:
            return "sim", (
                f"backend 'sim' chosen in the hardware set-up; CAN port {', '.join(up)} is up: "
                "choose backend 'piper' below to drive the real arm"
            )
        return "sim", "no CAN interface is up, so the simulated PiPER runs (backend 'sim')"
    by_name = {port.name: port for port in ports}
    for role, name in (("follower", follower_port), ("leader", leader_port)):
        if name is None:
            continue
        port = by_name.get(name)
        if port is None:
            found = ", ".join(by_name) or "none"
            return "sim", (
                f"no CAN interface '{name}' for the {role} (found: {found}); "
                "plug in the USB-CAN adapter. Running on the simulated PiPER"
            )
        if not port.usable:
            return (
                "sim",
                f"CAN port {name} ({role}) is not ready: run `{port.fix()}`. Running on the simulated PiPER",
            )
    return "piper", f"real PiPER on {follower_port}" + (f" (leader on {leader_port})" if leader_port else "")
