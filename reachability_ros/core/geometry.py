"""THE rotation and pose module: SO(3), SE(3) and the planar SE(2) of a mobile base.

Conventions: quaternions are ordered (x, y, z, w) as in ROS messages;
homogeneous transforms are ``(..., 4, 4)``; ``T_a_b`` is the pose of frame b
expressed in frame a; a planar base pose is ``(x, y, yaw)`` (m, m, rad), the
first three entries of a whole-body configuration ``q``.

The functions that run on every request (quaternion -> matrix, rotation angle
and logarithm, the grasp seen from many base poses, angle wrapping) are
vectorized numpy with the components written out: a call to Pinocchio per
pose would cost more than the rest of the request. The cold paths use
Pinocchio (:func:`rpy_to_matrix`); the tests hold the numpy ones to Pinocchio
(``pin.log3``, ``pin.Quaternion``, ``pin.rpy``).
"""

from __future__ import annotations

import math

import numpy as np

TWO_PI = 2.0 * math.pi

# ----------------------------------------------------------------- scalars


def clamp(x, lo, hi) -> np.ndarray:
    """Clip ``x`` into ``[lo, hi]``: ``np.clip`` without its Python wrapper.

    ``np.clip`` costs a few microseconds per call on small arrays, which add up in
    the per-request pipeline. NaN stays NaN.
    """
    return np.minimum(np.maximum(x, lo), hi)


def wrap_angle(a) -> np.ndarray:
    """Wrap angles (rad) into ``[-pi, pi)``.

    ``a - 2 pi floor((a + pi) / 2 pi)``: an angle already in range is returned
    unchanged, bit for bit (``(a + pi) % 2 pi - pi`` and ``angle(exp(i a))``
    round it).

    Args:
        a: angles, any shape.

    Returns:
        Angles of the same shape, float.
    """
    a = np.asarray(a, dtype=float)
    return a - TWO_PI * np.floor((a + math.pi) / TWO_PI)


# ------------------------------------------------------------------- SO(3)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Convert quaternions (x, y, z, w) to rotation matrices.

    A single quaternion takes a plain-float path (no array overhead: it runs
    once per request); a batch is vectorized. Both use the same formula (they
    agree to rounding). A zero or non-finite quaternion gives NaN.

    Args:
        q: ``(4,)`` or ``(..., 4)`` quaternions; normalized here (callers
            validate the norm).

    Returns:
        ``(3, 3)`` or ``(..., 3, 3)`` rotation matrices.
    """
    q = np.asarray(q, dtype=float)
    norm = float(np.linalg.norm(q)) if q.shape == (4,) else 0.0
    if 0.0 < norm < math.inf:
        x, y, z, w = (float(v) / norm for v in q)
        return np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    with np.errstate(invalid="ignore", divide="ignore"):
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
    """Convert rotation matrices to unit quaternions (x, y, z, w) with ``w >= 0``.

    Shepperd's method: the largest of the four pivots (trace and diagonal)
    per matrix, so no branch divides by a small number.

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
    """Rotations ``Rz(yaw) Ry(pitch) Rx(roll)`` (URDF / ROS fixed-axis rpy), via Pinocchio.

    A cold path (command-line input): Pinocchio's ``rpy.rpyToMatrix`` per angle
    triple.

    Args:
        roll: angles (rad), broadcastable with ``pitch`` and ``yaw``.
        pitch: angles (rad).
        yaw: angles (rad).

    Returns:
        ``(..., 3, 3)`` rotation matrices (the broadcast shape of the angles).
    """
    import pinocchio as pin

    rpy = np.stack(np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                         for v in (roll, pitch, yaw))), axis=-1)
    flat = rpy.reshape(-1, 3)
    out = np.array([pin.rpy.rpyToMatrix(*map(float, a)) for a in flat]).reshape(-1, 3, 3)
    return out.reshape(rpy.shape[:-1] + (3, 3))


