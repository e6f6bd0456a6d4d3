"""RViz marker specifications as plain dicts (no message imports).

:func:`marker_specs` describes the ``/propose_stance/markers`` array of one
request; the stance server copies each dict into a ``visualization_msgs/Marker``
(the integer ``type`` and ``action`` values are the message's constants).

Namespaces (toggle them in RViz's MarkerArray display):

- ``samples/<outcome>``: the sampled donut of base positions, one SPHERE_LIST
  per filter outcome, coloured by :data:`OUTCOME_COLOURS`;
- ``stances`` / ``stance_labels``: the ranked stances as ARROWs (best green)
  with ``#rank`` text labels;
- ``grasp``: the grasp's axes (x red, y green, z = approach axis blue);
- ``frustum``: the best stance's front-camera frustum as a LINE_LIST;
- ``robot``: the robot at the best stance, drawn from its primitive collision
  geometry (one CYLINDER or SPHERE per ``WholeBodyModel.primitives`` entry);
- ``footprints``: with a world, each ranked stance's base footprint as a closed
  LINE_STRIP on the floor, coloured by its clearance (red at 0, green at
  ``world.clearance_cap_m`` or more);
- ``obstacles``: with boxes, each box the stances were checked against, a CUBE.

The first marker is always a DELETEALL, so the markers of a previous request
are removed even when this one has fewer.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pinocchio as pin
from reachability_ros.core.geometry import matrix_to_quat, rot_z
from reachability_ros.core.outcomes import outcome_colour, OUTCOME_COLOURS
from reachability_ros.core.types import Grasp, ProposalResult

__all__ = ['MARKER_ACTIONS', 'MARKER_TYPES', 'OUTCOME_COLOURS', 'clearance_colour',
           'delete_all_marker', 'footprint_markers', 'frustum_marker', 'grasp_markers',
           'marker_specs', 'obstacle_markers', 'primitive_poses', 'robot_markers',
           'sample_markers', 'stance_markers', 'yaw_quaternion']

#: ``visualization_msgs/Marker`` type constants.
MARKER_TYPES = {'ARROW': 0, 'CUBE': 1, 'SPHERE': 2, 'CYLINDER': 3, 'LINE_STRIP': 4,
                'LINE_LIST': 5, 'CUBE_LIST': 6, 'SPHERE_LIST': 7, 'POINTS': 8,
                'TEXT_VIEW_FACING': 9}
#: ``visualization_msgs/Marker`` action constants.
MARKER_ACTIONS = {'ADD': 0, 'DELETE': 2, 'DELETEALL': 3}

BEST_COLOUR = (0.05, 0.95, 0.05, 1.0)
OTHER_COLOUR = (1.0, 0.85, 0.1, 0.8)
FRUSTUM_COLOUR = (0.0, 0.9, 0.9, 1.0)
ROBOT_COLOUR = (0.75, 0.75, 0.8, 0.6)
OBSTACLE_COLOUR = (0.95, 0.55, 0.15, 0.5)
FOOTPRINT_HEIGHT_M = 0.003
FOOTPRINT_SEGMENTS = 32
AXIS_COLOURS = ((1.0, 0.1, 0.1, 1.0), (0.1, 1.0, 0.1, 1.0), (0.1, 0.3, 1.0, 1.0))

SAMPLE_HEIGHT_M = 0.005
SAMPLE_DIAMETER_M = 0.02
ARROW_SIZE_M = (0.15, 0.02, 0.02)
LABEL_HEIGHT_M = 0.12
LABEL_SIZE_M = 0.06
AXIS_LENGTH_M = 0.08
LINE_WIDTH_M = 0.004


def yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """Return the quaternion (x, y, z, w) of a rotation by ``yaw`` rad about +z."""
    return tuple(float(v) for v in matrix_to_quat(rot_z(float(yaw))))


def _marker(ns: str, mid: int, kind: str, **kw: Any) -> dict:
    spec = {'ns': ns, 'id': int(mid), 'type': MARKER_TYPES[kind], 'action': MARKER_ACTIONS['ADD'],
            'position': (0.0, 0.0, 0.0), 'orientation': (0.0, 0.0, 0.0, 1.0),
            'scale': (1.0, 1.0, 1.0), 'color': (1.0, 1.0, 1.0, 1.0), 'points': [],
            'colors': [], 'text': ''}
    spec.update(kw)
    return spec


def delete_all_marker() -> dict:
    """Return the DELETEALL marker that starts every array."""
    spec = _marker('', 0, 'ARROW')
    spec['action'] = MARKER_ACTIONS['DELETEALL']
    return spec


def sample_markers(samples_q: np.ndarray | None, outcomes: Sequence[str] | None) -> list[dict]:
    """Return one SPHERE_LIST per outcome with the raw proposals' base positions.

    Args:
        samples_q: ``(M, nq)`` raw proposals (``ProposalResult.samples_q``).
        outcomes: ``(M,)`` outcome labels.

    Returns:
        Markers in namespace ``samples/<outcome>``, sorted by outcome name; rows
        with non-finite base positions are skipped.
    """
    if samples_q is None or outcomes is None or len(outcomes) == 0:
        return []
    q = np.asarray(samples_q, dtype=float).reshape(len(outcomes), -1)
    labels = np.asarray([str(o) for o in outcomes])
    finite = np.all(np.isfinite(q[:, :2]), axis=1)
    out = []
    for i, name in enumerate(sorted(set(labels.tolist()))):
        rows = q[(labels == name) & finite]
        if rows.shape[0] == 0:
            continue
        d = SAMPLE_DIAMETER_M
        out.append(_marker(f'samples/{name}', i, 'SPHERE_LIST', scale=(d, d, d),
                           color=outcome_colour(name),
                           points=[(float(x), float(y), SAMPLE_HEIGHT_M) for x, y in rows[:, :2]]))
    return out


def stance_markers(candidates: Sequence[Any]) -> list[dict]:
    """Return an ARROW per ranked stance (best green, others yellow) and a ``#rank`` label."""
    out = []
    for rank, c in enumerate(candidates, start=1):
        x, y, yaw = (float(v) for v in np.asarray(c.q, dtype=float)[:3])
        colour = BEST_COLOUR if rank == 1 else OTHER_COLOUR
        out.append(_marker('stances', rank, 'ARROW', position=(x, y, 0.01),
                           orientation=yaw_quaternion(yaw), scale=ARROW_SIZE_M,
                           color=colour))
        out.append(_marker('stance_labels', rank, 'TEXT_VIEW_FACING',
                           position=(x, y, LABEL_HEIGHT_M), scale=(0.0, 0.0, LABEL_SIZE_M),
                           color=(1.0, 1.0, 1.0, 1.0), text=f'#{rank}'))
    return out


