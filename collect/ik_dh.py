"""Inverse kinematics of the PiPER's flange on piper_sdk's own DH model (no MuJoCo).

The emulator answers end-pose control (0x152-0x154) with it. A pose means what the arm
reports in 0x2A2-0x2A4 (`C_PiperForwardKinematics.CalFK`): DH frame 6 in the base frame,
position in mm, orientation roll/pitch/yaw in degrees with R = Rz(yaw) Ry(pitch) Rx(roll).
`collect.sim.ik` solves on the simulated world's MuJoCo model instead.

    arm = DhArm.from_sdk()
    q = arm.solve(Pose.from_xyz_rpy((57, 0, 260), (0, 85, 0)), q_now)   # None: unreachable
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from collect.limits import HOME_JOINTS_RAD, JOINT_LIMITS_RAD

POS_TOL_MM = 1e-3  # the feedback's resolution (0.001 mm, 0.001 deg)
ROT_TOL_RAD = math.radians(1e-3)
ROT_LEVER_MM = 100.0  # one radian of orientation error weighs like 100 mm of position error
DAMPING = 1e-2  # mm^2: keeps steps finite at the wrist singularity (joint 5 = 0)
MAX_STEP_RAD = 0.2  # per iteration, to stay where the linearisation holds
ITERATIONS = 100
STALL_CHECK_EVERY = 10  # iterations; a descent whose error shrank less than 5% since then gives up
# Restarts when descending from the current joints fails: the home pose and a few elbow
# and wrist postures spread over the workspace.
SEEDS_RAD: tuple[tuple[float, ...], ...] = (
    HOME_JOINTS_RAD,
    (0.0, 0.5, -0.5, 0.0, 0.5, 0.0),
    (0.0, 1.0, -2.0, 0.0, -0.8, 0.0),
    (0.0, 2.0, -1.0, 0.0, 0.8, 0.0),
    (0.0, 1.57, -1.3485, 1.2, 0.8, -1.2),
    (0.0, 1.57, -1.3485, -1.2, 0.8, 1.2),
)
_LOW = np.array([lo for lo, _ in JOINT_LIMITS_RAD])
_HIGH = np.array([hi for _, hi in JOINT_LIMITS_RAD])


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_vector(R: np.ndarray) -> np.ndarray:
    """Axis * angle (rad) of a rotation matrix."""
    cos = max(-1.0, min(1.0, (np.trace(R) - 1.0) / 2.0))
    angle = math.acos(cos)
    skew = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if angle < 1e-9:
        return skew / 2.0
    if math.pi - angle < 1e-6:  # half-turn: the skew part vanishes, read the axis off R + I
        col = np.argmax(np.diag(R))
        axis = (R[:, col] + np.eye(3)[:, col]) / math.sqrt(2.0 * (1.0 + R[col, col]))
        return axis * angle
    return skew * (angle / (2.0 * math.sin(angle)))


def rotation_matrix(rotvec: np.ndarray) -> np.ndarray:
    """The rotation of axis * angle `rotvec` (Rodrigues)."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    K = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * K + (1.0 - math.cos(angle)) * (K @ K)


@dataclass(frozen=True)
class Pose:
    pos_mm: np.ndarray  # (3,)
    rot: np.ndarray  # (3, 3), flange axes in the base frame

    @classmethod
    def from_xyz_rpy(cls, xyz_mm, rpy_deg) -> Pose:
        roll, pitch, yaw = (math.radians(v) for v in rpy_deg)
        return cls(np.array(xyz_mm, dtype=float), _rot_z(yaw) @ _rot_y(pitch) @ _rot_x(roll))

    def distance_to(self, other: Pose) -> tuple[float, float]:
        """(position error mm, orientation error rad)."""
        return float(np.linalg.norm(other.pos_mm - self.pos_mm)), float(
            np.linalg.norm(rotation_vector(other.rot @ self.rot.T))
        )


def interpolate(start: Pose, end: Pose, s: float) -> Pose:
    """The pose a fraction `s` of the way: on the straight line, turning about one fixed axis."""
    turn = rotation_vector(end.rot @ start.rot.T)
    return Pose(start.pos_mm + s * (end.pos_mm - start.pos_mm), rotation_matrix(s * turn) @ start.rot)


