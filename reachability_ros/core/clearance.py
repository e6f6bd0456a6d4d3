"""Clearances between segments and spheres, capsules and cylinders, batched.

The distance math of the visibility check (a camera -> target segment against
the robot's collision shapes), kept apart from the camera model:

* :func:`segment_segment_distance`: exact, after Ericson (2005), section 5.1.9;
  a capsule's clearance is this minus its radius, a sphere is a capsule with a
  zero-length axis;
* :func:`cylinder_clearance`: a flat-capped cylinder, exact in the cylinder's
  slab and a lower bound outside it (the sign is exact);
* :func:`point_cylinder_distance`: a point against a cylinder, with the
  direction in which a segment starting there can only move away;
* :func:`segment_box_distance`: a segment against an axis-aligned box, exact (the
  world's boxes, ``core/scene.py``);
* :func:`merge_capsules`: the description's capsules (a cylinder and two
  spheres) recognised and merged.

Components come first in every array (``(3, ...)``) so each operation runs on
contiguous rows.
"""

from __future__ import annotations

import numpy as np

from .geometry import clamp

CAPSULE_TOL_M = 1e-6  # sphere centres must sit this close to the cylinder's axis ends


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


def cylinder_clearance(p0: np.ndarray, d: np.ndarray, r, h) -> np.ndarray:
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
    the two ends of the cylinder's axis form one capsule; primitives that are
    capsules already (fitted to meshes and boxes) follow them.

    Args:
        prims: sequence of :class:`~reachability_ros.core.collision.Primitive`.

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
                        and np.linalg.norm(sp.T_joint_prim[:3, 3] - end) < CAPSULE_TOL_M
                        and k not in [m for m, _ in match]):
                    match.append((k, sp))
                    break
        if len(match) == 2:
            used.update(id(sp) for _, sp in match)
            capsules.append((p.joint, ends[0].copy(), ends[1].copy(), p.radius))
        else:
            cylinders.append(p)
    for p in prims:
        if p.kind == "capsule":
            o, z = p.T_joint_prim[:3, 3], p.T_joint_prim[:3, 2]
            capsules.append((p.joint, o - p.half_length * z, o + p.half_length * z, p.radius))
    lone = [(p.joint, p.T_joint_prim[:3, 3].copy(), p.radius)
            for p in spheres if id(p) not in used]
    return capsules, lone, cylinders


def point_cylinder_distance(p: np.ndarray, T_cyl: np.ndarray, r: float, h: float
                            ) -> tuple[float, np.ndarray]:
    """Distance from a point to a cylinder, and the direction that leads away from it.

    The clearance of a segment starting at ``p`` is a convex function of the
    position along the segment. When the segment's direction ``d`` satisfies
    ``d . n >= 0``, with ``n`` the unit vector from the cylinder's closest
    point to ``p``, it is nondecreasing, so the segment's clearance is exactly
    this distance.

    Args:
        p: ``(3,)`` the point.
        T_cyl: ``(4, 4)`` the cylinder's pose (axis z, centred), same frame as ``p``.
        r: radius (m).
        h: half length (m).

    Returns:
        ``(distance, n)``: ``-inf`` and ``n = 0`` for a point inside the cylinder.
    """
    c = T_cyl[:3, :3].T @ (p - T_cyl[:3, 3])
    rho, dz = float(np.hypot(c[0], c[1])), abs(c[2]) - h
    if rho <= r and dz <= 0.0:
        return -np.inf, np.zeros(3)
    near = c.copy()
    if rho > r:
        near[:2] *= r / rho
    near[2] = np.clip(c[2], -h, h)
    gap = c - near
    d = float(np.linalg.norm(gap))
    return d, T_cyl[:3, :3] @ gap / d


def segment_box_distance(p0: np.ndarray, d: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Exact distance between segments ``p0 + t d`` (t in [0, 1]) and centred boxes.

    The squared distance to the box ``|x_a| <= h_a`` is ``f(t) = sum_a max(|p0_a + t d_a|
    - h_a, 0)^2``: convex and quadratic between the (at most six) values of ``t`` where a
    coordinate crosses a face plane. On each of the seven pieces between them the active
    faces are fixed, so the minimizer is the quadratic's, clipped into the piece; the
    smallest of the seven is the minimum.

    Args:
        p0: ``(3, L)`` segment starts in the boxes' frames.
        d: ``(3, L)`` segment directions (end - start); zero for a point.
        half: ``(3, L)`` half side lengths.

    Returns:
        ``(L,)`` distances (m); 0 where the segment touches or enters the box.
    """
    L = p0.shape[1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cross = np.concatenate([(half - p0) / d, (-half - p0) / d])  # (6, L)
    cross = np.where(np.isfinite(cross), np.clip(cross, 0.0, 1.0), 0.0)
    t = np.sort(np.concatenate([np.zeros((1, L)), np.ones((1, L)), cross]), axis=0)
    lo, hi = t[:-1], t[1:]  # (7, L) pieces
    mid = 0.5 * (lo + hi)
    s = p0[:, None] + mid[None] * d[:, None]  # (3, 7, L)
    h = half[:, None]
    side = (s > h).astype(float) - (s < -h)  # +1 above the +face, -1 below the -face
    dd = d[:, None] * (side != 0)
    off = p0[:, None] - side * h
    a = (dd * dd).sum(0)
    b = (dd * off).sum(0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ts = np.where(a > 0.0, -b / a, lo)
    ts = np.clip(ts, lo, hi)
    g = np.maximum(np.abs(p0[:, None] + ts[None] * d[:, None]) - h, 0.0)
    return np.sqrt((g * g).sum(0).min(0))
