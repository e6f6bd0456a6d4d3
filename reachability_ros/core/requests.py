"""Checks of a request's grasps: finite numbers, unit quaternions, sane heights, and poses.

:func:`validate_grasp` checks one grasp and returns its pose; :func:`validate_grasps`
does the same for a grasp set at once; :func:`subject_of` says, in a failure reason, what
the proposals were drawn for.
"""

from __future__ import annotations

import math

import numpy as np

from .config import ProposalConfig
from .errors import InvalidRequest
from .geometry import quat_to_matrix
from .types import Grasp

#: A grasp farther than this from the world origin (x or y) is refused (m).
MAX_ABS_COORDINATE_M = 1.0e6


def validate_grasp(grasp: Grasp, cfg: ProposalConfig) -> np.ndarray:
    """Check a grasp request and return ``T_world_grasp`` (4, 4).

    Raises:
        InvalidRequest: non-finite or wrongly sized values, a quaternion whose
            norm is off by more than ``cfg.quaternion_tolerance``, a height
            outside ``[cfg.min_height_m, cfg.max_height_m]`` or coordinates
            beyond 1,000 km.
    """
    try:
        p = np.asarray(grasp.position, dtype=float).reshape(-1)
        q = np.asarray(grasp.orientation, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"grasp position/orientation must be numbers: {exc}") from None
    if p.shape != (3,):
        raise InvalidRequest(f"grasp position must have 3 numbers, got {p.size}")
    if q.shape != (4,):
        raise InvalidRequest(f"grasp orientation must be a quaternion (x, y, z, w), got {q.size}"
                             " numbers")
    if not np.all(np.isfinite(p)):
        raise InvalidRequest(f"grasp position has non-finite values: {p.tolist()}")
    if not np.all(np.isfinite(q)):
        raise InvalidRequest(f"grasp orientation has non-finite values: {q.tolist()}")
    norm = math.hypot(*q.tolist())  # no overflow (a 1e308 quaternion has norm 2e308)
    if abs(norm - 1.0) > cfg.quaternion_tolerance:
        raise InvalidRequest(
            f"grasp orientation must be a unit quaternion (x, y, z, w); its norm is {norm:.6g} "
            f"(tolerance {cfg.quaternion_tolerance}). Normalize it (a zero quaternion has no "
            "orientation)")
    if np.any(np.abs(p[:2]) > MAX_ABS_COORDINATE_M):
        raise InvalidRequest(f"grasp position {p.tolist()} is more than 1,000 km from the origin")
    if not cfg.min_height_m <= p[2] <= cfg.max_height_m:
        raise InvalidRequest(
            f"grasp height z = {p[2]:.4g} m is outside [{cfg.min_height_m}, {cfg.max_height_m}] m "
            "above the floor of the target frame (is the grasp in the right frame?)")
    T = np.empty((4, 4))
    T[:3, :3] = quat_to_matrix(q)
    T[:3, 3] = p
    T[3] = (0.0, 0.0, 0.0, 1.0)
    return T


def validate_grasps(grasps: tuple, cfg: ProposalConfig) -> np.ndarray | None:
    """``T_world_grasp`` ``(G, 4, 4)`` of grasps that :func:`validate_grasp` accepts, else None.

    The same checks, vectorized (a set of 1,000 grasps); None when any grasp fails one
    (the caller then asks :func:`validate_grasp` which and why).
    """
    try:
        p = np.array([g.position for g in grasps], dtype=float)
        q = np.array([g.orientation for g in grasps], dtype=float)
    except (TypeError, ValueError):
        return None
    if p.shape != (len(grasps), 3) or q.shape != (len(grasps), 4):
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        norm = np.array([math.hypot(*row) for row in q.tolist()])
        good = (np.isfinite(p).all(axis=1) & np.isfinite(q).all(axis=1)
                & (np.abs(norm - 1.0) <= cfg.quaternion_tolerance)
                & (np.abs(p[:, :2]) <= MAX_ABS_COORDINATE_M).all(axis=1)
                & (cfg.min_height_m <= p[:, 2]) & (p[:, 2] <= cfg.max_height_m))
    if not good.all():
        return None
    T = np.zeros((len(grasps), 4, 4))
    T[:, :3, :3] = quat_to_matrix(q)
    T[:, :3, 3] = p
    T[:, 3, 3] = 1.0
    return T


def subject_of(grasps: tuple) -> str:
    """What a failure reason says the proposals were for, beyond one fixed grasp."""
    n_free = sum(bool(g.free_roll) for g in grasps)
    n_sym = sum(bool(g.symmetric and not g.free_roll) for g in grasps)
    if len(grasps) == 1:
        return " (free roll)" if n_free else (" (symmetric: both flips)" if n_sym else "")
    kinds = ", ".join(k for k in (f"{n_free} with a free roll" if n_free else "",
                                  f"{n_sym} symmetric" if n_sym else "") if k)
    return (f" for {len(grasps)} grasps" + (f" ({kinds})" if kinds else "")
            + "; the notes are about the main grasp")
