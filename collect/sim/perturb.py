"""Perturbation presets for robustness evaluation: named, combinable, off by default.

`parse_perturbations("lighting+camera")` -> `Perturbations`. Everything except the
distractors is applied to the compiled model at each reset (seeded), so one model serves
every episode; distractors are extra bodies, so they are added to the scene at build time.

| name          | what changes per episode                                          |
|---------------|-------------------------------------------------------------------|
| `lighting`    | light colour/intensity and direction, headlight ambient            |
| `distractors` | three extra objects on the table, away from the task's objects     |
| `camera`      | side camera moved up to 2 cm and turned up to 3 degrees; wrist 1 cm|
| `color`       | the task objects' colours                                          |
| `size`        | the task objects' graspable parts scaled by 0.9-1.1                |
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields

import numpy as np

PRESET_NAMES: tuple[str, ...] = ("lighting", "distractors", "camera", "color", "size")


@dataclass(frozen=True)
class Perturbations:
    lighting: bool = False
    distractors: bool = False
    camera: bool = False
    color: bool = False
    size: bool = False

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    @property
    def name(self) -> str:
        """The canonical spelling, e.g. "lighting+camera" ("" when none)."""
        return "+".join(n for n in PRESET_NAMES if getattr(self, n))


def parse_perturbations(spec: str | Perturbations | None) -> Perturbations:
    """ "" / None / "none" -> nothing; "all" -> every preset; "a+b" (or "a,b") -> both."""
    if isinstance(spec, Perturbations):
        return spec
    text = (spec or "").strip().lower()
    if text in ("", "none"):
        return Perturbations()
    if text == "all":
        return Perturbations(**{n: True for n in PRESET_NAMES})
    chosen = {}
    for part in text.replace(",", "+").split("+"):
        part = part.strip()
        if part == "colour":
            part = "color"
        if part not in PRESET_NAMES:
            close = difflib.get_close_matches(part, PRESET_NAMES, n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise ValueError(
                f"unknown perturbation {part!r}.{hint} Known: {', '.join(PRESET_NAMES)}, all, none; "
                "combine with '+', e.g. 'lighting+camera'."
            )
        chosen[part] = True
    return Perturbations(**chosen)


# --- distractors: three small objects, parked on the table by `place_distractors` -----------

DISTRACTOR_NAMES: tuple[str, ...] = ("distractor_box", "distractor_can", "distractor_ball")


def distractor_worldbody_xml() -> str:
    return """
    <body name="distractor_box" pos="0.3 0.45 0.02"><freejoint/>
      <geom name="distractor_box" type="box" size="0.018 0.025 0.02" rgba="0.95 0.55 0.1 1" mass="0.05"/></body>
    <body name="distractor_can" pos="0.35 0.45 0.03"><freejoint/>
      <geom name="distractor_can" type="cylinder" size="0.02 0.03" rgba="0.1 0.7 0.3 1" mass="0.05"/></body>
    <body name="distractor_ball" pos="0.4 0.45 0.02"><freejoint/>
      <geom name="distractor_ball" type="sphere" size="0.02" rgba="0.85 0.1 0.6 1" mass="0.03" condim="6"
            friction="1 0.01 0.01"/></body>
    """


# --- model edits applied at reset ------------------------------------------------------------


@dataclass
class _Nominal:
    """The model's values before any perturbation, so each reset starts from the same scene."""

    light_diffuse: np.ndarray
    light_ambient: np.ndarray
    light_dir: np.ndarray
    headlight_ambient: np.ndarray
    headlight_diffuse: np.ndarray
    cam_pos: np.ndarray
    cam_quat: np.ndarray
    geom_rgba: np.ndarray
    geom_size: np.ndarray
    geom_rbound: np.ndarray
    geom_aabb: np.ndarray

    @classmethod
    def of(cls, model) -> _Nominal:
        return cls(
            model.light_diffuse.copy(),
            model.light_ambient.copy(),
            model.light_dir.copy(),
            model.vis.headlight.ambient.copy(),
            model.vis.headlight.diffuse.copy(),
            model.cam_pos.copy(),
            model.cam_quat.copy(),
            model.geom_rgba.copy(),
            model.geom_size.copy(),
            model.geom_rbound.copy(),
            model.geom_aabb.copy(),
        )

    def restore(self, model) -> None:
        model.light_diffuse[:] = self.light_diffuse
        model.light_ambient[:] = self.light_ambient
        model.light_dir[:] = self.light_dir
        model.vis.headlight.ambient[:] = self.headlight_ambient
        model.vis.headlight.diffuse[:] = self.headlight_diffuse
        model.cam_pos[:] = self.cam_pos
        model.cam_quat[:] = self.cam_quat
        model.geom_rgba[:] = self.geom_rgba
        model.geom_size[:] = self.geom_size
        model.geom_rbound[:] = self.geom_rbound
        model.geom_aabb[:] = self.geom_aabb


