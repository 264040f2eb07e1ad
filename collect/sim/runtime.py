"""`SimRuntime`: the simulated PiPER as a running thing.

One worker thread owns the `PiperWorld` (MjModel/MjData) and its renderers, because
MuJoCo's EGL context must stay on one thread. Everyone else talks to it through calls
that the worker executes between physics steps:

    rt = SimRuntime(task="pick_grape", image_size=(480, 640))
    rt.start()                              # world built, emulators answering on the bus
    rt.follower_channel, rt.leader_channel  # python-can `virtual` channels for piper_sdk
    frame = rt.render("side")               # HxWx3 uint8, rendered on the worker
    rt.call(lambda world: world.site("tcp").xpos.copy())
    rt.command_leader(q6, gripper_m)        # the virtual operator moves the leader arm
    rt.stop()

Clock: `realtime=True` steps physics against the wall clock; `realtime=False` (lockstep,
for recording and evaluation) advances only when asked: `rt.advance(1 / fps)`. In lockstep
the simulated leader arm goes where it is told at once (the virtual operator's motion is
already smooth), and `advance` applies the leader's command of this tick, never an older
one still on the bus (see `collect.sim.lockstep` for the reading side). In lockstep the
emulators tick when there is something new to say (a physics step, a leader move) and
otherwise only at a heartbeat rate: a free-running 200 Hz pair puts ~5,000 frames a
second through Python on the bus, and on a slow 2-core machine the SDK's readers then fall
behind and report states that are ticks old.

`reset(seed=...)` starts an episode exactly as the gym env's reset does
(`collect.sim.episode.begin_episode`): the same seed gives the same first frame.

Buses: with `single_bus=True` (the PiPER's leader-follower linkage) leader and follower
emulators share one channel and the follower obeys the leader's control frames, as the
real firmware does; otherwise each arm has its own channel and the PC relays.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from collect.can_protocol import as_commanded
from collect.emulator import KICK_POLL_S
from collect.episode_start import EPISODE_START
from collect.joint_source import FirstOrderJoints, JointState
from collect.sim.joints import MujocoJointSource
from collect.sim.lockstep import LOCKSTEP_STALL_S

log = logging.getLogger(__name__)

_channel_ids = itertools.count()
PHYSICS_QUANTUM_S = 0.004  # the worker wakes this often in real-time mode
MAX_CATCH_UP_S = 0.1  # behind by more than this (a slow render): drop time rather than race
COMMAND_WAIT_S = 0.02  # lockstep: how long advance() waits for a command still on the bus
LEADER_COMMAND_WAIT_S = LOCKSTEP_STALL_S  # lockstep, leader on the bus: wait for its command
LEADER_TAU_S = 0.05  # real-time mode: the simulated leader's lag behind what it is told
# Real-time mode: half the real arm's 200 Hz. Both arms on one bus at 200 Hz cost 74% of a
# core in Python (benchmarks/bench_emulator_cpu.py, one SDK listening; the station has two),
# at 100 Hz 41%: on a slow 2-core machine 200 Hz left the SDK's readers behind.
EMULATOR_HZ = 100.0
LOCKSTEP_HEARTBEAT_HZ = 25.0  # lockstep: ticks without news (kicks bring the news at once)
# Real-time mode while nobody watches or drives the arm (`set_idle`): the SDK still hears a
# live arm and commands are still answered as they come, at a tenth of the frames.
IDLE_EMULATOR_HZ = 10.0
# Idle, the threads also wake less often: the physics worker, and each emulator looking for a
# kick (a command on the bus still wakes it at once; leaving idle kicks within this).
IDLE_WAKE_S = 0.02


def unique_channel(label: str) -> str:
    """A python-can virtual channel name no other runtime in this process uses."""
    return f"piper-sim-{os.getpid()}-{next(_channel_ids)}-{label}"


class SimRuntime:
    def __init__(
        self,
        *,
        task: str | None = None,
        extras: Sequence[Any] = (),
        image_size: tuple[int, int] = (480, 640),
        realtime: bool = True,
        single_bus: bool = True,
        start_emulators: bool = True,
        initial_q: Sequence[float] = EPISODE_START.arm_q,
        initial_gripper_m: float = EPISODE_START.gripper_m,
        seed: int | None = None,
    ):
        self.task_key = task
        self.task = None
        self._extras = list(extras)
        self.image_size = tuple(image_size)
        self.single_bus = single_bus
        self._start_emulators = start_emulators
        self._initial = (tuple(initial_q), float(initial_gripper_m))
        self._seed = seed
        self._realtime = realtime
        self._idle = False
        self.follower_channel = unique_channel("follower")
        self.leader_channel = self.follower_channel if single_bus else unique_channel("leader")
        initial_state = JointState(tuple(initial_q), (0.0,) * 6, float(initial_gripper_m))
        self.follower_source = MujocoJointSource(initial_state)
        # The leader arm has no physics: the virtual operator (or a test) commands it.
        self.leader_source = FirstOrderJoints(
            tuple(initial_q), float(initial_gripper_m), tau_s=LEADER_TAU_S if realtime else 0.0
        )
        self.emulators: dict[str, Any] = {}
        self._requests: queue.Queue[tuple[Callable, Future] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._world = None
        self.physics_steps = 0
        self._commands_seen: int | None = None  # follower commands counted at the last advance()
        self._lockstep_due: float | None = None  # sim time lockstep advances aim at
        self.lockstep_misses = 0  # advances that stepped before the leader's command arrived (should stay 0)

    # -- life cycle -----------------------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> SimRuntime:
        if self._thread is not None:
            return self
        ready: Future = Future()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="sim-runtime", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout_s)  # re-raises a build or GL error from the worker
        except BaseException:
            self.stop()
            raise
        if self._start_emulators:
            try:
                self._start_emulator_pair()
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self) -> None:
        for emulator in self.emulators.values():
            try:
                emulator.stop()
            except Exception:  # stopping must go on for the rest
                log.exception("stopping the %s emulator failed", emulator)
        self.emulators.clear()
        if self._thread is not None:
            self._stop.set()
            self._requests.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> SimRuntime:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- calls executed on the worker ---------------------------------------------------
    def submit(self, fn: Callable[[Any], Any]) -> Future:
        """Run `fn(world)` on the worker thread; the Future holds its result or exception."""
        if not self.running:
            raise RuntimeError("the simulation is not running (SimRuntime.start() first, or it was stopped)")
        future: Future = Future()
        self._requests.put((fn, future))
        return future

    def call(self, fn: Callable[[Any], Any], timeout_s: float = 10.0) -> Any:
        try:
            return self.submit(fn).result(timeout_s)
        except TimeoutError:  # bare, it reached the operator as an empty message
            raise TimeoutError(
                f"the simulation thread did not answer within {timeout_s:g} s: the machine was paused or "
                "overloaded, or the simulation hung"
            ) from None

    def render(self, camera: str, size: tuple[int, int] | None = None, timeout_s: float = 5.0):
        """A fresh frame of `camera` at `size` (h, w; default the runtime's image size)."""
        size = tuple(size or self.image_size)
        return self.call(lambda world: world.render(camera, size), timeout_s)

    def render_many(
        self, cameras: Sequence[str], size: tuple[int, int] | None = None, timeout_s: float = 5.0
    ):
        """Frames of several cameras from the same physics instant."""
        size = tuple(size or self.image_size)
        return self.call(lambda world: {cam: world.render(cam, size) for cam in cameras}, timeout_s)

    def advance(
        self, dt: float, command_wait_s: float = COMMAND_WAIT_S, timeout_s: float = LOCKSTEP_STALL_S
    ) -> float:
        """Lockstep: apply the newest commands and simulate `dt` seconds; returns sim time.

        A command sent through the SDK just before is still on its way over the bus (the
        emulator answers within a few ms): while the arm may move, wait up to `command_wait_s`
        for a command newer than the previous `advance` before stepping."""
        if self._realtime:
            raise RuntimeError("advance() is for lockstep mode; this runtime runs in real time")
        source = self.follower_source
        if command_wait_s > 0 and source.motion_allowed:
            expected = self.leader_command_on_bus() if self._follower_obeys_whole_commands() else None
            if expected is not None:  # the leader drives the follower: wait for its current command
                if not source.wait_for_value(expected, LEADER_COMMAND_WAIT_S):
                    self.lockstep_misses += 1
                    log.warning(
                        "lockstep: the leader's command had not reached the follower after %.1f s",
                        LEADER_COMMAND_WAIT_S,
                    )
            else:
                # Commands counted up to the previous advance were applied then; the first time,
                # only a command arriving from now on is known to be this tick's.
                since = self._commands_seen if self._commands_seen is not None else source.commands_received
                source.wait_for_command(since, command_wait_s)
        self._commands_seen = source.commands_received

        def step(world):
            # Keep a running target so that 1/30 s ticks of 2 ms steps do not drift (17 vs 16.67).
            if self._lockstep_due is None:
                self._lockstep_due = world.time
            self._lockstep_due += dt
            return self._step_physics(
                world, round((self._lockstep_due - world.time) / world.model.opt.timestep)
            )

        now = self.call(step, timeout_s)
        self._kick("follower")  # the new state goes on the bus now, not at the next heartbeat
        return now

    def _follower_obeys_whole_commands(self) -> bool:
        """Arm and gripper both take commands: the leader's command arrives as it was sent.
        With one part held (the arm after an E-STOP and resume, while the leader's gripper
        frames enable the gripper) it never does; waiting for it would stall every tick."""
        follower = self.emulators.get("follower")
        return follower is None or (follower.motion_allowed and follower.gripper_allowed)

    def command_leader(self, joints_rad: Sequence[float], gripper_m: float) -> None:
        """Move the simulated leader arm (the virtual operator's hand); in lockstep its
        emulator puts the command on the bus at once."""
        self.leader_source.command(tuple(float(v) for v in joints_rad), float(gripper_m))
        self._kick("leader")

    def _kick(self, role: str) -> None:
        emulator = self.emulators.get(role)
        if emulator is not None and not self._realtime:
            emulator.kick()

    def commanding_leader_target(self) -> list[float] | None:
        """Where the leader arm is told to be (6 joints rad + gripper m), while its emulator puts
        commands on the bus; None when it is silent (a policy drives the follower)."""
        leader = self.emulators.get("leader")
        if leader is None or not leader.sends_commands:
            return None
        joints, gripper = self.leader_source.target()
        return [*joints, gripper]

    def leader_command_on_bus(self) -> list[float] | None:
        """On one bus with a commanding leader: the follower target its frames carry now."""
        target = self.commanding_leader_target()
        return as_commanded(target) if self.single_bus and target is not None else None

    def reset(self, seed: int | None = None, start=EPISODE_START) -> None:
        """Start an episode: `start` pose, the task's objects placed from `seed`, settled
        (`collect.sim.episode`); the leader arm is put at the start pose too."""
        from collect.sim.episode import begin_episode, episode_rng

        def do_reset(world):
            begin_episode(world, self.task, episode_rng(seed), start=start)
            self.follower_source.forget_commands()  # a command still queued belongs to the old episode
            self.follower_source.publish_from(world)
            self._anchor_clock(world)

        self._commands_seen = None
        self.leader_source.jump_to(start.arm_q, start.gripper_m)
        self._kick("leader")
        self.call(do_reset)
        follower = self.emulators.get("follower")
        if follower is not None:
            # A disabled arm (after an E-STOP and resume) holds; it must hold at the start pose,
            # not return to where it stood. A command aimed from the old pose may have come
            # in meanwhile: it is dropped.
            if not follower.aim_where_the_arm_is(timeout_s=LOCKSTEP_STALL_S):
                log.warning("the follower emulator did not re-aim within %.0f s of a reset", LOCKSTEP_STALL_S)
            self.follower_source.forget_commands()
        self._kick("follower")

    def set_realtime(self, realtime: bool) -> None:
        self._commands_seen = None

        def switch(world):
            self._realtime = realtime
            self.leader_source.tau_s = LEADER_TAU_S if realtime else 0.0
            self._anchor_clock(world)

        self.call(switch)
        self._retime_emulators()

    def set_idle(self, idle: bool) -> None:
        """Idle: nobody watches or drives the arm, so the real-time emulators report at
        IDLE_EMULATOR_HZ (most of an open window's CPU is their frames through Python).
        Safe from any thread; the new rate holds from the next tick, which a kick brings now."""
        self._idle = idle
        self._retime_emulators()

    @property
    def idle(self) -> bool:
        return self._idle

    def _retime_emulators(self) -> None:
        for emulator in self.emulators.values():
            emulator.rate_hz = self._emulator_hz()
            emulator.kick_poll_s = IDLE_WAKE_S if self._idle_now() else KICK_POLL_S
            emulator.kick()  # ends a wait timed by the old rate

    def _idle_now(self) -> bool:
        return self._realtime and self._idle

    def _emulator_hz(self) -> float:
        if not self._realtime:
            return LOCKSTEP_HEARTBEAT_HZ
        return IDLE_EMULATOR_HZ if self._idle else EMULATOR_HZ

    def _physics_wake_s(self) -> float:
        if not self._realtime:
            return 0.1  # lockstep: only requests move it
        return IDLE_WAKE_S if self._idle else PHYSICS_QUANTUM_S

    @property
    def realtime(self) -> bool:
        return self._realtime

    @property
    def sim_time(self) -> float:
        return self.call(lambda world: world.time)

    # -- worker ---------------------------------------------------------------------------
    def _run(self, ready: Future) -> None:
        try:
            world = self._build_world()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        self._world = world
        ready.set_result(True)
        try:
            while not self._stop.is_set():
                if self._realtime:
                    self._catch_up(world)
                self._serve_requests(world, wait_s=self._physics_wake_s())
        finally:
            self._fail_pending(RuntimeError("the simulation stopped"))
            world.close()
            self._world = None

    def _build_world(self):
        from collect.sim.world import PiperWorld, SceneExtra

        extras = list(self._extras)
        if self.task_key is not None:
            from collect.sim.tasks import make_task

            self.task = make_task(self.task_key)
            extras.append(
                SceneExtra(self.task_key, asset=self.task.assets_xml(), worldbody=self.task.worldbody_xml())
            )
        world = PiperWorld(extras=extras, image_size=self.image_size)
        from collect.episode_start import EpisodeStart
        from collect.sim.episode import begin_episode, episode_rng

        start = EpisodeStart(arm_q=self._initial[0], gripper_m=self._initial[1])
        begin_episode(world, self.task, episode_rng(self._seed), start=start)
        self.follower_source.publish_from(world)
        self._anchor_clock(world)
        return world

    def _anchor_clock(self, world) -> None:
        self._lockstep_due = None
        self._wall_anchor = time.perf_counter()
        self._sim_anchor = world.time

    def _catch_up(self, world) -> None:
        behind = (time.perf_counter() - self._wall_anchor) - (world.time - self._sim_anchor)
        if behind > MAX_CATCH_UP_S:
            self._wall_anchor += behind - MAX_CATCH_UP_S  # forget the lost wall time
            behind = MAX_CATCH_UP_S
        n = int(behind / world.model.opt.timestep)
        if n > 0:
            self._step_physics(world, n)

    def _step_physics(self, world, n: int) -> float:
        self.follower_source.apply_to(world)
        if n > 0:
            world.step(n)
            self.physics_steps += n
        if self.task is not None and hasattr(self.task, "update"):
            self.task.update(world)
        self.follower_source.publish_from(world)
        return world.time

    def _serve_requests(self, world, wait_s: float) -> None:
        deadline = time.perf_counter() + wait_s
        while True:
            try:
                item = self._requests.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                return
            if item is None:
                return
            fn, future = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(world))
                except BaseException as exc:
                    future.set_exception(exc)
            if self._realtime:
                return  # back to stepping physics; the next request waits at most a quantum

    def _fail_pending(self, exc: BaseException) -> None:
        while True:
            try:
                item = self._requests.get_nowait()
            except queue.Empty:
                return
            if item is not None and item[1].set_running_or_notify_cancel():
                item[1].set_exception(exc)

    # -- emulators ----------------------------------------------------------------------
    def _start_emulator_pair(self) -> None:
        from collect.emulator import PiperEmulator

        rate_hz = self._emulator_hz()
        follower = PiperEmulator(
            self.follower_channel, role="follower", joint_source=self.follower_source, rate_hz=rate_hz
        )
        # The SDK ignores a leader's feedback IDs (0x2Bx): skip its end-pose frames and their FK.
        leader = PiperEmulator(
            self.leader_channel,
            role="leader",
            joint_source=self.leader_source,
            end_pose=False,
            rate_hz=rate_hz,
        )
        for name, emulator in (("follower", follower), ("leader", leader)):
            emulator.start()
            self.emulators[name] = emulator
