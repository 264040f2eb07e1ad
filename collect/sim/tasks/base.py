"""What a simulated task is: objects in the scene, seeded placement, a strict success
predicate and the moves a scripted expert makes.

A task never steps physics and never renders; the env and the recorder do. It reads and
writes the MuJoCo model/data of a `PiperWorld` (`world.model`, `world.data`) directly.

Lifecycle per episode: `place(world, rng, style)` after the world reset, then `update(world)`
after every control tick (tasks whose success depends on history, e.g. press-and-release,
record it there), `is_success(world)` whenever asked, and `script(world)` for the expert.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from collect.sim.gl import ensure_gl_backend

ensure_gl_backend()
import mujoco  # noqa: E402  (after the GL backend is chosen)

TABLE_Z = 0.0  # the table top; the arm's base stands on it at the world origin
GRIPPER_OPEN_M = 0.07
GRIPPER_CLOSED_M = 0.0
REST_SPEED = 0.02  # m/s: an object slower than this is resting
# The finger pads end this far beyond the tool point (site `tcp`) along the approach axis:
# a grasp point lower than this above a surface would drive the fingertips into it.
FINGERTIP_BEYOND_TCP_M = 0.016


@dataclass(frozen=True)
class ExpertStyle:
    """Per-seed variety in where and how the expert moves (the operator adds timing/noise)."""

    approach_yaw: float = 0.0  # rad, added to the natural grasp yaw
    approach_tilt: float = 0.0  # rad, tool tilt away from vertical towards the base
    hover: float = 0.09  # m above a grasp point before descending
    lift: float = 0.12  # m lifted after a grasp
    spot: tuple[float, float] = (0.0, 0.0)  # offset (m) of a drop/put-down spot, within its target

    @classmethod
    def sample(cls, rng: np.random.Generator) -> ExpertStyle:
        return cls(
            approach_yaw=float(rng.uniform(-0.25, 0.25)),
            approach_tilt=float(rng.uniform(-0.12, 0.12)),
            hover=float(rng.uniform(0.07, 0.11)),
            lift=float(rng.uniform(0.10, 0.15)),
            spot=(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))),
        )


@dataclass
class Move:
    """One segment of an expert's script: go (in a straight tool line) to a tool pose.

    `pos` is the tool point (between the finger pads); `approach` the unit vector the
    fingers point along; `closing` the unit vector the fingers close along (sign free).
    None keeps the previous value. `settle`: wait until the follower has arrived before the
    next move (grasp and release must not happen while the arm still lags behind).
    """

    name: str
    pos: np.ndarray | None = None
    approach: np.ndarray | None = None
    closing: np.ndarray | None = None
    gripper: float | None = None
    duration: float = 1.0  # seconds at speed 1
    settle: bool = False
    precise: bool = False  # less hand tremor (final centimetres of a grasp or press)
    flip_ok: bool = True  # the gripper is symmetric: closing may turn to -closing if nearer


def down(tilt: float = 0.0, towards: float = 0.0) -> np.ndarray:
    """An approach vector pointing down, tilted by `tilt` rad in the direction of yaw `towards`."""
    return np.array([np.sin(tilt) * np.cos(towards), np.sin(tilt) * np.sin(towards), -np.cos(tilt)])


def top_down_frame(target, style: ExpertStyle, tilt_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(approach, closing) to come down on `target` from above: fingers facing away from the
    base along the line to the target, varied by the style's yaw and (scaled) tilt."""
    yaw = float(np.arctan2(target[1], target[0])) + style.approach_yaw
    return down(tilt_scale * style.approach_tilt, yaw), np.array([-np.sin(yaw), np.cos(yaw), 0.0])


def horizontal(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw), np.sin(yaw), 0.0])


