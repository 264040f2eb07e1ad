"""The simulated PiPER: a MuJoCo world of the arm on a table, with `side` and `wrist` cameras.

The arm is built from primitive shapes on the SDK's own modified-DH table (PIPER_CAN.md,
piper_sdk `kinematics/piper_fk.py`): body `link<i>` *is* DH frame i, so a joint vector
means the same pose here, in `C_PiperForwardKinematics` and on the real arm. Site
`flange` is DH frame 6 (what `GetArmEndPoseMsgs` reports); site `tcp` sits between the
finger pads (0.12 m beyond the flange, along the flange's z axis, the approach direction).

Coordinates: the arm's base is the world origin, the table top is z = 0, +x points away
from the arm. The usable workspace for task objects is on the table in front of the arm,
roughly x in [0.15, 0.50] m, y in [-0.30, 0.30] m (`WORKSPACE_XY`).

Composing a scene (the tasks add their objects this way):

    extra = SceneExtra(name="cube", worldbody='<body name="cube" pos="0.3 0 0.02">'
                       '<freejoint/><geom type="box" size=".02 .02 .02"/></body>')
    world = PiperWorld(extras=[extra], image_size=(480, 640))
    world.reset(arm_q=HOME_JOINTS_RAD, gripper_m=0.07, seed=0)   # world.rng is reseeded
    world.set_arm_targets(q6, gripper_m)   # clamped to collect.limits
    world.step(16)                         # or world.advance(dt_seconds)
    world.arm_state()                      # collect.joint_source.JointState
    world.site("tcp").xpos                 # also body(name), joint(name), geom(name)
    img = world.render("side")             # HxWx3 uint8

Geoms of objects collide with the arm when they keep MuJoCo's default contype/conaffinity
(1/1); the arm's own links never collide with each other. The arm's position actuators
`joint_1` ... `joint_6` and `gripper` (on a tendon: the opening in metres) come before any
actuator an extra declares, so `data.ctrl[:7]` is always the arm.

Not thread-safe. MuJoCo's renderer (EGL) must be created and used on one thread: the
first `render()` binds the world to its calling thread, later calls from another raise.
`collect.sim.runtime.SimRuntime` owns a world on its worker thread for everyone else.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from collect.joint_source import JointState
from collect.limits import CAMERA_NAMES, GRIPPER_LIMITS_M, HOME_JOINTS_RAD, JOINT_LIMITS_RAD  # noqa: F401 (re-exported)
from collect.sim.gl import ensure_gl_backend

ensure_gl_backend()
import mujoco  # noqa: E402  (after the GL backend is chosen)

# piper_sdk 0.6.2 modified-DH table (dh_is_offset=1): a (m), alpha (rad), theta offset (rad), d (m).
DH_A = (0.0, 0.0, 0.28503, -0.02198, 0.0, 0.0)
DH_ALPHA = (0.0, -math.pi / 2, 0.0, math.pi / 2, -math.pi / 2, math.pi / 2)
DH_THETA_OFFSET = (0.0, math.radians(-172.22), math.radians(-102.78), 0.0, 0.0, 0.0)
DH_D = (0.123, 0.0, 0.0, 0.25075, 0.0, 0.091)

TCP_OFFSET_M = 0.12  # flange -> between the finger pads
FINGER_TRAVEL_M = GRIPPER_LIMITS_M[1] / 2  # each finger slides half the opening
WORKSPACE_XY = ((0.15, 0.50), (-0.30, 0.30))  # (x range, y range) on the table, metres
ARM_JOINTS = tuple(f"joint_{i}" for i in range(1, 7))
TIMESTEP_S = 0.002

# Side camera: fixed on a post to the arm's right, overlooking the table.
SIDE_CAMERA_POS = (0.42, -0.62, 0.52)
SIDE_CAMERA_TARGET = (0.30, 0.0, 0.10)
SIDE_CAMERA_FOVY = 55.0
# Wrist camera in the flange frame: above the gripper, looking along the approach axis.
WRIST_CAMERA_POS = (0.065, 0.0, 0.02)
WRIST_CAMERA_TARGET = (0.0, 0.0, 0.22)
WRIST_CAMERA_FOVY = 75.0


@dataclass(frozen=True)
class SceneExtra:
    """XML fragments a task adds to the base scene; each goes inside the MJCF section it names."""

    name: str
    worldbody: str = ""
    asset: str = ""
    default: str = ""
    contact: str = ""
    equality: str = ""
    tendon: str = ""
    actuator: str = ""
    sensor: str = ""


def _fmt(values: Iterable[float]) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def _lookat_xyaxes(pos: Sequence[float], target: Sequence[float], up: Sequence[float]) -> str:
    """MuJoCo camera axes (x right, y up; it looks along -z) for a camera at pos aimed at target."""
    forward = np.subtract(target, pos, dtype=float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    return _fmt(np.concatenate([right, true_up]))


def _dh_frame(row: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Pose of DH frame row+1 in frame row at joint angle 0 (0-based table row):
    RotX(alpha) TransX(a) RotZ(offset) TransZ(d); the joint then turns about the new z."""
    a, alpha, offset, d = DH_A[row], DH_ALPHA[row], DH_THETA_OFFSET[row], DH_D[row]
    pos = (a, -math.sin(alpha) * d, math.cos(alpha) * d)
    ca, sa = math.cos(alpha / 2), math.sin(alpha / 2)
    ct, st = math.cos(offset / 2), math.sin(offset / 2)
    quat = (ca * ct, sa * ct, -sa * st, ca * st)  # qx(alpha) * qz(offset)
    return pos, quat


