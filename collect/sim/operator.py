"""The virtual operator: a scripted expert per task that moves the LEADER arm.

    op = VirtualOperator("pick_grape", seed=3)
    while not op.done:
        action = op.act(world, t)      # np.ndarray(7): 6 joints (rad) + gripper opening (m)

The task supplies the moves (tool poses, gripper, which moves must settle); the operator
turns them into joint targets over time: straight tool lines with smooth timing, IK on the
tool point, and human-like variety drawn from the seed (speed, pauses, approach angles,
hand tremor, an occasional hesitation). `world` is the follower's `PiperWorld`: the
operator reads object poses from it when planning and the follower's joints to wait,
before grasping or releasing, until the arm has caught up with the leader (the follower
lags the leader through the CAN teleop path).

In the gym env the output is the env action; in the recorder it feeds the simulated
leader's `JointSource`, and the follower then tracks it through the CAN teleop path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from collect.limits import MOTOR_LIMITS
from collect.sim.ik import Pose, ToolIK, arm_ik, arm_joints, rotation_vector
from collect.sim.tasks import ExpertStyle, Move, SimTask, make_task

SETTLE_TOL_RAD = 0.012  # follower within this of the command on every joint: arrived
SETTLE_TIMEOUT_S = 2.5  # go on anyway after this (a blocked arm must not stall the script)


@dataclass(frozen=True)
class OperatorStyle:
    """How one simulated person moves; drawn once per seed."""

    speed: float = 1.0  # >1: quicker
    pause_s: float = 0.15  # mean pause after an arrival
    tremor_rad: float = 0.002  # amplitude of slow hand tremor on each joint
    hesitate_move: int = -1  # index of a move interrupted half-way (-1: none)
    hesitate_s: float = 0.0
    expert: ExpertStyle = field(default_factory=ExpertStyle)

    @classmethod
    def sample(cls, rng: np.random.Generator, n_moves: int = 8) -> OperatorStyle:
        hesitate = rng.random() < 0.3
        return cls(
            speed=float(rng.uniform(0.75, 1.3)),
            pause_s=float(rng.uniform(0.0, 0.35)),
            tremor_rad=float(rng.uniform(0.0005, 0.003)),
            hesitate_move=int(rng.integers(1, n_moves)) if hesitate else -1,
            hesitate_s=float(rng.uniform(0.3, 0.9)) if hesitate else 0.0,
            expert=ExpertStyle.sample(rng),
        )


def _smoothstep(s: float) -> float:
    return s * s * (3.0 - 2.0 * s)


def _slerp_frames(a0, c0, a1, c1, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate the (approach, closing) frame by rotating about one axis."""
    R0 = np.column_stack([a0, c0, np.cross(a0, c0)])
    R1 = np.column_stack([a1, c1, np.cross(a1, c1)])
    w = rotation_vector(R1 @ R0.T) * s
    angle = np.linalg.norm(w)
    if angle < 1e-9:
        return a0.copy(), c0.copy()
    k = w / angle
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    R = np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K
    return R @ a0, R @ c0