def pitched_frame(yaw: float, pitch_down: float, roll: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(approach, closing) for fingers pointing along yaw, `pitch_down` rad below horizontal,
    rolled by `roll` rad about the approach axis (roll 0: closing horizontal, to the left)."""
    approach = np.array(
        [np.cos(pitch_down) * np.cos(yaw), np.cos(pitch_down) * np.sin(yaw), -np.sin(pitch_down)]
    )
    left = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
    closing = np.cos(roll) * left + np.sin(roll) * np.cross(approach, left)
    return approach, closing


class SimTask(ABC):
    """Base of the four tasks. Subclasses set `key`, `instruction` and implement the rest."""

    key: ClassVar[str]
    instruction: ClassVar[str]
    episode_seconds: ClassVar[float] = 20.0  # an evaluation episode's time limit

    # --- scene ------------------------------------------------------------------------------
    def assets_xml(self) -> str:
        """Textures/materials/meshes the objects use (primitives with rgba need none)."""
        return ""

    @abstractmethod
    def worldbody_xml(self) -> str: ...

    @abstractmethod
    def object_geom_names(self) -> list[str]:
        """Geoms whose colour the `color` perturbation may change."""

    def size_geom_names(self) -> list[str]:
        """Graspable primitives the `size` perturbation may scale (centred on their body)."""
        return []

    # --- episode ----------------------------------------------------------------------------
    @abstractmethod
    def place(self, world, rng: np.random.Generator) -> None:
        """Seeded object poses on the table, within the arm's reach. Called after world reset."""

    def update(self, world) -> None:  # noqa: B027 - most tasks keep no history
        """Called after each control tick."""

    @abstractmethod
    def is_success(self, world) -> bool: ...

    @abstractmethod
    def script(self, world, style: ExpertStyle) -> list[Move]:
        """The expert's moves from the current (just placed) scene."""

    def keepout(self, world) -> list[tuple[np.ndarray, float]]:
        """(xy centre, radius) discs that distractors must avoid."""
        return []


# --- model helpers shared by the tasks ---------------------------------------------------------


def body_id(world, name: str) -> int:
    return mujoco.mj_name2id(world.model, mujoco.mjtObj.mjOBJ_BODY, name)


def geom_id(world, name: str) -> int:
    return mujoco.mj_name2id(world.model, mujoco.mjtObj.mjOBJ_GEOM, name)


def body_pos(world, name: str) -> np.ndarray:
    return world.data.xpos[body_id(world, name)].copy()


def body_xmat(world, name: str) -> np.ndarray:
    return world.data.xmat[body_id(world, name)].reshape(3, 3).copy()


def body_speed(world, name: str) -> float:
    """Linear speed (m/s) of a free body, from its free joint's velocity."""
    bid = body_id(world, name)
    dof = world.model.jnt_dofadr[world.model.body_jntadr[bid]]
    return float(np.linalg.norm(world.data.qvel[dof : dof + 3]))


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def set_free_pose(world, name: str, pos, yaw: float = 0.0) -> None:
    """Put a free body at `pos` with `yaw` about z, at rest."""
    m, d = world.model, world.data
    jnt = m.body_jntadr[body_id(world, name)]
    qadr, dadr = m.jnt_qposadr[jnt], m.jnt_dofadr[jnt]
    d.qpos[qadr : qadr + 3] = pos
    d.qpos[qadr + 3 : qadr + 7] = yaw_quat(yaw)
    d.qvel[dadr : dadr + 6] = 0.0


def set_fixed_pose(world, name: str, pos, yaw: float = 0.0) -> None:
    """Move a body without joints (pot, basket, button base): a model edit, kept until changed."""
    bid = body_id(world, name)
    world.model.body_pos[bid] = pos
    world.model.body_quat[bid] = yaw_quat(yaw)


def geom_half_height(world, name: str) -> float:
    """Half the vertical extent of an upright primitive (box z, cylinder half-length, sphere r)."""
    g = geom_id(world, name)
    size = world.model.geom_size[g]
    kind = world.model.geom_type[g]
    if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
        return float(size[0])
    if kind == mujoco.mjtGeom.mjGEOM_CYLINDER:
        return float(size[1])
    return float(size[2])


def finger_body_ids(world) -> set[int]:
    """The gripper's finger bodies (any body whose name contains "finger")."""
    m = world.model
    return {
        b for b in range(m.nbody) if "finger" in (mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) or "")
    }


def touching(world, body_a: set[int] | int, body_b: set[int] | int) -> bool:
    """True while any geom of bodies `body_a` is in contact with one of `body_b`."""
    a = {body_a} if isinstance(body_a, int) else body_a
    b = {body_b} if isinstance(body_b, int) else body_b
    m, d = world.model, world.data
    for i in range(d.ncon):
        c = d.contact[i]
        ba, bb = m.geom_bodyid[c.geom1], m.geom_bodyid[c.geom2]
        if (ba in a and bb in b) or (ba in b and bb in a):
            return True
    return False


def held_by_gripper(world, name: str) -> bool:
    return touching(world, finger_body_ids(world), body_id(world, name))


def sample_layout(
    rng: np.random.Generator,
    regions: dict[str, tuple[tuple[float, float], tuple[float, float]]],
    radii: dict[str, float],
    attempts: int = 200,
) -> dict[str, np.ndarray]:
    """Sample an xy for each named object in its (x range, y range), with no two closer than
    the sum of their radii. Regions are in the arm's reach, so rejection ends quickly."""
    for _ in range(attempts):
        layout: dict[str, np.ndarray] = {}
        for name, ((x0, x1), (y0, y1)) in regions.items():
            layout[name] = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        names = list(layout)
        if all(
            np.linalg.norm(layout[a] - layout[b]) >= radii[a] + radii[b]
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        ):
            return layout
    raise RuntimeError(f"could not place {list(regions)} apart; regions too small for the radii")
