"""Plain-data views of a proposal result: JSON reports and the camera frustum lines.

``result_to_dict`` is THE output schema shared by ``propose --json``, each line of
``propose-batch`` and the ``/propose_stance/report`` topic::

    {"ok": bool, "reason": str, "sampler": str,
     "request": {"position": [x, y, z], "orientation": [qx, qy, qz, qw], "frame_id": str},
     "candidates": [{"rank": 1, "base": [x, y, yaw], "joints": {name: rad, ...},
                     "score": s, "terms": {...}, "position_error_m": e,
                     "orientation_error_rad": e, "visible": true, "robustness": r,
                     "visibility_margin_m": m, "manipulability": m, "limit_margin": m, ...,
                     "grasp_index": 0,
                     "tool_pose": {"position": [x, y, z], "orientation": [qx, qy, qz, qw]}}],
     "funnel": {"proposed": n, "unreachable": n, ...}, "timing_ms": {...}}

Candidates are best first; ``base`` is the pose of ``base_footprint`` in the
grasp's world frame. ``grasp_index`` says which grasp of the request the stance
serves (0 the main grasp, i its ``alternatives[i - 1]``); ``tool_pose`` is the pose
of the tool frame it reaches: the grasp, or the grasp turned about its approach
axis when the grasp is ``symmetric`` or has a ``free_roll``. A request with
freedom or alternatives adds them to ``request``: ``"symmetric": true``,
``"free_roll": true`` and ``"alternatives": [{"position", "orientation",
"symmetric", "free_roll"}, ...]`` (absent otherwise). With a world
(``core/world.py``), and only then, the funnel also has ``fallback_proposed``,
``base_collision``, ``arm_collision`` and ``scene_occluded``, and each candidate
``clearance_m`` (and the term ``clearance``). Adding keys is allowed;
renaming or removing them is not.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .robot import WholeBodyModel
from .types import Grasp, ProposalResult


def _num(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _pose(g: Grasp) -> dict:
    """``{"position": [x, y, z], "orientation": [qx, qy, qz, qw]}`` of a pose."""
    return {"position": [float(v) for v in g.position],
            "orientation": [float(v) for v in g.orientation]}


def _freedom(g: Grasp) -> dict:
    """The freedom flags of a grasp that are set (none for a fixed grasp)."""
    return {k: True for k in ("symmetric", "free_roll") if getattr(g, k)}


def result_to_dict(result: ProposalResult) -> dict:
    """JSON-ready dict of a :class:`ProposalResult` (schema in the module docstring)."""
    arm_names = result.joint_names[3:]
    cands = []
    for rank, c in enumerate(result.candidates, start=1):
        d = {"rank": rank,
             "base": [float(c.q[0]), float(c.q[1]), float(c.q[2])],
             "joints": {n: float(v) for n, v in zip(arm_names, c.q[3:])},
             "score": float(c.score),
             "terms": {k: _num(v) for k, v in c.terms.items()}}
        d.update({k: _num(v) for k, v in c.metrics.items()})
        d["grasp_index"] = int(c.grasp_index)
        d["tool_pose"] = None if c.tool_pose is None else _pose(c.tool_pose)
        cands.append(d)
    req = None
    if result.grasp is not None:
        req = {**_pose(result.grasp), "frame_id": result.grasp.frame_id}
        req.update(_freedom(result.grasp))
        if result.alternatives:
            req["alternatives"] = [{**_pose(g), "symmetric": bool(g.symmetric),
                                    "free_roll": bool(g.free_roll)}
                                   for g in result.alternatives]
    return {"ok": bool(result.ok), "reason": result.reason, "sampler": result.sampler,
            "request": req, "candidates": cands,
            "funnel": {k: int(v) for k, v in result.funnel.items()},
            "timing_ms": {k: round(float(v), 4) for k, v in result.timing_ms.items()}}


def frustum_segments(robot: WholeBodyModel, q: np.ndarray, depth_m: float = 0.5) -> np.ndarray:
    """Line segments ``(8, 2, 3)`` of the front camera frustum in the world.

    Four rays from the optical centre to the corners at ``depth_m`` along the
    optical axis, and the four edges of that rectangle.
    """
    cam = robot.config.camera
    T = robot.fk(np.asarray(q, dtype=float)[None], [cam.frame])[cam.frame][0]
    tl, tr, tu, td = cam.frustum_tangents()
    corners_cam = depth_m * np.array([[-tl, -tu, 1.0], [tr, -tu, 1.0], [tr, td, 1.0],
                                      [-tl, td, 1.0]])
    corners = corners_cam @ T[:3, :3].T + T[:3, 3]
    origin = T[:3, 3]
    segs = [(origin, c) for c in corners]
    segs += [(corners[i], corners[(i + 1) % 4]) for i in range(4)]
    return np.array(segs)