class VirtualOperator:
    """Scripted expert for one task and one seed; call `act(world, t)` every control tick."""

    def __init__(self, task: SimTask | str, seed: int = 0):
        self.task = make_task(task) if isinstance(task, str) else task
        self.seed = seed
        self.rng = np.random.default_rng(seed + 7919)
        self.style = OperatorStyle.sample(self.rng)
        self._tremor = (self.rng.uniform(0.3, 1.1, (2, 6)), self.rng.uniform(0, 2 * np.pi, (2, 6)))
        self._moves: list[Move] | None = None
        self._ik: ToolIK | None = None
        self.done = False

    # --- planning -----------------------------------------------------------------------
    def _plan(self, world, t: float) -> None:
        self._ik = arm_ik(world)
        self._moves = self.task.script(world, self.style.expert)
        q, grip = arm_joints(world)
        self._q = q
        self._grip = grip
        self._pose = self._ik.forward(q)
        self._k = -1
        self._next_move(t)

    def _next_move(self, t: float) -> None:
        self._k += 1
        self._t0 = t
        self._arrived_at: float | None = None
        if self._k >= len(self._moves):
            self.done = True
            return
        m = self._moves[self._k]
        p0 = self._pose
        approach = p0.approach if m.approach is None else np.asarray(m.approach, float)
        closing = p0.closing if m.closing is None else np.asarray(m.closing, float)
        if m.flip_ok and np.dot(closing, p0.closing) < 0:
            closing = -closing
        self._from = Pose(p0.pos.copy(), p0.approach.copy(), p0.closing.copy())
        self._to = Pose(p0.pos.copy() if m.pos is None else np.asarray(m.pos, float), approach, closing)
        self._grip_from = self._grip
        self._grip_to = self._grip if m.gripper is None else float(m.gripper)
        self._duration = m.duration / self.style.speed
        self._pause = float(self.rng.exponential(self.style.pause_s)) if m.settle else 0.0
        hesitating = self._k == self.style.hesitate_move and m.pos is not None and not m.precise
        self._hesitation = self.style.hesitate_s if hesitating else 0.0

    def _progress(self, elapsed: float) -> float:
        """Fraction of the current move done, with a hold half-way when hesitating."""
        d, h = self._duration, self._hesitation
        if h > 0.0:
            if elapsed < 0.5 * d:
                return _smoothstep(elapsed / d) if elapsed > 0 else 0.0
            if elapsed < 0.5 * d + h:
                return 0.5
            elapsed -= h
        return _smoothstep(min(1.0, max(0.0, elapsed / d)))

    @property
    def current_move(self) -> str | None:
        """Name of the move under way ("grasp", "lift", ...); None before the first act and when done."""
        if self._moves is None or self.done:
            return None
        return self._moves[self._k].name

    # --- acting -------------------------------------------------------------------------
    def act(self, world, t: float) -> np.ndarray:
        """Leader joint targets (6 rad + gripper m) for time `t` (s since the episode began)."""
        if self._moves is None:
            self._plan(world, t)
        if not self.done:
            self._track(world, t)
        return self._command(t)

    def _track(self, world, t: float) -> None:
        m = self._moves[self._k]
        elapsed = t - self._t0
        s = self._progress(elapsed)
        a, c = _slerp_frames(self._from.approach, self._from.closing, self._to.approach, self._to.closing, s)
        self._pose = Pose(self._from.pos + s * (self._to.pos - self._from.pos), a, c)
        self._q, _, _ = self._ik.solve(self._pose, self._q, iters=25)
        self._grip = self._grip_from + s * (self._grip_to - self._grip_from)
        if elapsed < self._duration + self._hesitation:
            return
        if self._arrived_at is None:
            follower_q, _ = arm_joints(world)
            arrived = not m.settle or np.max(np.abs(follower_q - self._q)) < SETTLE_TOL_RAD
            timed_out = elapsed > self._duration + self._hesitation + SETTLE_TIMEOUT_S
            if not (arrived or timed_out):
                return
            self._arrived_at = t
        if t - self._arrived_at >= self._pause:
            self._next_move(t)

    def _command(self, t: float) -> np.ndarray:
        freq, phase = self._tremor
        precise = self._moves is not None and not self.done and self._moves[self._k].precise
        amp = self.style.tremor_rad * (0.3 if precise else 1.0)
        tremor = amp * np.sum(np.sin(2 * np.pi * freq * t + phase), axis=0) / 2
        out = np.concatenate([self._q + tremor, [self._grip]])
        lo = np.array([lo for lo, _ in MOTOR_LIMITS])
        hi = np.array([hi for _, hi in MOTOR_LIMITS])
        return np.clip(out, lo, hi)


@dataclass(frozen=True)
class ExpertEpisode:
    seed: int
    success: bool
    steps: int
    sim_seconds: float


def run_expert_episode(env, seed: int) -> ExpertEpisode:
    """One episode of a `PiperSimEnv` (or its gym wrapper) driven by the virtual operator,
    until success, the task's time limit, or the operator is done and 2 s have passed."""
    sim = env.unwrapped
    env.reset(seed=seed)
    operator = VirtualOperator(sim.sim_task, seed)
    limit = int(sim.sim_task.episode_seconds * sim.fps)
    done_since = None
    for step in range(1, limit + 1):
        _, _, terminated, truncated, info = env.step(operator.act(sim.world, sim.sim_time))
        if terminated or truncated:
            return ExpertEpisode(seed, bool(info["is_success"]), step, sim.sim_time)
        if operator.done:
            done_since = sim.sim_time if done_since is None else done_since
            if sim.sim_time - done_since > 2.0:
                break
    return ExpertEpisode(seed, False, step, sim.sim_time)
