"""Gymnasium envs of the four sim tasks, following lerobot's gym conventions (gym-aloha,
gym-pusht). Importing this module registers them:

| id                         | task key       |
|----------------------------|----------------|
| `PiperSim/OpenPot-v0`      | `open_pot`     |
| `PiperSim/PourBlock-v0`    | `pour_block`   |
| `PiperSim/PressButton-v0`  | `press_button` |
| `PiperSim/PickGrape-v0`    | `pick_grape`   |

    import gymnasium as gym, collect.sim.env
    env = gym.make("PiperSim/PickGrape-v0", image_size=(240, 320), perturbations="lighting+camera")
    obs, info = env.reset(seed=0)   # obs: {"pixels": {"side", "wrist"}: HxWx3 uint8, "agent_pos": float32[7]}
    obs, reward, terminated, truncated, info = env.step(action)   # 7-D absolute joints (rad) + gripper (m)

Each reset starts where a recorded episode of the same seed starts (`collect.sim.episode`),
and `agent_pos` is what the arm reports over CAN, so a recorded dataset's first frame
equals the reset observation.

Lockstep: one `step` simulates exactly 1/fps seconds of sim time, however long it takes,
so a seed gives the same episode on any machine. The action goes straight to the arm's
position actuators, clamped to `collect.limits`. `info["is_success"]` at reset and step;
the episode terminates on success (reward 1) and is truncated at the task's time limit.
`obs_type="agent_pos"` skips rendering (fast expert statistics).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from collect.can_protocol import as_reported
from collect.limits import MOTOR_LIMITS
from collect.sim.episode import begin_episode
from collect.sim.perturb import (
    DISTRACTOR_NAMES,
    ScenePerturber,
    distractor_worldbody_xml,
    parse_perturbations,
)
from collect.sim.tasks import TASKS, make_task
from collect.sim.tasks.base import geom_id
from collect.sim.world import CAMERA_NAMES, PiperWorld, SceneExtra

OBS_TYPES = ("pixels_agent_pos", "agent_pos", "pixels")


def env_id(task_key: str) -> str:
    return "PiperSim/" + "".join(part.capitalize() for part in task_key.split("_")) + "-v0"


def build_task_world(task, perturbations, image_size: tuple[int, int]) -> PiperWorld:
    """A `PiperWorld` holding the task's objects (and the distractors when asked)."""
    # the same composition as collect.sim.runtime's, so recorded and gym scenes match
    extras = [SceneExtra(name=task.key, asset=task.assets_xml(), worldbody=task.worldbody_xml())]
    if perturbations.distractors:
        extras.append(SceneExtra(name="distractors", worldbody=distractor_worldbody_xml()))
    return PiperWorld(extras=extras, image_size=image_size)


class PiperSimEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        task: str = "pick_grape",
        obs_type: str = "pixels_agent_pos",
        render_mode: str | None = "rgb_array",
        image_size: tuple[int, int] = (480, 640),
        perturbations: str = "",
        fps: int = 30,
    ):
        if obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type must be one of {OBS_TYPES}, got {obs_type!r}")
        self.sim_task = make_task(task)
        self.task = self.sim_task.key
        self.task_description = self.sim_task.instruction
        self.obs_type = obs_type
        self.render_mode = render_mode
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.perturbations = parse_perturbations(perturbations)
        self.fps = fps
        self.metadata = {**self.metadata, "render_fps": fps}
        self.world = build_task_world(self.sim_task, self.perturbations, self.image_size)
        m = self.world.model
        self._perturber = ScenePerturber(
            m,
            self.perturbations,
            object_geoms=[geom_id(self.world, g) for g in self.sim_task.object_geom_names()],
            size_geoms=[geom_id(self.world, g) for g in self.sim_task.size_geom_names()],
        )
        self._steps_per_second = 1.0 / m.opt.timestep
        self._tick = 0

        lo = np.array([lo for lo, _ in MOTOR_LIMITS], dtype=np.float32)
        hi = np.array([hi for _, hi in MOTOR_LIMITS], dtype=np.float32)
        self.action_space = spaces.Box(lo, hi, dtype=np.float32)
        observation = {}
        if obs_type != "agent_pos":
            h, w = self.image_size
            image = spaces.Box(0, 255, (h, w, 3), dtype=np.uint8)
            observation["pixels"] = spaces.Dict({cam: image for cam in CAMERA_NAMES})
        if obs_type != "pixels":
            observation["agent_pos"] = spaces.Box(-np.inf, np.inf, (7,), dtype=np.float64)
        self.observation_space = spaces.Dict(observation)

    # --- gym API --------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # the same start as a recorded episode of this seed (collect.sim.episode)
        begin_episode(
            self.world,
            self.sim_task,
            self.np_random,
            perturber=self._perturber,
            distractors=self.perturbations.distractors,
        )
        self._t0 = self.world.time
        self._tick = 0
        return self._observation(), {"is_success": self.sim_task.is_success(self.world)}

    def step(self, action):
        action = np.asarray(action, dtype=float)
        if action.shape != (7,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be 7 finite numbers (6 joints rad, gripper m), got {action!r}")
        lo, hi = self.action_space.low, self.action_space.high
        action = np.clip(action, lo, hi)
        self.world.set_arm_targets(action[:6], float(action[6]))
        # whole timesteps per tick, with no drift: tick k ends at round(k / fps / timestep)
        end = round((self._tick + 1) * self._steps_per_second / self.fps)
        start = round(self._tick * self._steps_per_second / self.fps)
        self.world.step(end - start)
        self._tick += 1
        self.sim_task.update(self.world)
        success = self.sim_task.is_success(self.world)
        return self._observation(), float(success), success, False, {"is_success": success}

    def render(self):
        return self.world.render("side", self.image_size)

    def close(self):
        self.world.close()

    # --- helpers --------------------------------------------------------------------------
    @property
    def sim_time(self) -> float:
        """Seconds of sim time since the episode began (what the virtual operator is given)."""
        return self.world.time - self._t0

    def agent_pos(self) -> np.ndarray:
        """Joints and gripper as the arm reports them over CAN (1 mdeg, 1 um), like a recorded state."""
        return np.asarray(as_reported(np.append(self.world.arm_q(), self.world.gripper_opening())))

    def camera_frames(self) -> dict[str, np.ndarray]:
        """Both cameras at this instant, whatever `obs_type` says: an `agent_pos` env plus this on
        the ticks that need images renders only those (an evaluation serving action chunks)."""
        return {cam: self.world.render(cam, self.image_size).copy() for cam in CAMERA_NAMES}

    def _observation(self) -> dict:
        obs = {}
        if self.obs_type != "agent_pos":
            obs["pixels"] = self.camera_frames()
        if self.obs_type != "pixels":
            obs["agent_pos"] = self.agent_pos()
        return obs


def register_envs() -> None:
    for key, cls in TASKS.items():
        if env_id(key) not in gym.registry:
            gym.register(
                id=env_id(key),
                entry_point="collect.sim.env:PiperSimEnv",
                kwargs={"task": key},
                max_episode_steps=int(cls.episode_seconds * 30),
            )


register_envs()

__all__ = ["PiperSimEnv", "env_id", "build_task_world", "register_envs", "DISTRACTOR_NAMES"]
