"""Canonical grasp frame and the model's features (seed 000, section 4).

A grasp ``T_world_grasp`` (desired pose of the tool frame) is re-expressed in a
*canonical frame* ``C``:

* origin: the grasp's projection on the floor, ``(p_x, p_y, 0)``;
* z: world up; yaw ``psi_c``: the heading of the horizontal vector
  ``h = P(a) + LAMBDA * P(b)``, where ``a`` is the tool's approach axis (its +z,
  pointing from the wrist out through the jaws), ``b`` the tool's +x axis and
  ``P`` the projection on the floor plane.

For any grasp that is not pointing straight down, ``P(a)`` dominates and the
frame looks along the approach; for a top-down grasp ``P(a) = 0`` and the jaw
axis ``b`` (horizontal then) sets the yaw, so the rule is continuous through the
vertical approach. No rule can be continuous on all of SO(3) (the bundle
SO(3) -> S^2 has no section), so ``h`` vanishes on a measure-zero set:
``P(a) = -LAMBDA * P(b)``, i.e. grasps tilted about ``atan(LAMBDA)`` (14 deg) from
straight down with the jaw axis tilted the opposite way. There the yaw is still
defined (``atan2(0, 0) = 0``) but jumps; :func:`canonical_yaw_conditioning`
reports ``|h|`` so callers can see how close a grasp is to it. The stance
manifold itself does not care: the canonical frame only sets the coordinates
the learned models see.

Features (``FEATURIZATION_VERSION``):

* condition ``c`` (7): ``z / R`` and the first two columns of
  ``R_C^T R_world_grasp`` (6-D rotation representation, Zhou et al. 2019);
* stance ``x`` (4 + n_arm): ``(dx / R, dy / R, cos dpsi, sin dpsi)`` of the base
  in ``C``, then each arm joint mapped linearly from its limits to [-1, 1].

``R`` is the reach scale (m). A planar rigid motion of the world (translation in
x, y, rotation about z) leaves ``c`` and ``x`` unchanged; ``decode(encode(q))``
recovers ``q`` exactly (up to floating point).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import wrap_angle

FEATURIZATION_VERSION = "lekiwi-canon-v1"
LAMBDA = 0.25
COND_DIM = 7


def canonical_yaw_conditioning(R_world_grasp: np.ndarray) -> np.ndarray:
    """Return ``|h|`` of the yaw rule, ``(N,)``: small means near the singular set."""
    a = R_world_grasp[..., :, 2]
    b = R_world_grasp[..., :, 0]
    h = a[..., :2] + LAMBDA * b[..., :2]
    return np.linalg.norm(h, axis=-1)


def canonical_frame(T_world_grasp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the canonical frame of grasps.

    Args:
        T_world_grasp: ``(N, 4, 4)`` grasp poses.

    Returns:
        ``origin_xy`` ``(N, 2)`` and ``yaw`` ``(N,)`` of the canonical frame.
    """
    T = np.asarray(T_world_grasp, dtype=float)
    a = T[..., :3, 2]
    b = T[..., :3, 0]
    h = a[..., :2] + LAMBDA * b[..., :2]
    yaw = np.arctan2(h[..., 1], h[..., 0])
    return T[..., :2, 3].copy(), yaw


def condition_features(T_world_grasp: np.ndarray, reach_m: float) -> np.ndarray:
    """Condition vectors ``c`` ``(N, 7)``: height over reach and 6-D canonical rotation."""
    T = np.asarray(T_world_grasp, dtype=float)
    _, yaw = canonical_frame(T)
    c, s = np.cos(yaw), np.sin(yaw)
    R = T[..., :3, :3]
    # R_C^T R with R_C = Rz(yaw): rotate rows 0 and 1 by -yaw.
    r0 = c[..., None] * R[..., 0, :] + s[..., None] * R[..., 1, :]
    r1 = -s[..., None] * R[..., 0, :] + c[..., None] * R[..., 1, :]
    r2 = R[..., 2, :]
    Rc = np.stack([r0, r1, r2], axis=-2)
    return np.concatenate([T[..., 2:3, 3] / reach_m, Rc[..., :, 0], Rc[..., :, 1]], axis=-1)


@dataclass(frozen=True)
class StanceCodec:
    """Encode whole-body configurations relative to a grasp, and decode them back.

    Args:
        reach_m: reach scale ``R`` (m) dividing the base offset.
        lower: ``(n_arm,)`` lower joint limits.
        upper: ``(n_arm,)`` upper joint limits.
    """

    reach_m: float
    lower: np.ndarray
    upper: np.ndarray

    @property
    def dim(self) -> int:
        """Stance feature dimension ``4 + n_arm``."""
        return 4 + len(self.lower)

    def encode(self, q: np.ndarray, T_world_grasp: np.ndarray) -> np.ndarray:
        """Stance features ``(N, 4 + n_arm)`` of configurations ``(N, 3 + n_arm)``."""
        q = np.atleast_2d(q)
        origin, yaw = canonical_frame(T_world_grasp)
        d = q[:, :2] - origin
        c, s = np.cos(yaw), np.sin(yaw)
        dx = (c * d[:, 0] + s * d[:, 1]) / self.reach_m
        dy = (-s * d[:, 0] + c * d[:, 1]) / self.reach_m
        dpsi = q[:, 2] - yaw
        arm = (2.0 * q[:, 3:] - (self.lower + self.upper)) / (self.upper - self.lower)
        return np.concatenate([np.stack([dx, dy, np.cos(dpsi), np.sin(dpsi)], axis=1), arm],
                              axis=1)

    def decode(self, x: np.ndarray, T_world_grasp: np.ndarray) -> np.ndarray:
        """Configurations ``(N, 3 + n_arm)`` from stance features (world frame of the grasp).

        The (cos, sin) pair need not be unit: its angle is used. Base yaw is
        wrapped to [-pi, pi).
        """
        x = np.atleast_2d(np.asarray(x, dtype=float))
        origin, yaw = canonical_frame(T_world_grasp)
        c, s = np.cos(yaw), np.sin(yaw)
        dx, dy = x[:, 0] * self.reach_m, x[:, 1] * self.reach_m
        q = np.empty((x.shape[0], 3 + len(self.lower)))
        q[:, 0] = origin[..., 0] + c * dx - s * dy
        q[:, 1] = origin[..., 1] + s * dx + c * dy
        q[:, 2] = wrap_angle(yaw + np.arctan2(x[:, 3], x[:, 2]))
        q[:, 3:] = 0.5 * (x[:, 4:] * (self.upper - self.lower) + (self.lower + self.upper))
        return q
