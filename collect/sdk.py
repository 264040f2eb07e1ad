"""Open and close piper_sdk's `C_PiperInterface_V2` on a bus we choose, with clear errors.

    sdk = open_sdk("can0")                          # SocketCAN, checked: exists, up, 1 Mbit/s
    sdk = open_sdk("sim-1", interface="virtual")    # python-can virtual channel (simulation)
    wait_for_feedback(sdk, "can0", timeout_s=2.0)   # frames arriving, else CanPortError
    close_sdk(sdk)                                  # stops the SDK's threads, frees the name

The SDK keeps one object per CAN name and its `DisconnectPort` leaves its monitor thread
running (a dead bus then spins the reader at 100% CPU): `close_sdk` stops every thread
the SDK started and forgets the instance, so the name can be opened again.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from pathlib import Path

from collect import can_protocol as p

SYS_NET = Path("/sys/class/net")
BITRATE = 1_000_000
_FIX_UP = "sudo ip link set {port} up type can bitrate 1000000"
_MANGLE = "_C_PiperInterface_V2__"  # the SDK keeps its threads in private attributes


def motor_values(joints, gripper_um: int) -> list[float]:
    """Six joints of an SDK message (fields `joint_1`..`joint_6`, mdeg) and a gripper opening
    (um) as the MOTOR_KEYS values (rad, m): measured feedback or a leader's command alike.
    Pass the message's part and read it once: the SDK's reader thread updates it in place."""
    mdeg = [joints.joint_1, joints.joint_2, joints.joint_3, joints.joint_4, joints.joint_5, joints.joint_6]
    return [p.mdeg_to_rad(v) for v in mdeg] + [p.um_to_m(gripper_um)]


class CanPortError(ConnectionError):
    """A CAN port that cannot be used; the message says what to do."""


class ArmError(RuntimeError):
    """The arm answered but refuses (e-stop, enable timeout); the message says what to do."""


def check_socketcan_port(port: str, sys_net: Path = SYS_NET, found: list | None = None) -> None:
    """Refuse a SocketCAN port that does not exist, is down, or runs at the wrong bitrate.

    `found`: the `collect.can_ports.CanPort`s already listed (else listed from `sys_net`).
    """
    from collect.can_ports import list_can_ports

    ports = {p.name: p for p in (list_can_ports(sys_net) if found is None else found)}
    if port not in ports:
        known = ", ".join(sorted(ports)) or "none"
        raise CanPortError(
            f"CAN port {port!r} does not exist (CAN ports here: {known}). Plug in the USB-CAN adapter, "
            f"then `{_FIX_UP.format(port=port)}`; or use the simulated arm (--backend sim)."
        )
    info = ports[port]
    if not info.admin_up or info.state == "down":
        raise CanPortError(f"CAN port {port!r} is down: `{_FIX_UP.format(port=port)}`")
    if info.bitrate is not None and info.bitrate != BITRATE:
        raise CanPortError(
            f"CAN port {port!r} runs at {info.bitrate} bit/s; the PiPER needs 1000000: "
            f"`sudo ip link set {port} down && {_FIX_UP.format(port=port)}`"
        )


def open_sdk(port: str, interface: str = "socketcan"):
    """A connected `C_PiperInterface_V2` whose reader thread is running on `port`."""
    from piper_sdk import C_PiperInterface_V2, LogLevel

    if interface == "socketcan":
        check_socketcan_port(port)
    _forget_instance(port)  # a stale singleton from an earlier connection would ignore our arguments
    sdk = C_PiperInterface_V2(port, judge_flag=False, can_auto_init=False, logger_level=LogLevel.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The 'bustype' argument is deprecated", DeprecationWarning)
        try:
            sdk.CreateCanBus(port, bustype=interface, expected_bitrate=BITRATE, judge_flag=False)
        except ConnectionError as exc:
            _forget_instance(port)
            raise _cannot_open(port, interface) from exc
        bus = sdk.GetCanBus()
        if interface == "virtual":
            # On Linux the SDK opens separate receive and send buses; on a virtual channel the
            # receive bus would then hear the SDK's own commands. Share one bus, as it does elsewhere.
            bus.Close()
            bus._share_bus_between_rx_tx = True
            bus.Init()
    if bus.recv_bus is None or bus.send_bus is None:  # the SDK reports a failed open only as a status
        _forget_instance(port)
        raise _cannot_open(port, interface)
    sdk.ConnectPort(piper_init=True)
    logging.getLogger("can").setLevel(logging.WARNING)  # the SDK lowers python-can's logger
    return sdk


def _cannot_open(port: str, interface: str) -> CanPortError:
    return CanPortError(
        f"cannot open CAN port {port!r} ({interface}): it vanished or is in use. Re-plug the adapter, "
        f"then `{_FIX_UP.format(port=port)}` (`piper-ws doctor` lists the ports)"
    )


def wait_for_feedback(sdk, port: str, timeout_s: float = 2.0) -> None:
    """Block until the arm's status frames arrive, else a CanPortError naming the likely cause."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sdk.GetArmStatus().time_stamp > 0 and sdk.GetArmJointMsgs().time_stamp > 0:
            return
        time.sleep(0.01)
    raise CanPortError(
        f"no frames from the arm on {port!r} within {timeout_s:.1f} s: is the arm powered on and its "
        "CAN cable on this adapter? A wrong bitrate also looks like this (the PiPER uses 1000000)."
    )


def close_sdk(sdk, timeout_s: float = 1.0) -> None:
    """Stop every thread the SDK started, close its bus and forget the instance."""
    port = sdk.GetCanName()
    for event in ("read_can_stop_event", "can_monitor_stop_event"):
        stop = getattr(sdk, _MANGLE + event, None)
        if stop is not None:
            stop.set()
    for name in ("can_deal_th", "can_monitor_th"):
        thread = getattr(sdk, _MANGLE + name, None)
        if thread is not None and thread.is_alive():
            thread.join(timeout=timeout_s)  # the reader wakes from recv() within 1 s
    fps = getattr(sdk, _MANGLE + "fps_counter", None)
    if fps is not None:
        fps.stop()
    try:
        sdk.DisconnectPort()  # closes the bus, marks the object disconnected
    finally:
        _forget_instance(port)


def sdk_threads(sdk) -> dict[str, threading.Thread]:
    """The threads the SDK started, by role: can_deal_th (frame reader), can_monitor_th, fps_counter."""
    threads = {name: getattr(sdk, _MANGLE + name, None) for name in ("can_deal_th", "can_monitor_th")}
    threads["fps_counter"] = getattr(getattr(sdk, _MANGLE + "fps_counter", None), "thread", None)
    return {name: thread for name, thread in threads.items() if isinstance(thread, threading.Thread)}


def sdk_threads_alive(sdk) -> list[str]:
    """Names of the SDK's threads still running (tests and diagnostics)."""
    return [name for name, thread in sdk_threads(sdk).items() if thread.is_alive()]


def _forget_instance(port: str) -> None:
    from piper_sdk import C_PiperInterface_V2

    with C_PiperInterface_V2._lock:
        C_PiperInterface_V2._instances.pop(port, None)