def grasp_markers(grasp: Grasp | None) -> list[dict]:
    """Return three ARROWs (x, y, z axes of the grasp) given by start and end points.

    Returns an empty list when the grasp is missing or not finite.
    """
    if grasp is None:
        return []
    try:
        with np.errstate(invalid='ignore', divide='ignore'):
            T = grasp.matrix()
    except (TypeError, ValueError):
        return []
    if not np.all(np.isfinite(T)):
        return []
    origin = T[:3, 3]
    out = []
    for axis in range(3):
        tip = origin + AXIS_LENGTH_M * T[:3, axis]
        out.append(_marker('grasp', axis, 'ARROW', scale=(0.008, 0.016, 0.02),
                           color=AXIS_COLOURS[axis],
                           points=[tuple(float(v) for v in origin),
                                   tuple(float(v) for v in tip)]))
    return out


def frustum_marker(segments: np.ndarray | None) -> list[dict]:
    """Return a LINE_LIST with the camera frustum segments ``(K, 2, 3)`` (2K points)."""
    if segments is None:
        return []
    seg = np.asarray(segments, dtype=float)
    if seg.ndim != 3 or seg.shape[1:] != (2, 3) or not np.all(np.isfinite(seg)):
        return []
    pts = [tuple(float(v) for v in p) for p in seg.reshape(-1, 3)]
    return [_marker('frustum', 0, 'LINE_LIST', scale=(LINE_WIDTH_M, 0.0, 0.0),
                    color=FRUSTUM_COLOUR, points=pts)]


def primitive_poses(robot: Any, q: np.ndarray) -> list[tuple[Any, np.ndarray]]:
    """Place every collision primitive of the robot in the world at configuration ``q``.

    Uses Pinocchio's forward kinematics on the robot's (reduced) model with its
    own ``Data``, so it is safe to call while other threads use the robot.

    Args:
        robot: a ``WholeBodyModel`` (its ``model`` and ``primitives``).
        q: ``(nq,)`` whole-body configuration ``(base_x, base_y, base_yaw, arm...)``.

    Returns:
        ``(primitive, T_world_primitive)`` pairs, ``T`` of shape ``(4, 4)``; the
        primitive's axis (a cylinder's) is the local z of ``T``.
    """
    q = np.asarray(q, dtype=float).reshape(-1)
    data = robot.model.createData()
    pin.forwardKinematics(robot.model, data, q)
    return [(p, data.oMi[p.joint].homogeneous @ p.T_joint_prim) for p in robot.primitives]


