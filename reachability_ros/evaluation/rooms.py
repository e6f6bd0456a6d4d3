"""Generated rooms for the scene benchmark and tests: walls, low tables, floor clutter.

:func:`make_house` draws a house of ``size_m`` x ``size_m`` (default 20 m at 5 cm: a
400 x 400 occupancy grid): outer walls, two inner walls with doorways, low tables (a
top slab on four legs) against a wall, in a corner and free-standing, and boxes of
clutter on the floor. The map holds what a 2-D lidar at base height sees (walls, table
legs, clutter; the outside of the house unknown); the boxes hold the 3-D shapes (table
tops and legs, clutter): 3 tables and 5 pieces of clutter are the 20 boxes of the
benchmark.

:func:`scene_grasps` places grasps of the kinds of :data:`GRASP_KINDS` in a house: each
is a grasp of the empty-world generator (:func:`.grasps.reachable_grasps`: reachable
and visible in an empty world) whose height matches the place, turned about the
vertical and moved there (which keeps it reachable in an empty world).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.geometry import matrix_to_quat, quat_to_matrix, rot_z
from ..core.types import Grasp
from ..core.world import Boxes, OccupancyGrid

#: What each grasp kind is.
GRASP_KINDS = {
    "table_top": "an object on a table top, at least 8 cm inside its edges",
    "table_edge": "an object on a table top within 3 cm of an edge",
    "wall": "an object on or near the floor 8-25 cm from a wall",
    "corner": "an object on or near the floor 8-25 cm from two walls of a corner",
    "open": "an object on or near the floor, 0.8 m or more from walls and tables",
}

WALL_M = 0.1
SLAB_M = 0.03
LEG_M = 0.04


@dataclass(frozen=True)
class Table:
    """A low table: top ``[x0, x1] x [y0, y1]`` at ``height_m`` (its upper face)."""

    x0: float
    y0: float
    x1: float
    y1: float
    height_m: float

    def boxes(self, name: str) -> list[dict]:
        """The slab and four legs as box records."""
        cx, cy = 0.5 * (self.x0 + self.x1), 0.5 * (self.y0 + self.y1)
        out = [{"name": f"{name}_top", "center": [cx, cy, self.height_m - 0.5 * SLAB_M],
                "size": [self.x1 - self.x0, self.y1 - self.y0, SLAB_M]}]
        h = self.height_m - SLAB_M
        for k, (x, y) in enumerate(self.legs()):
            out.append({"name": f"{name}_leg{k}", "center": [x, y, 0.5 * h],
                        "size": [LEG_M, LEG_M, h]})
        return out

    def legs(self) -> list[tuple[float, float]]:
        """Leg centres (x, y)."""
        i = 0.5 * LEG_M + 0.02
        return [(self.x0 + i, self.y0 + i), (self.x1 - i, self.y0 + i),
                (self.x1 - i, self.y1 - i), (self.x0 + i, self.y1 - i)]


@dataclass(frozen=True)
class House:
    """A generated house.

    Attributes:
        grid: the occupancy grid (frame = the world frame, origin at (0, 0)).
        boxes: tables (slab and legs) and clutter.
        walls: ``(W, 4)`` wall rectangles ``x0, y0, x1, y1``.
        tables: the tables.
        corners: ``(C, 2, 2)`` inner corners of the rooms and the directions into the room.
        size_m: side of the square map.
    """

    grid: OccupancyGrid
    boxes: Boxes
    walls: np.ndarray
    tables: tuple
    corners: np.ndarray
    size_m: float


def _raster(values: np.ndarray, res: float, x0: float, y0: float, x1: float, y1: float,
            value: int) -> None:
    """Mark the cells that a rectangle overlaps."""
    h, w = values.shape
    i0, i1 = max(0, int(np.floor(x0 / res))), min(w, int(np.ceil(x1 / res)))
    j0, j1 = max(0, int(np.floor(y0 / res))), min(h, int(np.ceil(y1 / res)))
    values[j0:j1, i0:i1] = value


def make_house(rng: np.random.Generator, size_m: float = 20.0, resolution_m: float = 0.05,
               n_clutter: int = 5) -> House:
    """Draw a house (see the module docstring).

    Args:
        rng: random generator.
        size_m: side of the square map (m).
        resolution_m: cell size (m).
        n_clutter: boxes of clutter on the floor.
    """
    n = int(round(size_m / resolution_m))
    values = np.full((n, n), -1, dtype=np.int8)
    lo, hi = 0.5, size_m - 0.5
    _raster(values, resolution_m, lo, lo, hi, hi, 0)
    xs = float(rng.uniform(0.35, 0.5) * size_m)  # inner walls: x = xs, and y = ys right of it
    ys = float(rng.uniform(0.4, 0.6) * size_m)
    door1 = float(rng.uniform(lo + 1.0, hi - 2.0))
    door2 = float(rng.uniform(xs + 1.0, hi - 2.0))
    t = WALL_M
    walls = [(lo - t, lo - t, hi + t, lo), (lo - t, hi, hi + t, hi + t),
             (lo - t, lo, lo, hi), (hi, lo, hi + t, hi),
             (xs, lo, xs + t, door1), (xs, door1 + 0.9, xs + t, hi),
             (xs + t, ys, door2, ys + t), (door2 + 0.9, ys, hi, ys + t)]
    for w in walls:
        _raster(values, resolution_m, *w, 100)
    corners = np.array([[[lo, lo], [1, 1]], [[xs, lo], [-1, 1]], [[lo, hi], [1, -1]],
                        [[xs + t, hi], [1, -1]], [[hi, lo], [-1, 1]], [[hi, hi], [-1, -1]],
                        [[xs + t, ys], [1, -1]], [[hi, ys + t], [-1, 1]]], dtype=float)
    tables = []
    # against the left outer wall, in the lower-left corner, free-standing in the right room
    for kind in ("wall", "corner", "free"):
        w, d = rng.uniform(0.6, 1.2), rng.uniform(0.4, 0.8)
        height = rng.uniform(0.2, 0.3)
        if kind == "wall":
            y = rng.uniform(lo + 3.0, hi - 3.0)
            x0, y0 = lo, y
            x1, y1 = lo + d, y + w
        elif kind == "corner":
            x0, y0 = lo, lo
            x1, y1 = lo + w, lo + d
        else:
            x = rng.uniform(xs + 2.0, hi - 3.0)
            y = rng.uniform(lo + 2.0, ys - 3.0)
            x0, y0, x1, y1 = x, y, x + w, y + d
        tables.append(Table(float(x0), float(y0), float(x1), float(y1), float(height)))
    records = []
    for k, tb in enumerate(tables):
        records += tb.boxes(f"table{k}")
        for x, y in tb.legs():
            _raster(values, resolution_m, x - 0.5 * LEG_M, y - 0.5 * LEG_M, x + 0.5 * LEG_M,
                    y + 0.5 * LEG_M, 100)
    for k in range(n_clutter):
        sx, sy, sz = rng.uniform(0.08, 0.3), rng.uniform(0.08, 0.3), rng.uniform(0.05, 0.3)
        x, y = rng.uniform(lo + 1.0, hi - 1.0), rng.uniform(lo + 1.0, hi - 1.0)
        yaw = rng.uniform(-np.pi, np.pi)
        records.append({"name": f"clutter{k}", "center": [x, y, 0.5 * sz],
                        "size": [sx, sy, sz], "yaw": yaw})
        r = 0.5 * np.hypot(sx, sy)
        _raster(values, resolution_m, x - r, y - r, x + r, y + r, 100)
    return House(OccupancyGrid(values, resolution_m, (0.0, 0.0, 0.0)),
                 Boxes.from_records(records), np.array(walls), tuple(tables), corners,
                 float(size_m))


def _free_distance(house: House, xy: np.ndarray) -> np.ndarray:
    """Distance (m) from points ``(N, 2)`` to the nearest wall rectangle or table top."""
    rects = np.vstack([house.walls] + [[[t.x0, t.y0, t.x1, t.y1]] for t in house.tables])
    gx = np.maximum(np.maximum(rects[None, :, 0] - xy[:, None, 0],
                               xy[:, None, 0] - rects[None, :, 2]), 0.0)
    gy = np.maximum(np.maximum(rects[None, :, 1] - xy[:, None, 1],
                               xy[:, None, 1] - rects[None, :, 3]), 0.0)
    return np.hypot(gx, gy).min(axis=1)


def scene_grasps(house: House, pool: list[Grasp], kind: str, n: int,
                 rng: np.random.Generator, height_tol_m: float = 0.01) -> list[Grasp]:
    """Place ``n`` grasps of one kind (:data:`GRASP_KINDS`) in a house.

    Args:
        house: the house.
        pool: grasps reachable and visible in an empty world (their heights and
            orientations are reused).
        kind: a key of :data:`GRASP_KINDS`.
        n: number of grasps.
        rng: random generator.
        height_tol_m: a pool grasp is used for a place when its height is this close to
            the place's; places without one are drawn again.

    Returns:
        The grasps (frame ``map``).
    """
    if kind not in GRASP_KINDS:
        raise ValueError(f"unknown grasp kind {kind!r}; use one of {sorted(GRASP_KINDS)}")
    heights = np.array([g.position[2] for g in pool])
    out: list[Grasp] = []
    lo, hi = 0.5, house.size_m - 0.5
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 1000 * max(n, 1):
            raise RuntimeError(f"cannot place {kind} grasps: no pool grasp at those heights")
        if kind in ("table_top", "table_edge"):
            tb = house.tables[rng.integers(len(house.tables))]
            z = tb.height_m + rng.uniform(0.02, 0.05)
            if kind == "table_top":
                m = 0.08
                x, y = rng.uniform(tb.x0 + m, tb.x1 - m), rng.uniform(tb.y0 + m, tb.y1 - m)
            else:
                side = rng.integers(4)
                e = rng.uniform(0.005, 0.03)
                x, y = rng.uniform(tb.x0 + e, tb.x1 - e), rng.uniform(tb.y0 + e, tb.y1 - e)
                x = (tb.x0 + e) if side == 0 else (tb.x1 - e) if side == 1 else x
                y = (tb.y0 + e) if side == 2 else (tb.y1 - e) if side == 3 else y
        else:
            z = rng.uniform(0.0, 0.2)
            if kind == "corner":
                (cx, cy), (sx, sy) = house.corners[rng.integers(len(house.corners))]
                x, y = cx + sx * rng.uniform(0.08, 0.25), cy + sy * rng.uniform(0.08, 0.25)
            elif kind == "wall":
                x, y = rng.uniform(lo + 1.0, hi - 1.0), rng.uniform(lo + 1.0, hi - 1.0)
                # slide to a wall: the nearest outer wall, 8-25 cm from it
                d = rng.uniform(0.08, 0.25)
                axis = rng.integers(4)
                x = lo + d if axis == 0 else hi - d if axis == 1 else x
                y = lo + d if axis == 2 else hi - d if axis == 3 else y
                if _free_distance(house, np.array([[x, y]]))[0] < 0.08:
                    continue
            else:
                x, y = rng.uniform(lo + 1.0, hi - 1.0), rng.uniform(lo + 1.0, hi - 1.0)
                if _free_distance(house, np.array([[x, y]]))[0] < 0.8:
                    continue
                c = house.boxes.center
                if np.hypot(c[:, 0] - x, c[:, 1] - y).min() < 0.8:
                    continue
        near = np.flatnonzero(np.abs(heights - z) <= height_tol_m)
        if not near.size:
            continue
        g = pool[int(rng.choice(near))]
        yaw = rng.uniform(-np.pi, np.pi)
        quat = matrix_to_quat(rot_z(yaw) @ quat_to_matrix(np.asarray(g.orientation, dtype=float)))
        out.append(Grasp((float(x), float(y), float(g.position[2])),
                         tuple(float(v) for v in quat), "map"))
    return out
