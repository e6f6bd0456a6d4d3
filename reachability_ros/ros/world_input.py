"""The stance server's world, as plain data: the map or costmap, obstacle boxes, their checks.

Nothing here imports rclpy or a message package: the node reads each
``nav_msgs/OccupancyGrid`` and ``visualization_msgs/MarkerArray`` into plain values
once, at the boundary (:mod:`.world_subscriber`), and calls what is below.

* :data:`WORLD_PARAMETERS` / :func:`world_parameter_specs`: the node-level parameters
  ``map_topic`` (default Nav2's global costmap, ``/global_costmap/costmap``; empty: no
  map), ``map_required``, ``map_max_age_s``, ``obstacles_file`` and ``obstacles_topic``
  (read-only: set them at start-up). How the cells and boxes count (thresholds,
  paddings, the footprint) are the ``world.*`` parameters of the config.
* :func:`grid_from_fields`: an ``OccupancyGrid`` message's fields -> a checked
  :class:`~reachability_ros.core.world.OccupancyGrid` (its origin must be planar).
* :class:`MarkerBoxes`: the CUBE markers of the obstacle topic kept by ``(ns, id)``
  (ADD/MODIFY, DELETE, DELETEALL), each as an upright box (a tilted cube becomes the
  upright box around it).
* :class:`WorldState`: the latest map and boxes. A new map's distance field is built
  on a worker thread (:class:`GridBuilder`), never in a request; until it is ready the
  requests use the previous map with its own field, origin, frame and stamp.
* :func:`world_for_request`: one request's world in the target frame, from a snapshot
  of the state and a TF lookup: or the failure reason (no map yet when one is
  required, a map older than ``map_max_age_s``, a frame TF cannot place, a transform
  that is not planar), and the report's notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
import threading
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from reachability_ros.core.errors import ConfigError
from reachability_ros.core.geometry import quat_to_matrix
from reachability_ros.core.world import Boxes, OccupancyGrid, World

from .conversions import normalize_frame_id
# WORLD_PARAMETERS: the names of the parameters declared here (re-exported)
from .parameters import ParameterSpec, WORLD_PARAMETERS  # noqa: F401
#: Nav2's global costmap (ros2-nav-reference.md: the planner server's costmap node).
DEFAULT_MAP_TOPIC = '/global_costmap/costmap'
#: A transform counts as planar when its roll and pitch are below this (rad).
PLANAR_TOL_RAD = 1e-3
#: ``visualization_msgs/Marker`` constants used here.
CUBE, ADD, DELETE, DELETEALL = 1, 0, 2, 3


def world_parameter_specs(map_topic: str = DEFAULT_MAP_TOPIC) -> list[ParameterSpec]:
    """Return the declarations of the world-input parameters (read-only)."""
    return [
        ParameterSpec('map_topic', 'string', map_topic,
                      'nav_msgs/OccupancyGrid topic the base footprint must clear (a Nav2 map '
                      'or costmap, subscribed keep last 1, reliable, transient local as Nav2 '
                      'publishes them); empty = no map. Cells >= world.cost_threshold block '
                      'the base; the map is placed in target_frame with TF', None, True),
        ParameterSpec('map_required', 'bool', False,
                      'answer a request only with a map: before the first one arrives, or '
                      'when it is older than map_max_age_s, the request fails with the reason '
                      '(false: without a map the stances ignore it, and the report says so)',
                      None, True),
        ParameterSpec('map_max_age_s', 'double', 0.0,
                      'a map whose header stamp is older than this fails the request (s); 0 = '
                      'any age (a map_server map is published once) [range 0, 1e6]',
                      (0.0, 1e6), True),
        ParameterSpec('obstacles_file', 'string', '',
                      'YAML file of boxes, obstacles: [{name, center: [x, y, z], size: [sx, '
                      'sy, sz], yaw}] with an optional frame_id (default target_frame); '
                      'relative paths resolve against the working directory, then the '
                      'package share; empty = none', None, True),
        ParameterSpec('obstacles_topic', 'string', '',
                      'visualization_msgs/MarkerArray topic of CUBE markers, each an obstacle '
                      'box (pose and scale; ADD, DELETE and DELETEALL honoured); empty = none',
                      None, True),
    ]


# ---------------------------------------------------------------- conversions
def planar_pose(translation: Sequence[float], quaternion: Sequence[float],
                what: str) -> tuple[float, float, float, float]:
    """Return ``(x, y, z, yaw)`` of a pose whose rotation is about z only.

    Raises:
        ConfigError: non-finite numbers, a zero quaternion, or a roll or pitch above
            :data:`PLANAR_TOL_RAD`.
    """
    t = [float(v) for v in translation]
    q = [float(v) for v in quaternion]
    if not all(math.isfinite(v) for v in t + q):
        raise ConfigError(f'{what} has non-finite values')
    norm = math.sqrt(sum(v * v for v in q))
    if norm < 1e-9:
        raise ConfigError(f'{what} has a zero quaternion')
    R = quat_to_matrix(np.array(q) / norm)
    tilt = math.acos(max(-1.0, min(1.0, float(R[2, 2]))))
    if tilt > PLANAR_TOL_RAD:
        raise ConfigError(f'{what} is tilted by {math.degrees(tilt):.2f} deg: a map and '
                          'boxes need frames that differ by a rotation about z only')
    return t[0], t[1], t[2], math.atan2(R[1, 0], R[0, 0])


def grid_from_fields(width: int, height: int, resolution: float,
                     origin_position: Sequence[float], origin_orientation: Sequence[float],
                     data: Any, frame_id: str, stamp_s: float) -> OccupancyGrid:
    """Check an ``OccupancyGrid`` message's fields and return the core's grid.

    Args:
        width, height: cells (``info.width``, ``info.height``).
        resolution: m per cell.
        origin_position, origin_orientation: ``info.origin`` (x, y, z), (x, y, z, w).
        data: ``width * height`` int8 values, row-major from cell (0, 0), x fastest.
        frame_id: ``header.frame_id``.
        stamp_s: ``header.stamp`` in seconds.

    Raises:
        ConfigError: the data does not have ``width * height`` values, values outside
            -1 ... 100, a bad resolution, a tilted origin.
    """
    width, height = int(width), int(height)
    values = np.asarray(data, dtype=np.int8).reshape(-1)
    if width < 1 or height < 1 or values.size != width * height:
        raise ConfigError(f'map has {values.size} values for {width} x {height} cells')
    x, y, _, yaw = planar_pose(origin_position, origin_orientation, 'the map origin')
    return OccupancyGrid(values.reshape(height, width), float(resolution), (x, y, yaw),
                         normalize_frame_id(frame_id), float(stamp_s))


def marker_box(position: Sequence[float], orientation: Sequence[float],
               scale: Sequence[float], name: str) -> dict:
    """Return the upright box record around a CUBE marker (exact when it turns about z only).

    Raises:
        ConfigError: non-finite values, a zero quaternion, a scale that is not positive.
    """
    p = [float(v) for v in position]
    s = [float(v) for v in scale]
    q = [float(v) for v in orientation]
    if not all(math.isfinite(v) for v in p + s + q):
        raise ConfigError(f'marker {name}: non-finite values')
    if min(s) <= 0.0:
        raise ConfigError(f'marker {name}: scale must be positive, got {s}')
    norm = math.sqrt(sum(v * v for v in q))
    if norm < 1e-9:
        raise ConfigError(f'marker {name}: zero quaternion')
    R = quat_to_matrix(np.array(q) / norm)
    yaw = math.atan2(R[1, 0], R[0, 0])
    c, sn = math.cos(yaw), math.sin(yaw)
    Rz = np.array([[c, -sn, 0.0], [sn, c, 0.0], [0.0, 0.0, 1.0]])
    # the half extents of the rotated cube along the upright frame's axes
    half = np.abs(Rz.T @ R) @ (0.5 * np.array(s))
    return {'name': name, 'center': p, 'size': [float(v) for v in 2.0 * half], 'yaw': yaw}


@dataclass
class MarkerBoxes:
    """Obstacle boxes from CUBE markers, kept by ``(ns, id)`` until deleted.

    Attributes:
        boxes: ``(ns, id) -> (frame_id, box record)``.
        ignored: markers skipped (not CUBE, or invalid), with the reason, latest last.
    """

    boxes: dict = field(default_factory=dict)
    ignored: list = field(default_factory=list)

    def apply(self, markers: Sequence[Mapping[str, Any]]) -> None:
        """Apply one MarkerArray's markers, in order.

        Args:
            markers: plain markers: ``ns, id, type, action, frame_id, position,
                orientation, scale``.
        """
        for m in markers:
            key = (str(m['ns']), int(m['id']))
            action = int(m['action'])
            if action == DELETEALL:
                self.boxes.clear()
            elif action == DELETE:
                self.boxes.pop(key, None)
            elif int(m['type']) != CUBE:
                self._ignore(f'{key[0]}/{key[1]}: type {int(m["type"])} is not a CUBE')
            else:
                try:
                    rec = marker_box(m['position'], m['orientation'], m['scale'],
                                     f'{key[0]}/{key[1]}')
                except ConfigError as exc:
                    self._ignore(str(exc))
                    continue
                self.boxes[key] = (normalize_frame_id(m['frame_id']), rec)

    def _ignore(self, reason: str) -> None:
        self.ignored = (self.ignored + [reason])[-10:]

    def by_frame(self) -> dict[str, Boxes]:
        """Return the boxes grouped by frame."""
        groups: dict[str, list] = {}
        for frame, rec in self.boxes.values():
            groups.setdefault(frame, []).append(rec)
        return {f: Boxes.from_records(recs, f) for f, recs in groups.items()}


# ---------------------------------------------------------------- state
class GridBuilder:
    """Build each new map's distance field on one worker thread (latest map wins).

    Args:
        build: ``grid -> prepared`` (e.g. ``lambda g: scene.prepare(g)``).
        on_ready: called with ``(grid, prepared, build)`` from the worker when a build is
            done (``build``: the function that made it).
        on_error: called with ``(grid, exception)`` when a build fails.
    """

    def __init__(self, build: Callable[[OccupancyGrid], Any],
                 on_ready: Callable[[OccupancyGrid, Any, Callable], None],
                 on_error: Callable[[OccupancyGrid, BaseException], None]) -> None:
        self._build = build
        self._on_ready, self._on_error = on_ready, on_error
        self._cond = threading.Condition()
        self._pending: OccupancyGrid | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name='world_grid', daemon=True)
        self._thread.start()

    def submit(self, grid: OccupancyGrid) -> None:
        """Queue a grid (replacing one not yet started)."""
        with self._cond:
            self._pending = grid
            self._cond.notify()

    def set_build(self, build: Callable[[OccupancyGrid], Any]) -> None:
        """Use another build function from the next grid on."""
        with self._cond:
            self._build = build

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                grid, self._pending, build = self._pending, None, self._build
            try:
                prepared = build(grid)
            except Exception as exc:  # noqa: BLE001 - reported, the worker goes on
                self._on_error(grid, exc)
                continue
            self._on_ready(grid, prepared, build)

    def close(self, timeout_s: float = 0.2) -> bool:
        """Stop the worker; return False if it is still busy after ``timeout_s``."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


