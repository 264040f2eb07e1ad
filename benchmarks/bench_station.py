"""Station loop speed on the sim backend, and the CPU cost of the CAN emulator + piper_sdk.

    .venv/bin/python benchmarks/bench_station.py [--seconds 10] [--fps 30]

1. For 480x640 and 240x320: the recording loop a session runs at `--fps` (observation with
   both camera frames, leader action, follower command), paced by the wall clock. Prints the
   achieved rate, p50/p99 tick period and the work per tick; the reference is the raw
   frame-pair rate of the same sim runtime in the same process (rendering alone).
2. A follower emulator at 200 Hz with the real SDK reading it over a virtual bus, nothing
   else running: CPU as a percentage of one core.
Speed depends on load: the machine's load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds per live Python thread (by name), from /proc (Linux)."""
    import threading

    ticks = os.sysconf("SC_CLK_TCK")
    result = {}
    for thread in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        result[thread.name] = result.get(thread.name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return result


def station_loop(size: tuple[int, int], seconds: float, fps: int) -> None:
    from collect.station import StationConfig, open_station

    with open_station(StationConfig(backend="sim", image_size=size, fps=fps)) as station:
        station.enable()
        # Warm-up (llvmpipe compiles its shaders on the first frames), then the reference:
        # frame pairs/s of the same runtime, rendering only.
        start = time.perf_counter()
        while time.perf_counter() - start < 2.0:
            station.follower.get_observation()
        n_ref, start = 0, time.perf_counter()
        while time.perf_counter() - start < 3.0:
            station.sim.render_many(("side", "wrist"), size)
            n_ref += 1
        render_pairs_s = n_ref / (time.perf_counter() - start)

        period = 1.0 / fps
        ticks, work = [], []
        next_tick = time.perf_counter()
        last = None
        cpu0, wall0, threads0 = time.process_time(), time.perf_counter(), thread_cpu_seconds()
        while time.perf_counter() - wall0 < seconds:
            begin = time.perf_counter()
            if last is not None:
                ticks.append(begin - last)
            last = begin
            station.follower.get_observation()
            station.follower.send_action(station.leader.get_action())
            work.append(time.perf_counter() - begin)
            next_tick += period
            delay = next_tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.perf_counter()  # late: do not burst to catch up
        wall = time.perf_counter() - wall0
        cpu = 100 * (time.process_time() - cpu0) / wall
        threads1 = thread_cpu_seconds()
        per_thread = sorted(
            ((100 * (threads1[n] - threads0.get(n, 0.0)) / wall, n) for n in threads1), reverse=True
        )
        rate = len(ticks) / sum(ticks)
        print(
            f"station loop {size[0]}x{size[1]} @ {fps} Hz target: achieved {rate:.1f} Hz, "
            f"tick period p50 {1000 * percentile(ticks, 0.5):.1f} ms p99 {1000 * percentile(ticks, 0.99):.1f} ms, "
            f"work/tick mean {1000 * statistics.mean(work):.1f} ms p99 {1000 * percentile(work, 0.99):.1f} ms, "
            f"process CPU {cpu:.0f}% of one core | reference: render-only {render_pairs_s:.1f} pairs/s "
            f"(loop/render-only ratio {rate / render_pairs_s:.2f}) | load {load_average()}"
        )
        print(
            "  CPU % of one core by thread: " + ", ".join(f"{name} {pct:.0f}" for pct, name in per_thread[:8])
        )


def emulator_cpu(seconds: float) -> None:
    from collect.emulator import PiperEmulator
    from collect.joint_source import FirstOrderJoints
    from collect.sdk import close_sdk, open_sdk
    from collect.sim.runtime import unique_channel

    channel = unique_channel("bench")
    with PiperEmulator(channel, role="follower", rate_hz=200.0, joint_source=FirstOrderJoints()) as emulator:
        sdk = open_sdk(channel, interface="virtual")
        try:
            time.sleep(1.0)  # settle
            ticks0, frames0 = emulator.ticks, emulator.frames_sent
            cpu0, wall0 = time.process_time(), time.perf_counter()
            time.sleep(seconds)
            wall = time.perf_counter() - wall0
            cpu = 100 * (time.process_time() - cpu0) / wall
            tick_rate = (emulator.ticks - ticks0) / wall
            frame_rate = (emulator.frames_sent - frames0) / wall
            sdk_fps = sdk.GetCanFps()
        finally:
            close_sdk(sdk)
    print(
        f"emulator + SDK: emulator {tick_rate:.0f} ticks/s, {frame_rate:.0f} frames/s sent, SDK reads "
        f"{sdk_fps:.0f} frames/s; process CPU {cpu:.0f}% of one core | load {load_average()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args()
    print(f"MUJOCO_GL={os.environ['MUJOCO_GL']} cpus={os.cpu_count()} load {load_average()}")
    for size in ((480, 640), (240, 320)):
        station_loop(size, args.seconds, args.fps)
    emulator_cpu(min(args.seconds, 5.0))


if __name__ == "__main__":
    main()