def _next_origin(i: int) -> tuple[float, ...]:
    """Origin of DH frame i+1 seen from frame i (1-based; fixed: joint i+1 turns about it)."""
    return _dh_frame(i)[0]


def _arm_xml() -> str:
    """Bodies link1..link6 nested on the DH frames, with simple shapes along each link."""
    link_shapes = {
        # body index: geoms in that body's (DH) frame
        1: '<geom type="cylinder" size="0.048 0.035" class="dark"/>',
        2: '<geom type="cylinder" size="0.042 0.05" class="dark"/>'
        f'<geom type="capsule" fromto="0 0 0 {_fmt(_next_origin(2))}" size="0.032"/>',
        3: '<geom type="cylinder" size="0.036 0.045" class="dark"/>'
        f'<geom type="capsule" fromto="0 0 0 {DH_A[3]:.6g} 0 0" size="0.03"/>'
        f'<geom type="capsule" fromto="{DH_A[3]:.6g} 0 0 {_fmt(_next_origin(3))}" size="0.026"/>',
        4: '<geom type="cylinder" size="0.03 0.02" class="dark"/>',
        5: '<geom type="cylinder" size="0.03 0.03" class="dark"/>'
        '<geom type="capsule" fromto="0 0 0 0 -0.06 0" size="0.026"/>',
        6: '<geom type="cylinder" size="0.032 0.006" pos="0 0 0.006" class="dark"/>'
        '<geom type="box" size="0.022 0.048 0.016" pos="0 0 0.03"/>'
        f'<site name="flange" size="0.008" rgba="0 0 1 0.5" group="3"/>'
        f'<site name="tcp" pos="0 0 {TCP_OFFSET_M}" size="0.006" rgba="1 0 0 0.5" group="3"/>'
        f'<camera name="wrist" pos="{_fmt(WRIST_CAMERA_POS)}" fovy="{WRIST_CAMERA_FOVY}" '
        f'xyaxes="{_lookat_xyaxes(WRIST_CAMERA_POS, WRIST_CAMERA_TARGET, (1, 0, 0))}"/>'
        + _finger_xml("finger_left", +1)
        + _finger_xml("finger_right", -1),
    }
    xml = ""
    for i in range(6, 0, -1):  # build inside-out: link6 nests in link5 ...
        lo, hi = JOINT_LIMITS_RAD[i - 1]
        pos, quat = _dh_frame(i - 1)
        xml = (
            f'<body name="link{i}" pos="{_fmt(pos)}" quat="{_fmt(quat)}" gravcomp="1">'
            f'<joint name="joint_{i}" axis="0 0 1" range="{lo:.6g} {hi:.6g}"/>'
            f"{link_shapes[i]}{xml}</body>"
        )
    return xml


def _finger_xml(name: str, side: int) -> str:
    """A finger sliding along the flange's y axis; its inner face sits at y = side * travel."""
    return (
        f'<body name="{name}" pos="0 0 0.046" gravcomp="1">'
        f'<joint name="{name}" type="slide" axis="0 {side} 0" range="0 {FINGER_TRAVEL_M:.6g}" class="finger"/>'
        f'<geom type="box" size="0.012 0.005 0.045" pos="0 {side * 0.005:.6g} 0.045" class="finger"/>'
        "</body>"
    )


