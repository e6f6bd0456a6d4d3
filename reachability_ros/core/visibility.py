"""Can the front camera see the tool? Frustum and self-occlusion, batched, with margins.

For each whole-body configuration the target point (default: the tool frame
origin) must be

1. inside the camera frustum: in front of the camera, within the four side
   planes given by the intrinsics, and between the near and far distance
   (measured along the optical axis);
2. not occluded by the robot: the segment camera -> target must clear every
   collision primitive of the description (spheres and cylinders; a capsule is
   a cylinder plus two spheres), except the links listed in
   ``RobotConfig.occlusion_exclude_links`` (the gripper and the camera body).

All computations happen in the base frame, so targets 10 km from the world
origin lose no precision. Margins are positive when satisfied:

* ``angle_margin_rad``: smallest angle between the target ray and a side plane;
* ``range_margin_m``: ``min(depth - near, far - depth)``;
* ``occlusion_margin_m``: smallest clearance between the segment and an
  occluder's surface (negative: the segment passes through it). For spheres and
  for the cylinder sides it is exact; when the segment lies wholly above or
  below a cylinder it is a lower bound built from the cap gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import CameraConfig
from .robot import WholeBodyModel


@dataclass(frozen=True)
class VisibilityResult:
    """Outcome of a visibility check, one entry per configuration (all ``(N,)``)."""

    visible: np.ndarray
    in_frustum: np.ndarray
    occluded: np.ndarray
    angle_margin_rad: np.ndarray
    range_margin_m: np.ndarray
    occlusion_margin_m: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        """One scalar margin (m-equivalent): min of range, occlusion and angle*depth.

        The angle margin is turned into metres at 0.3 m, a typical target depth.
        """
        return np.minimum.reduce([self.range_margin_m, self.occlusion_margin_m,
                                  0.3 * self.angle_margin_rad])


def _segment_point_distance(p0, d, c):
    """Distance from points c to segments p0 + t d, t in [0, 1]; arrays ``(..., 3)``."""
    dd = np.einsum("...i,...i->...", d, d)
    t = np.clip(np.einsum("...i,...i->...", c - p0, d) / np.maximum(dd, 1e-300), 0.0, 1.0)
    return np.linalg.norm(p0 + t[..., None] * d - c, axis=-1)


class Visibility:
    """Batched visibility of a target from the robot's front camera.

    Args:
        robot: the whole-body model (gives the camera frame and the occluders).
        camera: intrinsics; default ``robot.config.camera``.
        exclude_links: links that never occlude; default from the robot config.
    """

    def __init__(self, robot: WholeBodyModel, camera: CameraConfig | None = None,
                 exclude_links=None) -> None:
        self.robot = robot
        self.camera = camera or robot.config.camera
        cam_joint, T_joint_cam = robot.frame_placement(self.camera.frame)
        if cam_joint != 1:
            raise NotImplementedError("the visibility camera must be fixed to the base")
        # joint 1's placement is identity at the world root; with base q = 0 the
        # root joint frame is the base frame.
        self.T_base_cam = robot._placements[1] @ T_joint_cam
        self.p_base_cam = self.T_base_cam[:3, 3].copy()
        self.R_cam_base = self.T_base_cam[:3, :3].T.copy()
        tl, tr, tu, td = self.camera.frustum_tangents()
        self.half_angles = np.arctan([tl, tr, tu, td])
        excl = robot.config.occlusion_exclude_links if exclude_links is None else exclude_links
        prims = robot.primitives_excluding(excl)
        self.primitives = prims
        self._joint = np.array([p.joint for p in prims], dtype=int)
        self._T = np.stack([p.T_joint_prim for p in prims]) if prims else np.zeros((0, 4, 4))
        self._radius = np.array([p.radius for p in prims])
        self._half = np.array([p.half_length for p in prims])
        self._is_cyl = np.array([p.kind == "cylinder" for p in prims], dtype=bool)

    def tool_in_base(self, q: np.ndarray, oMi_base: np.ndarray | None = None) -> np.ndarray:
        """Tool positions in the base frame ``(N, 3)``."""
        q0 = np.array(q, dtype=float, ndmin=2)
        q0[:, :3] = 0.0
        if oMi_base is None:
            oMi_base = self.robot.joint_transforms(q0)
        j, T = self.robot.frame_placement(self.robot.config.tool_frame)
        return (oMi_base[:, j] @ T)[:, :3, 3]

    def check(self, q: np.ndarray, target_world: np.ndarray | None = None,
              oMi_base: np.ndarray | None = None) -> VisibilityResult:
        """Check visibility for configurations.

        Args:
            q: ``(N, nq)`` whole-body configurations.
            target_world: ``(N, 3)`` or ``(3,)`` target points in the world;
                default the tool frame origin of each configuration.
            oMi_base: optional :meth:`WholeBodyModel.joint_transforms` of ``q``
                with the base set to zero (reuse across checks).

        Returns:
            A :class:`VisibilityResult`.
        """
        q = np.array(q, dtype=float, ndmin=2)
        q0 = q.copy()
        q0[:, :3] = 0.0
        if oMi_base is None:
            oMi_base = self.robot.joint_transforms(q0)
        if target_world is None:
            target = self.tool_in_base(q0, oMi_base)
        else:
            tw = np.broadcast_to(np.asarray(target_world, dtype=float), (len(q), 3))
            c, s = np.cos(q[:, 2]), np.sin(q[:, 2])
            dx, dy = tw[:, 0] - q[:, 0], tw[:, 1] - q[:, 1]
            target = np.stack([c * dx + s * dy, -s * dx + c * dy, tw[:, 2]], axis=1)
        return self._check_base(target, oMi_base)

    def _check_base(self, target: np.ndarray, oMi_base: np.ndarray) -> VisibilityResult:
        p_cam = target @ self.R_cam_base.T - self.R_cam_base @ self.p_base_cam
        x, y, z = p_cam[:, 0], p_cam[:, 1], p_cam[:, 2]
        ah = np.arctan2(x, z)
        av = np.arctan2(y, z)
        left, right, up, down = self.half_angles
        angle_margin = np.minimum.reduce([ah + left, right - ah, av + up, down - av])
        range_margin = np.minimum(z - self.camera.near_m, self.camera.far_m - z)
        in_frustum = (angle_margin >= 0.0) & (range_margin >= 0.0)
        occ = self.occlusion_margin(target, oMi_base)
        occluded = occ < 0.0
        return VisibilityResult(in_frustum & ~occluded, in_frustum, occluded,
                                angle_margin, range_margin, occ)

    def occlusion_margin(self, target: np.ndarray, oMi_base: np.ndarray) -> np.ndarray:
        """Smallest clearance (m) of the camera->target segments to the occluders, ``(N,)``."""
        n = target.shape[0]
        if len(self.primitives) == 0:
            return np.full(n, np.inf)
        T = oMi_base[:, self._joint] @ self._T  # (N, P, 4, 4)
        R, o = T[..., :3, :3], T[..., :3, 3]
        p0w = np.broadcast_to(self.p_base_cam, (n, 3))[:, None, :] - o
        p1w = target[:, None, :] - o
        # into each primitive's frame: p_local = R^T (p - o)
        p0 = np.einsum("npji,npj->npi", R, p0w)
        p1 = np.einsum("npji,npj->npi", R, p1w)
        d = p1 - p0
        margin = np.empty(p0.shape[:2])
        sph = ~self._is_cyl
        if sph.any():
            margin[:, sph] = _segment_point_distance(
                p0[:, sph], d[:, sph], np.zeros(3)) - self._radius[sph]
        if self._is_cyl.any():
            margin[:, self._is_cyl] = self._cylinder_margin(
                p0[:, self._is_cyl], d[:, self._is_cyl], self._radius[self._is_cyl],
                self._half[self._is_cyl])
        return margin.min(axis=1)

    @staticmethod
    def _cylinder_margin(p0, d, r, h):
        """Clearance of segments (in cylinder frames, axis z, |z| <= h) to cylinders."""
        z0, dz = p0[..., 2], d[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            ta = (-h - z0) / dz
            tb = (h - z0) / dz
        flat = np.abs(dz) < 1e-15
        t_lo = np.where(flat, 0.0, np.minimum(ta, tb))
        t_hi = np.where(flat, 1.0, np.maximum(ta, tb))
        t_lo = np.where(flat & (np.abs(z0) > h), 2.0, t_lo)  # flat and outside the slab
        t_lo, t_hi = np.clip(t_lo, 0.0, 1.0), np.clip(t_hi, 0.0, 1.0)
        inside_slab = t_hi > t_lo
        # min over t in [t_lo, t_hi] of the radial distance |xy(t)|
        a = d[..., 0] ** 2 + d[..., 1] ** 2
        b = p0[..., 0] * d[..., 0] + p0[..., 1] * d[..., 1]
        t_star = np.where(a > 1e-300, -b / np.maximum(a, 1e-300), t_lo)
        t_star = np.clip(t_star, t_lo, t_hi)
        x = p0[..., 0] + t_star * d[..., 0]
        y = p0[..., 1] + t_star * d[..., 1]
        radial = np.hypot(x, y) - r
        # segment wholly above/below: gap to the cap plane, combined with radial gap
        t_all = np.clip(np.where(a > 1e-300, -b / np.maximum(a, 1e-300), 0.0), 0.0, 1.0)
        rad_all = np.hypot(p0[..., 0] + t_all * d[..., 0], p0[..., 1] + t_all * d[..., 1]) - r
        zgap = np.minimum(np.abs(z0), np.abs(z0 + dz)) - h
        outside = np.hypot(np.maximum(zgap, 0.0), np.maximum(rad_all, 0.0))
        outside = np.maximum(outside, np.maximum(zgap, 0.0))
        return np.where(inside_slab, radial, outside)
