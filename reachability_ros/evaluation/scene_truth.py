"""Independent checks of stances against a world, and the exact ground truth with a scene.

:func:`shape_points` samples points on the robot's collision shapes as the description
writes them, placed by Pinocchio's own forward kinematics of the URDF geometry
(``pinocchio.updateGeometryPlacements``): spheres, cylinders (sides, caps and rims),
capsules, boxes and triangle meshes. It shares nothing with ``core/scene.py`` (no
capsules, no fitted shapes, no distance formulas), so :func:`box_clearance` and
:func:`cell_clearance`, plain point-to-box and point-to-square distances over those
points, are a brute-force judge of the pipeline's scene checks: a returned stance must
keep every sampled point at least the padding away from every box, and every point of
its footprint away from every blocked cell.

:func:`scene_ground_truth` is the exact stance grid (:func:`.ground_truth.ground_truth`:
joint limits, the camera's view) filtered by the pipeline's own scene checks
(``SceneChecker.feasible``): the truth the benchmark's success@1 is measured against.
"""

from __future__ import annotations

import numpy as np
import pinocchio as pin

from ..core.world import Boxes, OccupancyGrid
from .ground_truth import ground_truth


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _local_points(geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """About ``n`` points on a shape's surface, in its own frame ``(K, 3)``."""
    kind = type(geometry).__name__
    if kind == "Sphere":
        return geometry.radius * _unit(rng, n)
    if kind in ("Cylinder", "Capsule"):
        r, h = float(geometry.radius), float(geometry.halfLength)
        a = rng.uniform(0.0, 2.0 * np.pi, n)
        side = np.stack([r * np.cos(a), r * np.sin(a), rng.uniform(-h, h, n)], axis=1)
        ring = np.linspace(0.0, 2.0 * np.pi, 64, endpoint=False)
        rims = np.concatenate([np.stack([r * np.cos(ring), r * np.sin(ring),
                                         np.full(64, s)], axis=1) for s in (-h, h)])
        if kind == "Cylinder":
            rho = r * np.sqrt(rng.uniform(0.0, 1.0, n))
            b = rng.uniform(0.0, 2.0 * np.pi, n)
            caps = np.stack([rho * np.cos(b), rho * np.sin(b),
                             np.where(rng.random(n) < 0.5, -h, h)], axis=1)
        else:
            u = _unit(rng, n)
            caps = r * u + np.outer(np.where(u[:, 2] < 0, -h, h), [0.0, 0.0, 1.0])
        return np.vstack([side, rims, caps])
    if kind == "Box":
        half = np.asarray(geometry.halfSide, dtype=float)
        p = rng.uniform(-1.0, 1.0, (n, 3))
        axis = rng.integers(0, 3, n)
        p[np.arange(n), axis] = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
        return np.vstack([p, corners]) * half
    if kind.startswith("BVHModel"):
        v = np.asarray(geometry.vertices(), dtype=float).reshape(-1, 3)
        tris = np.array([[t[0], t[1], t[2]] for t in (geometry.tri_indices(i)
                                                      for i in range(geometry.num_tris))])
        k = rng.integers(0, len(tris), n)
        w = rng.dirichlet(np.ones(3), n)
        return np.vstack([v, np.einsum("nk,nkj->nj", w, v[tris[k]])])
    raise ValueError(f"no point sampler for a {kind}")


def shape_points(robot, q: np.ndarray, n_per_shape: int = 200,
                 rng: np.random.Generator | None = None) -> list[tuple[str, bool, np.ndarray]]:
    """Points on every collision shape of the robot at one configuration, in the world.

    Args:
        robot: the :class:`~reachability_ros.core.robot.WholeBodyModel` (its Pinocchio
            model and collision geometry, as loaded from the URDF).
        q: ``(nq,)`` the configuration.
        n_per_shape: random points per shape (rims and corners come on top).
        rng: random generator (default seeded 0).

    Returns:
        ``[(link, on_base, points (K, 3)), ...]`` per geometry object; ``on_base``: the
        shape is fixed to the base.
    """
    rng = rng or np.random.default_rng(0)
    model, geom = robot.model, robot.geom_model
    data, gdata = model.createData(), pin.GeometryData(geom)
    pin.updateGeometryPlacements(model, data, geom, gdata, np.asarray(q, dtype=float))
    out = []
    for k, obj in enumerate(geom.geometryObjects):
        M = gdata.oMg[k]
        local = _local_points(obj.geometry, n_per_shape, rng)
        out.append((model.frames[obj.parentFrame].name, obj.parentJoint == 1,
                    local @ M.rotation.T + M.translation))
    return out


def box_clearance(points: np.ndarray, boxes: Boxes) -> np.ndarray:
    """Distance ``(K,)`` from each point ``(K, 3)`` to the nearest box (0 inside one)."""
    if len(boxes) == 0:
        return np.full(len(points), np.inf)
    d = points[:, None, :] - boxes.center[None]
    c, s = np.cos(boxes.yaw)[None], np.sin(boxes.yaw)[None]
    local = np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1],
                      d[..., 2]], axis=-1)
    g = np.maximum(np.abs(local) - 0.5 * boxes.size[None], 0.0)
    return np.sqrt((g * g).sum(-1)).min(axis=1)