@dataclass(frozen=True)
class WorldSnapshot:
    """What one request sees of the world inputs.

    Attributes:
        grid: the map of ``field_world`` (its values, origin, frame, stamp); without a
            prepared map, the latest map received, or None.
        field_world: the prepared :class:`World` of ``grid`` (grid pose = its own
            origin), or None while the first map (or the map after a configuration
            change) is being built.
        received_s: when the latest map arrived (node clock, s), or None.
        boxes: boxes by frame (the file's and the markers').
        map_error: why the latest map was refused, or "".
        ignored_markers: why the latest markers that are not boxes were skipped.
    """

    grid: OccupancyGrid | None
    field_world: World | None
    received_s: float | None
    boxes: dict
    map_error: str = ''
    ignored_markers: tuple = ()


class WorldState:
    """The latest map and boxes, shared between the subscriptions and the requests.

    Args:
        prepare: ``grid -> World`` (the proposer's ``scene.prepare``).
        file_boxes: the obstacle file's boxes, or None.
    """

    def __init__(self, prepare: Callable[[OccupancyGrid], World],
                 file_boxes: Boxes | None = None) -> None:
        self._lock = threading.Lock()
        self._grid: OccupancyGrid | None = None  # the latest map received
        self._world: World | None = None  # the latest prepared field ...
        self._field_grid: OccupancyGrid | None = None  # ... and the map it was built from
        self._received: float | None = None  # when the latest map arrived
        self._received_field: float | None = None  # when the prepared one arrived
        self._arrivals: dict[OccupancyGrid, float] = {}  # maps not yet prepared, in order
        self._error = ''
        self._file_boxes = file_boxes
        self._prepare = prepare
        self.markers = MarkerBoxes()
        self._builder = GridBuilder(prepare, self._ready, self._failed)

    def set_grid(self, grid: OccupancyGrid, received_s: float) -> None:
        """Keep a new map and build its field off the request path."""
        with self._lock:
            self._grid, self._received, self._error = grid, received_s, ''
            self._arrivals[grid] = received_s
        self._builder.submit(grid)

    def refuse_grid(self, reason: str) -> None:
        """Record why a map that arrived cannot be used (requests that need one say it)."""
        with self._lock:
            self._error = reason

    def set_prepare(self, prepare: Callable[[OccupancyGrid], World]) -> None:
        """Rebuild the latest map's field with a new proposer's checker (config change)."""
        with self._lock:
            grid, self._prepare = self._grid, prepare
            self._world = self._field_grid = None
            if grid is not None:
                self._arrivals[grid] = self._received
        self._builder.set_build(prepare)
        if grid is not None:
            self._builder.submit(grid)

    def set_markers(self, markers: Sequence[Mapping[str, Any]]) -> None:
        """Apply a MarkerArray's markers."""
        with self._lock:
            self.markers.apply(markers)

    def _ready(self, grid: OccupancyGrid, world: World, build: Callable) -> None:
        # The worker builds in arrival order, so a build made with the current prepare
        # function is the newest field, even when a newer map is already waiting: taking
        # it keeps maps that arrive faster than they are built from starving the requests.
        with self._lock:
            received = self._forget_up_to(grid)
            if build is self._prepare:  # not a build of a replaced configuration
                self._world, self._field_grid = world, grid
                self._received_field = received if received is not None else self._received

    def _forget_up_to(self, grid: OccupancyGrid) -> float | None:
        """Drop the arrival of ``grid`` and of the maps before it; return its time."""
        received = None
        while grid in self._arrivals:
            received = self._arrivals.pop(next(iter(self._arrivals)))
        return received

    def _failed(self, grid: OccupancyGrid, exc: BaseException) -> None:
        with self._lock:
            self._forget_up_to(grid)
            if grid is self._grid:
                self._error = ' '.join(f'{type(exc).__name__}: {exc}'.split())

    def snapshot(self) -> WorldSnapshot:
        """Return the current state (immutable pieces only)."""
        with self._lock:
            boxes = dict(self.markers.by_frame()) if self.markers.boxes else {}
            if self._file_boxes is not None and len(self._file_boxes):
                frame = self._file_boxes.frame_id
                boxes[frame] = (boxes[frame] + self._file_boxes) if frame in boxes else \
                    self._file_boxes
            grid = self._field_grid if self._world is not None else self._grid
            received = self._received if grid is self._grid else self._received_field
            return WorldSnapshot(grid, self._world, received, boxes, self._error,
                                 tuple(self.markers.ignored))

    def close(self, timeout_s: float = 0.2) -> bool:
        """Stop the grid worker."""
        return self._builder.close(timeout_s)


