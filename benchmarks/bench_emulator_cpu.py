"""CPU cost of the PiPER CAN emulator and piper_sdk at 200 Hz on a python-can virtual bus.

    .venv/bin/python benchmarks/bench_emulator_cpu.py [--seconds 5] [--rate 200]

Scenarios, one after the other in this process (each on a fresh channel):
  emulator alone      a follower emulator reporting the full frame set, nobody listening
                      (the reference: the cost of encoding and putting frames on the bus)
  + SDK reading       the real C_PiperInterface_V2 decoding every frame in its reader thread
  + follower 30 Hz    PiperFollower enabled, send_action every 1/30 s (recording / policy rate)
  one-bus teleop      leader + follower emulators on one bus, the SDK hearing both (linkage)
For each: process CPU time over wall time (% of one core), the CPU of each thread, the
emulators' achieved tick rate and frames/s put on the bus (the SDK's own windowed fps
counter beside it), and the ratio against the emulator-alone reference. The machine is shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_channels = itertools.count()


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def cpu_by_thread(labels: dict[threading.Thread, str]) -> dict[str, float]:
    """CPU seconds per live thread of this process, by label or thread name (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after the ")" the fields start at 3 (state); utime and stime are fields 14 and 15
        name = labels.get(thread, thread.name)
        seconds[name] = seconds.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return seconds


def measure(
    label: str, seconds: float, emulators, sdk=None, work=None, reference: float | None = None
) -> float:
    """Run `work` (or sleep) for `seconds`; print CPU % of one core overall and per thread."""
    from collect.sdk import sdk_threads

    labels = {thread: f"SDK {role}" for role, thread in sdk_threads(sdk).items()} if sdk is not None else {}
    time.sleep(0.5)  # settle: threads started, queues drained
    ticks0 = [e.ticks for e in emulators]
    frames0 = sum(e.frames_sent for e in emulators)
    threads0, cpu0, wall0 = cpu_by_thread(labels), time.process_time(), time.perf_counter()
    if work is None:
        time.sleep(seconds)
    else:
        work(seconds)
    wall = time.perf_counter() - wall0
    cpu = 100.0 * (time.process_time() - cpu0) / wall
    threads1 = cpu_by_thread(labels)
    per_thread = sorted(
        ((100.0 * (threads1[n] - threads0.get(n, 0.0)) / wall, n) for n in threads1), reverse=True
    )
    tick_rates = ", ".join(
        f"{e.role} {(e.ticks - t0) / wall:.0f}" for e, t0 in zip(emulators, ticks0, strict=True)
    )
    bus_rate = (sum(e.frames_sent for e in emulators) - frames0) / wall
    line = f"{label:<20} process CPU {cpu:5.1f}% of one core | emulator ticks/s: {tick_rates}, {bus_rate:.0f} frames/s"
    if sdk is not None:
        line += f" | SDK's own fps counter {sdk.GetCanFps():.0f}"
    if reference:
        line += f" | x{cpu / reference:.2f} the emulator alone"
    print(line)
    print("    by thread: " + ", ".join(f"{n} {pct:.1f}%" for pct, n in per_thread if pct >= 0.5))
    return cpu


def main() -> None:
    from collect.emulator import PiperEmulator
    from collect.follower import PiperFollower, PiperFollowerConfig
    from collect.joint_source import FirstOrderJoints
    from collect.limits import HOME_JOINTS_RAD, MOTOR_KEYS
    from collect.sdk import close_sdk, open_sdk

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=200.0, help="emulator tick rate, Hz")
    args = parser.parse_args()

    def channel(label: str) -> str:
        return f"bench-{os.getpid()}-{next(_channels)}-{label}"

    def emulator(name: str, role: str = "follower") -> PiperEmulator:
        return PiperEmulator(name, role=role, rate_hz=args.rate, joint_source=FirstOrderJoints())

    print(f"cpus={os.cpu_count()} rate={args.rate:.0f} Hz, {args.seconds:.0f} s each | load {load_average()}")

    with emulator(channel("alone")) as emu:
        reference = measure("emulator alone", args.seconds, [emu])

    with emulator(channel("sdk")) as emu:
        sdk = open_sdk(emu.channel, interface="virtual")
        try:
            measure("+ SDK reading", args.seconds, [emu], sdk, reference=reference)
        finally:
            close_sdk(sdk)

    with emulator(channel("follower")) as emu:
        arm = PiperFollower(PiperFollowerConfig(port=emu.channel, interface="virtual"), cameras={})
        arm.connect()

        def command_at_30_hz(seconds: float) -> None:
            end, i = time.perf_counter() + seconds, 0
            while time.perf_counter() < end:
                q = list(HOME_JOINTS_RAD) + [0.03]
                q[0] = 0.3 * math.sin(i / 30.0)
                arm.send_action(dict(zip(MOTOR_KEYS, q, strict=True)))
                i += 1
                time.sleep(1 / 30)

        try:
            arm.enable()
            measure("+ follower 30 Hz", args.seconds, [emu], arm.sdk, command_at_30_hz, reference)
        finally:
            arm.disconnect()

    shared = channel("shared")
    with ExitStack() as stack:
        follower = stack.enter_context(emulator(shared))
        leader = stack.enter_context(emulator(shared, role="leader"))
        sdk = open_sdk(shared, interface="virtual")
        try:
            measure("one-bus teleop", args.seconds, [follower, leader], sdk, reference=reference)
        finally:
            close_sdk(sdk)
    print(f"load after {load_average()}")


if __name__ == "__main__":
    main()