def rot_z(yaw) -> np.ndarray:
    """Rotations about z by ``yaw`` (rad): ``(..., 3, 3)``."""
    yaw = np.asarray(yaw, dtype=float)
    c, s = np.cos(yaw), np.sin(yaw)
    z, o = np.zeros_like(c), np.ones_like(c)
    return np.stack([c, -s, z, s, c, z, z, z, o], axis=-1).reshape(yaw.shape + (3, 3))


def _skew_part(R: np.ndarray) -> np.ndarray:
    """``(R - R^T)^vee``, i.e. ``2 sin(theta) axis``: ``(..., 3)``."""
    return np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                     R[..., 1, 0] - R[..., 0, 1]], axis=-1)


def rotation_angle(R: np.ndarray) -> np.ndarray:
    """Angle (rad, in ``[0, pi]``) of rotation matrices ``(..., 3, 3)``.

    ``atan2(|skew| / 2, (trace - 1) / 2)``: accurate near 0 and near pi (an
    ``arccos`` of the trace loses half the digits near both).
    """
    R = np.asarray(R, dtype=float)
    tr = np.trace(R, axis1=-2, axis2=-1)
    return np.arctan2(0.5 * np.linalg.norm(_skew_part(R), axis=-1), 0.5 * (tr - 1.0))


# the skew part holds the axis to relative precision eps / sin(theta); below this sine the
# axis is read from the symmetric part instead (precision eps), see log_so3
_LOG_PI_SINE = 1e-4


def log_so3(R: np.ndarray) -> np.ndarray:
    """Rotation vectors (axis times angle, ``|v| <= pi``) of rotation matrices.

    With ``theta = atan2(s, c)`` from ``s = |skew| / 2 = sin(theta)`` and
    ``c = (trace - 1) / 2``, ``v = theta / (2 s) skew``, which is exact to
    rounding wherever ``s`` is not tiny. Near a half turn (``c < 0`` and
    ``s < 1e-4``) the skew part vanishes; there the axis comes from the
    symmetric part, ``(R + R^T) / 2 - c I = (1 - c) a a^T``: the column of the
    largest diagonal entry, normalized, signed like the skew part (either sign
    at exactly pi, where both are the same rotation). Agrees with Pinocchio's
    ``log3`` (see the tests, near pi included). Vectorized numpy: it runs in
    every refinement and robustness iteration.

    Args:
        R: ``(..., 3, 3)`` rotation matrices (views are fine, e.g. a transposed
            structure-of-arrays stack).

    Returns:
        ``(..., 3)`` rotation vectors.
    """
    R = np.asarray(R, dtype=float)
    skew = _skew_part(R)
    x, y, z = skew[..., 0], skew[..., 1], skew[..., 2]
    s = 0.5 * np.sqrt(x * x + y * y + z * z)  # = 0.5 |skew|, without norm's overhead
    c = 0.5 * ((R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]) - 1.0)
    theta = np.arctan2(s, c)
    factor = np.where(s > 1e-9, theta / np.maximum(2.0 * s, 1e-300), 0.5)
    out = factor[..., None] * skew
    near_pi = (c < 0.0) & (s < _LOG_PI_SINE)
    if near_pi.any():
        Rn = R[near_pi]
        B = 0.5 * (Rn + np.swapaxes(Rn, -1, -2)) - c[near_pi][:, None, None] * np.eye(3)
        k = np.argmax(np.diagonal(B, axis1=1, axis2=2), axis=1)
        axis = B[np.arange(len(k)), :, k]
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        sign = np.sign(np.einsum("ni,ni->n", axis, skew[near_pi]))
        sign[sign == 0] = 1.0
        out[near_pi] = axis * (sign * theta[near_pi])[:, None]
    return out


# ------------------------------------------------------------------- SE(3)


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


