"""`RecordingSession`: the state machine the Record page and `piper-ws record` both drive.

    READY --start--> RECORDING --stop / max length / sim done--> REVIEW
    REVIEW --keep / discard--> RESETTING (countdown) --> READY       (FINISHED when the plan is done)
    REVIEW --rerecord--> RECORDING                                    (= discard + start)

One loop thread owns the station: it reads the follower and the leader every tick (live
view), writes frames while RECORDING, and executes the commands other threads post
(`start()` etc. return a Future). Nothing a caller does touches the station directly
except `estop()`, which must work from anywhere at once.

Every episode starts from `collect.episode_start.EPISODE_START`, the state evaluation
starts from: in sim the scene is reset to it from the episode's seed; on the real arm
`home()` drives the follower there (two buses) or asks the operator to bring the leader
there (one bus), and the snapshot says how far the arm is from it.

On the sim backend the virtual operator drives the leader arm during an episode and the
loop runs in lockstep with physics: each recorded frame is followed by exactly 1/fps of
simulated time, and the state, action and images of a frame are of the same simulated
instant (`collect.sim.lockstep`), so no frame is ever dropped, whatever the CPU.

Keep hands the episode to the writer and returns at once (`EpisodeWriter.keep_async`):
the reset countdown, and the next episode, overlap its save. The `kept` event comes when
the episode is on disk (`Snapshot.saving` counts those still on their way); a save that
fails gives `save_failed`, and the episode no longer counts.

`auto=True` also keeps every finished episode and starts the next one, so a whole plan
records unattended; an episode ended by E-STOP, or on the real arm one whose loop fell
behind its fps, is held for review and never kept automatically.
"""

from __future__ import annotations

import datetime
import enum
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collect.episode_start import EPISODE_START
from collect.limits import MOTOR_KEYS
from collect.recording.pacing import loop_friendly_interpreter, make_pacer
from collect.recording.plan import RecordingPlan
from collect.recording.timing import BEHIND_FPS_FRACTION, LoopTimer, TimingStats

log = logging.getLogger(__name__)

IDLE_FPS = 6.0  # live view rate outside episodes (spares the CPU for encoding)
TRACE_LEN = 300  # samples of joint traces kept for the GUI
SIM_TAIL_S = 0.5  # keep recording this long after the sim task succeeded / the operator finished
# When the next episode may start. One kept episode still being saved is the normal overlap,
# and a short backlog drains in a moment; more means the encoder cannot keep up (a starved
# CPU): starting then would pile frames up and take the CPU from the next episode's loop.
MAX_SAVING = 1
START_BACKLOG_S = 1.0  # recorded video still waiting for the encoder


class SessionState(enum.Enum):
    OPENING = "opening"
    READY = "ready"
    RECORDING = "recording"
    REVIEW = "review"
    RESETTING = "resetting"
    FINISHED = "finished"
    CLOSED = "closed"
    FAILED = "failed"


@dataclass
class Snapshot:
    """What the GUI/CLI shows; a copy, safe to read on any thread."""

    state: SessionState
    task: str
    counts: dict[str, int]
    frames: int = 0
    countdown_s: float = 0.0
    images: dict[str, Any] = field(default_factory=dict)
    leader: list[list[float]] = field(default_factory=list)  # recent 7-vectors
    follower: list[list[float]] = field(default_factory=list)
    timing: TimingStats | None = None
    last_success: bool | None = None
    message: str = ""
    estopped: bool = False
    kept_seconds: float = 0.0  # recorded duration of the kept episodes (for the ETA)
    backlog: int = 0  # frames recorded but not yet handed to the video encoder
    saving: int = 0  # kept episodes still being written (on disk when this is 0)
    start_gap: float | None = None  # how far the follower is from the episode start pose (rad / m)


