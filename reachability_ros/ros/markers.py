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
- ``frustum``: the best stance's front-camera frustum as a LINE_LIST.

The first marker is always a DELETEALL, so the markers of a previous request
are removed even when this one has fewer.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from reachability_ros.core.outcomes import OUTCOME_COLOURS, outcome_colour  # noqa: F401
from reachability_ros.core.types import Grasp, ProposalResult

from .conversions import quaternion_from_yaw

#: ``visualization_msgs/Marker`` type constants.
MARKER_TYPES = {"ARROW": 0, "CUBE": 1, "SPHERE": 2, "CYLINDER": 3, "LINE_STRIP": 4,
                "LINE_LIST": 5, "CUBE_LIST": 6, "SPHERE_LIST": 7, "POINTS": 8,
                "TEXT_VIEW_FACING": 9}
#: ``visualization_msgs/Marker`` action constants.
MARKER_ACTIONS = {"ADD": 0, "DELETE": 2, "DELETEALL": 3}

BEST_COLOUR = (0.05, 0.95, 0.05, 1.0)
OTHER_COLOUR = (1.0, 0.85, 0.1, 0.8)
FRUSTUM_COLOUR = (0.0, 0.9, 0.9, 1.0)
AXIS_COLOURS = ((1.0, 0.1, 0.1, 1.0), (0.1, 1.0, 0.1, 1.0), (0.1, 0.3, 1.0, 1.0))

SAMPLE_HEIGHT_M = 0.005
SAMPLE_DIAMETER_M = 0.02
ARROW_SIZE_M = (0.15, 0.02, 0.02)
LABEL_HEIGHT_M = 0.12
LABEL_SIZE_M = 0.06
AXIS_LENGTH_M = 0.08
LINE_WIDTH_M = 0.004


def _marker(ns: str, mid: int, kind: str, **kw: Any) -> dict:
    spec = {"ns": ns, "id": int(mid), "type": MARKER_TYPES[kind], "action": MARKER_ACTIONS["ADD"],
            "position": (0.0, 0.0, 0.0), "orientation": (0.0, 0.0, 0.0, 1.0),
            "scale": (1.0, 1.0, 1.0), "color": (1.0, 1.0, 1.0, 1.0), "points": [],
            "colors": [], "text": ""}
    spec.update(kw)
    return spec


def delete_all_marker() -> dict:
    """The DELETEALL marker that starts every array."""
    spec = _marker("", 0, "ARROW")
    spec["action"] = MARKER_ACTIONS["DELETEALL"]
    return spec


def sample_markers(samples_q: np.ndarray | None, outcomes: Sequence[str] | None) -> list[dict]:
    """One SPHERE_LIST per outcome with the raw proposals' base positions.

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
        out.append(_marker(f"samples/{name}", i, "SPHERE_LIST", scale=(d, d, d),
                           color=outcome_colour(name),
                           points=[(float(x), float(y), SAMPLE_HEIGHT_M) for x, y in rows[:, :2]]))
    return out


def stance_markers(candidates: Sequence[Any]) -> list[dict]:
    """ARROW per ranked stance (best green, others yellow) and a ``#rank`` TEXT label."""
    out = []
    for rank, c in enumerate(candidates, start=1):
        x, y, yaw = (float(v) for v in np.asarray(c.q, dtype=float)[:3])
        colour = BEST_COLOUR if rank == 1 else OTHER_COLOUR
        out.append(_marker("stances", rank, "ARROW", position=(x, y, 0.01),
                           orientation=quaternion_from_yaw(yaw), scale=ARROW_SIZE_M,
                           color=colour))
        out.append(_marker("stance_labels", rank, "TEXT_VIEW_FACING",
                           position=(x, y, LABEL_HEIGHT_M), scale=(0.0, 0.0, LABEL_SIZE_M),
                           color=(1.0, 1.0, 1.0, 1.0), text=f"#{rank}"))
    return out


def grasp_markers(grasp: Grasp | None) -> list[dict]:
    """Three ARROWs (x, y, z axes of the grasp) given by start and end points.

    Returns an empty list when the grasp is missing or not finite.
    """
    if grasp is None:
        return []
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            T = grasp.matrix()
    except (TypeError, ValueError):
        return []
    if not np.all(np.isfinite(T)):
        return []
    origin = T[:3, 3]
    out = []
    for axis in range(3):
        tip = origin + AXIS_LENGTH_M * T[:3, axis]
        out.append(_marker("grasp", axis, "ARROW", scale=(0.008, 0.016, 0.02),
                           color=AXIS_COLOURS[axis],
                           points=[tuple(float(v) for v in origin),
                                   tuple(float(v) for v in tip)]))
    return out


def frustum_marker(segments: np.ndarray | None) -> list[dict]:
    """A LINE_LIST with the camera frustum segments ``(K, 2, 3)`` (2K points)."""
    if segments is None:
        return []
    seg = np.asarray(segments, dtype=float)
    if seg.ndim != 3 or seg.shape[1:] != (2, 3) or not np.all(np.isfinite(seg)):
        return []
    pts = [tuple(float(v) for v in p) for p in seg.reshape(-1, 3)]
    return [_marker("frustum", 0, "LINE_LIST", scale=(LINE_WIDTH_M, 0.0, 0.0),
                    color=FRUSTUM_COLOUR, points=pts)]


def marker_specs(result: ProposalResult | None, grasp: Grasp | None = None,
                 frustum: np.ndarray | None = None) -> list[dict]:
    """All markers of one request, DELETEALL first.

    Args:
        result: the proposal result, or None when the request never reached the core.
        grasp: the grasp (default ``result.grasp``); drawn when finite.
        frustum: ``(K, 2, 3)`` world segments of the best stance's camera frustum
            (``core.report.frustum_segments``), or None.

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
    return out


def yaw_of_arrow(spec: dict) -> float:
    """Heading (rad) of an ARROW spec's orientation (for tests and debugging)."""
    x, y, z, w = spec["orientation"]
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
