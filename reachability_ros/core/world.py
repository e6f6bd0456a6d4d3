"""The robot's world: an occupancy grid and 3-D boxes, and the exact distances to them.

Two kinds of obstacles, both in the grasp's world frame:

* an **occupancy grid** (:class:`OccupancyGrid`), a Nav2 map or costmap: values 0-100,
  -1 unknown, row-major from the cell at the origin, x fastest (``nav_msgs/OccupancyGrid``).
  A cell blocks the **base** when its value reaches ``world.cost_threshold``, and an
  unknown cell (or the outside of the map) blocks it unless ``world.unknown_is_blocked``
  is false. A cell has no height: the arm may reach over blocked cells (a table in the
  map is where the grasp is), and the map does not hide the gripper from the camera;
  obstacles the arm or the camera must clear are boxes.
* **boxes** (:class:`Boxes`): ``{name, center, size, yaw}``, solid, upright (rotated about
  z only). No part of the robot may come within ``world.box_padding_m`` of one, and the
  front camera's line of sight to the gripper must clear them by
  ``world.occlusion_padding_m`` (``core/scene.py``).

Everything a query needs from a grid is computed once per map by :class:`GridField`:
the blocked cells (padded with the unknown policy), scipy's Euclidean distance
transform (``scipy.ndimage.distance_transform_edt``) of the blocked cells grown by one
cell, which bounds the distance from every point of a cell to the blocked cells from
below, and per row the nearest blocked cell at or left of, and at or right of, every
column. A query is then exact and cheap (:meth:`GridField.distance`): the distance
from a point to the union of the blocked cells' squares is the smallest, over the rows
of cells within reach, of the distance to the nearest blocked cell of that row in x
(its gap in x is the smallest of the row's) combined with the row's gap in y.

A :class:`World` is the field placed in the world frame (the pose of the grid's
corner) plus the boxes; moving it (a new TF transform, new boxes) reuses the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from .errors import ConfigError

#: The largest grid accepted (cells): 10^8 cells at 5 cm is 500 m x 500 m.
MAX_GRID_CELLS = 100_000_000


def _finite(values, what: str, n: int | None = None) -> np.ndarray:
    try:
        a = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be numbers, got {values!r}") from None
    if n is not None and a.size != n:
        raise ConfigError(f"{what} must have {n} numbers, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{what} has non-finite values: {a.tolist()}")
    return a


@dataclass(frozen=True, eq=False)
class OccupancyGrid:
    """An occupancy grid as ``nav_msgs/OccupancyGrid`` holds it, in plain arrays.

    Attributes:
        values: ``(height, width)`` int8: 0 free ... 100 occupied, -1 unknown; row ``j``,
            column ``i`` is the cell whose corner nearest the origin is at
            ``(i, j) * resolution_m`` in the grid frame.
        resolution_m: side of a cell (m).
        origin: ``(x, y, yaw)`` of the grid frame (the outer corner of cell (0, 0)) in
            the frame ``frame_id``.
        frame_id: the frame of ``origin`` ("" = the grasp's world frame).
        stamp_s: time of the data (s), for an age check; 0 = unknown.

    Raises:
        ConfigError: a wrongly shaped or empty array, values outside -1 ... 100, a
            resolution that is not a positive number, an origin that is not 3 finite
            numbers.
    """

    values: np.ndarray
    resolution_m: float
    origin: tuple = (0.0, 0.0, 0.0)
    frame_id: str = ""
    stamp_s: float = 0.0

    def __post_init__(self) -> None:
        v = np.asarray(self.values)
        if v.ndim != 2 or v.shape[0] < 1 or v.shape[1] < 1:
            raise ConfigError(f"an occupancy grid needs (height, width) cells, got shape "
                              f"{v.shape}")
        if v.size > MAX_GRID_CELLS:
            raise ConfigError(f"the occupancy grid has {v.size} cells; at most "
                              f"{MAX_GRID_CELLS} are accepted")
        if not np.issubdtype(v.dtype, np.integer):
            raise ConfigError(f"occupancy grid values must be integers, got {v.dtype}")
        if v.min() < -1 or v.max() > 100:
            raise ConfigError(f"occupancy grid values must be -1 (unknown) or 0 ... 100, got "
                              f"{int(v.min())} ... {int(v.max())}")
        v = np.ascontiguousarray(v, dtype=np.int8)
        v.setflags(write=False)
        object.__setattr__(self, "values", v)
        res = self.resolution_m
        if isinstance(res, bool) or not isinstance(res, (int, float)) or not (
                math.isfinite(res) and res > 0.0):
            raise ConfigError(f"occupancy grid resolution must be a positive number of metres, "
                              f"got {res!r}")
        object.__setattr__(self, "resolution_m", float(res))
        origin = _finite(self.origin, "occupancy grid origin (x, y, yaw)", 3)
        object.__setattr__(self, "origin", tuple(float(v) for v in origin))

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in cells."""
        return self.values.shape


@dataclass(frozen=True, eq=False)
class Boxes:
    """Solid upright boxes in the world frame.

    Attributes:
        names: ``(B,)`` names.
        center: ``(B, 3)`` centres (m).
        size: ``(B, 3)`` full side lengths along the box's own x, y, z (m), all > 0.
        yaw: ``(B,)`` rotation about z (rad).
        frame_id: the frame of the numbers ("" = the grasp's world frame).
    """

    names: tuple = ()
    center: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    size: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    yaw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    frame_id: str = ""

    def __post_init__(self) -> None:
        c = np.array(self.center, dtype=float).reshape(-1, 3)
        s = np.array(self.size, dtype=float).reshape(-1, 3)
        y = np.array(self.yaw, dtype=float).reshape(-1)
        n = len(self.names)
        if not (c.shape[0] == s.shape[0] == y.shape[0] == n):
            raise ConfigError(f"boxes: {n} names, {c.shape[0]} centres, {s.shape[0]} sizes and "
                              f"{y.shape[0]} yaws")
        for a in (c, s, y):
            a.setflags(write=False)
        object.__setattr__(self, "names", tuple(str(v) for v in self.names))
        object.__setattr__(self, "center", c)
        object.__setattr__(self, "size", s)
        object.__setattr__(self, "yaw", y)

    def __len__(self) -> int:
        return len(self.names)

    @cached_property
    def half(self) -> np.ndarray:
        """``(B, 3)`` half side lengths."""
        return 0.5 * self.size

    @cached_property
    def circumradius(self) -> np.ndarray:
        """``(B,)`` radius of each box's floor plan around its centre."""
        return 0.5 * np.hypot(self.size[:, 0], self.size[:, 1])

    @cached_property
    def bottom(self) -> np.ndarray:
        """``(B,)`` the height of each box's lower face."""
        return self.center[:, 2] - 0.5 * self.size[:, 2]

    @cached_property
    def cos_yaw(self) -> np.ndarray:
        """``(B,)`` cosines of the yaws."""
        return np.cos(self.yaw)

    @cached_property
    def sin_yaw(self) -> np.ndarray:
        """``(B,)`` sines of the yaws."""
        return np.sin(self.yaw)

    @classmethod
    def from_records(cls, records, frame_id: str = "", where: str = "obstacles") -> Boxes:
        """Build boxes from ``[{name, center: [x, y, z], size: [sx, sy, sz], yaw}, ...]``.

        ``name`` (default ``box<i>``) and ``yaw`` (rad, default 0) are optional.

        Raises:
            ConfigError: not a list of mappings, unknown keys, a centre or size that is not
                3 finite numbers, a size that is not positive, a non-finite yaw; the
                message names the box.
        """
        if records is None:
            records = []
        if not isinstance(records, (list, tuple)):
            raise ConfigError(f"{where} must be a list of boxes, got {type(records).__name__}")
        names, centres, sizes, yaws = [], [], [], []
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise ConfigError(f"{where}[{i}] must be a mapping with center and size, got "
                                  f"{rec!r}")
            name = rec.get("name", f"box{i}")
            label = f"{where}[{i}] ({name!r})"
            unknown = sorted(set(rec) - {"name", "center", "size", "yaw"})
            if unknown:
                raise ConfigError(f"{label}: unknown keys {unknown}; a box has name, center, "
                                  "size and yaw")
            for key in ("center", "size"):
                if key not in rec:
                    raise ConfigError(f"{label}: missing {key!r} (3 numbers)")
            centre = _checked_vector(rec["center"], f"{label} center")
            size = _checked_vector(rec["size"], f"{label} size")
            if np.any(size <= 0.0):
                raise ConfigError(f"{label} size must be positive, got {size.tolist()}")
            yaw = rec.get("yaw", 0.0)
            if isinstance(yaw, bool) or not isinstance(yaw, (int, float)) or not math.isfinite(
                    yaw):
                raise ConfigError(f"{label} yaw must be a finite number (rad), got {yaw!r}")
            names.append(str(name))
            centres.append(centre)
            sizes.append(size)
            yaws.append(float(yaw))
        return cls(tuple(names), np.array(centres).reshape(-1, 3),
                   np.array(sizes).reshape(-1, 3), np.array(yaws), frame_id)

    def transformed(self, x: float, y: float, yaw: float, frame_id: str = "") -> Boxes:
        """The same boxes after a planar motion ``(x, y, yaw)`` (e.g. into another frame)."""
        c, s = math.cos(yaw), math.sin(yaw)
        centre = self.center.copy()
        centre[:, 0] = x + c * self.center[:, 0] - s * self.center[:, 1]
        centre[:, 1] = y + s * self.center[:, 0] + c * self.center[:, 1]
        return Boxes(self.names, centre, self.size, self.yaw + yaw, frame_id)

    def __add__(self, other: Boxes) -> Boxes:
        return Boxes(self.names + other.names, np.vstack([self.center, other.center]),
                     np.vstack([self.size, other.size]),
                     np.concatenate([self.yaw, other.yaw]), self.frame_id)

    def corners_xy(self) -> np.ndarray:
        """Floor-plan corners ``(B, 4, 2)`` (counter-clockwise) of every box."""
        hx, hy = 0.5 * self.size[:, 0], 0.5 * self.size[:, 1]
        local = np.stack([np.stack([-hx, -hy], -1), np.stack([hx, -hy], -1),
                          np.stack([hx, hy], -1), np.stack([-hx, hy], -1)], axis=1)
        c, s = np.cos(self.yaw)[:, None], np.sin(self.yaw)[:, None]
        return np.stack([self.center[:, None, 0] + c * local[..., 0] - s * local[..., 1],
                         self.center[:, None, 1] + s * local[..., 0] + c * local[..., 1]],
                        axis=-1)


def _checked_vector(value, what: str) -> np.ndarray:
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"{what} must be 3 numbers, got {value!r}")
    a = np.array(value, dtype=float)
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{what} has non-finite values: {list(value)}")
    return a


