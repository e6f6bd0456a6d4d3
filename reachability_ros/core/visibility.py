"""Can the front camera see the tool? Frustum and self-occlusion, batched, with margins.

For each whole-body configuration the target point (default: the tool frame
origin) must be

1. inside the camera frustum: in front of the camera, within the four side
   planes given by the intrinsics, and between the near and far distance
   (measured along the optical axis);
2. not occluded by the robot: the segment camera -> target must clear every
   collision primitive of the description (spheres, cylinders and capsules; a
   capsule written as a cylinder plus two spheres is merged back into one;
   meshes and boxes are bounding capsules, see :mod:`.collision`), except the
   links listed in ``RobotConfig.occlusion_exclude_links`` (the gripper and
   the camera body; a name that is not a link of the description is an error).

All computations happen in the base frame, so targets 10 km from the world
origin lose no precision. Margins are positive when satisfied:

* ``angle_margin_rad``: smallest angle between the target ray and a side
  plane, each measured in the plane of the optical axis and the plane's normal
  (``atan2(x, z)`` against the horizontal half-angles, ``atan2(y, z)`` against
  the vertical ones);
* ``range_margin_m``: ``min(depth - near, far - depth)``;
* ``occlusion_margin_m``: smallest clearance between the segment and an
  occluder's surface (negative: the segment passes through it; then it is the
  deepest the segment's axis-distance goes below the radius). Capsules (a
  cylinder with a sphere of the same radius at each end of its axis, as the
  description writes them) are merged into one capsule each and their
  clearance is exact: segment-segment distance minus the radius. Lone spheres
  are exact too. For the remaining cylinders (the base's) the clearance is
  exact along the part of the segment inside the cylinder's slab (between its
  cap planes) and a lower bound along the parts above or below it (see
  :func:`.clearance.cylinder_clearance`; conservative by millimetres near a rim); a
  segment that heads away from a base cylinder from the start gets the exact
  camera-to-cylinder distance. The sign, hence ``occluded``, is exact.

  **Occlusion is evaluated only where the target is inside the frustum.**
  Elsewhere the target is not visible whatever the occluders do, so
  :meth:`Visibility.check` reports ``occlusion_margin_m = +inf`` and
  ``occluded = False`` there (``visible`` and ``margin`` are then decided by
  the frustum margins, which are negative). Pass
  ``occlusion_outside_frustum=True`` (or call :meth:`Visibility.occlusion_margin`)
  for the clearance of every configuration.

Hence ``visible == (angle_margin_rad >= 0) & (range_margin_m >= 0) &
(occlusion_margin_m >= 0)`` always holds.

On the packaged LeKiwi the camera lens sits 2 cm in front of the base deck's
rim (the camera body itself is excluded), so for targets in view the
occlusion margin never exceeds 0.020 m: the deck bounds it from the start of
the segment.

Speed: the arm chain is evaluated once in a structure-of-arrays layout (see
:mod:`reachability_ros.core.chain`); the primitives fixed to the base are
constant in the base frame and never transformed per configuration; a base
cylinder is skipped where the segment leaves the camera heading away from it
(the clearance is then the camera's own); an arm capsule is skipped where its
bounding sphere clears the segment by more than the clearance found so far;
with a given ``target_world`` the frustum is tested before any kinematics and
the arm chain is evaluated only where the target is in view.

Thread safety: the checker holds constants only (every call allocates its own
scratch), so one instance serves any number of threads.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .clearance import (cylinder_clearance, merge_capsules, point_cylinder_distance,
                        segment_segment_distance)
from .config import CameraConfig
from .errors import InvalidRequest
from .geometry import clamp, points_in_base_frames
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

    def subset(self, rows: np.ndarray) -> VisibilityResult:
        """The same result for some configurations only (a mask or indices)."""
        return VisibilityResult(*(getattr(self, f.name)[rows] for f in fields(self)))


class Visibility:
    """Batched visibility of a target from the robot's front camera.

    Args:
        robot: the whole-body model (gives the camera frame and the occluders).
        camera: intrinsics; default ``robot.config.camera``.
        exclude_links: links that never occlude; default from the robot config.

    Raises:
        NotImplementedError: the camera is not fixed to the base.
        DescriptionError: a link of ``exclude_links`` is not in the description.

    Nothing is written on the object after construction: one instance serves
    any number of threads.
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
        P1 = robot.chain.placements[1]
        self.T_base_cam = P1 @ T_joint_cam
        self.p_base_cam = self.T_base_cam[:3, 3].copy()
        self.R_cam_base = self.T_base_cam[:3, :3].T.copy()
        tl, tr, tu, td = self.camera.frustum_tangents()
        self.half_angles = np.arctan([tl, tr, tu, td])
        excl = robot.config.occlusion_exclude_links if exclude_links is None else exclude_links
        prims = robot.primitives_excluding(excl)
        self.primitives = prims
        self._tool_joint, self._T_joint_tool = robot.frame_placement(robot.config.tool_frame)
        self._build_occluders(prims, P1)

    # ---------------------------------------------------------------- set-up
    def _build_occluders(self, prims, P1: np.ndarray) -> None:
        """Group the occluders: capsules (spheres as zero-length capsules) and cylinders."""
        if any(p.joint < 1 for p in prims):
            raise NotImplementedError("occluders fixed to the world are not supported")
        capsules, spheres, cylinders = merge_capsules(prims)
        capsules = capsules + [(j, c, c.copy(), r) for j, c, r in spheres]
        fixed = [c for c in capsules if c[0] == 1]
        moving = [c for c in capsules if c[0] != 1]
        # base-fixed capsules: end points once in the base frame, (3, K, 1)
        if fixed:
            a = np.stack([P1[:3, :3] @ c[1] + P1[:3, 3] for c in fixed], axis=1)
            b = np.stack([P1[:3, :3] @ c[2] + P1[:3, 3] for c in fixed], axis=1)
            self._fix_a, self._fix_d = a[:, :, None], (b - a)[:, :, None]
            self._fix_r = np.array([c[3] for c in fixed])[:, None]
        else:
            self._fix_a = self._fix_d = np.zeros((3, 0, 1))
            self._fix_r = np.zeros((0, 1))
        self._fix_e = (self._fix_d ** 2).sum(axis=0)
        # moving capsules: joint, local start and axis, midpoints grouped by joint
        moving.sort(key=lambda c: c[0])
        self._mov_joints = sorted({c[0] for c in moving})
        self._mov_jk = np.array([c[0] for c in moving], dtype=int)
        self._mov_a = np.array([c[1] for c in moving]).reshape(-1, 3)
        self._mov_d = np.array([c[2] - c[1] for c in moving]).reshape(-1, 3)
        self._mov_mid = [np.array([np.append(0.5 * (c[1] + c[2]), 1.0)
                                   for c in moving if c[0] == j]) for j in self._mov_joints]
        # one capsule per joint on consecutive joints: all midpoints in one matmul
        j0 = self._mov_joints[0] if moving else 0
        self._mov_one_each = bool(moving) and self._mov_joints == list(
            range(j0, j0 + len(moving)))
        if self._mov_one_each:
            self._mov_mid_stack = np.stack(self._mov_mid)[:, None]  # (K, 1, 1, 4)
        self._mov_r = np.array([c[3] for c in moving])[:, None]
        self._mov_e = (self._mov_d ** 2).sum(axis=1)[:, None]
        self._mov_bound = self._mov_r + 0.5 * np.sqrt(self._mov_e)  # bounding-sphere radii
        # cylinders (not capsules): base-fixed ones constant in the base frame
        self._cyl_fixed = [p for p in cylinders if p.joint == 1]
        self._cyl_moving = [p for p in cylinders if p.joint != 1]
        if self._cyl_fixed:
            T = np.stack([P1 @ p.T_joint_prim for p in self._cyl_fixed])
            self._cylf_RT = np.ascontiguousarray(np.swapaxes(T[:, :3, :3], 1, 2))  # (C,3,3)
            self._cylf_p0 = np.einsum("kij,kj->ik", self._cylf_RT,
                                      self.p_base_cam - T[:, :3, 3])[:, :, None]  # (3,C,1)
            self._cylf_o = T[:, :3, 3]
            self._cylf_r = np.array([p.radius for p in self._cyl_fixed])[:, None]
            self._cylf_h = np.array([p.half_length for p in self._cyl_fixed])[:, None]
            clear = [point_cylinder_distance(self.p_base_cam, Tk, p.radius, p.half_length)
                     for Tk, p in zip(T, self._cyl_fixed)]
            # segments heading away from a cylinder keep the camera's own clearance
            self._cylf_d0 = np.array([d for d, _ in clear])
            self._cylf_n = np.array([n for _, n in clear]).reshape(-1, 3)
            self._cylf_w = self._cylf_o - self.p_base_cam  # (C, 3) centre - camera
            self._cylf_ww = (self._cylf_w ** 2).sum(axis=1)
            self._cylf_bound = np.hypot(self._cylf_r[:, 0], self._cylf_h[:, 0])
        self._cylm_joint = np.array([p.joint for p in self._cyl_moving], dtype=int)
        self._cylm_T = (np.stack([p.T_joint_prim for p in self._cyl_moving])
                        if self._cyl_moving else np.zeros((0, 4, 4)))
        self._cylm_r = np.array([p.radius for p in self._cyl_moving])[:, None]
        self._cylm_h = np.array([p.half_length for p in self._cyl_moving])[:, None]
        joints = set(self._mov_joints) | set(self._cylm_joint.tolist())
        parents = self.robot.chain.parents
        robot_parent_of_tool = parents[self._tool_joint] if self._tool_joint > 1 else 1
        self._need_joints = sorted(joints)
        self._upto = max(joints | {robot_parent_of_tool, 1})

    # ------------------------------------------------------------ kinematics
    def _chain_base(self, q: np.ndarray, upto: int
                    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Joint poses in the base frame ``(njoints, 3, 4, N)`` and the ``(c, s)`` they used."""
        chain = self.robot.chain
        cs = chain.sincos(q)
        return chain.poses(*cs, upto=upto), cs

    @staticmethod
    def _chain_of(oMi_base: np.ndarray) -> np.ndarray:
        """Structure-of-arrays chain ``(njoints, 3, 4, N)`` of poses ``(N, njoints, 4, 4)``."""
        return np.ascontiguousarray(np.asarray(oMi_base)[:, :, :3, :].transpose(1, 2, 3, 0))

    def _tool_base(self, T: np.ndarray, cs: tuple[np.ndarray, np.ndarray] | None
                   ) -> np.ndarray:
        """Tool frame origins ``(3, N)`` in the base frame from a base-frame chain.

        Args:
            T: the chain; evaluated up to the tool's joint, or only up to its
                parent when ``cs`` is given.
            cs: the cosines and sines the chain used; then the tool point is
                carried through its own joint here (the chain stopped before it).
        """
        j, p_loc = self._tool_joint, self._T_joint_tool[:3, 3]
        if cs is None or j <= 1:
            return np.matmul(T[j, :, :3, :].transpose(2, 0, 1), p_loc).T + T[j, :, 3]
        return self.robot.chain.point_on_joint(T, j, p_loc, *cs)

    def tool_in_base(self, q: np.ndarray, oMi_base: np.ndarray | None = None) -> np.ndarray:
        """Tool positions in the base frame ``(N, 3)``.

        Args:
            q: ``(N, nq)`` configurations (their base part is ignored).
            oMi_base: optional :meth:`WholeBodyModel.joint_transforms` of ``q``
                with the base at zero.
        """
        if oMi_base is not None:
            return self._tool_base(self._chain_of(oMi_base), None).T.copy()
        q0 = np.array(q, dtype=float, ndmin=2)
        T, cs = self._chain_base(q0, self._upto)
        return self._tool_base(T, None if self._upto >= self._tool_joint else cs).T.copy()

    def frustum_margins(self, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Angle and range margins of base-frame targets (positive: inside the frustum).

        Args:
            target: ``(3, N)`` points in the base frame.

        Returns:
            ``(angle_margin_rad, range_margin_m)``, ``(N,)`` each (see the module
            docstring); the target is in the frustum where both are >= 0.
        """
        p_cam = self.R_cam_base @ (target - self.p_base_cam[:, None])
        x, y, z = p_cam[0], p_cam[1], p_cam[2]
        ah = np.arctan2(x, z)
        av = np.arctan2(y, z)
        left, right, up, down = self.half_angles
        angle_margin = np.minimum(np.minimum(ah + left, right - ah),
                                  np.minimum(av + up, down - av))
        range_margin = np.minimum(z - self.camera.near_m, self.camera.far_m - z)
        return angle_margin, range_margin

    # --------------------------------------------------------------- checks
    def check(self, q: np.ndarray, target_world: np.ndarray | None = None,
              oMi_base: np.ndarray | None = None, *,
              occlusion_outside_frustum: bool = False) -> VisibilityResult:
        """Check visibility for configurations.

        Args:
            q: ``(N, nq)`` whole-body configurations.
            target_world: ``(N, 3)`` or ``(3,)`` target points in the world;
                default the tool frame origin of each configuration.
            oMi_base: optional :meth:`WholeBodyModel.joint_transforms` of ``q``
                with the base set to zero (reuse across checks).
            occlusion_outside_frustum: also evaluate the occlusion margin where
                the target is outside the frustum (default: ``+inf`` there).

        Returns:
            A :class:`VisibilityResult`.
        """
        q = np.array(q, dtype=float, ndmin=2)
        if q.ndim != 2 or q.shape[1] != self.robot.nq:
            raise InvalidRequest(
                f"configurations must have shape (N, {self.robot.nq}), got {q.shape}")
        T = None  # without a target the tool needs the chain; else it waits for the frustum
        if oMi_base is not None:
            T = self._chain_of(oMi_base)
        elif target_world is None:
            T, cs = self._chain_base(q, self._upto)
        if target_world is None:
            full = oMi_base is not None or self._upto >= self._tool_joint
            target = self._tool_base(T, None if full else cs)
        else:
            target = points_in_base_frames(target_world, q)
        return self._check_soa(target, T, occlusion_outside_frustum, q)

    def check_chain(self, target: np.ndarray, chain: np.ndarray) -> VisibilityResult:
        """Visibility of base-frame targets ``(3, N)`` given a base-frame chain.

        Args:
            target: ``(3, N)`` target points in the base frame (e.g. the tool origins
                from :meth:`WholeBodyModel.frame_in_chain`).
            chain: ``(njoints, 3, 4, N)`` from :meth:`WholeBodyModel.base_chain`.

        Returns:
            A :class:`VisibilityResult` (occlusion evaluated inside the frustum only).
        """
        return self._check_soa(np.asarray(target, dtype=float), chain, False)

    def _check_soa(self, target: np.ndarray, T: np.ndarray | None, everywhere: bool,
                   q: np.ndarray | None = None) -> VisibilityResult:
        """Frustum margins everywhere, occlusion inside the frustum.

        Args:
            target: ``(3, N)`` targets in the base frame.
            T: base-frame chain ``(njoints, 3, 4, N)``, or None to evaluate it
                from ``q`` ``(N, nq)`` only where needed.
            everywhere: evaluate the occlusion outside the frustum too.
        """
        angle_margin, range_margin = self.frustum_margins(target)
        in_frustum = (angle_margin >= 0.0) & (range_margin >= 0.0)
        idx = np.arange(target.shape[1]) if everywhere else np.flatnonzero(in_frustum)
        if len(idx) == target.shape[1] or (T is not None and len(idx) >= 0.75 * len(in_frustum)):
            # (nearly) all in the frustum: evaluating every row is cheaper than gathering
            if T is None:
                T, _ = self._chain_base(q, self._upto)
            occ = self._occlusion_soa(target, T)
            if len(idx) < target.shape[1]:
                occ[~in_frustum] = np.inf
        else:
            occ = np.full(target.shape[1], np.inf)
            if len(idx):
                if T is None:
                    T, _ = self._chain_base(q[idx], self._upto)
                else:  # gather only the joints that carry occluders
                    sub = np.zeros(T.shape[:3] + (len(idx),))
                    need = self._need_joints
                    sub[need] = T[need][..., idx]
                    T = sub
                occ[idx] = self._occlusion_soa(target[:, idx], T)
        occluded = occ < 0.0
        return VisibilityResult(in_frustum & ~occluded, in_frustum, occluded,
                                angle_margin, range_margin, occ)

    def occlusion_margin(self, target: np.ndarray, oMi_base: np.ndarray) -> np.ndarray:
        """Smallest clearance (m) of the camera->target segments to the occluders, ``(N,)``.

        Args:
            target: ``(N, 3)`` targets in the base frame.
            oMi_base: ``(N, njoints, 4, 4)`` joint poses with the base at zero.

        Returns:
            ``(N,)`` clearances; ``+inf`` when there is no occluder.
        """
        T = self._chain_of(oMi_base)
        return self._occlusion_soa(np.ascontiguousarray(np.asarray(target, dtype=float).T), T)

    def _occlusion_soa(self, target: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Clearance ``(M,)`` of camera->target (``(3, M)``) to every occluder."""
        m = target.shape[1]
        cam = self.p_base_cam[:, None, None]
        d1 = (target - self.p_base_cam[:, None])[:, None, :]  # (3, 1, M)
        best = np.full(m, np.inf)
        if self._fix_r.shape[0]:
            dist = segment_segment_distance(cam, d1, self._fix_a, self._fix_d, self._fix_e)
            best = np.minimum(best, (dist - self._fix_r).min(axis=0))
        need = None
        if self._cyl_fixed:
            # segments heading away from a cylinder keep the camera's clearance (exact,
            # free); the others are evaluated last, pruned by everything found before
            need = self._cylf_n @ d1[:, 0, :] < 0.0  # (C, M)
            need[np.isinf(self._cylf_d0)] = True
            best = np.minimum(best, np.where(need, np.inf, self._cylf_d0[:, None]).min(axis=0))
        if self._cyl_moving:
            Tj = T[self._cylm_joint]  # (C, 3, 4, M)
            Tc = np.einsum("kilm,klj->kijm", Tj[:, :, :3, :], self._cylm_T[:, :3, :])
            Tc[:, :, 3] += Tj[:, :, 3]
            R, o = Tc[:, :, :3], Tc[:, :, 3]  # (C,3,3,M), (C,3,M)
            p0w = self.p_base_cam[None, :, None] - o
            p1w = target[None] - o
            p0 = np.einsum("kjim,kjm->ikm", R, p0w)
            d = np.einsum("kjim,kjm->ikm", R, p1w) - p0
            marg = cylinder_clearance(p0, d, self._cylm_r, self._cylm_h)
            best = np.minimum(best, marg.min(axis=0))
        if self._mov_joints:  # the clearance found so far prunes most capsules
            best = self._moving_capsules(d1[:, 0, :], T, best)
        if need is not None:
            best = self._fixed_cylinders(d1[:, 0, :], need, best)
        return best

    def _fixed_cylinders(self, d1: np.ndarray, need: np.ndarray,
                         best: np.ndarray) -> np.ndarray:
        """Lower ``best`` ``(M,)`` with the base cylinders the segments head towards.

        Args:
            d1: ``(3, M)`` camera -> target directions (base frame).
            need: ``(C, M)`` pairs not settled by the camera-clearance short cut.
            best: ``(M,)`` clearance so far.

        Returns:
            ``(M,)`` updated clearances. A pair whose bounding sphere already
            clears the segment by ``best`` is skipped.
        """
        kk, mm = np.nonzero(need)
        if len(kk) == 0:
            return best
        d = d1[:, mm]
        w = self._cylf_w[kk].T  # (3, L) centre - camera
        aa = np.maximum(d[0] * d[0] + d[1] * d[1] + d[2] * d[2], 1e-300)
        wd = w[0] * d[0] + w[1] * d[1] + w[2] * d[2]
        t = clamp(wd / aa, 0.0, 1.0)
        sq = self._cylf_ww[kk] - t * (2.0 * wd - t * aa)
        keep = np.sqrt(np.maximum(sq, 0.0)) - self._cylf_bound[kk] < best[mm]
        kk, mm, d = kk[keep], mm[keep], d[:, keep]
        if len(kk) == 0:
            return best
        d_loc = np.einsum("lij,jl->il", self._cylf_RT[kk], d)
        marg = np.full(need.shape, np.inf)
        marg[kk, mm] = cylinder_clearance(
            self._cylf_p0[:, kk, 0], d_loc, self._cylf_r[kk, 0], self._cylf_h[kk, 0])
        return np.minimum(best, marg.min(axis=0))

    def _moving_capsules(self, d1: np.ndarray, T: np.ndarray, best: np.ndarray) -> np.ndarray:
        """Lower the clearances ``best`` ``(M,)`` with the capsules carried by arm joints.

        A capsule whose bounding sphere (axis midpoint, radius + half axis)
        already clears the segment by ``best`` cannot lower it; the exact
        segment-segment distance is computed for the other pairs only.

        Args:
            d1: ``(3, M)`` camera -> target directions (base frame).
            T: base-frame chain ``(njoints, 3, 4, M)``.
            best: ``(M,)`` clearance so far.

        Returns:
            ``(M,)`` updated clearances.
        """
        if self._mov_one_each:
            j0 = self._mov_joints[0]
            C = np.matmul(self._mov_mid_stack, T[j0:j0 + len(self._mov_jk)])[:, :, 0]
        else:
            C = np.concatenate([np.matmul(mid, T[j]).transpose(1, 0, 2) for j, mid in
                                zip(self._mov_joints, self._mov_mid)])  # (K, 3, M)
        cam = self.p_base_cam
        # distance of the midpoints to the segments, minus the bounding radius: a lower
        # bound of the clearance
        wx, wy, wz = C[:, 0] - cam[0], C[:, 1] - cam[1], C[:, 2] - cam[2]
        aa = np.maximum(d1[0] * d1[0] + d1[1] * d1[1] + d1[2] * d1[2], 1e-300)
        wd = wx * d1[0] + wy * d1[1] + wz * d1[2]
        t = clamp(wd / aa, 0.0, 1.0)
        sq = wx * wx + wy * wy + wz * wz - t * (2.0 * wd - t * aa)
        lb = np.sqrt(np.maximum(sq, 0.0)) - self._mov_bound
        kk, mm = np.nonzero(lb < best)
        if len(kk) == 0:
            return best
        # the capsules' axes in the base frame, for the pairs that need them only
        Tp = np.ascontiguousarray(T[self._mov_jk[kk], :, :, mm].transpose(1, 2, 0))  # (3,4,L)
        al, dl = self._mov_a[kk].T, self._mov_d[kk].T  # (3, L) local start and axis
        a = Tp[:, 0] * al[0] + Tp[:, 1] * al[1] + Tp[:, 2] * al[2] + Tp[:, 3]  # (3, L)
        d2 = Tp[:, 0] * dl[0] + Tp[:, 1] * dl[1] + Tp[:, 2] * dl[2]
        dist = segment_segment_distance(cam[:, None], d1[:, mm], a, d2,
                                        self._mov_e[kk, 0]) - self._mov_r[kk, 0]
        marg = np.full(lb.shape, np.inf)
        marg[kk, mm] = dist
        return np.minimum(best, marg.min(axis=0))
