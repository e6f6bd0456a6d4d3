"""Plain data types exchanged by the core, the CLI and the ROS layer.

Frames and units: positions in metres, angles in radians, quaternions (x, y, z, w).
A whole-body configuration ``q`` is ``(base_x, base_y, base_yaw, arm joints...)``:
the pose of ``base_footprint`` in the grasp's world frame, then the arm joints in
``WholeBodyModel.joint_names`` order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .geometry import make_transform, quat_to_matrix


@dataclass(frozen=True)
class Grasp:
    """Desired pose of the tool frame in a world frame, and the freedom it allows.

    The tool's +z is the approach axis (from the wrist out through the jaws).

    Attributes:
        position: ``(3,)`` metres.
        orientation: ``(4,)`` unit quaternion (x, y, z, w).
        frame_id: name of the world frame (informational in the core).
        symmetric: the grasp flipped by 180 degrees about the approach axis counts
            as the same grasp (a parallel gripper on a box).
        free_roll: any rotation about the approach axis counts as the same grasp
            (a top-down grasp of a can); implies ``symmetric``.
    """

    position: tuple
    orientation: tuple
    frame_id: str = ""
    symmetric: bool = False
    free_roll: bool = False

    @property
    def fixed(self) -> bool:
        """All six degrees are fixed (neither symmetric nor a free roll)."""
        return not (self.symmetric or self.free_roll)

    def matrix(self) -> np.ndarray:
        """``T_world_grasp`` as a ``(4, 4)`` array."""
        return make_transform(quat_to_matrix(np.asarray(self.orientation, dtype=float)),
                              np.asarray(self.position, dtype=float))


@dataclass(frozen=True)
class BasePose:
    """A planar base pose: ``base_footprint`` in the world, (x, y) m and yaw rad."""

    x: float
    y: float
    yaw: float


@dataclass
class Candidate:
    """One ranked whole-body stance.

    Attributes:
        q: ``(nq,)`` whole-body configuration.
        score: ranking score (higher is better).
        terms: the weighted score terms that add up to ``score``.
        metrics: raw per-candidate figures (errors, margins, robustness, ...).
        grasp_index: the grasp of the request this stance serves: 0 the main grasp,
            ``i`` its ``alternatives[i - 1]``.
        tool_pose: the pose of the tool frame the stance reaches (the requested
            grasp, or it turned about its approach axis when the grasp allows it);
            None when unknown.
    """

    q: np.ndarray
    score: float
    terms: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    grasp_index: int = 0
    tool_pose: Grasp | None = None

    @property
    def base(self) -> BasePose:
        """The base pose part of ``q``."""
        return BasePose(float(self.q[0]), float(self.q[1]), float(self.q[2]))


@dataclass
class ProposalResult:
    """What :func:`reachability_ros.core.pipeline.propose` returns.

    Attributes:
        ok: at least one verified stance was found.
        reason: why not, when ``ok`` is false ("" otherwise).
        candidates: ranked stances, best first.
        joint_names: names of the entries of each ``q``.
        funnel: how many proposals each stage kept or removed, in order.
        timing_ms: wall time per stage.
        sampler: which sampler produced the proposals (and whether it was a fallback).
        samples_q: ``(M, nq)`` raw proposals (for the donut plot / RViz markers).
        samples_outcome: ``(M,)`` label per raw proposal: the stage that removed
            it, or ``"kept"``.
        grasp: the main grasp of the request.
        feasible_q: ``(F, nq)`` every verified stance (after refinement, before
            the top-k), e.g. to measure coverage against the ground truth.
        alternatives: the other grasps of the request (``grasp_index`` 1, 2, ...).
        samples_grasp_index: ``(M,)`` the grasp each raw proposal was drawn for.
        feasible_grasp_index: ``(F,)`` the grasp each verified stance serves.
    """

    ok: bool
    reason: str
    candidates: list
    joint_names: tuple
    funnel: dict
    timing_ms: dict
    sampler: str
    samples_q: np.ndarray | None = None
    samples_outcome: np.ndarray | None = None
    grasp: Grasp | None = None
    feasible_q: np.ndarray | None = None
    alternatives: tuple = ()
    samples_grasp_index: np.ndarray | None = None
    feasible_grasp_index: np.ndarray | None = None
