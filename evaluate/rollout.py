"""Rollouts: a trained policy driving the arm, one trial at a time.

`PolicyAgent` wraps a trained run (backbone + adapter, or full weights) loaded through
`train.policy_io`; each `act()` is one control tick. Action chunking is the policy's own
(SmolVLA/pi0 `select_action` predicts a chunk and serves it step by step), so inference
runs once every `n_action_steps` ticks.

`StationExecutor` runs trials on a `collect.station.Station`: every action goes through
the follower's `send_action`, the same safety-clamped path as teleop (limits, per-tick
step, e-stop). On the sim backend the station runs in lockstep (`station.sim.advance`)
and the task predicate scores the trial; on the real arm ticks follow the wall clock
and the operator scores.

torch and lerobot are imported inside functions: this module is safe to import anywhere.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collect.episode_start import EPISODE_START
from collect.limits import CAMERA_NAMES, MOTOR_KEYS
from evaluate.campaign import RolloutResult, TrialSlot

log = logging.getLogger(__name__)

STATE_KEY = "observation.state"
IMAGE_PREFIX = "observation.images."


class RolloutError(RuntimeError):
    """A rollout cannot start; the message says what to fix."""


class PolicyAgent:
    """A trained policy as a per-tick controller: observation dict in, 7 motor targets out."""

    def __init__(
        self, policy: Any, preprocessor: Any, postprocessor: Any, *, device: str = "cpu", name: str = ""
    ):
        self.policy = policy
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.device = device
        self.name = name
        self.policy.eval()
        self._check_features()
        # Chunking policies: the agent serves the rest of a chunk itself, so the ticks between
        # inferences convert no image and run no processor (their cost per tick was most of an
        # evaluation's host work). ACT's temporal ensembling needs every tick: left to lerobot.
        config = getattr(policy, "config", None)
        self._serve_chunks = (
            hasattr(policy, "predict_action_chunk")
            and getattr(config, "n_action_steps", 0)
            and getattr(config, "temporal_ensemble_coeff", None) is None
        )
        self._pending: collections.deque[dict[str, float]] = collections.deque()

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = "last", eta: float | None = None) -> PolicyAgent:
        """Load `runs/<run>` as trained; `eta` sets LoRA-SP's inference threshold (None: as trained)."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise RolloutError(
                f"no training run at {run_dir}; list runs with `ls {run_dir.parent}` or train one first"
            )
        from train.policy_io import load_trained_policy

        policy, pre, post = load_trained_policy(run_dir, checkpoint=checkpoint)
        agent = cls(
            policy, pre, post, device=str(getattr(policy.config, "device", "cpu") or "cpu"), name=run_dir.name
        )
        if eta is not None:
            agent.set_inference_eta(eta)
        return agent

    def _check_features(self) -> None:
        """Fail before the first tick if the policy wants inputs the station cannot give."""
        config = getattr(self.policy, "config", None)
        wanted = set(getattr(config, "input_features", {}) or {})
        offered = {STATE_KEY} | {IMAGE_PREFIX + c for c in CAMERA_NAMES}
        missing = sorted(wanted - offered)
        if missing:
            raise RolloutError(
                f"the policy expects inputs {missing} but the station provides {sorted(offered)}; "
                "evaluate a run trained on a dataset recorded with this workstation"
            )
        action = (getattr(config, "output_features", {}) or {}).get("action")
        if action is not None and tuple(action.shape) != (len(MOTOR_KEYS),):
            raise RolloutError(
                f"the policy outputs actions of shape {tuple(action.shape)}, the PiPER needs (7,)"
            )

    def set_inference_eta(self, eta: float) -> int:
        """LoRA-SP: keep the vectors holding `eta` of the router energy at inference. Returns layers set."""
        handle = getattr(self.policy, "adapter_handle", None)
        if handle is not None:
            handle.set_inference_eta(eta)
            return len(handle.modules)
        layers = [m for m in self.policy.modules() if hasattr(m, "inference_eta")]
        if not layers:
            raise RolloutError(f"run {self.name!r} has no LoRA-SP layers: eta applies to LoRA-SP runs only")
        for layer in layers:
            layer.inference_eta = eta
        return len(layers)

    def reset(self, seed: int | None = None) -> None:
        """Before each trial: empty the action queue (and any processor state). `seed` fixes
        the policy's sampling noise (flow matching draws it from torch's global generator), so
        a trial of a run on a scene is reproducible, as the scene itself is."""
        if seed is not None:
            import torch

            torch.manual_seed(seed)
        self._pending.clear()
        self.policy.reset()
        for processor in (self.preprocessor, self.postprocessor):
            reset = getattr(processor, "reset", None)
            if callable(reset):
                reset()

    @property
    def needs_frames(self) -> bool:
        """Whether the next `act` looks at the camera frames (False while it serves a chunk)."""
        return not self._pending

    def act(self, observation: dict[str, Any], instruction: str) -> dict[str, float]:
        if self._pending:
            return self._pending.popleft()
        import numpy as np
        import torch
        from lerobot.common.control_utils import predict_action
        from lerobot.policies.utils import prepare_observation_for_inference

        frame = {STATE_KEY: np.asarray([observation[k] for k in MOTOR_KEYS], dtype=np.float32)}
        for camera in CAMERA_NAMES:
            if camera not in observation:
                raise RolloutError(f"no frame from the {camera!r} camera; check it on the Station page")
            frame[IMAGE_PREFIX + camera] = observation[camera]
        device = torch.device(self.device)
        if not self._serve_chunks:
            action = predict_action(
                frame, self.policy, device, self.preprocessor, self.postprocessor,
                use_amp=False, task=instruction, robot_type="piper",
            )  # fmt: skip
            return dict(zip(MOTOR_KEYS, action.reshape(-1).tolist(), strict=True))
        # What lerobot's predict_action + select_action do, once per chunk: the same
        # preprocessing, one predict_action_chunk, its first n_action_steps postprocessed.
        with torch.inference_mode():
            batch = self.preprocessor(prepare_observation_for_inference(frame, device, instruction, "piper"))
            chunk = self.policy.predict_action_chunk(batch)[:, : self.policy.config.n_action_steps]
            actions = self.postprocessor(chunk)
        for row in actions.reshape(-1, len(MOTOR_KEYS)).tolist():
            self._pending.append(dict(zip(MOTOR_KEYS, row, strict=True)))
        return self._pending.popleft()