class GridField:
    """What queries need from one occupancy grid, computed once (see the module docstring).

    Args:
        grid: the map or costmap.
        cost_threshold: cells with a value >= this are blocked (1 ... 100).
        unknown_is_blocked: unknown cells and the outside of the map are blocked.
        reach_m: distances are exact up to this (the footprint's extent, its padding and
            the clearance cap); larger ones are reported as ``reach_m``.

    Attributes:
        blocked: ``(H + 2P, W + 2P)`` blocked cells, the map padded by ``P`` cells of the
            unknown policy on every side.
        pad: ``P`` (cells).
        lower_bound_m: same shape: the smallest distance (m) from any point of a cell to
            a blocked cell (0 for a blocked cell and its neighbours).
    """

    def __init__(self, grid: OccupancyGrid, cost_threshold: int = 100,
                 unknown_is_blocked: bool = True, reach_m: float = 0.5) -> None:
        from scipy.ndimage import binary_dilation, distance_transform_edt
        self.grid = grid
        self.resolution_m = res = grid.resolution_m
        self.reach_m = float(reach_m)
        self.cost_threshold = int(cost_threshold)
        self.unknown_is_blocked = bool(unknown_is_blocked)
        self.window = int(math.ceil(self.reach_m / res)) + 1  # rows of cells within reach
        self.pad = p = self.window + 1
        v = grid.values
        blocked_map = v >= self.cost_threshold
        if self.unknown_is_blocked:
            blocked_map |= v < 0
        self.blocked = np.pad(blocked_map, p, constant_values=self.unknown_is_blocked)
        self.blocked.setflags(write=False)
        h, w = self.blocked.shape
        cols = np.arange(w, dtype=np.int32)
        far = np.int32(1 << 28)
        self._left = np.maximum.accumulate(np.where(self.blocked, cols, -far), axis=1)
        self._right = np.minimum.accumulate(np.where(self.blocked, cols, far)[:, ::-1],
                                            axis=1)[:, ::-1]
        if self.blocked.any():
            grown = binary_dilation(self.blocked, structure=np.ones((3, 3), dtype=bool))
            self.lower_bound_m = (distance_transform_edt(~grown) * res).astype(np.float32)
        else:
            self.lower_bound_m = np.full((h, w), np.inf, dtype=np.float32)
        self.lower_bound_m.setflags(write=False)

    @property
    def any_blocked(self) -> bool:
        """Whether any cell (or the outside of the map) blocks the base."""
        return bool(self.blocked.any())

    def cells_of(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Padded cell coordinates ``(u, v)`` (cells, floats) of grid-frame points ``(2, N)``."""
        inv = 1.0 / self.resolution_m
        return xy[0] * inv + self.pad, xy[1] * inv + self.pad

    def distance(self, xy: np.ndarray) -> np.ndarray:
        """Exact distance from grid-frame points to the blocked cells, capped at ``reach_m``.

        Args:
            xy: ``(2, N)`` points in the grid frame (m from the corner of cell (0, 0)).

        Returns:
            ``(N,)`` distances (m) to the union of the blocked cells' squares: 0 inside
            one, ``reach_m`` where nothing blocked is that close.
        """
        u, v = self.cells_of(np.asarray(xy, dtype=float))
        n = u.shape[0]
        out = np.full(n, self.reach_m)
        h, w = self.blocked.shape
        inside = (u >= 0.0) & (u < w) & (v >= 0.0) & (v < h)
        if self.unknown_is_blocked:  # far outside the map: in the blocked outside
            out[~inside] = 0.0
        idx = np.flatnonzero(inside)
        if not idx.size:
            return out
        i = u[idx].astype(np.intp)
        j = v[idx].astype(np.intp)
        near = self.lower_bound_m[j, i] < self.reach_m
        idx, i, j = idx[near], i[near], j[near]
        if not idx.size:
            return out
        uu, vv = u[idx], v[idx]
        k = self.window
        rows = np.clip(j[:, None] + np.arange(-k, k + 1)[None, :], 0, h - 1)  # (M, 2k+1)
        gy = np.maximum(np.abs(vv[:, None] - (rows + 0.5)) - 0.5, 0.0)
        cols = i[:, None]
        left = self._left[rows, cols]
        right = self._right[rows, cols]
        gx = np.minimum(np.maximum(np.abs(uu[:, None] - (left + 0.5)) - 0.5, 0.0),
                        np.maximum(np.abs(uu[:, None] - (right + 0.5)) - 0.5, 0.0))
        d = np.sqrt((gx * gx + gy * gy).min(axis=1)) * self.resolution_m
        out[idx] = np.minimum(d, self.reach_m)
        return out

    def blocked_squares_near(self, xy: np.ndarray, radius_m: float
                             ) -> tuple[np.ndarray, np.ndarray]:
        """The blocked cells within ``radius_m`` of each point, as square centres.

        Args:
            xy: ``(2, N)`` grid-frame points.
            radius_m: search radius (m); at most ``reach_m``.

        Returns:
            ``(rows, centres)``: ``(L,)`` the point of each found cell, ``(2, L)`` the
            cells' centres in the grid frame (m). Cells of the padding count.
        """
        u, v = self.cells_of(np.asarray(xy, dtype=float))
        h, w = self.blocked.shape
        k = int(math.ceil(radius_m / self.resolution_m)) + 1
        off = np.arange(-k, k + 1)
        i0 = np.clip(np.floor(u).astype(np.intp), -k - 1, w + k)
        j0 = np.clip(np.floor(v).astype(np.intp), -k - 1, h + k)
        i, j = np.broadcast_arrays(i0[:, None, None] + off[None, None, :],
                                   j0[:, None, None] + off[None, :, None])
        inside = (i >= 0) & (i < w) & (j >= 0) & (j < h)
        hit = np.where(inside, self.blocked[np.clip(j, 0, h - 1), np.clip(i, 0, w - 1)],
                       self.unknown_is_blocked)
        row, jj, ii = np.nonzero(hit)
        ci = i[row, jj, ii]
        cj = j[row, jj, ii]
        centres = np.stack([(ci - self.pad + 0.5) * self.resolution_m,
                            (cj - self.pad + 0.5) * self.resolution_m])
        return row, centres


@dataclass(frozen=True, eq=False)
class World:
    """A grid field placed in the world frame, and boxes: what the scene checks query.

    Attributes:
        grid_field: the grid's :class:`GridField`, or None (no map).
        grid_pose: ``(x, y, yaw)`` of the grid frame (the corner of cell (0, 0)) in the
            grasp's world frame.
        boxes: the boxes, in the grasp's world frame.
    """

    grid_field: GridField | None = None
    grid_pose: tuple = (0.0, 0.0, 0.0)
    boxes: Boxes = field(default_factory=Boxes)

    @property
    def empty(self) -> bool:
        """No grid and no box."""
        return self.grid_field is None and len(self.boxes) == 0

    def moved(self, grid_pose: tuple | None = None, boxes: Boxes | None = None) -> World:
        """The same field at another pose and/or with other boxes (no per-map work)."""
        return replace(self, grid_pose=self.grid_pose if grid_pose is None else tuple(
            float(v) for v in _finite(grid_pose, "grid pose (x, y, yaw)", 3)),
            boxes=self.boxes if boxes is None else boxes)

    def world_to_grid(self, xy: np.ndarray) -> np.ndarray:
        """Grid-frame coordinates ``(2, N)`` of world points ``(2, N)``."""
        x0, y0, yaw = self.grid_pose
        c, s = math.cos(yaw), math.sin(yaw)
        dx, dy = xy[0] - x0, xy[1] - y0
        return np.stack([c * dx + s * dy, -s * dx + c * dy])

    def grid_distance(self, xy: np.ndarray) -> np.ndarray:
        """Exact distance ``(N,)`` from world points ``(2, N)`` to blocked cells (capped)."""
        if self.grid_field is None:
            return np.full(np.asarray(xy).shape[1], np.inf)
        return self.grid_field.distance(self.world_to_grid(np.asarray(xy, dtype=float)))
