"""The robot's collision shapes as spheres, cylinders and capsules.

A description's ``<collision>`` elements are loaded by Pinocchio
(``buildGeomFromUrdf``, meshes through coal with the description's directory
as the package directory) and turned into :class:`Primitive` objects on the
joints of the reduced model:

* spheres and cylinders are kept as they are (a capsule written as a cylinder
  with a sphere at each end is merged later, by the visibility check);
* capsules (coal's) stay capsules;
* boxes and triangle meshes become **bounding capsules**: a set of capsules
  whose union contains every point of the shape (:func:`bounding_capsules`),
  one capsule for a compact or elongated shape, several strips for a flat one
  (a base plate), so the occluders stay close to the shape;
* any other shape (cone, ellipsoid, convex hull, plane) is refused with a
  :class:`~reachability_ros.core.errors.DescriptionError` naming the link, the
  file and the shape: nothing is dropped silently.

Capsules are conservative occluders (they can only hide more than the shape),
and the form the world-collision checks need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pinocchio as pin

from .errors import DescriptionError

MAX_CAPSULE_RADIUS_M = 0.025  # a fitted capsule wider than this is split (flat shapes)
MAX_SPLIT_DEPTH = 4  # at most 2^4 capsules per shape

_BOX_TRIANGLES = np.array([  # the 12 triangles of the unit cube's corners (bits x, y, z)
    [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
    [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])


@dataclass(frozen=True, eq=False)
class Primitive:
    """A collision primitive attached to a joint frame of the reduced model.

    Attributes:
        name: geometry object name (``<link>_<k>``; ``<link>_<k>.<i>`` for the
            i-th capsule fitted to a mesh or box).
        link: the URDF link it belongs to.
        joint: index of the reduced model's joint that carries it.
        T_joint_prim: ``(4, 4)`` placement in the joint frame; the axis of a
            cylinder or capsule is its local z, centred on the origin.
        kind: ``"sphere"``, ``"cylinder"`` or ``"capsule"``.
        radius: radius (m).
        half_length: half the cylinder or capsule axis (m); 0 for a sphere.
        source: what the description wrote, e.g. ``"mesh meshes/x.stl"``, ``"box"``.
    """

    name: str
    link: str
    joint: int
    T_joint_prim: np.ndarray
    kind: str
    radius: float
    half_length: float
    source: str = ""


def load_collision_model(model: pin.Model, urdf_path: Path) -> pin.GeometryModel:
    """Load the collision geometry of a description, meshes included.

    Args:
        model: the Pinocchio model built from the same file.
        urdf_path: the URDF; its directory resolves relative mesh paths and
            ``package://`` URIs (with the ROS package path Pinocchio knows).

    Raises:
        DescriptionError: a mesh that cannot be found or read, or any other
            loading error, with the file and Pinocchio's reason.
    """
    try:
        return pin.buildGeomFromUrdf(model, str(urdf_path), pin.COLLISION,
                                     package_dirs=[str(urdf_path.parent)])
    except Exception as exc:  # noqa: BLE001 - Pinocchio raises ValueError/RuntimeError/...
        raise DescriptionError(
            f"cannot load the collision geometry of {urdf_path}: {exc}") from None


def primitives_from_geometry(geom: pin.GeometryModel, model: pin.Model,
                             urdf_path: Path) -> tuple[Primitive, ...]:
    """Turn every collision object into spheres, cylinders and capsules.

    Args:
        geom: the collision model (of the reduced model: ``parentJoint`` and
            ``placement`` relative to its joints).
        model: the reduced Pinocchio model (for the link names).
        urdf_path: the description, for error messages.

    Returns:
        The primitives, in the order of the geometry objects.

    Raises:
        DescriptionError: a shape that is neither a sphere, cylinder, capsule,
            box nor triangle mesh.
    """
    out: list[Primitive] = []
    for obj in geom.geometryObjects:
        g = obj.geometry
        kind = type(g).__name__
        link = model.frames[obj.parentFrame].name
        joint = int(obj.parentJoint)
        T = obj.placement.homogeneous.copy()
        if kind == "Sphere":
            out.append(Primitive(obj.name, link, joint, T, "sphere", float(g.radius), 0.0,
                                 "sphere"))
        elif kind in ("Cylinder", "Capsule"):
            out.append(Primitive(obj.name, link, joint, T, kind.lower(), float(g.radius),
                                 float(g.halfLength), kind.lower()))
        else:
            if kind == "Box":
                v = np.array([[(i >> b & 1) * 2.0 - 1.0 for b in range(3)]
                              for i in range(8)]) * np.asarray(g.halfSide, dtype=float)
                faces, source = (lambda: _BOX_TRIANGLES), "box"
            elif kind.startswith("BVHModel"):  # vertices already scaled by coal
                v, faces, source = (np.asarray(g.vertices(), dtype=float).reshape(-1, 3),
                                    lambda g=g: _mesh_faces(g), f"mesh {obj.meshPath}")
            else:
                raise DescriptionError(
                    f"{urdf_path.name}: collision shape {obj.name!r} of link {link!r} is a "
                    f"{kind}; supported are spheres, cylinders, capsules, boxes and triangle "
                    "meshes (replace it by one of these)")
            if not len(v):
                raise DescriptionError(
                    f"{urdf_path.name}: collision {source} of link {link!r} has no vertices")
            v = v @ T[:3, :3].T + T[:3, 3]  # into the joint frame
            a, b, r, _, _ = _fit(v)
            # one capsule around the vertices when it is narrow enough; else cut the triangles
            caps = [_capsule_frame(a, b, r)] if r <= MAX_CAPSULE_RADIUS_M else \
                bounding_capsules(v[faces()])
            for i, (T_cap, r, h) in enumerate(caps):
                out.append(Primitive(f"{obj.name}.{i}", link, joint, T_cap, "capsule", r, h,
                                     source))
    return tuple(out)


def _mesh_faces(g) -> np.ndarray:
    """Vertex indices ``(T, 3)`` of the triangles of a coal BVH mesh."""
    return np.array([[t[0], t[1], t[2]] for t in (g.tri_indices(i) for i in range(g.num_tris))],
                    dtype=int).reshape(-1, 3)


# ----------------------------------------------------------- capsule fitting


def _principal_frame(points: np.ndarray) -> np.ndarray:
    """Principal axes ``(3, 3)`` (columns, largest variance first) of points ``(N, 3)``."""
    if len(points) < 2:
        return np.eye(3)
    _, vecs = np.linalg.eigh(np.cov(points.T))
    return vecs[:, ::-1]


def _fit(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, int]:
    """The smallest-volume bounding capsule along a principal or a coordinate axis.

    The candidates are the three principal axes of ``points`` and the three
    axes of their own frame (CAD parts are often modelled along them; the
    principal axes of a triangle soup lean with the corners' multiplicities),
    each through the centre of the box the other two axes span.

    Returns:
        ``(a, b, radius, frame, k)``: axis end points ``(3,)``, the radius, the
        frame ``(3, 3)`` (columns) of the chosen axis and its column ``k``.
    """
    P = np.ascontiguousarray(points.T)  # (3, N): reductions along contiguous rows
    centre = 0.5 * (P.min(axis=1) + P.max(axis=1))
    P = P - centre[:, None]
    best = None
    for frame in (_principal_frame(points), np.eye(3)):  # principal (largest variance first), own
        local = frame.T @ P
        mid = 0.5 * (local.min(axis=1) + local.max(axis=1))  # the box's centre
        local -= mid[:, None]
        for k in range(3):
            i, j = [m for m in range(3) if m != k]
            t = local[k]
            rho = np.hypot(local[i], local[j])
            r = float(rho.max())
            slack = np.sqrt(np.maximum(r * r - rho * rho, 0.0))
            lo, hi = float((t + slack).min()), float((t - slack).max())
            if lo > hi:  # a sphere covers it: any point of [hi, lo] is a centre
                lo = hi = 0.5 * (lo + hi)
            vol = np.pi * r * r * (hi - lo) + 4.0 / 3.0 * np.pi * r ** 3
            if best is None or vol < best[3]:
                u = frame[:, k]
                c = centre + frame @ mid
                best = (c + lo * u, c + hi * u, r, vol, frame, k)
    a, b, r, _, frame, k = best
    return a, b, r, frame, k


def _split(tris: np.ndarray, n: np.ndarray, d: float) -> tuple[np.ndarray, np.ndarray]:
    """Cut triangles ``(T, 3, 3)`` by the plane ``n . x = d``: (below, above) triangle sets.

    A triangle crossing the plane is split into one triangle on its lone
    vertex's side and two on the other, so the two sets cover the triangles
    exactly.
    """
    s = tris @ n - d  # (T, 3)
    pos = s > 0.0
    npos = pos.sum(axis=1)
    below, above = [tris[npos == 0]], [tris[npos == 3]]
    mixed = (npos == 1) | (npos == 2)
    if mixed.any():
        tm, sm, pm = tris[mixed], s[mixed], pos[mixed]
        lone = np.where(npos[mixed] == 1, np.argmax(pm, axis=1), np.argmin(pm, axis=1))
        order = (lone[:, None] + np.arange(3)[None, :]) % 3
        rows = np.arange(len(tm))[:, None]
        A, B, C = (tm[rows[:, 0], order[:, i]] for i in range(3))
        sA, sB, sC = (sm[rows[:, 0], order[:, i]] for i in range(3))
        P = A + (B - A) * (sA / (sA - sB))[:, None]
        Q = A + (C - A) * (sA / (sA - sC))[:, None]
        one = np.stack([A, P, Q], axis=1)
        two = np.concatenate([np.stack([P, B, C], axis=1), np.stack([P, C, Q], axis=1)])
        lone_up = npos[mixed] == 1
        lone_up2 = np.concatenate([lone_up, lone_up])
        above += [one[lone_up], two[~lone_up2]]
        below += [one[~lone_up], two[lone_up2]]
    return np.concatenate(below), np.concatenate(above)


def bounding_capsules(tris: np.ndarray, max_radius_m: float = MAX_CAPSULE_RADIUS_M,
                      max_depth: int = MAX_SPLIT_DEPTH) -> list[tuple[np.ndarray, float, float]]:
    """Capsules whose union contains every point of a triangle mesh.

    A capsule contains a triangle when it contains its three corners (both are
    convex), so a capsule fitted to the corners bounds the surface. The fit
    tries the principal axes of the corners and the axes of their frame and
    keeps the smallest volume: for an axis ``u`` through the centre of the box
    the other two axes span, the radius is the largest distance of a corner
    from the axis, and the segment is the shortest one that keeps every corner
    within the radius. A capsule wider than ``max_radius_m`` (a flat or bulky
    shape) is split in two by a plane across its widest side, the triangles
    are cut by that plane (:func:`_split`: the two halves cover each triangle
    exactly), and each half is fitted again (at most ``max_depth`` times): a
    base plate becomes a few strips instead of one ball around it.

    Args:
        tris: ``(T, 3, 3)`` triangle corners (m), in the frame of the result.
        max_radius_m: split capsules wider than this.
        max_depth: most halvings.

    Returns:
        ``[(T_frame_capsule (4, 4), radius, half_length), ...]``: the capsule
        axis is the local z, centred on the origin.
    """
    out = []
    stack = [(np.asarray(tris, dtype=float), 0)]
    while stack:
        t, depth = stack.pop()
        pts = t.reshape(-1, 3)
        if depth < max_depth:  # clearly too wide across the longest axis: cut without a fit
            frame_p = _principal_frame(pts)
            w = frame_p.T @ pts.T
            lo_w, hi_w = w.min(axis=1), w.max(axis=1)
            span = hi_w - lo_w
            if 0.5 * np.hypot(span[1], span[2]) > 1.5 * max_radius_m:
                lo_t, hi_t = _split(t, frame_p[:, 1], 0.5 * float(lo_w[1] + hi_w[1]))
                if len(lo_t) and len(hi_t):
                    stack += [(hi_t, depth + 1), (lo_t, depth + 1)]
                    continue
        a, b, r, frame, k_axis = _fit(pts)
        if r > max_radius_m and depth < max_depth:
            # cut in the middle of the widest extent across the capsule's axis
            w = frame.T @ pts.T
            lo_w, hi_w = w.min(axis=1), w.max(axis=1)
            span = hi_w - lo_w
            span[k_axis] = -1.0
            k = int(np.argmax(span))
            cut = 0.5 * float(lo_w[k] + hi_w[k])
            lo_t, hi_t = _split(t, frame[:, k], cut)
            if len(lo_t) and len(hi_t):
                stack += [(hi_t, depth + 1), (lo_t, depth + 1)]
                continue
        out.append(_capsule_frame(a, b, r))
    return out


def _capsule_frame(a: np.ndarray, b: np.ndarray, r: float) -> tuple[np.ndarray, float, float]:
    d = b - a
    length = float(np.linalg.norm(d))
    z = d / length if length > 0.0 else np.array([0.0, 0.0, 1.0])
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    T[:3, 3] = 0.5 * (a + b)
    return T, r, 0.5 * length