def robot_markers(robot: Any, q: np.ndarray | None) -> list[dict]:
    """Draw the robot at ``q`` from its primitive collision geometry (namespace ``robot``).

    Args:
        robot: a ``WholeBodyModel``.
        q: ``(nq,)`` configuration (the best stance), or None (nothing drawn).

    Returns:
        One CYLINDER (diameter 2r, height 2 half_length, along its local z) or
        SPHERE (diameter 2r) per primitive, ids from 0 in ``robot.primitives`` order;
        empty when ``q`` is None or not finite.
    """
    if q is None or robot is None:
        return []
    q = np.asarray(q, dtype=float).reshape(-1)
    if not np.all(np.isfinite(q)):
        return []
    out = []
    for i, (prim, T) in enumerate(primitive_poses(robot, q)):
        d = 2.0 * float(prim.radius)
        if prim.kind == 'cylinder':
            kind, scale = 'CYLINDER', (d, d, 2.0 * float(prim.half_length))
        else:
            kind, scale = 'SPHERE', (d, d, d)
        out.append(_marker('robot', i, kind, position=tuple(float(v) for v in T[:3, 3]),
                           orientation=tuple(float(v) for v in matrix_to_quat(T[:3, :3])),
                           scale=scale, color=ROBOT_COLOUR))
    return out


def clearance_colour(clearance_m: float, cap_m: float) -> tuple[float, float, float, float]:
    """Red (0 m) through yellow to green (``cap_m`` or more), opaque."""
    t = min(max(float(clearance_m) / float(cap_m), 0.0), 1.0) if cap_m > 0 else 1.0
    return (float(min(1.0, 2.0 * (1.0 - t))), float(min(1.0, 2.0 * t)), 0.1, 1.0)


def footprint_markers(candidates: Sequence[Any], radius_m: float,
                      polygon: np.ndarray | None = None, cap_m: float = 0.2) -> list[dict]:
    """Return a closed LINE_STRIP per ranked stance: its footprint, coloured by clearance.

    Args:
        candidates: the ranked stances; those without ``clearance_m`` are skipped.
        radius_m: the footprint circle's radius (when ``polygon`` is empty).
        polygon: ``(E, 2)`` Nav2 footprint polygon in the base frame, or None.
        cap_m: the clearance drawn fully green.
    """
    poly = None if polygon is None or not len(polygon) else np.asarray(polygon, float)
    if poly is None:
        a = np.linspace(0.0, 2.0 * np.pi, FOOTPRINT_SEGMENTS, endpoint=False)
        poly = radius_m * np.stack([np.cos(a), np.sin(a)], axis=1)
    out = []
    for rank, c in enumerate(candidates, start=1):
        clearance = getattr(c, 'metrics', {}).get('clearance_m')
        if clearance is None or not np.isfinite(clearance):
            continue
        x, y, yaw = (float(v) for v in np.asarray(c.q, dtype=float)[:3])
        cs, sn = np.cos(yaw), np.sin(yaw)
        pts = [(x + cs * px - sn * py, y + sn * px + cs * py, FOOTPRINT_HEIGHT_M)
               for px, py in np.vstack([poly, poly[:1]])]
        out.append(_marker('footprints', rank, 'LINE_STRIP', scale=(LINE_WIDTH_M, 0.0, 0.0),
                           color=clearance_colour(clearance, cap_m),
                           points=[tuple(float(v) for v in p) for p in pts]))
    return out


def obstacle_markers(boxes: Any) -> list[dict]:
    """Return a CUBE per obstacle box (``core.world.Boxes``), ids in box order."""
    if boxes is None:
        return []
    out = []
    for i in range(len(boxes)):
        out.append(_marker('obstacles', i, 'CUBE',
                           position=tuple(float(v) for v in boxes.center[i]),
                           orientation=yaw_quaternion(float(boxes.yaw[i])),
                           scale=tuple(float(v) for v in boxes.size[i]),
                           color=OBSTACLE_COLOUR))
    return out


def marker_specs(result: ProposalResult | None, grasp: Grasp | None = None,
                 frustum: np.ndarray | None = None, robot: Any = None,
                 footprint: tuple | None = None, boxes: Any = None) -> list[dict]:
    """Return all markers of one request, DELETEALL first.

    Args:
        result: the proposal result, or None when the request never reached the core.
        grasp: the grasp (default ``result.grasp``); drawn when finite.
        frustum: ``(K, 2, 3)`` world segments of the best stance's camera frustum
            (``core.report.frustum_segments``), or None.
        robot: the ``WholeBodyModel`` to draw at the best stance, or None.
        footprint: ``(radius_m, polygon, clearance_cap_m)`` to draw the stances'
            footprints (with a world), or None.
        boxes: the obstacle boxes the stances were checked against, or None.

    Returns:
        Marker dicts with keys ``ns, id, type, action, position, orientation,
        scale, color, points, colors, text``; ``(ns, id)`` pairs are unique.
    """
    out = [delete_all_marker()]
    if grasp is None and result is not None:
        grasp = result.grasp
    if result is not None:
        out += sample_markers(result.samples_q, result.samples_outcome)
        out += stance_markers(result.candidates)
    out += grasp_markers(grasp)
    if result is not None and result.candidates:
        out += frustum_marker(frustum)
        out += robot_markers(robot, result.candidates[0].q)
        if footprint is not None:
            out += footprint_markers(result.candidates, *footprint)
    out += obstacle_markers(boxes)
    return out
