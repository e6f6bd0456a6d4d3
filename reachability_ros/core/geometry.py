"""Small batched rigid-body helpers (numpy only).

Conventions: quaternions are ordered (x, y, z, w) as in ROS messages;
homogeneous transforms are ``(..., 4, 4)``; ``T_a_b`` is the pose of frame b
expressed in frame a.
"""

from __future__ import annotations

import numpy as np


def clamp(x, lo, hi) -> np.ndarray:
    """``np.clip`` without its Python wrapper (a few microseconds per call on small
    arrays, which add up in the per-request pipeline). NaN stays NaN."""
    return np.minimum(np.maximum(x, lo), hi)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Convert unit quaternions (x, y, z, w) to rotation matrices.

    Args:
        q: ``(..., 4)`` quaternions; normalized here (callers validate the norm).

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    q = np.asarray(q, dtype=float)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = np.moveaxis(q, -1, 0)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    R = np.stack([
        1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
        2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
        2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
    ], axis=-1)
    return R.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """Convert rotation matrices to unit quaternions (x, y, z, w) with w >= 0.

    Args:
        R: ``(..., 3, 3)`` rotation matrices.

    Returns:
        ``(..., 4)`` quaternions.
    """
    R = np.asarray(R, dtype=float)
    shape = R.shape[:-2]
    R = R.reshape(-1, 3, 3)
    q = np.empty((R.shape[0], 4))
    tr = np.trace(R, axis1=1, axis2=2)
    # Four branches, pick the numerically largest pivot per matrix.
    cand = np.stack([tr, R[:, 0, 0], R[:, 1, 1], R[:, 2, 2]], axis=1)
    k = np.argmax(cand, axis=1)
    for i in range(4):
        m = k == i
        if not np.any(m):
            continue
        r = R[m]
        if i == 0:
            s = 2.0 * np.sqrt(1.0 + tr[m])
            q[m] = np.stack([(r[:, 2, 1] - r[:, 1, 2]) / s, (r[:, 0, 2] - r[:, 2, 0]) / s,
                             (r[:, 1, 0] - r[:, 0, 1]) / s, 0.25 * s], axis=1)
        elif i == 1:
            s = 2.0 * np.sqrt(1.0 + r[:, 0, 0] - r[:, 1, 1] - r[:, 2, 2])
            q[m] = np.stack([0.25 * s, (r[:, 0, 1] + r[:, 1, 0]) / s,
                             (r[:, 0, 2] + r[:, 2, 0]) / s, (r[:, 2, 1] - r[:, 1, 2]) / s], axis=1)
        elif i == 2:
            s = 2.0 * np.sqrt(1.0 + r[:, 1, 1] - r[:, 0, 0] - r[:, 2, 2])
            q[m] = np.stack([(r[:, 0, 1] + r[:, 1, 0]) / s, 0.25 * s,
                             (r[:, 1, 2] + r[:, 2, 1]) / s, (r[:, 0, 2] - r[:, 2, 0]) / s], axis=1)
        else:
            s = 2.0 * np.sqrt(1.0 + r[:, 2, 2] - r[:, 0, 0] - r[:, 1, 1])
            q[m] = np.stack([(r[:, 0, 2] + r[:, 2, 0]) / s, (r[:, 1, 2] + r[:, 2, 1]) / s,
                             0.25 * s, (r[:, 1, 0] - r[:, 0, 1]) / s], axis=1)
    q *= np.where(q[:, 3:4] < 0, -1.0, 1.0)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.reshape(shape + (4,))


def rpy_to_matrix(roll, pitch, yaw) -> np.ndarray:
    """Rotation ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (URDF / ROS fixed-axis rpy)."""
    roll, pitch, yaw = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (roll, pitch, yaw)))
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    R = np.stack([
        cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr,
        sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr,
        -sp, cp * sr, cp * cr,
    ], axis=-1)
    return R.reshape(roll.shape + (3, 3))


def rot_z(yaw) -> np.ndarray:
    """Rotations about z: ``(..., 3, 3)``."""
    yaw = np.asarray(yaw, dtype=float)
    c, s = np.cos(yaw), np.sin(yaw)
    z, o = np.zeros_like(c), np.ones_like(c)
    return np.stack([c, -s, z, s, c, z, z, z, o], axis=-1).reshape(yaw.shape + (3, 3))


def make_transform(R: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Stack rotations ``(..., 3, 3)`` and translations ``(..., 3)`` into ``(..., 4, 4)``."""
    R = np.asarray(R, dtype=float)
    p = np.asarray(p, dtype=float)
    shape = np.broadcast_shapes(R.shape[:-2], p.shape[:-1])
    T = np.zeros(shape + (4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = p
    T[..., 3, 3] = 1.0
    return T


def planar_transform(x, y, yaw) -> np.ndarray:
    """Pose of a planar base (x, y, yaw) as ``(..., 4, 4)`` transforms (z = 0)."""
    x, y, yaw = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, y, yaw)))
    p = np.stack([x, y, np.zeros_like(x)], axis=-1)
    return make_transform(rot_z(yaw), p)


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Invert rigid transforms ``(..., 4, 4)``."""
    R = np.swapaxes(T[..., :3, :3], -1, -2)
    return make_transform(R, -np.einsum("...ij,...j->...i", R, T[..., :3, 3]))


def rotation_angle(R: np.ndarray) -> np.ndarray:
    """Angle (rad) of rotation matrices ``(..., 3, 3)``, robust near 0 and pi."""
    R = np.asarray(R, dtype=float)
    tr = np.trace(R, axis1=-2, axis2=-1)
    skew = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                     R[..., 1, 0] - R[..., 0, 1]], axis=-1)
    return np.arctan2(0.5 * np.linalg.norm(skew, axis=-1), 0.5 * (tr - 1.0))


def pose_error(T_a: np.ndarray, T_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position (m) and orientation (rad) distance between poses ``(..., 4, 4)``."""
    dp = np.linalg.norm(T_a[..., :3, 3] - T_b[..., :3, 3], axis=-1)
    dR = np.einsum("...ji,...jk->...ik", T_a[..., :3, :3], T_b[..., :3, :3])
    return dp, rotation_angle(dR)


def wrap_angle(a) -> np.ndarray:
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(a, dtype=float) + np.pi) % (2.0 * np.pi) - np.pi


def grasp_in_base_frames(T_world_grasp: np.ndarray, q: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The grasp seen from each base pose of ``q`` ``(N, >=3)``, structure-of-arrays.

    Returns:
        ``(p, R)``: positions ``(3, N)`` and rotations ``(3, 3, N)`` of the grasp in
        each base frame (``R_b^T (p_g - p_b)``, ``R_b^T R_g``).
    """
    n = q.shape[0]
    c, s = np.cos(q[:, 2]), np.sin(q[:, 2])
    dx, dy = T_world_grasp[0, 3] - q[:, 0], T_world_grasp[1, 3] - q[:, 1]
    p = np.stack([c * dx + s * dy, c * dy - s * dx, np.full(n, T_world_grasp[2, 3])])
    Rg = T_world_grasp[:3, :3]
    R = np.empty((3, 3, n))
    R[0] = Rg[0][:, None] * c + Rg[1][:, None] * s
    R[1] = Rg[1][:, None] * c - Rg[0][:, None] * s
    R[2] = Rg[2][:, None]
    return p, R