@dataclass
class TickInfo:
    """What a live view needs after each control tick."""

    slot: TrialSlot
    step: int
    elapsed_s: float
    observation: dict[str, Any]
    action: dict[str, float]


class StationExecutor:
    """Runs trials of one campaign on an open station (sim: lockstep; real: wall clock).

    `agents` maps run name -> PolicyAgent (or a factory that loads it lazily).
    `instructions` maps task key -> language instruction.
    """

    def __init__(
        self,
        station: Any,
        agents: dict[str, PolicyAgent | Callable[[], PolicyAgent]],
        instructions: dict[str, str],
        *,
        fps: int | None = None,
        max_duration_s: float = 30.0,
        on_tick: Callable[[TickInfo], None] | None = None,
        episode_sink: Any | None = None,
        on_close: Callable[[], None] | None = None,
    ):
        self.station = station
        self._on_close = on_close
        self._agents = dict(agents)
        self.instructions = instructions
        self.fps = fps or station.config.fps
        self.max_duration_s = max_duration_s
        self.on_tick = on_tick
        self.episode_sink = episode_sink  # evaluate.episodes.EvalEpisodeWriter or None
        self.lockstep = station.sim is not None and not station.sim.realtime

    def agent(self, run: str) -> PolicyAgent:
        agent = self._agents.get(run)
        if agent is None:
            raise RolloutError(f"no policy loaded for run {run!r}")
        if not hasattr(agent, "act"):  # a factory: load on first use
            agent = self._agents[run] = agent()
        return agent

    def reset(self, slot: TrialSlot) -> None:
        """Every trial starts from EPISODE_START, as every recorded episode does. Sim: the seeded
        scene reset. Real arm: the operator has reset the scene; the arm drives itself to the
        start pose (clamped and step-limited)."""
        if self.station.follower.leader_is_commanding():
            # On one bus the firmware obeys the leader: the policy's commands would never act.
            raise RolloutError(
                "a leader arm is commanding the follower's CAN bus, so the policy cannot drive it: "
                "unplug or power off the leader, or give the leader its own CAN port (two buses)"
            )
        if self.station.sim is not None:
            if self.station.sim.task_key != slot.task:
                raise RolloutError(
                    f"the sim station shows task {self.station.sim.task_key!r}, the trial needs {slot.task!r}"
                )
            self.station.sim.reset(seed=slot.seed)
        elif not self.go_home():
            raise RolloutError("the arm did not reach the start pose; check for an obstacle or an e-stop")
        self.agent(slot.run).reset(seed=slot.seed)

    def go_home(self, timeout_s: float = 8.0) -> bool:
        """Drive the arm to the episode start pose through send_action."""
        from collect.motion import drive_to

        sim = self.station.sim if self.lockstep else None
        return drive_to(self.station.follower, EPISODE_START, fps=self.fps, timeout_s=timeout_s, sim=sim)

    def run(self, slot: TrialSlot, stop: threading.Event) -> RolloutResult:
        instruction = self.instructions.get(slot.task, slot.task)
        if self.episode_sink is not None:
            self.episode_sink.begin(slot, instruction)
        try:
            return self._rollout(slot, stop, instruction)
        except BaseException:  # e.g. the e-stopped arm refuses a command: the episode is not kept
            if self.episode_sink is not None:
                self.episode_sink.end(keep=False)
            raise

    def _rollout(self, slot: TrialSlot, stop: threading.Event, instruction: str) -> RolloutResult:
        agent = self.agent(slot.run)
        follower = self.station.follower
        max_steps = max(1, round(self.max_duration_s * self.fps))
        period = 1.0 / self.fps
        started = time.monotonic()
        success: bool | None = None
        step = 0
        for step in range(1, max_steps + 1):
            if stop.is_set():
                return self._finish(slot, started, step - 1, None, aborted=True)
            tick_start = time.monotonic()
            if self.lockstep:
                from collect.sim.lockstep import sync_reports

                sync_reports(self.station)  # the observation of this simulated instant
            observation = follower.get_observation()
            action = agent.act(observation, instruction)
            sent = follower.send_action(action)
            if self.episode_sink is not None:
                self.episode_sink.add(observation, sent)
            if self.lockstep:
                self.station.sim.advance(period)
            else:
                time.sleep(max(0.0, period - (time.monotonic() - tick_start)))
            if self.on_tick is not None:
                self.on_tick(TickInfo(slot, step, time.monotonic() - started, observation, sent))
            if self.station.sim is not None and self._sim_success():
                success = True
                break
        if self.station.sim is not None and success is None:
            success = self._sim_success()
        return self._finish(slot, started, step, success)

    def _sim_success(self) -> bool:
        sim = self.station.sim
        return bool(sim.call(lambda world: sim.task.is_success(world)))

    def close(self) -> None:
        """Finalize the evaluation episodes; the station stays open (its owner closes it)."""
        if self.episode_sink is not None:
            self.episode_sink.close()
        if self._on_close is not None:
            self._on_close()

    def _finish(
        self, slot: TrialSlot, started: float, steps: int, success: bool | None, aborted: bool = False
    ):
        episode_ref = ""
        if self.episode_sink is not None:
            episode_ref = self.episode_sink.end(keep=not aborted)
        duration = steps / self.fps if self.lockstep else time.monotonic() - started
        return RolloutResult(
            duration_s=duration, success=success, aborted=aborted, episode_ref=episode_ref, steps=steps
        )