def build_mjcf(extras: Sequence[SceneExtra] = (), image_size: tuple[int, int] = (480, 640)) -> str:
    """The MJCF of the table scene with the PiPER, plus any extras' fragments."""
    height, width = image_size
    section = {
        key: "".join(getattr(e, key) for e in extras)
        for key in SceneExtra.__dataclass_fields__
        if key != "name"
    }
    arm_actuators = "".join(
        f'<position name="{j}" joint="{j}" class="arm" inheritrange="1"{gains}/>'
        for j, gains in zip(
            ARM_JOINTS,
            ("", "", "", ' kp="60" kv="6"', ' kp="60" kv="6"', ' kp="30" kv="3"'),
            strict=True,
        )
    )
    return f"""
<mujoco model="piper_table">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{TIMESTEP_S}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="{max(width, 640)}" offheight="{max(height, 480)}"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.3 0.3 0.3" diffuse="0.45 0.45 0.45" specular="0 0 0"/>
    <map znear="0.01"/>
  </visual>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1=".62 .66 .72" rgb2=".2 .22 .26" width="64" height="64"/>
    <texture name="floor" type="2d" builtin="checker" width="128" height="128" rgb1=".32 .33 .36" rgb2=".27 .28 .31"/>
    <material name="floor" texture="floor" texrepeat="8 8"/>
    <material name="table" rgba=".62 .50 .36 1"/>
    <material name="arm" rgba=".86 .86 .88 1"/>
    <material name="dark" rgba=".16 .16 .19 1"/>
    {section["asset"]}
  </asset>
  <default>
    <default class="arm">
      <geom contype="2" conaffinity="1" material="arm" density="800"/>
      <joint damping="2" armature="0.1"/>
      <position kp="150" kv="15" forcerange="-40 40"/>
      <default class="dark"><geom material="dark"/></default>
      <default class="finger">
        <geom material="dark" condim="4" friction="1.5 0.02 0.002" solref="0.005 1" density="500"/>
        <joint damping="5" armature="0.01"/>
      </default>
    </default>
    {section["default"]}
  </default>
  <worldbody>
    <light name="key" pos="0.4 -0.4 1.6" dir="-0.1 0.25 -1" directional="true" castshadow="false" diffuse="0.6 0.6 0.6"/>
    <light name="fill" pos="-0.6 0.6 1.2" dir="0.5 -0.5 -1" directional="true" castshadow="false" diffuse="0.25 0.25 0.25"/>
    <geom name="floor" type="plane" size="3 3 0.1" pos="0 0 -0.75" material="floor" contype="0" conaffinity="0"/>
    <body name="table">
      <geom name="table_top" type="box" size="0.45 0.5 0.02" pos="0.25 0 -0.02" material="table"/>
      <geom type="box" size="0.025 0.025 0.365" pos="0.66 0.46 -0.405" material="table" contype="0" conaffinity="0"/>
      <geom type="box" size="0.025 0.025 0.365" pos="0.66 -0.46 -0.405" material="table" contype="0" conaffinity="0"/>
      <geom type="box" size="0.025 0.025 0.365" pos="-0.16 0.46 -0.405" material="table" contype="0" conaffinity="0"/>
      <geom type="box" size="0.025 0.025 0.365" pos="-0.16 -0.46 -0.405" material="table" contype="0" conaffinity="0"/>
    </body>
    <camera name="side" pos="{_fmt(SIDE_CAMERA_POS)}" fovy="{SIDE_CAMERA_FOVY}"
            xyaxes="{_lookat_xyaxes(SIDE_CAMERA_POS, SIDE_CAMERA_TARGET, (0, 0, 1))}"/>
    <body name="base" childclass="arm">
      <geom type="cylinder" size="0.055 0.044" pos="0 0 0.044" class="dark"/>
      {_arm_xml()}
    </body>
    {section["worldbody"]}
  </worldbody>
  <tendon>
    <fixed name="gripper"><joint joint="finger_left" coef="1"/><joint joint="finger_right" coef="1"/></fixed>
    {section["tendon"]}
  </tendon>
  <equality>
    <joint joint1="finger_right" joint2="finger_left" polycoef="0 1 0 0 0" solref="0.005 1"/>
    {section["equality"]}
  </equality>
  <contact>
    <exclude body1="finger_left" body2="finger_right"/>
    {section["contact"]}
  </contact>
  <actuator>
    {arm_actuators}
    <position name="gripper" tendon="gripper" ctrlrange="{GRIPPER_LIMITS_M[0]} {GRIPPER_LIMITS_M[1]}"
              kp="300" kv="20" forcerange="-20 20"/>
    {section["actuator"]}
  </actuator>
  <sensor>{section["sensor"]}</sensor>
</mujoco>
"""