def default_station_factory(plan: RecordingPlan, task: str, hardware=None):
    """A station for `task`: sim in lockstep with that task's scene; the real arm as assigned."""
    from collect.station import StationConfig, open_station

    kwargs: dict[str, Any] = {}
    if hardware is not None and plan.backend == "piper":
        kwargs = {
            "follower_port": hardware.follower_port,
            "leader_port": hardware.leader_port,
            "cameras": dict(hardware.cameras),
        }
    config = StationConfig(
        backend=plan.backend,
        image_size=plan.image_size,
        fps=plan.fps,
        task=task if plan.backend == "sim" else None,
        realtime=plan.backend != "sim",
        **kwargs,
    )
    return open_station(config)


class RecordingSession:
    def __init__(
        self,
        plan: RecordingPlan,
        datasets_dir: str | Path,
        *,
        resume: bool = False,
        auto: bool = False,
        station_factory: Callable[[RecordingPlan, str], Any] | None = None,
        borrowed_station: Any = None,
        on_event: Callable[[str, dict], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.plan = plan
        self.datasets_dir = Path(datasets_dir)
        self.resume = resume
        self.auto = auto
        self._station_factory = station_factory or default_station_factory
        self._borrowed = borrowed_station  # an open station someone else owns (the GUI's real arm)
        self._on_event = on_event
        self._clock = clock
        self._commands: queue.Queue[tuple[Callable[[], Any], Future]] = queue.Queue()
        self._wake = threading.Event()  # a command was posted: the idle loop serves it at once
        self._accepting = False  # guarded by _lock: commands are queued only while the loop serves them
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_loop = threading.Event()
        self._opened: Future = Future()
        self.station: Any = None
        self.writer: Any = None
        self.state = SessionState.OPENING
        self.task = plan.tasks[0]
        self.counts: dict[str, int] = dict.fromkeys(plan.tasks, 0)
        self._message = ""
        self._frames = 0
        self._reset_until = 0.0
        self._images: dict[str, Any] = {}
        self._leader: deque = deque(maxlen=TRACE_LEN)
        self._follower: deque = deque(maxlen=TRACE_LEN)
        self._timer = LoopTimer(plan.fps)
        self._last_timing: TimingStats | None = None
        self._last_success: bool | None = None
        self._operator: Any = None
        self._episode_t = 0.0
        self._finish_at: float | None = None
        self._seed: int | None = None
        self._retries = 0
        # sim: the scene seeds each task's kept episodes used (a new episode never repeats one)
        self._kept_seeds: dict[str, set[int]] = {task: set() for task in plan.tasks}
        self._started_at = ""
        self._kept_seconds = 0.0
        self._relay: Any = None
        self._sim_started_at: float | None = None  # sim time of the episode's first frame
        self._sim_seconds: float | None = None  # simulated time the episode covered
        self._misses_at_start = 0  # the sim runtime's lockstep misses (a running total) at episode start
        self._ended_by_estop = False
        self._fell_behind = False  # real arm: the loop ran below BEHIND_FPS_FRACTION of its fps
        self._start_gap: float | None = None
        self._finishing = False  # the plan is complete; FINISHED once its last saves are on disk

    # -- life cycle ---------------------------------------------------------------------------
    def open(self, timeout_s: float = 180.0) -> RecordingSession:
        """Open the dataset (match-checked on resume) and the station; start the loop thread."""
        with self._lock:
            self._accepting = True
        self._thread = threading.Thread(target=self._run, name="recording-loop", daemon=True)
        self._thread.start()
        try:
            self._opened.result(timeout_s)
        except FutureTimeout:
            # the loop thread stops as soon as it has opened; nothing is recorded before then,
            # and a kill at any point leaves the dataset resumable
            self._stop_loop.set()
            raise RuntimeError(
                f"the recording session did not open within {timeout_s:.0f} s (dataset, arm and "
                "cameras): the CPU is likely too busy; free it and run the same command again "
                "(--resume continues a dataset)"
            ) from None
        return self

    def close(self, timeout_s: float = 60.0) -> None:
        """Discard an unkept episode, release the dataset (loadable) and the station."""
        if self._thread is None:
            return
        self._stop_loop.set()
        self._thread.join(timeout_s)
        self._thread = None

    def __enter__(self) -> RecordingSession:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- commands (any thread; run on the loop thread) ---------------------------------------
    def start(self) -> Future:
        return self._post(self._do_start)

    def stop(self) -> Future:
        return self._post(self._do_stop)

    def keep(self, success: bool | None = None, note: str = "") -> Future:
        return self._post(lambda: self._do_keep(success, note))

    def discard(self) -> Future:
        return self._post(self._do_discard)

    def rerecord(self) -> Future:
        return self._post(self._do_rerecord)

    def switch_task(self, task: str) -> Future:
        return self._post(lambda: self._do_switch(task))

    def skip_reset(self) -> Future:
        return self._post(self._do_skip_reset)

    def home(self) -> Future:
        """Bring the arm to the episode start pose (between episodes)."""
        return self._post(self._do_home)

    def set_auto(self, auto: bool) -> None:
        self.auto = auto

    def estop(self) -> None:
        """Stop the arm now (any thread); a running episode stops and waits for review."""
        station = self.station
        if station is not None:
            station.estop()
        self._post(lambda: self._do_stop() if self.state == SessionState.RECORDING else None)
        self._emit("estop", {})

    def resume_arm(self) -> Future:
        return self._post(lambda: self.station.resume())

    def _post(self, fn: Callable[[], Any]) -> Future:
        future: Future = Future()
        with self._lock:
            if not self._accepting:
                future.set_exception(RuntimeError(f"the recording session is not open ({self.state.value})"))
                return future
            self._commands.put((fn, future))
        self._wake.set()
        return future

    # -- what the GUI/CLI shows ---------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        with self._lock:
            countdown = (
                max(0.0, self._reset_until - self._clock()) if self.state == SessionState.RESETTING else 0.0
            )
            station = self.station
            estopped = bool(
                station is not None
                and station.follower is not None
                and getattr(station.follower, "estopped", False)
            )
            return Snapshot(
                state=self.state,
                task=self.task,
                counts=dict(self.counts),
                frames=self._frames,
                countdown_s=countdown,
                images=dict(self._images),
                leader=list(self._leader),
                follower=list(self._follower),
                timing=self._last_timing,
                last_success=self._last_success,
                message=self._message,
                estopped=estopped,
                kept_seconds=self._kept_seconds,
                backlog=self.writer.pending_frames if self.writer is not None else 0,
                saving=self.writer.saving if self.writer is not None else 0,
                start_gap=self._start_gap,
            )

    def eta_s(self) -> float | None:
        """Time left for the plan: mean kept-episode length plus reset, times episodes left."""
        kept = sum(self.counts.values())
        left = sum(max(0, self.plan.episodes_per_task - n) for n in self.counts.values())
        if kept == 0:
            return None if left else 0.0
        return left * (self._kept_seconds / kept + self.plan.reset_s)

    # -- the loop thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._open_all()
        except BaseException as exc:
            self._set_state(SessionState.FAILED, str(exc))
            self._opened.set_exception(exc)
            self._teardown()
            return
        try:
            with loop_friendly_interpreter():
                self._opened.set_result(self)
                while not self._stop_loop.is_set():
                    self._serve_commands()
                    self._tick()
        except BaseException as exc:  # the loop must never die silently: say why
            log.exception("recording loop failed")
            self._set_state(SessionState.FAILED, f"recording stopped: {exc}")
            self._emit("failed", {"error": str(exc)})
        finally:
            self._fail_pending()
            self._teardown()

    def _open_all(self) -> None:
        from collect.recording.writer import EpisodeWriter, read_sidecar

        self.writer = EpisodeWriter.open(self.plan, self.datasets_dir, resume=self.resume)
        for instruction in self.writer.episode_tasks():
            task = self.plan.task_of_instruction(instruction)
            if task in self.counts:
                self.counts[task] += 1
        kept_rows = read_sidecar(self.writer.root).values()
        self._kept_seconds = sum(row.get("frames", 0) for row in kept_rows) / self.plan.fps
        for row in kept_rows:
            if row.get("task") in self._kept_seeds and row.get("seed") is not None:
                self._kept_seeds[row["task"]].add(row["seed"])
        next_task = self._next_unfinished_task(self.plan.tasks[0])
        if next_task is None:
            self.task = self.plan.tasks[-1]
            self._open_station(self.task)
            self._set_state(SessionState.FINISHED, "the plan is complete")
            return
        self.task = next_task
        self._open_station(self.task)
        self._set_state(SessionState.READY, "ready")

    def _open_station(self, task: str) -> None:
        was_estopped = self.station is not None and getattr(self.station.follower, "estopped", False)
        if self.station is not None and self._borrowed is None:
            self.station.disconnect()
            self.station = None
        station = self._borrowed if self._borrowed is not None else self._station_factory(self.plan, task)
        if not station.is_connected:
            station.connect()
        if was_estopped:
            station.estop()  # a new sim scene must not clear the operator's e-stop
        else:
            station.enable()
        self.station = station
        from collect.teleop import TeleopRelay

        self._relay = TeleopRelay(station.leader, station.follower)
        self._pacer = make_pacer(station, self.plan.fps)
        self._timer.lockstep = self._pacer.lockstep

    def _teardown(self) -> None:
        for closer in (
            lambda: self.writer is not None and self.writer.close(),
            lambda: self.station is not None and self._borrowed is None and self.station.disconnect(),
        ):
            try:
                closer()
            except Exception:
                log.exception("closing the recording session")
        self.writer = None
        self.station = None
        if self.state != SessionState.FAILED:
            self._set_state(SessionState.CLOSED, "closed")

    def _serve_commands(self) -> None:
        while True:
            try:
                fn, future = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(fn())
            except BaseException as exc:
                self._message = str(exc)
                future.set_exception(exc)

    def _fail_pending(self) -> None:
        with self._lock:  # from now on _post refuses at once instead of queueing forever
            self._accepting = False
        while True:
            try:
                _, future = self._commands.get_nowait()
            except queue.Empty:
                return
            future.set_exception(RuntimeError("the recording session closed"))

    def _tick(self) -> None:
        recording = self.state == SessionState.RECORDING
        if recording and self._operator is not None:
            self._drive_virtual_leader()
        if self._pacer.lockstep:
            from collect.sim.lockstep import sync_reports

            sync_reports(self.station)  # state, action and images of one simulated instant
        observation = self.station.follower.get_observation()
        if recording and getattr(self.station.follower, "estopped", False):
            self._do_stop()  # e-stop (from any thread): the episode ends here and waits for review
            return
        if recording:
            try:
                action, _ = self._relay.step()
            except RuntimeError:
                if getattr(self.station.follower, "estopped", False):  # e-stop between the check and the send
                    self._do_stop()
                    return
                raise
        else:
            action = self.station.leader.get_action()
        state = [float(observation[k]) for k in MOTOR_KEYS]
        leader = [float(action[k]) for k in MOTOR_KEYS]
        images = {cam: observation[cam] for cam in self.plan.cameras if cam in observation}
        with self._lock:
            self._images = images
            self._leader.append(leader)
            self._follower.append(state)
            self._start_gap = EPISODE_START.gap(dict(zip(MOTOR_KEYS, state, strict=True)))
        if recording:
            self.writer.add_frame(state, leader, images, self.plan.instruction(self.task))
            self._timer.tick(images)
            self._frames += 1
            # The frame's action acts for one period; in sim, exactly 1/fps of physics.
            self._pacer.wait()
            self._episode_t += 1.0 / self.plan.fps
            if self._frames % self.plan.fps == 0:
                self._last_timing = self._timer.stats()
            if self._episode_over():
                self._do_stop()
            return
        if self._finishing:
            if self.writer.saving == 0:
                self._finishing = False
                self._set_state(SessionState.FINISHED, "the plan is complete")
                self._emit("finished", {"counts": dict(self.counts)})
        elif (
            self.state == SessionState.RESETTING
            and self._clock() >= self._reset_until
            and self._writer_behind() is None
        ):
            self._set_state(SessionState.READY, "ready")
            if self.auto:
                self._do_start()
                return
        elif (
            self.state == SessionState.REVIEW
            and self.auto
            and not (self._ended_by_estop or self._fell_behind)
        ):
            self._do_keep(self._last_success, "auto")
            return
        self._wake.wait(1.0 / IDLE_FPS)  # Start right after Keep is served now, not a tick later
        self._wake.clear()
        if getattr(self._pacer, "lockstep", False):
            self._pacer.wait()  # the sim world keeps moving (arm holds, objects settle)

    def _drive_virtual_leader(self) -> None:
        sim = self.station.sim
        operator, t = self._operator, self._episode_t
        target = sim.call(lambda world: operator.act(world, t))
        sim.command_leader(target[:6], target[6])

    def _episode_over(self) -> bool:
        if self._frames >= self.plan.max_frames:
            return True
        if self._operator is None:
            return False
        if self._finish_at is None and (self._operator.done or self._sim_success()):
            self._finish_at = self._episode_t + SIM_TAIL_S
        return self._finish_at is not None and self._episode_t >= self._finish_at

    def _sim_success(self) -> bool:
        sim = self.station.sim
        if sim is None or sim.task is None:
            return False
        return bool(sim.call(lambda world: sim.task.is_success(world)))

    # -- transitions (loop thread) ------------------------------------------------------------
    def _require(self, *states: SessionState, verb: str) -> None:
        if self.state not in states:
            allowed = " or ".join(s.value for s in states)
            raise RuntimeError(f"cannot {verb} while {self.state.value} (only when {allowed})")

    def _do_start(self) -> None:
        if self._finishing:
            raise RuntimeError("the plan is complete: its last kept episodes are being saved")
        if self.state == SessionState.RESETTING:
            self._set_state(SessionState.READY, "ready")
        self._require(SessionState.READY, verb="start")
        behind = self._writer_behind()
        if behind is not None:
            raise RuntimeError(f"{behind}: start again in a moment")
        if getattr(self.station.follower, "estopped", False):
            raise RuntimeError("the arm is in e-stop: release it (Resume) before recording")
        self._episode_t = 0.0
        self._finish_at = None
        self._last_success = None
        self._frames = 0
        self._ended_by_estop = False
        self._fell_behind = False
        self._sim_seconds = None
        if self._pacer.lockstep:
            self._settle_writer()
        if self.station.sim is not None:
            from collect.sim.operator import VirtualOperator

            self._seed = self.plan.scene_seed(
                self.task, self.counts[self.task], self._retries, self._kept_seeds[self.task]
            )
            self.station.sim.reset(seed=self._seed)  # the start state evaluation uses for this seed
            self._sim_started_at = self.station.sim.sim_time
            self._misses_at_start = self.station.sim.lockstep_misses
            self._operator = VirtualOperator(self.task, seed=self._seed)
        else:
            self._seed = None
            self._operator = None
        self._check_gap()
        self._timer.reset()
        self._pacer.restart()
        self._started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self._set_state(SessionState.RECORDING, f"recording {self.task}")

    def _settle_writer(self, timeout_s: float = 120.0) -> None:
        """Sim (lockstep): let the last save finish before the next episode. Simulated time
        waits, so nobody pays for it, and a save running beside the loop could delay the
        SDK's reports past the lockstep timeout on a busy CPU (a stale frame)."""
        deadline = time.monotonic() + timeout_s
        while not self.writer.settled and time.monotonic() < deadline:
            time.sleep(0.01)

    def _writer_behind(self) -> str | None:
        """Why the next episode must wait for the writer, or None."""
        if self.writer.saving > MAX_SAVING:
            return f"{self.writer.saving} kept episodes are still being saved"
        backlog = self.writer.pending_frames
        if backlog > START_BACKLOG_S * self.plan.fps:
            return f"the video encoder is {backlog / self.plan.fps:.1f} s behind"
        return None

    def _check_gap(self) -> None:
        """The follower must be near the leader; in sim give the reset leader a moment to arrive."""
        from collect.teleop import GapTooLarge

        deadline = time.monotonic() + (2.0 if self.station.sim is not None else 0.0)
        while True:
            try:
                self._relay.start()
                return
            except GapTooLarge:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _do_stop(self) -> None:
        self._require(SessionState.RECORDING, verb="stop")
        self._last_timing = self._timer.stats()
        self._ended_by_estop = bool(getattr(self.station.follower, "estopped", False))
        stats = self._last_timing
        self._fell_behind = not stats.lockstep and stats.achieved_fps < BEHIND_FPS_FRACTION * stats.target_fps
        sim = self.station.sim
        self._last_success = self._sim_success() if sim is not None else None
        if sim is not None and self._sim_started_at is not None:
            self._sim_seconds = sim.sim_time - self._sim_started_at
        message = f"{self._frames} frames: keep or discard"
        if self._ended_by_estop:
            message = f"E-STOP: {self._frames} frames held for review (not kept automatically)"
        elif self._fell_behind:
            message = (
                f"the loop fell behind ({stats.achieved_fps:.1f} of {stats.target_fps:.0f} fps): "
                f"{self._frames} frames held for review (not kept automatically)"
            )
        self._set_state(SessionState.REVIEW, message)

    def _do_keep(self, success: bool | None, note: str) -> dict:
        from collect.recording.writer import EpisodeRecord

        self._require(SessionState.REVIEW, verb="keep")
        if success is None:
            success = self._last_success
        timing = self._last_timing.as_dict() if self._last_timing else {}
        timing["fell_behind"] = self._fell_behind
        if self._sim_seconds is not None:
            timing["sim_seconds"] = round(self._sim_seconds, 6)
            timing["lockstep_misses"] = self.station.sim.lockstep_misses - self._misses_at_start
        record = EpisodeRecord(
            task=self.task,
            instruction=self.plan.instruction(self.task),
            operator=self.plan.operator,
            backend=self.plan.backend,
            seed=self._seed,
            success=success,
            note=note,
            started_at=self._started_at,
            timing=timing,
        )
        began = time.perf_counter()
        future = self.writer.keep_async(record)  # returns at once; the save overlaps the reset
        task = self.task
        with self._lock:
            self.counts[task] += 1
            self._kept_seconds += record.frames / self.plan.fps
        if record.seed is not None:
            self._kept_seeds[task].add(record.seed)
        self._retries = 0
        info = {
            "task": task,
            "episode_index": record.episode_index,  # unless an earlier save fails
            "frames": record.frames,
            "success": success,
            "count": self.counts[task],
            "handover_s": time.perf_counter() - began,
            "saved": future,
        }
        future.add_done_callback(lambda f: self._saved(f, info, began))
        self._after_episode()
        return info

    def _saved(self, future: Future, info: dict, began: float) -> None:
        """On the writer thread, when a kept episode is on disk (or could not be written)."""
        error = future.exception()
        if error is None:
            saved = future.result()
            event = {k: v for k, v in info.items() if k != "saved"}
            self._emit(
                "kept", {**event, "episode_index": saved.episode_index, "keep_s": time.perf_counter() - began}
            )
            return
        with self._lock:
            self.counts[info["task"]] -= 1
            self._kept_seconds -= info["frames"] / self.plan.fps
            self._message = f"the {info['task']} episode was NOT saved ({error}); record it again"
        log.error("saving an episode failed: %s", error)
        self._emit("save_failed", {"task": info["task"], "error": str(error)})
        self._post(self._reopen_plan)

    def _reopen_plan(self) -> None:
        """A failed save after the plan looked complete: its task needs that episode again."""
        task = self._next_unfinished_task(self.task)
        if (self.state == SessionState.FINISHED or self._finishing) and task is not None:
            self._finishing = False
            self._do_switch(task)

    def _do_discard(self) -> None:
        self._require(SessionState.REVIEW, SessionState.RECORDING, verb="discard")
        self.writer.discard_async()  # after any save in progress; the next episode queues behind
        self._retries += 1
        self._frames = 0
        self._emit("discarded", {"task": self.task})
        self._after_episode()

    def _do_rerecord(self) -> None:
        self._do_discard()
        self._reset_until = 0.0
        self._set_state(SessionState.READY, "ready")
        self._do_start()

    def _do_home(self) -> None:
        """Sim: the scene back to its start state now. Real arm, two buses: the PC drives the
        follower to the start pose (clamped, step-limited); one bus: the leader commands the
        follower, so only the operator can, by moving the leader (the page shows the gap)."""
        self._require(SessionState.READY, SessionState.RESETTING, SessionState.REVIEW, verb="home")
        if self.station.sim is not None:
            self.station.sim.reset(seed=self._seed)
            return
        if self.station.follower.leader_is_commanding():
            raise RuntimeError(
                "the leader arm drives the follower on this bus: move the leader to the start pose "
                f"(within {EPISODE_START.tolerance} rad of home, gripper open)"
            )
        from collect.motion import drive_to

        if not drive_to(self.station.follower, EPISODE_START, fps=self.plan.fps):
            raise RuntimeError("the arm did not reach the start pose; check for an obstacle or an e-stop")

    def _do_skip_reset(self) -> None:
        if self.state == SessionState.RESETTING and not self._finishing:
            self._set_state(SessionState.READY, "ready")

    def _do_switch(self, task: str) -> None:
        if task not in self.plan.tasks:
            raise ValueError(f"task {task!r} is not in this plan ({', '.join(self.plan.tasks)})")
        if self.state == SessionState.RECORDING:
            self._do_stop()
        if self.state == SessionState.REVIEW:
            self._do_discard()
        if task != self.task:
            if self.station.sim is not None:
                self._open_station(task)  # the sim scene holds one task's objects
            self.task = task
        self._retries = 0
        self._set_state(SessionState.READY, f"switched to {task}")

    def _after_episode(self) -> None:
        """Advance the task when its target is reached; then the reset countdown."""
        self._operator = None
        if self.counts[self.task] >= self.plan.episodes_per_task:
            next_task = self._next_unfinished_task(self.task)
            if next_task is None:  # FINISHED once the last kept episodes are on disk (_tick)
                self._finishing = True
                self._set_state(SessionState.RESETTING, "the plan is complete: saving the last episodes...")
                return
            if next_task != self.task:
                if self.station.sim is not None:
                    self._open_station(next_task)
                self.task = next_task
                self._emit("task", {"task": next_task})
        self._reset_until = self._clock() + self.plan.reset_s
        self._set_state(SessionState.RESETTING, f"reset the scene: {self.plan.reset_s:.0f} s")

    def _next_unfinished_task(self, current: str) -> str | None:
        order = self.plan.tasks
        start = order.index(current)
        for task in order[start:] + order[:start]:
            if self.counts[task] < self.plan.episodes_per_task:
                return task
        return None

    def _set_state(self, state: SessionState, message: str) -> None:
        with self._lock:
            self.state = state
            self._message = message
        self._emit("state", {"state": state.value, "message": message})

    def _emit(self, event: str, info: dict) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event, info)
            except Exception:
                log.exception("recording event handler failed")
