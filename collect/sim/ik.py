"""Inverse kinematics of the simulated PiPER on a tool point (damped least squares).

The tool frame is described by three things fixed on the flange body (link6): the tool
point (between the finger pads), the approach axis (where the fingers point) and the
closing axis (along which the fingers close). A target gives the tool point and those two
axes in world coordinates. Solving runs on a private `MjData`, never the world's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collect.limits import JOINT_LIMITS_RAD
from collect.sim.gl import ensure_gl_backend

ensure_gl_backend()
import mujoco  # noqa: E402  (after the GL backend is chosen)

WRIST_POSTURE_WEIGHT = 2e-3


@dataclass(frozen=True)
class ToolFrame:
    body: str  # the flange body the gripper is fixed to
    point: tuple[float, float, float]  # tool point in the body frame
    approach: tuple[float, float, float]  # unit, body frame
    closing: tuple[float, float, float]  # unit, body frame


@dataclass(frozen=True)
class Pose:
    pos: np.ndarray
    approach: np.ndarray
    closing: np.ndarray


def rotation_vector(R: np.ndarray) -> np.ndarray:
    """Axis * angle of a rotation matrix."""
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(R).reshape(9))
    vel = np.zeros(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


class ToolIK:
    def __init__(self, model: mujoco.MjModel, joint_names: list[str], tool: ToolFrame):
        self.model = model
        self.data = mujoco.MjData(model)
        self.tool = tool
        self.body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, tool.body)
        if self.body < 0:
            raise ValueError(f"no body {tool.body!r} in the model")
        joints = [model.joint(n) for n in joint_names]
        self.qadr = np.array([int(j.qposadr[0]) for j in joints])
        self.dadr = np.array([int(j.dofadr[0]) for j in joints])
        self.lo = np.array([lo for lo, _ in JOINT_LIMITS_RAD])
        self.hi = np.array([hi for _, hi in JOINT_LIMITS_RAD])
        self._point = np.array(tool.point, dtype=float)
        self._a = np.array(tool.approach, dtype=float)
        self._c = np.array(tool.closing, dtype=float)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def _set(self, q: np.ndarray) -> None:
        self.data.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, self.data)

    def _world_tool(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        R = self.data.xmat[self.body].reshape(3, 3)
        return self.data.xpos[self.body] + R @ self._point, R @ self._a, R @ self._c

    def forward(self, q: np.ndarray) -> Pose:
        self._set(np.asarray(q, dtype=float))
        p, a, c = self._world_tool()
        return Pose(p.copy(), a.copy(), c.copy())

    def solve(
        self,
        target: Pose,
        q_init: np.ndarray,
        iters: int = 60,
        tol_pos: float = 5e-4,
        tol_rot: float = 5e-3,
        damping: float = 1e-4,
    ) -> tuple[np.ndarray, float, float]:
        """Joint vector reaching `target` from `q_init`; returns (q, position error m, angle error rad)."""
        q = np.clip(np.asarray(q_init, dtype=float).copy(), self.lo, self.hi)
        A = target.approach / np.linalg.norm(target.approach)
        C = target.closing - A * np.dot(target.closing, A)
        C /= np.linalg.norm(C)
        R_target = np.column_stack([A, C, np.cross(A, C)])
        err_p = err_r = np.inf
        for _ in range(iters):
            self._set(q)
            p, a, c = self._world_tool()
            e_pos = target.pos - p
            e_rot = rotation_vector(R_target @ np.column_stack([a, c, np.cross(a, c)]).T)
            err_p, err_r = float(np.linalg.norm(e_pos)), float(np.linalg.norm(e_rot))
            if err_p < tol_pos and err_r < tol_rot:
                break
            mujoco.mj_comPos(self.model, self.data)  # mj_jac needs the dof axes
            mujoco.mj_jac(self.model, self.data, self._jacp, self._jacr, p, self.body)
            J = np.vstack([self._jacp[:, self.dadr], self._jacr[:, self.dadr]])
            e = np.concatenate([e_pos, 0.3 * e_rot])  # ~0.3 m lever: trade mm against mrad
            W = np.diag([1, 1, 1, 0.3, 0.3, 0.3])
            Jw = W @ J
            # Damped least squares plus a weak pull of joint 4 towards zero: near the wrist
            # singularity (joint 5 ~ 0) joints 4 and 6 turn the tool alike, and without it
            # they wind up against their limits in opposite directions.
            H = Jw.T @ Jw + damping * np.eye(6)
            H[3, 3] += WRIST_POSTURE_WEIGHT
            dq = np.linalg.solve(H, Jw.T @ e - WRIST_POSTURE_WEIGHT * self._wrist_bias(q))
            step = np.max(np.abs(dq))
            if step > 0.3:  # keep each iteration inside the linear regime
                dq *= 0.3 / step
            q = np.clip(q + dq, self.lo, self.hi)
        return q, err_p, err_r

    @staticmethod
    def _wrist_bias(q: np.ndarray) -> np.ndarray:
        bias = np.zeros(6)
        bias[3] = q[3]
        return bias


def piper_tool_frame() -> ToolFrame:
    """The simulated PiPER's tool: site `tcp` on link6 (DH frame 6), fingers along +z,
    closing along y (see collect.sim.world)."""
    from collect.sim.world import TCP_OFFSET_M

    return ToolFrame(
        body="link6", point=(0.0, 0.0, TCP_OFFSET_M), approach=(0.0, 0.0, 1.0), closing=(0.0, 1.0, 0.0)
    )


def arm_ik(world) -> ToolIK:
    from collect.sim.world import ARM_JOINTS

    return ToolIK(world.model, list(ARM_JOINTS), piper_tool_frame())


def arm_joints(world) -> tuple[np.ndarray, float]:
    """The arm's measured joints (6, rad) and gripper opening (m)."""
    state = world.arm_state()
    return np.array(state.positions_rad, dtype=float), float(state.gripper_m)