class PiperWorld:
    """One MuJoCo model + data of the arm on its table, and the renderers of its cameras."""

    def __init__(
        self,
        xml: str | None = None,
        *,
        extras: Sequence[SceneExtra] = (),
        image_size: tuple[int, int] = (480, 640),
    ):
        self.xml = xml if xml is not None else build_mjcf(extras, image_size)
        self.image_size = image_size
        self.model = mujoco.MjModel.from_xml_string(self.xml)
        self.data = mujoco.MjData(self.model)
        self.rng = np.random.default_rng()
        self._arm_qpos = np.array([self.model.joint(j).qposadr[0] for j in ARM_JOINTS])
        self._arm_qvel = np.array([self.model.joint(j).dofadr[0] for j in ARM_JOINTS])
        self._finger_qpos = np.array(
            [self.model.joint(f).qposadr[0] for f in ("finger_left", "finger_right")]
        )
        self._gripper_actuator = self.model.actuator("gripper").id
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._render_thread: int | None = None
        # Nominal appearance, so that jitter_appearance() never drifts.
        self._nominal_cam_pos = self.model.cam_pos.copy()
        self._nominal_light_diffuse = self.model.light_diffuse.copy()
        self.reset()

    # -- state ---------------------------------------------------------------------------
    def reset(
        self,
        arm_q: Sequence[float] = HOME_JOINTS_RAD,
        gripper_m: float = GRIPPER_LIMITS_M[1],
        seed: int | None = None,
    ) -> None:
        """Back to the model's initial state with the arm at `arm_q`, holding it; reseeds `rng`."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        mujoco.mj_resetData(self.model, self.data)
        q, grip = _clamp_arm(arm_q, gripper_m)
        self.data.qpos[self._arm_qpos] = q
        self.data.qpos[self._finger_qpos] = grip / 2
        self.data.ctrl[:6] = q
        self.data.ctrl[self._gripper_actuator] = grip
        mujoco.mj_forward(self.model, self.data)

    def set_arm_targets(self, q6: Sequence[float], gripper_m: float) -> None:
        """Position targets for the six joints (rad) and the opening (m), clamped to the limits."""
        q, grip = _clamp_arm(q6, gripper_m)
        self.data.ctrl[:6] = q
        self.data.ctrl[self._gripper_actuator] = grip

    def hold(self) -> None:
        """Targets := where the arm is now (stop, do not spring back to an old target)."""
        self.set_arm_targets(self.data.qpos[self._arm_qpos], self.gripper_opening())

    def step(self, n: int = 1) -> None:
        mujoco.mj_step(self.model, self.data, nstep=max(1, int(n)))

    def advance(self, dt: float) -> int:
        """Simulate `dt` seconds (rounded to whole timesteps); returns the steps taken."""
        n = round(dt / self.model.opt.timestep)
        if n > 0:
            self.step(n)
        return n

    @property
    def time(self) -> float:
        return float(self.data.time)

    def arm_q(self) -> np.ndarray:
        return self.data.qpos[self._arm_qpos].copy()

    def gripper_opening(self) -> float:
        return float(self.data.qpos[self._finger_qpos].sum())

    def arm_state(self) -> JointState:
        return JointState(
            positions_rad=tuple(float(v) for v in self.data.qpos[self._arm_qpos]),
            velocities_rad_s=tuple(float(v) for v in self.data.qvel[self._arm_qvel]),
            gripper_m=self.gripper_opening(),
            gripper_effort_nm=float(self.data.actuator_force[self._gripper_actuator]),
        )

    def flange_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """DH frame 6 in the base frame: position (m) and 3x3 rotation."""
        site = self.data.site("flange")
        return site.xpos.copy(), site.xmat.reshape(3, 3).copy()

    def forward(self) -> None:
        """Recompute positions after writing qpos directly (no time passes)."""
        mujoco.mj_forward(self.model, self.data)

    # -- lookups (raise KeyError naming what exists) ------------------------------------
    def body(self, name: str):
        return self._lookup(self.data.body, name, mujoco.mjtObj.mjOBJ_BODY, self.model.nbody)

    def site(self, name: str):
        return self._lookup(self.data.site, name, mujoco.mjtObj.mjOBJ_SITE, self.model.nsite)

    def joint(self, name: str):
        return self._lookup(self.data.joint, name, mujoco.mjtObj.mjOBJ_JOINT, self.model.njnt)

    def geom(self, name: str):
        return self._lookup(self.data.geom, name, mujoco.mjtObj.mjOBJ_GEOM, self.model.ngeom)

    def _lookup(self, accessor, name: str, kind, count: int):
        try:
            return accessor(name)
        except KeyError:
            names = [mujoco.mj_id2name(self.model, kind, i) for i in range(count)]
            raise KeyError(
                f"no {kind.name[6:].lower()} named {name!r}; have {[n for n in names if n]}"
            ) from None

    # -- appearance and rendering ---------------------------------------------------------
    def jitter_appearance(self, camera_shift_m: float = 0.0, light_scale: float = 0.0) -> None:
        """Move the cameras by up to `camera_shift_m` and scale lights by 1 +- `light_scale`
        (robustness evaluation); zeros restore the nominal scene. Draws from `rng`."""
        shift = self.rng.uniform(-camera_shift_m, camera_shift_m, self._nominal_cam_pos.shape)
        self.model.cam_pos[:] = self._nominal_cam_pos + shift
        scale = 1.0 + self.rng.uniform(-light_scale, light_scale, (self.model.nlight, 1))
        self.model.light_diffuse[:] = np.clip(self._nominal_light_diffuse * scale, 0.0, 1.0)

    def nominal_camera_pos(self, camera: str) -> np.ndarray:
        """Where `camera` sits in the model as built (before any jitter or task edit)."""
        return self._nominal_cam_pos[self.model.camera(camera).id].copy()

    def render(self, camera: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """A fresh HxWx3 uint8 frame from `camera` ("side" or "wrist") at `size` (h, w)."""
        me = threading.get_ident()
        if self._render_thread is None:
            self._render_thread = me
        elif self._render_thread != me:
            raise RuntimeError(
                "PiperWorld.render() called from a second thread; MuJoCo's GL context belongs to the "
                "thread that rendered first. Render through SimRuntime, which owns the world on one thread."
            )
        size = tuple(size or self.image_size)
        renderer = self._renderers.get(size)
        if renderer is None:
            renderer = self._make_renderer(size)
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def _make_renderer(self, size: tuple[int, int]) -> mujoco.Renderer:
        height, width = size
        if height > self.model.vis.global_.offheight or width > self.model.vis.global_.offwidth:
            raise ValueError(
                f"image size {height}x{width} exceeds the scene's framebuffer "
                f"{self.model.vis.global_.offheight}x{self.model.vis.global_.offwidth}; build the world "
                f"with image_size={size}"
            )
        try:
            renderer = mujoco.Renderer(self.model, height, width)
        except Exception as exc:  # GL context creation fails here on a broken stack
            from collect.sim.gl import APT_HINT

            raise RuntimeError(f"MuJoCo could not create a renderer ({exc}); {APT_HINT}") from exc
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self._renderers[size] = renderer
        return renderer

    def close(self) -> None:
        """Free the renderers (call on the rendering thread)."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        self._render_thread = None


def _clamp_arm(q6: Sequence[float], gripper_m: float) -> tuple[np.ndarray, float]:
    q = np.asarray(q6, dtype=float)
    if q.shape != (6,) or not np.all(np.isfinite(q)) or not math.isfinite(gripper_m):
        raise ValueError(
            f"arm target must be 6 finite joint angles and a finite opening, got {q6!r}, {gripper_m!r}"
        )
    lows, highs = np.array(JOINT_LIMITS_RAD).T
    return np.clip(q, lows, highs), min(max(float(gripper_m), GRIPPER_LIMITS_M[0]), GRIPPER_LIMITS_M[1])
