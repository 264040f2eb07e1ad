"""Recording on the real-time path: our RecordingSession vs lerobot's own `record_loop`.

    .venv/bin/python benchmarks/bench_record.py [--seconds 60] [--fps 30] [--size 480x640] [--skip-lerobot-default]

Same robot and cameras for every run, in one process: the PiPER follower and leader
(`PiperFollower` / `PiperLeader` through the real piper_sdk) on a python-can virtual bus
answered by our emulators (leader-follower linkage on one bus), the leader moved by a
sine-wave "operator" thread, and two 480x640 cameras fed from a cheap source (a moving
test pattern). One episode of `--seconds` each:

1. ours: `RecordingSession` (wall-clock pacing, frames handed to the writer thread, h264
   streaming encoding); two episodes back to back: Keep, then Start at once, so the second
   episode is recorded while the first is saved (finalize, swap, reopen on the writer thread);
2. lerobot `record_loop` writing to a dataset with the same h264 streaming encoder;
3. lerobot `record_loop` with `lerobot-record`'s defaults (AV1, encoded after the episode).

For each: achieved fps, dropped frame slots (gaps of 1.5 periods or more), missing frames
(the episode's wall time x fps, minus the frames it has: a loop that catches up after a late
tick misses none, one that drifts slow misses them without a single long gap), late ticks,
p99 and max loop period (all measured the same way: a timestamp per `get_observation()`
call), and the wait between episodes (from
"episode over" until the next episode records: ours Keep + Start; lerobot's
`save_episode`, which `record_loop`'s caller must wait for). Ours also prints when the
kept episode was on disk, and the loop figures of the second episode, which overlapped
that save. Ratios are ours / lerobot's. Load average is printed: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HEIGHT, WIDTH = 480, 640  # --size changes them


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# -- a cheap camera source (lerobot Camera) ---------------------------------------------------
def make_pattern_camera_class():
    import numpy as np
    from lerobot.cameras import Camera, CameraConfig

    class PatternCamera(Camera):
        """Frames cut from a precomputed pattern at an offset that moves with time."""

        def __init__(self, name: str, fps: int):
            super().__init__(CameraConfig(fps=fps, width=WIDTH, height=HEIGHT))
            yy, xx = np.mgrid[0:HEIGHT, 0 : 2 * WIDTH]
            seed = sum(map(ord, name))
            self._pattern = np.stack(
                [(xx * 0.3 + seed) % 255, (yy * 0.5) % 255, ((xx + yy) * 0.2) % 255], axis=-1
            ).astype(np.uint8)
            self._connected = False
            self._t0 = time.perf_counter()

        @property
        def is_connected(self) -> bool:
            return self._connected

        @staticmethod
        def find_cameras():
            return []

        def connect(self, warmup: bool = True) -> None:
            self._connected = True

        def read(self, color_mode=None):
            shift = int((time.perf_counter() - self._t0) * 120) % WIDTH
            return np.ascontiguousarray(self._pattern[:, shift : shift + WIDTH])

        def async_read(self, timeout_ms: float = 200):
            return self.read()

        def read_latest(self, max_age_ms: int = 500):
            return self.read()

        def disconnect(self) -> None:
            self._connected = False

    return PatternCamera


class EmulatedStation:
    """Follower + leader on one emulated bus (PiPER linkage) with pattern cameras."""

    sim = None

    def __init__(self, fps: int):
        from collect.emulator import PiperEmulator
        from collect.follower import PiperFollower, PiperFollowerConfig
        from collect.joint_source import FirstOrderJoints
        from collect.leader import PiperLeader, PiperLeaderConfig
        from collect.sim.runtime import unique_channel

        channel = unique_channel("bench")
        self.leader_source = FirstOrderJoints(tau_s=0.05)
        self.emulators = [
            PiperEmulator(channel, role="follower", joint_source=FirstOrderJoints(tau_s=0.08)),
            PiperEmulator(channel, role="leader", joint_source=self.leader_source),
        ]
        for emulator in self.emulators:
            emulator.start()
        camera_class = make_pattern_camera_class()
        self.cameras = {name: camera_class(name, fps) for name in ("side", "wrist")}
        self.follower = PiperFollower(
            PiperFollowerConfig(port=channel, interface="virtual"), cameras=self.cameras
        )
        self.leader = PiperLeader(PiperLeaderConfig(port=channel, interface="virtual"))
        self.follower.connect()
        self.leader.connect()
        self.is_connected = True
        self._stop = threading.Event()
        self._operator = threading.Thread(target=self._move_leader, daemon=True)
        self._operator.start()

    def _move_leader(self) -> None:
        import math

        from collect.limits import HOME_JOINTS_RAD

        t0 = time.perf_counter()
        while not self._stop.is_set():
            t = time.perf_counter() - t0
            q = tuple(h + 0.15 * math.sin(0.8 * t + j) for j, h in enumerate(HOME_JOINTS_RAD))
            self.leader_source.command(q, 0.03 + 0.02 * math.sin(t))
            time.sleep(0.01)

    def enable(self) -> None:
        self.follower.enable()

    def estop(self) -> None:
        self.follower.estop()

    def close(self) -> None:
        self._stop.set()
        self.leader.disconnect()
        self.follower.disconnect()
        for emulator in self.emulators:
            emulator.stop()


class TickClock:
    """Timestamps every get_observation() call: the same measurement for every loop."""

    def __init__(self, follower, fps: int):
        self.fps = fps
        self.stamps: list[float] = []
        self._inner = follower.get_observation
        follower.get_observation = self._observe

    def _observe(self):
        self.stamps.append(time.perf_counter())
        return self._inner()

    def figures(self, since: float, until: float) -> dict:
        stamps = [t for t in self.stamps if since <= t <= until]
        periods = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
        target = 1.0 / self.fps
        if not periods:
            return {"frames": len(stamps)}
        elapsed = stamps[-1] - stamps[0]
        return {
            "frames": len(stamps),
            "fps": (len(stamps) - 1) / elapsed,
            # gaps of 1.5 periods or more, each counted as the slots it spans
            "dropped": sum(max(0, round(p / target) - 1) for p in periods),
            # frames the episode lacks for the wall time it lasted: a late tick that the
            # loop catches up on loses none, a loop that drifts slow loses them one by one
            "missing": max(0, round(elapsed / target) + 1 - len(stamps)),
            "late": sum(p > 1.5 * target for p in periods),
            "p99_ms": 1000 * periods[min(len(periods) - 1, int(0.99 * len(periods)))],
            "max_ms": 1000 * periods[-1],
        }


def run_ours(station, clock: TickClock, datasets_dir: Path, seconds: float, fps: int) -> dict:
    from collect.recording.plan import RecordingPlan
    from collect.recording.session import RecordingSession, SessionState
    from collect.recording.writer import read_sidecar

    plan = RecordingPlan(
        "bench_ours",
        tasks=["open_pot"],
        episodes_per_task=3,
        fps=fps,
        max_episode_s=seconds,
        reset_s=0.0,
        image_size=(HEIGHT, WIDTH),
        backend="piper",
        operator="bench",
    )

    def record_episode(began: float) -> dict:
        while session.state == SessionState.RECORDING:
            time.sleep(0.01)
        return clock.figures(began, time.perf_counter())

    with RecordingSession(plan, datasets_dir, borrowed_station=station) as session:
        clock.stamps.clear()
        session.start().result(30)
        figures = record_episode(time.perf_counter())
        t = time.perf_counter()
        info = session.keep().result(120)
        while True:  # Start works again: the wait between episodes ends here
            try:
                session.start().result(30)
                break
            except RuntimeError:  # the encoder is behind (a starved CPU): Start waits for it
                time.sleep(0.01)
        began = time.perf_counter()
        figures["wait_s"] = began - t
        figures["backlog_at_start"] = session.writer.pending_frames
        saved = info["saved"].result(120)
        figures["on_disk_s"] = time.perf_counter() - t  # overlapped the second episode
        second = record_episode(began)  # recorded while the first was saved
        last = session.keep().result(120)["saved"].result(120)
        figures["second"] = second
        figures["saved_frames"] = saved.frames
        rows = read_sidecar(session.writer.root)
        figures["video_dropped"] = sum(
            rows[r.episode_index]["timing"]["video_frames_dropped"] for r in (saved, last)
        )
        figures["save_s"] = rows[saved.episode_index]["timing"]["save_s"]
        figures["timer"] = session.snapshot().timing
    return figures


def run_lerobot(
    station, clock: TickClock, datasets_dir: Path, seconds: float, fps: int, streaming_h264: bool
) -> dict:
    from lerobot.datasets import LeRobotDataset
    from lerobot.processor import make_default_processors
    from lerobot.scripts.lerobot_record import record_loop
    from lerobot.utils.feature_utils import hw_to_dataset_features

    follower, leader = station.follower, station.leader
    features = {
        **hw_to_dataset_features(follower.action_features, "action"),
        **hw_to_dataset_features(follower.observation_features, "observation"),
    }
    name = "bench_lerobot_h264" if streaming_h264 else "bench_lerobot_default"
    from collect.recording.writer import EpisodeWriter

    # the same encoder settings as ours, so the comparison isolates the loop and the writer
    options = {"rgb_encoder": EpisodeWriter._encoder(), "streaming_encoding": True} if streaming_h264 else {}
    dataset = LeRobotDataset.create(
        "local/" + name,
        fps=fps,
        features=features,
        root=datasets_dir / name,
        robot_type="piper",
        use_videos=True,
        **options,
    )
    teleop_proc, robot_proc, obs_proc = make_default_processors()
    events = {"exit_early": False, "rerecord_episode": False, "stop_recording": False}
    clock.stamps.clear()
    began = time.perf_counter()
    failure = ""
    try:
        record_loop(
            follower,
            events,
            fps,
            teleop_proc,
            robot_proc,
            obs_proc,
            dataset=dataset,
            teleop=leader,
            control_time_s=seconds,
            single_task="open the pot",
        )
    except Exception as exc:  # e.g. the leader's frames went stale while the loop starved: report it
        failure = f"{type(exc).__name__}: {exc}"
    ended = time.perf_counter()
    figures = clock.figures(began, ended)
    figures["failure"] = failure
    figures["ran_s"] = ended - began
    figures["saved_frames"] = dataset.writer.episode_buffer["size"]
    encoder = dataset.writer._streaming_encoder
    figures["video_dropped"] = sum(encoder._dropped_frames.values()) if encoder is not None else 0
    t = time.perf_counter()
    dataset.save_episode()
    figures["wait_s"] = figures["keep_s"] = time.perf_counter() - t
    dataset.finalize()
    return figures


def show(label: str, f: dict) -> None:
    print(
        f"{label:34s} fps {f['fps']:5.1f}  frames {f['saved_frames']:5d}  dropped {f['dropped']:4d}  "
        f"missing {f['missing']:4d}  "
        f"late {f['late']:4d}  encoder drops {f['video_dropped']:4d}  p99 period {f['p99_ms']:6.1f} ms  "
        f"max {f['max_ms']:6.1f} ms  "
        f"wait between episodes {f['wait_s']:6.2f} s"
    )
    if "on_disk_s" in f:
        second = f["second"]
        print(
            f"{'':34s} first episode on disk {f['on_disk_s']:.2f} s after Keep (save {f['save_s']:.2f} s on the "
            f"writer thread, backlog {f['backlog_at_start']} frames at the next Start); the second episode, "
            f"recorded meanwhile: fps {second['fps']:.1f}, dropped {second['dropped']}, "
            f"missing {second['missing']}, late {second['late']}, "
            f"p99 period {second['p99_ms']:.1f} ms"
        )
    if f.get("failure"):
        print(f"{'':34s} the loop FAILED after {f['ran_s']:.1f} s: {f['failure']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", default="480x640", help="camera frames, HEIGHTxWIDTH")
    parser.add_argument("--skip-lerobot-default", action="store_true", help="skip the AV1 after-episode run")
    args = parser.parse_args()
    global HEIGHT, WIDTH
    HEIGHT, WIDTH = (int(v) for v in args.size.split("x"))
    from collect.recording.encoder import choose_h264

    print(f"{args.size} frames, two cameras, {args.fps} fps; {choose_h264().summary}")
    print(f"load average before: {load_average()} ({os.cpu_count()} CPUs)")
    station = EmulatedStation(args.fps)
    station.enable()
    clock = TickClock(station.follower, args.fps)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp:
        datasets_dir = Path(tmp)
        try:
            results["ours"] = run_ours(station, clock, datasets_dir, args.seconds, args.fps)
            show("ours (RecordingSession, h264 stream)", results["ours"])
            results["h264"] = run_lerobot(station, clock, datasets_dir, args.seconds, args.fps, True)
            show("lerobot record_loop, h264 stream", results["h264"])
            if not args.skip_lerobot_default:
                results["default"] = run_lerobot(station, clock, datasets_dir, args.seconds, args.fps, False)
                show("lerobot record_loop, defaults (AV1)", results["default"])
        finally:
            station.close()
    timer = results["ours"]["timer"]
    if timer is not None:
        print(
            f"ours, own live timer: {timer.achieved_fps:.1f} fps, dropped {timer.dropped_frames}, "
            f"late {timer.late_ticks}, p99 {timer.p99_period_ms:.1f} ms, camera fps {timer.camera_fps}"
        )
    ours = results["ours"]
    for key, label in (("h264", "lerobot h264 stream"), ("default", "lerobot defaults")):
        if key in results:
            ref = results[key]
            print(
                f"ratio ours / {label}: fps {min(ours['fps'], ours['second']['fps']) / ref['fps']:.3f} "
                f"(the slower of our two episodes), p99 period {ours['p99_ms'] / ref['p99_ms']:.3f}, "
                f"wait between episodes {ours['wait_s'] / ref['wait_s']:.3f}, "
                f"dropped {ours['dropped'] + ours['second']['dropped']} (both episodes) vs {ref['dropped']}, "
                f"missing {ours['missing'] + ours['second']['missing']} vs {ref['missing']}"
            )
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