def cell_clearance(xy: np.ndarray, grid: OccupancyGrid, threshold: int = 100,
                   unknown_is_blocked: bool = True, within_m: float = 0.2) -> np.ndarray:
    """Distance ``(K,)`` from floor points ``(K, 2)`` to the nearest blocked cell's square.

    Every cell within ``within_m`` of a point is examined one by one (cells outside the
    map count as unknown); farther ones are reported as ``within_m``. The grid's origin
    is in the points' frame (its ``frame_id`` is ignored).
    """
    x0, y0, yaw = grid.origin
    c, s = np.cos(yaw), np.sin(yaw)
    dx, dy = xy[:, 0] - x0, xy[:, 1] - y0
    u, v = c * dx + s * dy, -s * dx + c * dy  # grid frame
    res = grid.resolution_m
    h, w = grid.shape
    k = int(np.ceil(within_m / res)) + 1
    out = np.full(len(xy), float(within_m))
    for di in range(-k, k + 1):
        for dj in range(-k, k + 1):
            i = np.floor(u / res).astype(int) + di
            j = np.floor(v / res).astype(int) + dj
            inside = (i >= 0) & (i < w) & (j >= 0) & (j < h)
            value = np.where(inside, grid.values[np.clip(j, 0, h - 1), np.clip(i, 0, w - 1)],
                             -1)
            blocked = (value >= threshold) | ((value < 0) & unknown_is_blocked)
            gx = np.maximum(np.maximum(i * res - u, u - (i + 1) * res), 0.0)
            gy = np.maximum(np.maximum(j * res - v, v - (j + 1) * res), 0.0)
            out = np.where(blocked, np.minimum(out, np.hypot(gx, gy)), out)
    return out


def disc_points(x: float, y: float, radius: float, n: int = 400) -> np.ndarray:
    """Points ``(K, 2)`` on and inside a circle (the rim densely, the inside at random)."""
    a = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    rim = np.stack([x + radius * np.cos(a), y + radius * np.sin(a)], axis=1)
    rng = np.random.default_rng(0)
    rho = radius * np.sqrt(rng.uniform(0.0, 1.0, n))
    b = rng.uniform(0.0, 2.0 * np.pi, n)
    return np.vstack([rim, np.stack([x + rho * np.cos(b), y + rho * np.sin(b)], axis=1)])


def scene_ground_truth(proposer, T_world_grasp: np.ndarray, world, n_pan: int = 64,
                       n_lift: int = 64, n_roll: int = 8) -> tuple[dict, np.ndarray]:
    """The exact stance grid of a grasp and which of its stances the scene allows.

    Args:
        proposer: a :class:`~reachability_ros.core.pipeline.StanceProposer` (its
            manifold, visibility, scene checker and visibility margin are used).
        T_world_grasp: ``(4, 4)`` the grasp.
        world: the :class:`~reachability_ros.core.world.World`.
        n_pan, n_lift, n_roll: the grid (:func:`.ground_truth.ground_truth`).

    Returns:
        ``(truth, ok)``: the empty-world ground truth and ``(K,)`` booleans, True for
        its stances that are clear of the world.
    """
    gt = ground_truth(proposer.manifold, T_world_grasp, proposer.visibility, n_pan, n_lift,
                      n_roll, proposer.config.proposal.min_visibility_margin_m)
    q = gt["q"]
    if not len(q):
        return gt, np.zeros(0, dtype=bool)
    return gt, proposer.scene.feasible(world, q)