def _small_rotation_quat(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    half = np.radians(rng.uniform(-max_deg, max_deg)) / 2
    return np.concatenate([[np.cos(half)], np.sin(half) * axis])


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ]
    )


class ScenePerturber:
    """Applies the chosen presets to one compiled model; `apply` is called at every reset.

    `object_geoms` are the task's geoms that `color` recolours; `size_geoms` those that
    `size` scales (primitives centred on their body, so scaling size, rbound and aabb is exact).
    """

    def __init__(self, model, perturbations: Perturbations, object_geoms=(), size_geoms=()):
        self.model = model
        self.perturbations = perturbations
        self.object_geoms = list(object_geoms)
        self.size_geoms = list(size_geoms)
        self._nominal = _Nominal.of(model)

    def apply(self, rng: np.random.Generator) -> None:
        m, p = self.model, self.perturbations
        self._nominal.restore(m)
        if p.lighting:
            gain = rng.uniform(0.55, 1.45)
            tint = rng.uniform(0.85, 1.15, size=3)
            m.light_diffuse[:] = np.clip(self._nominal.light_diffuse * gain * tint, 0, 1)
            m.vis.headlight.ambient[:] = np.clip(
                self._nominal.headlight_ambient * rng.uniform(0.5, 1.6), 0, 1
            )
            m.vis.headlight.diffuse[:] = np.clip(self._nominal.headlight_diffuse * gain, 0, 1)
            for i in range(m.nlight):
                d = self._nominal.light_dir[i] + rng.uniform(-0.35, 0.35, size=3) * [1, 1, 0]
                m.light_dir[i] = d / np.linalg.norm(d)
        if p.camera:
            for i in range(m.ncam):
                is_wrist = "wrist" in (m.camera(i).name or "")
                shift, turn = (0.01, 1.5) if is_wrist else (0.02, 3.0)
                m.cam_pos[i] = self._nominal.cam_pos[i] + rng.uniform(-shift, shift, size=3)
                m.cam_quat[i] = _quat_mul(self._nominal.cam_quat[i], _small_rotation_quat(rng, turn))
        if p.color:
            for g in self.object_geoms:
                hsv_like = rng.uniform(0.1, 0.95, size=3)
                m.geom_rgba[g, :3] = hsv_like
        if p.size:
            for g in self.size_geoms:
                s = rng.uniform(0.9, 1.1)
                m.geom_size[g] = self._nominal.geom_size[g] * s
                m.geom_rbound[g] = self._nominal.geom_rbound[g] * s
                m.geom_aabb[g, 3:] = self._nominal.geom_aabb[g, 3:] * s


def place_distractors(world, rng: np.random.Generator, keepout: list[tuple[np.ndarray, float]]) -> None:
    """Put the distractor objects on the table in reach, away from the task's objects."""
    from collect.sim.tasks.base import TABLE_Z, geom_half_height, set_free_pose

    taken = list(keepout) + [(np.zeros(2), 0.15)]  # and not against the arm's base
    for name in DISTRACTOR_NAMES:
        for _ in range(200):
            xy = np.array([rng.uniform(0.15, 0.45), rng.uniform(-0.32, 0.32)])
            if all(np.linalg.norm(xy - c) > r + 0.035 for c, r in taken):
                break
        taken.append((xy, 0.035))
        set_free_pose(
            world, name, [*xy, TABLE_Z + geom_half_height(world, name)], yaw=float(rng.uniform(-3, 3))
        )
