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
  ``_cylinder_margin_soa``; conservative by millimetres near a rim); a
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
:mod:`reachability_ros.core.robot`); the primitives fixed to the base are
constant in the base frame and never transformed per configuration; a base
cylinder is skipped where the segment leaves the camera heading away from it
(the clearance is then the camera's own); an arm capsule is skipped where its
bounding sphere clears the segment by more than the clearance found so far;
with a given ``target_world`` the frustum is tested before any kinematics and
the arm chain is evaluated only where the target is in view.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .config import CameraConfig
from .errors import InvalidRequest
from .geometry import clamp
from .robot import WholeBodyModel

_CAPSULE_TOL_M = 1e-6  # sphere centres must sit this close to the cylinder's axis ends


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


def segment_segment_distance(p0: np.ndarray, d1: np.ndarray, a: np.ndarray, d2: np.ndarray,
                             e: np.ndarray | None = None) -> np.ndarray:
    """Exact distance between segments ``p0 + s d1`` and ``a + t d2``, s, t in [0, 1].

    Closest points of two segments after Ericson, *Real-Time Collision
    Detection* (2005), section 5.1.9, with the branches turned into ``where``.
    Components come first so that every operation runs on contiguous arrays.

    Args:
        p0: ``(3, ...)`` start of the first segments.
        d1: ``(3, ...)`` direction (end - start) of the first segments.
        a: ``(3, ...)`` start of the second segments.
        d2: ``(3, ...)`` direction of the second segments (may be zero: a point).
        e: optional precomputed ``|d2|^2`` (broadcastable).

    Returns:
        Distances, the broadcast shape of the inputs without the leading 3.
    """
    rx, ry, rz = p0[0] - a[0], p0[1] - a[1], p0[2] - a[2]
    aa = np.maximum(d1[0] * d1[0] + d1[1] * d1[1] + d1[2] * d1[2], 1e-300)
    if e is None:
        e = d2[0] * d2[0] + d2[1] * d2[1] + d2[2] * d2[2]
    b = d1[0] * d2[0] + d1[1] * d2[1] + d1[2] * d2[2]
    c = d1[0] * rx + d1[1] * ry + d1[2] * rz
    f = d2[0] * rx + d2[1] * ry + d2[2] * rz
    ninv_a = -1.0 / aa
    denom = aa * e - b * b
    s_par = clamp(c * ninv_a, 0.0, 1.0)  # s for t = 0; also right for a point (e = 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = clamp((b * f - c * e) / denom, 0.0, 1.0)
    s = np.where(denom > 1e-12 * aa * e, s, s_par)
    tn = b * s + f  # t * e
    s = np.where(tn < 0.0, s_par, s)
    s = np.where(tn > e, clamp((c - b) * ninv_a, 0.0, 1.0), s)
    t = clamp(tn, 0.0, e) / np.maximum(e, 1e-300)
    dx = rx + s * d1[0] - t * d2[0]
    dy = ry + s * d1[1] - t * d2[1]
    dz = rz + s * d1[2] - t * d2[2]
    return np.sqrt(dx * dx + dy * dy + dz * dz)


def _cylinder_margin_soa(p0, d, r, h):
    """Clearance of segments to cylinders, in the cylinders' frames (axis z, |z| <= h).

    The segment is cut into the part inside the slab ``|z| <= h`` and the parts
    below and above it. Inside the slab the clearance is the exact radial gap
    (negative: the segment enters the cylinder). On a part outside the slab
    every point is at least ``hypot(max(rho_min - r, 0), zgap_min)`` from the
    cylinder, with ``rho_min`` the part's smallest distance to the axis and
    ``zgap_min`` its smallest distance to the cap plane, evaluated separately
    on the stretch over a cap face (``rho <= r``, where it is exact) and the
    stretches beside it: a lower bound, exact unless the closest point is on a
    rim, where it is conservative by millimetres. Never negative off the slab,
    so the sign is exact.

    Args:
        p0: ``(3, ...)`` segment starts in the cylinder frames.
        d: ``(3, ...)`` segment directions in the cylinder frames.
        r: radii, broadcastable to the batch shape.
        h: half lengths, broadcastable to the batch shape.

    Returns:
        Clearances (m), the batch shape.
    """
    x0, y0, z0 = p0[0], p0[1], p0[2]
    dxx, dyy, dz = d[0], d[1], d[2]
    z0, dz = np.broadcast_arrays(z0, dz)
    with np.errstate(divide="ignore", invalid="ignore"):
        ta = (-h - z0) / dz
        tb = (h - z0) / dz
    flat = np.abs(dz) < 1e-15
    t_lo = np.where(flat, 0.0, np.minimum(ta, tb))
    t_hi = np.where(flat, 1.0, np.maximum(ta, tb))
    t_lo = np.where(flat & (np.abs(z0) > h), 2.0, t_lo)  # flat and outside the slab
    t_lo, t_hi = clamp(t_lo, 0.0, 1.0), clamp(t_hi, 0.0, 1.0)
    inside_slab = t_hi > t_lo
    # radial distance rho(t) = |xy(t)| is convex: its minimum over [u0, u1] is at
    # the free minimizer clipped into the interval
    a = dxx * dxx + dyy * dyy
    b = x0 * dxx + y0 * dyy
    t_free = np.where(a > 1e-300, -b / np.maximum(a, 1e-300), 0.0)

    def rho_min(u0, u1):
        t = clamp(t_free, u0, u1)
        x, y = x0 + t * dxx, y0 + t * dyy
        return np.sqrt(x * x + y * y)

    radial = np.where(inside_slab, rho_min(t_lo, t_hi) - r, np.inf)
    # where the segment is over a cap face (rho <= r): the roots of rho(t)^2 = r^2
    c0 = x0 * x0 + y0 * y0 - r * r
    disc = b * b - a * c0
    pos = a > 1e-300
    sq = np.sqrt(np.maximum(disc, 0.0))
    inv = 1.0 / np.maximum(a, 1e-300)
    v0 = np.where(pos, (-b - sq) * inv, -np.inf)
    v1 = np.where(pos, (-b + sq) * inv, np.inf)
    has_disc = np.where(pos, disc > 0.0, c0 <= 0.0)

    def zgap_min(u0, u1):  # |z| is linear on a part off the slab: minimum at an end
        return np.maximum(np.minimum(np.abs(z0 + u0 * dz), np.abs(z0 + u1 * dz)) - h, 0.0)

    def bound(u0, u1):
        rad = np.maximum(rho_min(u0, u1) - r, 0.0)
        gap = zgap_min(u0, u1)
        return np.sqrt(rad * rad + gap * gap)

    def off_slab(u0, u1):
        """Clearance (lower bound) of the part [u0, u1] of the segment off the slab."""
        w0, w1 = clamp(v0, u0, u1), clamp(v1, u0, u1)
        over = has_disc & (w1 > w0)
        cap = np.where(over, zgap_min(w0, w1), np.inf)  # exact over the cap face
        side = np.minimum(bound(u0, np.where(over, w0, u1)),
                          bound(np.where(over, w1, u1), u1))
        return np.minimum(cap, side)

    # the parts off the slab: [0, a1] and [b0, 1] (a whole segment off the slab: [0, 1])
    a1 = np.where(inside_slab, t_lo, 1.0)
    b0 = np.where(inside_slab, t_hi, 1.0)
    return np.minimum(radial, np.minimum(off_slab(0.0, a1), off_slab(b0, 1.0)))


def merge_capsules(prims) -> tuple[list, list, list]:
    """Split primitives into capsules, lone spheres and plain cylinders.

    A cylinder and two spheres of the same link and radius whose centres sit at
    the two ends of the cylinder's axis form one capsule.

    Args:
        prims: sequence of :class:`~reachability_ros.core.robot.Primitive`.

    Returns:
        ``(capsules, spheres, cylinders)``: capsules as ``(joint, a, b, radius)``
        with the axis end points ``a, b`` ``(3,)`` in the joint frame; lone
        spheres as ``(joint, centre, radius)``; the other cylinders as the
        original primitives.
    """
    spheres = [p for p in prims if p.kind == "sphere"]
    used: set[int] = set()
    capsules, cylinders = [], []
    for p in prims:
        if p.kind != "cylinder":
            continue
        o, z = p.T_joint_prim[:3, 3], p.T_joint_prim[:3, 2]
        ends = (o - p.half_length * z, o + p.half_length * z)
        match = []
        for end in ends:
            for k, sp in enumerate(spheres):
                if (id(sp) not in used and sp.link == p.link and sp.joint == p.joint
                        and abs(sp.radius - p.radius) < 1e-9
                        and np.linalg.norm(sp.T_joint_prim[:3, 3] - end) < _CAPSULE_TOL_M
                        and k not in [m for m, _ in match]):
                    match.append((k, sp))
                    break
        if len(match) == 2:
            used.update(id(sp) for _, sp in match)
            capsules.append((p.joint, ends[0].copy(), ends[1].copy(), p.radius))
        else:
            cylinders.append(p)
    lone = [(p.joint, p.T_joint_prim[:3, 3].copy(), p.radius)
            for p in spheres if id(p) not in used]
    return capsules, lone, cylinders


class Visibility:
    """Batched visibility of a target from the robot's front camera.

    Args:
        robot: the whole-body model (gives the camera frame and the occluders).
        camera: intrinsics; default ``robot.config.camera``.
        exclude_links: links that never occlude; default from the robot config.

    Raises:
        NotImplementedError: the camera is not fixed to the base.
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
        P1 = robot._placements[1]
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
            self._cylf_d0, self._cylf_n = self._camera_clearance(T)
            self._cylf_w = self._cylf_o - self.p_base_cam  # (C, 3) centre - camera
            self._cylf_ww = (self._cylf_w ** 2).sum(axis=1)
            self._cylf_bound = np.hypot(self._cylf_r[:, 0], self._cylf_h[:, 0])
        self._cylm_joint = np.array([p.joint for p in self._cyl_moving], dtype=int)
        self._cylm_T = (np.stack([p.T_joint_prim for p in self._cyl_moving])
                        if self._cyl_moving else np.zeros((0, 4, 4)))
        self._cylm_r = np.array([p.radius for p in self._cyl_moving])[:, None]
        self._cylm_h = np.array([p.half_length for p in self._cyl_moving])[:, None]
        joints = set(self._mov_joints) | set(self._cylm_joint.tolist())
        robot_parent_of_tool = self.robot._parents[self._tool_joint] if self._tool_joint > 1 else 1
        self._need_joints = sorted(joints)
        self._upto = max(joints | {robot_parent_of_tool, 1})

    def _camera_clearance(self, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance from the camera to each base-fixed cylinder, and the escape direction.

        The clearance of a segment starting at the camera ``c`` is a convex
        function of the position along the segment. When the segment direction
        ``d`` satisfies ``d . n >= 0``, with ``n`` the unit vector from the
        cylinder's closest point to ``c``, it is nondecreasing, so the
        segment's clearance is exactly ``dist(c, cylinder)``: no per-segment
        work is needed. A camera inside a cylinder gets ``n = 0`` and is always
        evaluated in full.

        Args:
            T: ``(C, 4, 4)`` cylinder poses in the base frame.

        Returns:
            ``(C,)`` distances and ``(C, 3)`` unit directions (base frame).
        """
        d0 = np.zeros(len(T))
        n = np.zeros((len(T), 3))
        for k, (Tk, p) in enumerate(zip(T, self._cyl_fixed)):
            c = Tk[:3, :3].T @ (self.p_base_cam - Tk[:3, 3])
            rho, r, h = float(np.hypot(c[0], c[1])), p.radius, p.half_length
            dz = abs(c[2]) - h
            if rho <= r and dz <= 0.0:
                d0[k] = -np.inf  # inside: never short-cut
                continue
            near = c.copy()
            if rho > r:
                near[:2] *= r / rho
            near[2] = np.clip(c[2], -h, h)
            gap = c - near
            d0[k] = float(np.linalg.norm(gap))
            n[k] = Tk[:3, :3] @ gap / d0[k]
        return d0, n

    # ------------------------------------------------------------ kinematics
    def _chain_base(self, q: np.ndarray, oMi_base: np.ndarray | None, upto: int) -> np.ndarray:
        """Joint poses in the base frame, structure-of-arrays ``(njoints, 3, 4, N)``."""
        if oMi_base is not None:
            return np.ascontiguousarray(np.asarray(oMi_base)[:, :, :3, :].transpose(1, 2, 3, 0))
        c, s = self.robot._arm_sincos(q)
        T = self.robot._arm_chain(c, s, upto=upto)
        self._last_cs = (c, s)
        return T

    def _tool_base(self, q: np.ndarray, T: np.ndarray, full: bool) -> np.ndarray:
        """Tool frame origins ``(3, N)`` in the base frame from a base-frame chain."""
        robot, j, p_loc = self.robot, self._tool_joint, self._T_joint_tool[:3, 3]
        if full or j <= 1:
            return np.matmul(T[j, :, :3, :].transpose(2, 0, 1), p_loc).T + T[j, :, 3]
        # only the tool point through the last joint: w = placement @ Rot(q_j) p_loc
        c, s = self._last_cs
        cj, sj = c[robot._qidx[j] - 3], s[robot._qidx[j] - 3]
        v = np.empty((3, len(cj)))
        mix = robot._mix[j]
        if mix is None:
            from .robot import _axis_rotation
            R = _axis_rotation(robot._axes[j], np.arctan2(sj, cj))
            v[:] = (R @ p_loc).T
        else:
            a, b = mix
            k = 3 - a - b
            v[a] = cj * p_loc[a] - sj * p_loc[b]
            v[b] = sj * p_loc[a] + cj * p_loc[b]
            v[k] = p_loc[k]
        P = robot._placements[j]
        w = P[:3, :3] @ v + P[:3, 3, None]
        par = T[robot._parents[j]]
        return (par[:, 0] * w[0] + par[:, 1] * w[1] + par[:, 2] * w[2]) + par[:, 3]

    def tool_in_base(self, q: np.ndarray, oMi_base: np.ndarray | None = None) -> np.ndarray:
        """Tool positions in the base frame ``(N, 3)``."""
        q0 = np.array(q, dtype=float, ndmin=2)
        if oMi_base is not None:
            T = self._chain_base(q0, oMi_base, self.robot.model.njoints - 1)
            return self._tool_base(q0, T, full=True).T.copy()
        T = self._chain_base(q0, None, self._upto)
        return self._tool_base(q0, T, full=self._upto >= self._tool_joint).T.copy()

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
        n = q.shape[0]
        if q.ndim != 2 or q.shape[1] != self.robot.nq:
            raise InvalidRequest(
                f"configurations must have shape (N, {self.robot.nq}), got {q.shape}")
        if target_world is None or oMi_base is not None:
            upto = self.robot.model.njoints - 1 if oMi_base is not None else self._upto
            T = self._chain_base(q, oMi_base, upto)
        else:
            T = None  # the chain is evaluated later, where the target is in the frustum
        if target_world is None:
            target = self._tool_base(q, T, full=oMi_base is not None
                                     or self._upto >= self._tool_joint)
        else:
            tw = np.broadcast_to(np.asarray(target_world, dtype=float), (n, 3))
            c, s = np.cos(q[:, 2]), np.sin(q[:, 2])
            dx, dy = tw[:, 0] - q[:, 0], tw[:, 1] - q[:, 1]
            target = np.stack([c * dx + s * dy, -s * dx + c * dy, tw[:, 2]])
        return self._check_soa(target, T, occlusion_outside_frustum, q)

    def check_chain(self, target: np.ndarray, chain: np.ndarray) -> VisibilityResult:
        """Visibility of base-frame targets ``(3, N)`` given a base-frame chain.

        Args:
            target: ``(3, N)`` target points in the base frame (e.g. the tool origins
                from :meth:`WholeBodyModel.frame_in_chain`).
            chain: ``(njoints, 3, 4, N)`` from :meth:`WholeBodyModel.base_chain`.
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
        p_cam = self.R_cam_base @ (target - self.p_base_cam[:, None])
        x, y, z = p_cam[0], p_cam[1], p_cam[2]
        ah = np.arctan2(x, z)
        av = np.arctan2(y, z)
        left, right, up, down = self.half_angles
        angle_margin = np.minimum(np.minimum(ah + left, right - ah),
                                  np.minimum(av + up, down - av))
        range_margin = np.minimum(z - self.camera.near_m, self.camera.far_m - z)
        in_frustum = (angle_margin >= 0.0) & (range_margin >= 0.0)
        idx = np.arange(target.shape[1]) if everywhere else np.flatnonzero(in_frustum)
        if len(idx) == target.shape[1] or (T is not None and len(idx) >= 0.75 * len(in_frustum)):
            # (nearly) all in the frustum: evaluating every row is cheaper than gathering
            if T is None:
                T = self._chain_base(q, None, self._upto)
            occ = self._occlusion_soa(target, T)
            if len(idx) < target.shape[1]:
                occ[~in_frustum] = np.inf
        else:
            occ = np.full(target.shape[1], np.inf)
            if len(idx):
                if T is None:
                    T = self._chain_base(q[idx], None, self._upto)
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
        T = self._chain_base(None, oMi_base, self.robot.model.njoints - 1)
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
            marg = _cylinder_margin_soa(p0, d, self._cylm_r, self._cylm_h)
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
        marg[kk, mm] = _cylinder_margin_soa(
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