def pose_error(T_a: np.ndarray, T_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position (m) and orientation (rad) distances between poses ``(..., 4, 4)``."""
    dp = np.linalg.norm(T_a[..., :3, 3] - T_b[..., :3, 3], axis=-1)
    dR = np.einsum("...ji,...jk->...ik", T_a[..., :3, :3], T_b[..., :3, :3])
    return dp, rotation_angle(dR)


# ------------------------------------------------------------------- SE(2)


def planar_transform(x, y, yaw) -> np.ndarray:
    """Pose of a planar base (x, y, yaw) as ``(..., 4, 4)`` transforms (z = 0)."""
    x, y, yaw = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, y, yaw)))
    p = np.stack([x, y, np.zeros_like(x)], axis=-1)
    return make_transform(rot_z(yaw), p)


def points_in_base_frames(p_world: np.ndarray, q: np.ndarray) -> np.ndarray:
    """World points seen from planar base poses, structure-of-arrays.

    Subtracts the base position before rotating, so a point and a base 10 km
    from the world origin lose no precision.

    Args:
        p_world: ``(N, 3)`` points in the world (or ``(3,)``, the same for all).
        q: ``(N, >=3)`` configurations whose first three entries are the base pose.

    Returns:
        ``(3, N)`` points in each base frame: ``R_b^T (p - p_b)``.
    """
    p = np.broadcast_to(np.asarray(p_world, dtype=float), (q.shape[0], 3))
    c, s = np.cos(q[:, 2]), np.sin(q[:, 2])
    dx, dy = p[:, 0] - q[:, 0], p[:, 1] - q[:, 1]
    return np.stack([c * dx + s * dy, -s * dx + c * dy, p[:, 2]])


def grasp_in_base_frames(T_world_grasp: np.ndarray, q: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """A grasp seen from each base pose of ``q``, structure-of-arrays.

    Args:
        T_world_grasp: ``(4, 4)`` grasp pose, or ``(N, 4, 4)`` one per row of ``q``
            (the same arithmetic per row: a row gets bit for bit what it gets alone).
        q: ``(N, >=3)`` configurations whose first three entries are the base pose.

    Returns:
        ``(p, R)``: positions ``(3, N)`` and rotations ``(3, 3, N)`` of the grasp in
        each base frame (``R_b^T (p_g - p_b)``, ``R_b^T R_g``).
    """
    n = q.shape[0]
    c, s = np.cos(q[:, 2]), np.sin(q[:, 2])
    T = T_world_grasp
    if T.ndim == 3:  # rows of the rotation as (3, N) columns, one grasp per row of q
        t, Rg = T[:, :3, 3].T, np.transpose(T[:, :3, :3], (1, 2, 0))
    else:
        t, Rg = T[:3, 3, None], T[:3, :3, None]
    dx, dy = t[0] - q[:, 0], t[1] - q[:, 1]
    p = np.stack([c * dx + s * dy, c * dy - s * dx, np.broadcast_to(t[2], (n,))])
    R = np.empty((3, 3, n))
    R[0] = Rg[0] * c + Rg[1] * s
    R[1] = Rg[1] * c - Rg[0] * s
    R[2] = Rg[2]
    return p, R


def compose_planar(q: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Move base poses by offsets given in each base's own frame (``q (+) delta`` in SE(2)).

    Args:
        q: ``(M, nq)`` configurations whose first three entries are the base pose.
        delta: ``(S, 3)`` offsets ``(dx, dy, dyaw)`` in the base frame.

    Returns:
        ``(M, S, nq)``: every configuration with every offset applied to its base
        (the other entries copied; the yaw is not wrapped).
    """
    S = delta.shape[0]
    out = np.repeat(q[:, None, :], S, axis=1)
    c, s = np.cos(q[:, 2])[:, None], np.sin(q[:, 2])[:, None]
    out[:, :, 0] += c * delta[None, :, 0] - s * delta[None, :, 1]
    out[:, :, 1] += s * delta[None, :, 0] + c * delta[None, :, 1]
    out[:, :, 2] += delta[None, :, 2]
    return out