class DhArm:
    """Forward and inverse kinematics on a modified-DH table (a, d in mm; alpha, offsets in rad)."""

    def __init__(self, a, alpha, theta_offset, d):
        self._a, self._alpha = list(a), list(alpha)
        self._offset, self._d = list(theta_offset), list(d)

    @classmethod
    def from_sdk(cls) -> DhArm:
        """The table of piper_sdk's `C_PiperForwardKinematics` (dh_is_offset=1), which the
        emulator's end-pose feedback also uses: one model for what is commanded and reported."""
        from piper_sdk.kinematics.piper_fk import C_PiperForwardKinematics

        fk = C_PiperForwardKinematics(0x01)
        return cls(fk._a, fk._alpha, fk._theta, fk._d)

    def _frames(self, q) -> list[tuple[np.ndarray, np.ndarray]]:
        """(rotation, origin) of DH frames 1..6: RotX(alpha) TransX(a) RotZ(q + offset) TransZ(d)."""
        R, o = np.eye(3), np.zeros(3)
        frames = []
        for i in range(6):
            o = o + R @ np.array([self._a[i], 0.0, 0.0])  # RotX(alpha) leaves the x axis alone
            R = R @ _rot_x(self._alpha[i]) @ _rot_z(float(q[i]) + self._offset[i])
            o = o + R @ np.array([0.0, 0.0, self._d[i]])
            frames.append((R, o))
        return frames

    def forward(self, q) -> Pose:
        R, o = self._frames(q)[-1]
        return Pose(o, R)

    def solve(self, target: Pose, q_init) -> np.ndarray | None:
        """Joints (rad, inside the limits) that put the flange at `target`, found from
        `q_init` first (so the nearest solution wins), then from the seeds; None if none does."""
        q_init = np.asarray(q_init, dtype=float)
        q = self.track(target, q_init)
        if q is not None:
            return q
        found = [q for seed in SEEDS_RAD if (q := self._descend(target, np.array(seed))) is not None]
        return min(found, key=lambda c: float(np.abs(c - q_init).sum()), default=None)

    def track(self, target: Pose, q_prev) -> np.ndarray | None:
        """The solution continuing from `q_prev`, without restarts: a path must not jump
        between solution branches; None if it does not converge."""
        return self._descend(target, np.asarray(q_prev, dtype=float))

    def _descend(self, target: Pose, q0: np.ndarray) -> np.ndarray | None:
        """Damped least squares, projected onto the joint limits; None if it does not converge."""
        q = np.clip(q0, _LOW, _HIGH)
        checkpoint = math.inf
        for i in range(ITERATIONS):
            frames = self._frames(q)
            R, o = frames[-1]
            e_pos = target.pos_mm - o
            e_rot = rotation_vector(target.rot @ R.T)
            if np.linalg.norm(e_pos) < POS_TOL_MM and np.linalg.norm(e_rot) < ROT_TOL_RAD:
                return q
            e = np.concatenate([e_pos, ROT_LEVER_MM * e_rot])
            if i % STALL_CHECK_EVERY == 0:  # stuck against a limit or out of reach: stop early
                if np.linalg.norm(e) > 0.95 * checkpoint:
                    return None
                checkpoint = float(np.linalg.norm(e))
            J = self._jacobian(frames)
            dq = J.T @ np.linalg.solve(J @ J.T + DAMPING * np.eye(6), e)
            step = float(np.max(np.abs(dq)))
            if step > MAX_STEP_RAD:
                dq *= MAX_STEP_RAD / step
            q = np.clip(q + dq, _LOW, _HIGH)
        return None

    @staticmethod
    def _jacobian(frames) -> np.ndarray:
        """Rows: flange velocity (mm/rad) and ROT_LEVER_MM * angular velocity; joint i turns
        about the z axis of DH frame i, through its origin."""
        tip = frames[-1][1]
        J = np.empty((6, 6))
        for i, (R, o) in enumerate(frames):
            z = R[:, 2]
            J[:3, i] = np.cross(z, tip - o)
            J[3:, i] = ROT_LEVER_MM * z
        return J
