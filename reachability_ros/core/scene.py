"""The robot against its world: base footprint on the map, every link against the boxes.

:class:`SceneChecker` holds the robot's side, built once per robot and config, and
answers three batched questions about verified stances (``core/pipeline.py`` runs them
in this order, each on the rows the previous one kept):

1. :meth:`SceneChecker.base_collision`: does the **base footprint** overlap a blocked
   cell of the map (closer than ``world.footprint_padding_m``), or does a shape fixed to
   the base (body, wheels, camera) come within ``world.box_padding_m`` of a box? Also
   the **clearance** of each stance: the smaller of the footprint's distance to the
   nearest blocked cell and the distance from the footprint, raised to the height of
   the base (a volume that holds every base shape), to the nearest box; capped at
   ``world.clearance_cap_m``.
2. :meth:`SceneChecker.arm_collision`: does a shape carried by the arm (links, gripper,
   jaw, wrist camera) come within ``world.box_padding_m`` of a box?
3. :meth:`SceneChecker.scene_occlusion`: does the segment from the front camera to the
   gripper (the target point of the self-occlusion check: the tool frame's origin) pass
   within ``world.occlusion_padding_m`` of a box?

They take only the rows' configurations ``q (N, nq)`` (the base pose in the world), the
structure-of-arrays chain in the base frame and the tool positions, and return per-row
booleans and distances; they never look at the grasp.

Geometry. The footprint is a circle (``world.robot_radius_m``, by default the
description's footprint radius, ``core/diagnosis.py``) or Nav2's ``footprint`` polygon;
both are checked exactly against the squares of the blocked cells (``core/world.py``;
a polygon through its inscribed and circumscribed circles first, then edge by edge
against the few cells in between). For the boxes every collision shape of the
description counts, the links the visibility check ignores included: capsules (a
cylinder with a sphere at each end, fitted capsules of meshes and boxes) and spheres are
exact segments with a radius; a cylinder whose axis is vertical on the base is exact too
(a disc times a height range against a rectangle times a height range); any other
cylinder is covered by the capsules :func:`~.collision.bounding_capsules` fits to a
prism around it (at most a few millimetres larger). Distances to a box are exact:
:func:`~.clearance.segment_box_distance` minimizes the convex, piecewise quadratic squared distance
over each piece in closed form. All of it happens in each stance's base frame (the boxes
move, the base shapes stay), so stances far from the world origin lose no precision.

Speed: a (stance, box) pair is looked at only when the box is within the robot's
bounding radius of the stance, and a shape only when its bounding sphere is within its
padding of the box. (About 530 lines: the three checks share the robot's shapes and
their pruning, so they stay in one class.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .clearance import merge_capsules, segment_box_distance, segment_segment_distance
from .collision import bounding_capsules
from .config import WorldConfig, parse_footprint
from .robot import WholeBodyModel
from .world import Boxes, GridField, OccupancyGrid, World

#: A cylinder on the base is "vertical" (an exact disc) when its axis is this close to z.
VERTICAL_TOL = 1e-9
#: Sides of the prism around a non-vertical cylinder before fitting capsules to it.
PRISM_SIDES = 32
#: Where along a capsule's axis a sure hit is looked for first.
_ALONG = np.linspace(0.0, 1.0, 5)


def _point_in_polygon(px: np.ndarray, py: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd test of points ``(L,)`` against a polygon ``(E, 2)``."""
    inside = np.zeros(px.shape, dtype=bool)
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for a, b, c, e in zip(x0, y0, x1, y1):
        crosses = (b > py) != (e > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = a + (py - b) * (c - a) / (e - b)
        inside ^= crosses & (px < xc)
    return inside


@dataclass(frozen=True)
class BaseCheck:
    """Result of :meth:`SceneChecker.base_collision` (all ``(N,)``).

    Attributes:
        collides: the footprint overlaps the map or a base shape comes near a box.
        on_map: the footprint is the reason (a blocked cell within the padding).
        clearance_m: distance from the footprint to the nearest blocked cell, or from
            the footprint raised to the base's top to the nearest box, whichever is
            smaller, capped at ``world.clearance_cap_m``.
    """

    collides: np.ndarray
    on_map: np.ndarray
    clearance_m: np.ndarray


class SceneChecker:
    """The robot's side of the scene checks (see the module docstring). Build once.

    Args:
        robot: the whole-body model.
        camera_point_base: ``(3,)`` the front camera's optical centre in the base frame
            (``Visibility.p_base_cam``).
        config: the world settings.
        footprint_radius_m: the description's footprint radius (``RobotFacts``); used
            when ``config.robot_radius_m`` is 0.
    """

    def __init__(self, robot: WholeBodyModel, camera_point_base: np.ndarray,
                 config: WorldConfig, footprint_radius_m: float) -> None:
        self.robot = robot
        self.config = config
        self.camera = np.asarray(camera_point_base, dtype=float).reshape(3)
        self.polygon = np.array(parse_footprint(config.footprint), dtype=float).reshape(-1, 2)
        if len(self.polygon):
            r_out = float(np.hypot(self.polygon[:, 0], self.polygon[:, 1]).max())
            r_in = self._inscribed(self.polygon)
        else:
            r_out = r_in = float(config.robot_radius_m or footprint_radius_m)
        #: circumscribed and inscribed radius of the footprint around the base origin (m)
        self.footprint_outer_m, self.footprint_inner_m = r_out, r_in
        #: distances to blocked cells are exact up to this (m)
        self.grid_reach_m = r_out + config.footprint_padding_m + config.clearance_cap_m
        self._build_shapes(robot)

    @staticmethod
    def _inscribed(poly: np.ndarray) -> float:
        """Radius of the largest circle around the origin inside the polygon (-inf: the
        origin is outside it)."""
        if not _point_in_polygon(np.zeros(1), np.zeros(1), poly)[0]:
            return -math.inf
        a, b = poly, np.roll(poly, -1, axis=0)
        d = b - a
        t = np.clip(-(a * d).sum(1) / np.maximum((d * d).sum(1), 1e-300), 0.0, 1.0)
        return float(np.hypot(*(a + t[:, None] * d).T).min())

    # ---------------------------------------------------------------- set-up
    def _build_shapes(self, robot: WholeBodyModel) -> None:
        """Sort every collision shape into base capsules, base discs and arm capsules."""
        P1 = robot.chain.placements[1]
        capsules, spheres, cylinders = merge_capsules(robot.primitives)
        capsules = capsules + [(j, c, c.copy(), r) for j, c, r in spheres]
        discs = []
        for p in cylinders:
            if p.joint == 1:
                T = P1 @ p.T_joint_prim
                if abs(abs(T[2, 2]) - 1.0) < VERTICAL_TOL:
                    discs.append((T[:2, 3], p.radius, T[2, 3] - p.half_length,
                                  T[2, 3] + p.half_length))
                    continue
            for T_cap, r, h in bounding_capsules(_prism(p.radius, p.half_length)):
                T = p.T_joint_prim @ T_cap
                capsules.append((p.joint, T[:3, 3] - h * T[:3, 2], T[:3, 3] + h * T[:3, 2], r))
        fixed = [c for c in capsules if c[0] == 1]
        moving = [c for c in capsules if c[0] != 1]
        if any(c[0] < 1 for c in moving):
            raise NotImplementedError("collision shapes fixed to the world are not supported")
        # base-fixed capsules, in the base frame: (3, K)
        self._base_a = np.array([P1[:3, :3] @ c[1] + P1[:3, 3] for c in fixed]).reshape(-1, 3).T
        self._base_d = np.array([P1[:3, :3] @ (c[2] - c[1]) for c in fixed]).reshape(-1, 3).T
        self._base_r = np.array([c[3] for c in fixed])
        self._disc_xy = np.array([d[0] for d in discs]).reshape(-1, 2).T  # (2, D)
        self._disc_r = np.array([d[1] for d in discs])
        self._disc_z = np.array([d[2:] for d in discs]).reshape(-1, 2).T  # (2, D) lo, hi
        ends = [np.hypot(*self._base_a[:2]) + self._base_r,
                np.hypot(*(self._base_a + self._base_d)[:2]) + self._base_r,
                np.hypot(*self._disc_xy) + self._disc_r]
        #: horizontal radius and top of the base shapes (m)
        self.base_radius_m = float(max([e.max() for e in ends if e.size], default=0.0))
        tops = [self._base_a[2] + self._base_r, (self._base_a + self._base_d)[2] + self._base_r,
                self._disc_z[1]]
        self.base_top_m = float(max([t.max() for t in tops if t.size], default=0.0))
        # arm capsules: joint, local start and axis
        self._arm_joint = np.array([c[0] for c in moving], dtype=int)
        self._arm_a = np.array([c[1] for c in moving]).reshape(-1, 3)
        self._arm_d = np.array([c[2] - c[1] for c in moving]).reshape(-1, 3)
        self._arm_r = np.array([c[3] for c in moving])

    def prepare(self, grid: OccupancyGrid | None = None, boxes: Boxes | None = None,
                grid_pose: tuple | None = None) -> World:
        """Build a :class:`World` (the grid's distance field: the per-map work, done here).

        Args:
            grid: the map or costmap, or None.
            boxes: the boxes, or None.
            grid_pose: ``(x, y, yaw)`` of the grid frame in the grasp's world frame;
                default ``grid.origin`` (the grid's own frame is the world frame).
        """
        field = None
        if grid is not None:
            c = self.config
            field = GridField(grid, c.cost_threshold, c.unknown_is_blocked, self.grid_reach_m)
        pose = grid_pose if grid_pose is not None else (grid.origin if grid is not None
                                                        else (0.0, 0.0, 0.0))
        return World(field, tuple(float(v) for v in pose), boxes if boxes is not None
                     else Boxes())

    # ---------------------------------------------------------------- boxes in base frames
    @staticmethod
    def _pairs(world: World, q: np.ndarray, radius: np.ndarray, top: np.ndarray,
               margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(stance, box) pairs within reach, and the map from base frame to box frame.

        Args:
            radius: ``(N,)`` horizontal radius of the robot's shapes around the base origin.
            top: ``(N,)`` their highest point.
            margin: extra distance that still counts.

        Returns:
            ``(n, b, R, t)``: the pairs' stance and box indices ``(P,)``, the cosine and
            sine ``(2, P)`` of the rotation and the offsets ``(2, P)`` of the map
            ``xy_box = R xy_base + t``.
        """
        boxes = world.boxes
        reach = radius + margin
        # the boxes near the stances' bounding rectangle, then the bounding circles of the
        # (stance, box) pairs, then the rectangles, for the few pairs left
        c = boxes.center
        gx = np.maximum(np.maximum(q[:, 0].min() - c[:, 0], c[:, 0] - q[:, 0].max()), 0.0)
        gy = np.maximum(np.maximum(q[:, 1].min() - c[:, 1], c[:, 1] - q[:, 1].max()), 0.0)
        some = np.flatnonzero((gx * gx + gy * gy < (reach.max() + boxes.circumradius) ** 2)
                              & (boxes.bottom < top.max() + margin))
        dx = q[:, 0, None] - c[None, some, 0]
        dy = q[:, 1, None] - c[None, some, 1]
        near = (dx * dx + dy * dy < (reach[:, None] + boxes.circumradius[None, some]) ** 2) & (
            boxes.bottom[None, some] < (top + margin)[:, None])
        n, k = np.nonzero(near)
        dx, dy = dx[n, k], dy[n, k]
        b = some[k]
        cb, sb = boxes.cos_yaw[b], boxes.sin_yaw[b]
        tx, ty = cb * dx + sb * dy, -sb * dx + cb * dy  # base origin in the box frame
        gx = np.maximum(np.abs(tx) - boxes.half[b, 0], 0.0)
        gy = np.maximum(np.abs(ty) - boxes.half[b, 1], 0.0)
        keep = gx * gx + gy * gy < reach[n] ** 2
        n, b, tx, ty = n[keep], b[keep], tx[keep], ty[keep]
        phi = q[n, 2] - boxes.yaw[b]
        return n, b, np.stack([np.cos(phi), np.sin(phi)]), np.stack([tx, ty])

    @staticmethod
    def _to_box(points: np.ndarray, R: np.ndarray, t: np.ndarray, zc: np.ndarray,
                vector: bool = False) -> np.ndarray:
        """Base-frame points or vectors ``(3, K, P)`` in each pair's box frame."""
        c, s = R[0], R[1]
        x = c * points[0] - s * points[1]
        y = s * points[0] + c * points[1]
        if vector:
            return np.stack([x, y, points[2]])
        return np.stack([x + t[0], y + t[1], points[2] - zc])

    def _capsules_near_boxes(self, a: np.ndarray, d: np.ndarray, r: np.ndarray,
                             world: World, b: np.ndarray, R: np.ndarray, t: np.ndarray,
                             pad_m: float) -> np.ndarray:
        """Whether any of each pair's capsules comes within ``pad_m`` of its box, ``(P,)``.

        Args:
            a, d: ``(3, K, P)`` capsule axis starts and directions in the base frames.
            r: ``(K,)`` or ``(K, P)`` radii.
            b, R, t: the pairs' boxes and maps to the box frames (:meth:`_pairs`).

        The gap between a segment's bounding box and the box (a lower bound) clears
        most capsules, the distance of five points along the axis (an upper bound)
        catches most others; the exact :func:`segment_box_distance` decides the rest.
        """
        P = b.shape[0]
        if a.shape[1] == 0 or P == 0:
            return np.zeros(P, dtype=bool)
        boxes = world.boxes
        half = boxes.half[b].T  # (3, P)
        A = self._to_box(a, R, t, boxes.center[b, 2])
        D = self._to_box(d, R, t, boxes.center[b, 2], vector=True)
        r = np.broadcast_to(np.asarray(r, dtype=float).reshape(a.shape[1], -1), A.shape[1:])
        E = A + D
        h = half[:, None]
        g = np.maximum(np.maximum(np.minimum(A, E) - h, -h - np.maximum(A, E)), 0.0)
        near = np.zeros(A.shape[1:], dtype=bool)
        kk, pp = np.nonzero(np.sqrt((g * g).sum(0)) < r + pad_m)
        if len(kk):
            a_, d_, h_, r_ = A[:, kk, pp], D[:, kk, pp], half[:, pp], r[kk, pp] + pad_m
            # five points along the axis: a sure hit when one is near enough
            pts = a_[:, None] + _ALONG[None, :, None] * d_[:, None]
            gp = np.maximum(np.abs(pts) - h_[:, None], 0.0)
            hit = ((gp * gp).sum(0) < r_ * r_).any(axis=0)
            rest = np.flatnonzero(~hit)
            if rest.size:
                hit[rest] = segment_box_distance(a_[:, rest], d_[:, rest], h_[:, rest]) < r_[rest]
            near[kk, pp] = hit
        return near.any(axis=0)

    def _discs_to_boxes(self, world: World, b: np.ndarray, R: np.ndarray,
                        t: np.ndarray) -> np.ndarray:
        """Distance ``(P,)`` of the base's vertical discs to each pair's box (exact)."""
        if self._disc_r.size == 0 or len(b) == 0:
            return np.full(len(b), np.inf)
        boxes = world.boxes
        half = 0.5 * boxes.size[b]  # (P, 3)
        xy = np.stack([self._disc_xy[0][:, None], self._disc_xy[1][:, None],
                       np.zeros((self._disc_r.size, 1))])  # (3, D, 1)
        local = self._to_box(np.broadcast_to(xy, (3, self._disc_r.size, len(b))), R, t,
                             np.zeros(len(b)))
        gx = np.maximum(np.abs(local[0]) - half[None, :, 0], 0.0)
        gy = np.maximum(np.abs(local[1]) - half[None, :, 1], 0.0)
        dxy = np.maximum(np.hypot(gx, gy) - self._disc_r[:, None], 0.0)
        lo = self._disc_z[0][:, None] - boxes.center[None, b, 2]
        hi = self._disc_z[1][:, None] - boxes.center[None, b, 2]
        dz = np.maximum(np.maximum(lo - half[None, :, 2], -half[None, :, 2] - hi), 0.0)
        return np.hypot(dxy, dz).min(axis=0)

    # ---------------------------------------------------------------- the checks
    def base_collision(self, world: World, q: np.ndarray) -> BaseCheck:
        """The base against the map and the boxes; the clearance of each stance.

        Args:
            world: the world.
            q: ``(N, nq)`` configurations (base pose in the world frame).

        Returns:
            A :class:`BaseCheck`.
        """
        cfg = self.config
        n_rows = q.shape[0]
        cap = cfg.clearance_cap_m
        clearance = np.full(n_rows, np.inf)
        on_map = np.zeros(n_rows, dtype=bool)
        if world.grid_field is not None and n_rows:
            d = world.grid_distance(q[:, :2].T)
            if len(self.polygon):
                on_map = d < self.footprint_inner_m + cfg.footprint_padding_m
                unsure = ~on_map & (d < self.footprint_outer_m + cfg.footprint_padding_m)
                if unsure.any():
                    rows = np.flatnonzero(unsure)
                    on_map[rows] = self._polygon_distance(world, q[rows]) < (
                        cfg.footprint_padding_m)
                grid_clear = np.maximum(d - self.footprint_outer_m, 0.0)
            else:
                grid_clear = d - self.footprint_outer_m
                on_map = grid_clear < cfg.footprint_padding_m
            clearance = np.minimum(clearance, grid_clear)
        on_box = np.zeros(n_rows, dtype=bool)
        if len(world.boxes) and n_rows:
            pad = cfg.box_padding_m
            # the clearance: from the footprint's circle raised to the base's top (it
            # holds every base shape); the decision: the shapes themselves, where near
            radius = max(self.footprint_outer_m, self.base_radius_m)
            n, b, R, t = self._pairs(world, q, np.full(n_rows, radius),
                                     np.full(n_rows, self.base_top_m), max(cap, pad))
            if len(n):
                hull = self._cylinder_to_boxes(world, b, t, self.footprint_outer_m)
                per_row = np.full(n_rows, np.inf)
                np.minimum.at(per_row, n, hull)
                clearance = np.minimum(clearance, per_row)
                near = self._cylinder_to_boxes(world, b, t, radius) < pad
                n, b, R, t = n[near], b[near], R[:, near], t[:, near]
                a = np.broadcast_to(self._base_a[:, :, None], (3, self._base_r.size, len(n)))
                dv = np.broadcast_to(self._base_d[:, :, None], a.shape)
                hit = self._capsules_near_boxes(a, dv, self._base_r, world, b, R, t, pad) | (
                    self._discs_to_boxes(world, b, R, t) < pad)
                on_box[n[hit]] = True
        return BaseCheck(on_map | on_box, on_map, np.minimum(clearance, cap))

    def _cylinder_to_boxes(self, world: World, b: np.ndarray, t: np.ndarray,
                           radius: float) -> np.ndarray:
        """Distance ``(P,)`` from the upright cylinder ``radius`` x [0, base top] around each
        pair's base origin (``t``: in the box frame) to the box."""
        half = world.boxes.half[b]
        g = np.maximum(np.abs(t.T) - half[:, :2], 0.0)
        dxy = np.maximum(np.hypot(g[:, 0], g[:, 1]) - radius, 0.0)
        zc = world.boxes.center[b, 2]
        dz = np.maximum(np.maximum(zc - half[:, 2] - self.base_top_m, -(zc + half[:, 2])), 0.0)
        return np.hypot(dxy, dz)

    def surely_on_map(self, world: World, q: np.ndarray) -> np.ndarray:
        """A cheap subset of the map collisions: ``(N,)`` True where the base surely overlaps.

        One look-up per row: the smallest distance from the row's cell to a blocked cell,
        plus the cell's diagonal, bounds the base origin's distance from above; below the
        footprint's inscribed radius plus the padding, the footprint overlaps. False
        everywhere without a map.
        """
        field = world.grid_field
        out = np.zeros(q.shape[0], dtype=bool)
        if field is None or not q.shape[0]:
            return out
        u, v = field.cells_of(world.world_to_grid(q[:, :2].T))
        h, w = field.lower_bound_m.shape
        inside = (u >= 0.0) & (u < w) & (v >= 0.0) & (v < h)
        i, j = u[inside].astype(np.intp), v[inside].astype(np.intp)
        upper = field.lower_bound_m[j, i] + math.sqrt(2.0) * field.resolution_m
        out[inside] = upper < self.footprint_inner_m + self.config.footprint_padding_m
        if field.unknown_is_blocked:
            out[~inside] = True  # far outside the map: in the blocked outside
        return out

    def arm_collision(self, world: World, q: np.ndarray, chain: np.ndarray) -> np.ndarray:
        """Whether a shape carried by the arm comes within ``box_padding_m`` of a box.

        Args:
            world: the world.
            q: ``(N, nq)`` configurations.
            chain: ``(njoints, 3, 4, N)`` joint poses in the base frames.

        Returns:
            ``(N,)`` booleans.
        """
        n_rows = q.shape[0]
        out = np.zeros(n_rows, dtype=bool)
        if not len(world.boxes) or not n_rows or not self._arm_r.size:
            return out
        X = chain[self._arm_joint]  # (K, 3, 4, N)
        a = (np.einsum("kijn,kj->ikn", X[:, :, :3, :], self._arm_a)
             + X[:, :, 3, :].transpose(1, 0, 2))  # (3, K, N) capsule starts, base frame
        d = np.einsum("kijn,kj->ikn", X[:, :, :3, :], self._arm_d)
        reach = np.sqrt((a[:2] ** 2).sum(0)).max(0)
        reach = np.maximum(reach, np.sqrt(((a + d)[:2] ** 2).sum(0)).max(0))
        top = np.maximum(a[2], (a + d)[2]).max(0)
        pad = self.config.box_padding_m
        rmax = float(self._arm_r.max())
        n, b, R, t = self._pairs(world, q, reach + rmax, top + rmax, pad)
        if not len(n):
            return out
        out[n[self._capsules_near_boxes(a[:, :, n], d[:, :, n], self._arm_r, world, b, R, t,
                                        pad)]] = True
        return out

    def scene_occlusion(self, world: World, q: np.ndarray, p_tool: np.ndarray) -> np.ndarray:
        """Whether a box comes within ``occlusion_padding_m`` of the camera -> tool segment.

        Args:
            world: the world.
            q: ``(N, nq)`` configurations.
            p_tool: ``(3, N)`` the target points (tool frame origins) in the base frames.

        Returns:
            ``(N,)`` booleans.
        """
        n_rows = q.shape[0]
        out = np.zeros(n_rows, dtype=bool)
        if not len(world.boxes) or not n_rows:
            return out
        cam = self.camera
        reach = np.maximum(np.hypot(*p_tool[:2]), math.hypot(*cam[:2]))
        top = np.maximum(p_tool[2], cam[2])
        pad = self.config.occlusion_padding_m
        n, b, R, t = self._pairs(world, q, reach, top, pad)
        if not len(n):
            return out
        a = np.broadcast_to(cam[:, None, None], (3, 1, len(n)))
        d = (p_tool[:, n] - cam[:, None])[:, None, :]
        out[n[self._capsules_near_boxes(a, d, np.zeros(1), world, b, R, t, pad)]] = True
        return out

    def feasible(self, world: World, q: np.ndarray, chain: np.ndarray | None = None
                 ) -> np.ndarray:
        """All three checks at once: ``(N,)`` True where the stance is clear of the world.

        Args:
            world: the world.
            q: ``(N, nq)`` configurations.
            chain: their :meth:`WholeBodyModel.base_chain` (computed when None).
        """
        q = np.asarray(q, dtype=float).reshape(-1, self.robot.nq)
        if chain is None:
            chain = self.robot.base_chain(q)
        ok = ~self.base_collision(world, q).collides
        ok[ok] = ~self.arm_collision(world, q[ok], chain[..., ok])
        p_tool, _ = self.robot.frame_in_chain(chain[..., ok], self.robot.config.tool_frame)
        ok[ok] = ~self.scene_occlusion(world, q[ok], p_tool)
        return ok

    # ---------------------------------------------------------------- polygon footprint
    def _polygon_distance(self, world: World, q: np.ndarray) -> np.ndarray:
        """Exact distance ``(N,)`` from the footprint polygon at each stance to blocked cells.

        Only cells within the circumscribed radius plus the padding are examined;
        farther ones count as ``inf``.
        """
        grid = world.grid_field
        res = grid.resolution_m
        radius = self.footprint_outer_m + self.config.footprint_padding_m
        xy_grid = world.world_to_grid(q[:, :2].T)
        row, centre_g = grid.blocked_squares_near(xy_grid, radius)
        out = np.full(q.shape[0], np.inf)
        if not len(row):
            return out
        # the squares in each stance's base frame
        gx, gy, gyaw = world.grid_pose
        cg, sg = math.cos(gyaw), math.sin(gyaw)
        cw = np.stack([gx + cg * centre_g[0] - sg * centre_g[1],
                       gy + sg * centre_g[0] + cg * centre_g[1]])
        th = q[row, 2]
        ct, st = np.cos(th), np.sin(th)
        dx, dy = cw[0] - q[row, 0], cw[1] - q[row, 1]
        cb = np.stack([ct * dx + st * dy, -st * dx + ct * dy])  # (2, L)
        rel = gyaw - th  # the squares' orientation in the base frames
        cr, sr = np.cos(rel), np.sin(rel)
        h = 0.5 * res
        corner = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])  # (4, 2)
        cx = cb[0][None] + cr[None] * corner[:, :1] - sr[None] * corner[:, 1:]
        cy = cb[1][None] + sr[None] * corner[:, :1] + cr[None] * corner[:, 1:]  # (4, L)
        sq_p0 = np.stack([cx, cy, np.zeros_like(cx)])  # (3, 4, L)
        sq_d = np.roll(sq_p0, -1, axis=1) - sq_p0
        poly = self.polygon
        e0 = np.concatenate([poly, np.zeros((len(poly), 1))], axis=1).T  # (3, E)
        ed = np.roll(e0, -1, axis=1) - e0
        dist = segment_segment_distance(sq_p0[:, :, None, :], sq_d[:, :, None, :],
                                        e0[:, None, :, None], ed[:, None, :, None])
        d = dist.min(axis=(0, 1))  # (L,)
        # one inside the other: the square's centre in the polygon, or a vertex in the square
        inside = _point_in_polygon(cb[0], cb[1], poly)
        vx = cr * (poly[0, 0] - cb[0]) + sr * (poly[0, 1] - cb[1])
        vy = -sr * (poly[0, 0] - cb[0]) + cr * (poly[0, 1] - cb[1])
        inside |= (np.abs(vx) <= h) & (np.abs(vy) <= h)
        d = np.where(inside, 0.0, d)
        np.minimum.at(out, row, d)
        return out


def _prism(radius: float, half_length: float, sides: int = PRISM_SIDES) -> np.ndarray:
    """Triangles ``(T, 3, 3)`` of a prism around a cylinder (axis z, centred) that contains it."""
    r = radius / math.cos(math.pi / sides)  # the polygon's sides touch the circle
    ang = np.linspace(0.0, 2.0 * np.pi, sides, endpoint=False)
    ring = np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1)
    lo = np.concatenate([ring, np.full((sides, 1), -half_length)], axis=1)
    hi = np.concatenate([ring, np.full((sides, 1), half_length)], axis=1)
    c_lo, c_hi = np.array([0.0, 0.0, -half_length]), np.array([0.0, 0.0, half_length])
    tris = []
    for i in range(sides):
        j = (i + 1) % sides
        tris += [[lo[i], lo[j], hi[j]], [lo[i], hi[j], hi[i]], [c_lo, lo[j], lo[i]],
                 [c_hi, hi[i], hi[j]]]
    return np.array(tris)