class GymSimExecutor:
    """Sim trials on the project's gymnasium envs (`collect.sim.env`), one env per task.

    Lockstep and seeded: a slot's seed gives the same scene for every run. Every action
    passes the follower's `SafetyFilter` (limits and per-tick step, as on the station and
    the real arm), so a policy cannot fling the arm in sim where it could not on the bench
    (a random policy once knocked open_pot's lid off in 0.5 s and scored a success); the
    predicate (`info["is_success"]`) scores,
    and the episode ends on success as in lerobot's gym envs. The env and its renderer are
    created on the thread that calls `reset` (EGL contexts are per thread).

    With no live view and no episode sink, the cameras render only on the ticks where the
    agent looks at them (`needs_frames`: once per action chunk), the same frames at the same
    instants, a fraction of the rendering.
    """

    def __init__(
        self,
        agents: dict[str, PolicyAgent | Callable[[], PolicyAgent]],
        *,
        image_size: tuple[int, int] = (480, 640),
        fps: int = 30,
        max_duration_s: float = 30.0,
        perturbation: str = "none",
        on_tick: Callable[[TickInfo], None] | None = None,
        episode_sink: Any | None = None,
    ):
        self._agents = dict(agents)
        self.image_size = tuple(image_size)
        self.fps = fps
        self.max_duration_s = max_duration_s
        self.perturbation = "" if perturbation == "none" else perturbation
        self.on_tick = on_tick
        self.episode_sink = episode_sink
        self.env: Any = None
        self.frames_every_tick = on_tick is not None or episode_sink is not None
        self._observation: dict[str, Any] | None = None
        self._safety: Any = None  # a SafetyFilter per trial, from the start pose (reset)

    agent = StationExecutor.agent

    def _env_for(self, task: str):
        if self.env is not None and self.env.unwrapped.task == task:
            return self.env
        self.close()
        from collect.sim.env import PiperSimEnv

        obs_type = "pixels_agent_pos" if self.frames_every_tick else "agent_pos"
        self.env = PiperSimEnv(
            task=task,
            obs_type=obs_type,
            image_size=self.image_size,
            perturbations=self.perturbation,
            fps=self.fps,
        )
        return self.env

    def reset(self, slot: TrialSlot) -> None:
        from collect.safety import SafetyFilter

        observation, _ = self._env_for(slot.task).reset(seed=slot.seed)
        self._observation = follower_observation(observation)
        self._safety = SafetyFilter()
        self._safety.reset([self._observation[k] for k in MOTOR_KEYS])
        self.agent(slot.run).reset(seed=slot.seed)

    def run(self, slot: TrialSlot, stop: threading.Event) -> RolloutResult:
        import numpy as np

        env, agent = self._env_for(slot.task), self.agent(slot.run)
        instruction = env.unwrapped.task_description
        observation = self._observation
        if observation is None:
            raise RolloutError("reset the trial before running it")
        if self.episode_sink is not None:
            self.episode_sink.begin(slot, instruction)
        started = time.monotonic()
        success, steps = False, 0
        for steps in range(1, max(1, round(self.max_duration_s * self.fps)) + 1):
            if stop.is_set():
                return self._finish(steps - 1, None, aborted=True)
            if not self.frames_every_tick and getattr(agent, "needs_frames", True):
                observation = {**observation, **env.unwrapped.camera_frames()}
            wanted = agent.act(observation, instruction)
            sent = self._safety.filter([wanted[k] for k in MOTOR_KEYS])
            action = dict(zip(MOTOR_KEYS, sent, strict=True))
            if self.episode_sink is not None:
                self.episode_sink.add(observation, action)
            raw, _, terminated, truncated, info = env.step(np.asarray(sent))
            previous, observation = observation, follower_observation(raw)
            if self.on_tick is not None:
                self.on_tick(TickInfo(slot, steps, time.monotonic() - started, previous, action))
            success = bool(info.get("is_success", False))
            if terminated or truncated:
                break
        self._observation = None
        return self._finish(steps, success)

    def _finish(self, steps: int, success: bool | None, aborted: bool = False) -> RolloutResult:
        episode_ref = self.episode_sink.end(keep=not aborted) if self.episode_sink is not None else ""
        return RolloutResult(
            steps / self.fps, success=success, aborted=aborted, episode_ref=episode_ref, steps=steps
        )

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
        self.env = None
        if self.episode_sink is not None:
            self.episode_sink.close()  # finalize the evaluation dataset

    def __enter__(self) -> GymSimExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def follower_observation(gym_observation: dict[str, Any]) -> dict[str, Any]:
    """Gym observation -> the follower's observation dict (MOTOR_KEYS + camera frames)."""
    flat = dict(zip(MOTOR_KEYS, (float(v) for v in gym_observation["agent_pos"]), strict=True))
    flat.update(gym_observation.get("pixels", {}))
    return flat