# ---------------------------------------------------------------- one request
@dataclass(frozen=True)
class WorldAnswer:
    """One request's world: the world (None: none), the failure reason ("" = none), notes."""

    world: World | None
    failure: str
    notes: tuple


def world_for_request(snap: WorldSnapshot, target_frame: str, now_s: float, *,
                      map_topic: str, map_required: bool, max_age_s: float,
                      lookup: Callable[[str], tuple[float, float, float, float]]
                      ) -> WorldAnswer:
    """Place the latest map and boxes in the target frame for one request.

    Args:
        snap: the state's snapshot.
        target_frame: the response's frame (the grasp's, after TF).
        now_s: the node's clock (s), for the map's age.
        map_topic: the subscribed topic ("" = no map), for the messages.
        map_required: fail without a usable map.
        max_age_s: fail with a map older than this (0: any age).
        lookup: ``frame -> (x, y, z, yaw)`` of that frame in ``target_frame`` (TF);
            raises when it cannot.

    Returns:
        A :class:`WorldAnswer`; its ``failure`` starts with ``"no map"``, ``"map"`` or
        ``"obstacles"`` and says what to do.
    """
    notes: list[str] = []
    world: World | None = None
    if map_topic:
        grid = snap.grid
        if grid is None or snap.field_world is None:
            why = (f'the map on {map_topic} was refused: {snap.map_error}' if snap.map_error
                   else f'no map received yet on {map_topic}' if grid is None
                   else f'the map on {map_topic} is still being prepared')
            if map_required:
                return WorldAnswer(None, f'no map: {why} (map_required is true)', ())
            notes.append(f'{why}: the stances ignore the map')
        else:
            stamp = grid.stamp_s if grid.stamp_s > 0 else (snap.received_s or now_s)
            age = now_s - stamp
            if max_age_s > 0 and age > max_age_s:
                reason = (f'map too old: the map on {map_topic} is {age:.1f} s old '
                          f'(map_max_age_s {max_age_s:g})')
                if map_required:
                    return WorldAnswer(None, reason, ())
                notes.append(f'{reason}: the stances ignore the map')
            else:
                frame = grid.frame_id or target_frame
                try:
                    pose = _placed(grid.origin, frame, target_frame, lookup)
                except Exception as exc:  # noqa: BLE001 - TF or a tilted frame: say which
                    return WorldAnswer(None, f"map: cannot place the map's frame '{frame}' in "
                                       f"'{target_frame}': "
                                       f"{' '.join(f'{type(exc).__name__}: {exc}'.split())}",
                                       ())
                world = snap.field_world.moved(grid_pose=pose)
                h, w = grid.shape
                notes.append(f'map: {w} x {h} cells of {grid.resolution_m:g} m from '
                             f"{map_topic} in '{frame}', {max(age, 0.0):.1f} s old")
    boxes = Boxes()
    for frame, group in snap.boxes.items():
        frame = frame or target_frame
        try:
            x, y, z, yaw = (0.0, 0.0, 0.0, 0.0) if frame == target_frame else lookup(frame)
        except Exception as exc:  # noqa: BLE001
            return WorldAnswer(None, f"obstacles: cannot place the boxes of frame '{frame}' "
                               f"in '{target_frame}': "
                               f"{' '.join(f'{type(exc).__name__}: {exc}'.split())}", ())
        moved = group.transformed(x, y, yaw, target_frame)
        if z:
            moved = Boxes(moved.names, moved.center + [0.0, 0.0, z], moved.size, moved.yaw,
                          target_frame)
        boxes = moved if not len(boxes) else boxes + moved
    if len(boxes):
        notes.append(f'obstacles: {len(boxes)} boxes')
        world = world.moved(boxes=boxes) if world is not None else World(boxes=boxes)
    if snap.ignored_markers:
        notes.append(f'obstacle markers skipped: {"; ".join(snap.ignored_markers[-3:])}')
    return WorldAnswer(world, '', tuple(notes))


def _placed(origin: tuple, frame: str, target: str,
            lookup: Callable[[str], tuple[float, float, float, float]]) -> tuple:
    """Express the grid origin ``(x, y, yaw)`` in ``frame`` in ``target``."""
    ox, oy, oyaw = origin
    if frame == target:
        return (ox, oy, oyaw)
    x, y, _, yaw = lookup(frame)
    c, s = math.cos(yaw), math.sin(yaw)
    return (x + c * ox - s * oy, y + s * ox + c * oy, yaw + oyaw)
