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
    """Desired pose of the tool frame in a world frame.

    Attributes:
        position: ``(3,)`` metres.
        orientation: ``(4,)`` unit quaternion (x, y, z, w).
        frame_id: name of the world frame (informational in the core).
    """

    position: tuple
    orientation: tuple
    frame_id: str = ""

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
    """

    q: np.ndarray
    score: float
    terms: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

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
        feasible_q: ``(F, nq)`` every verified stance (after refinement, before
            the top-k), e.g. to measure coverage against the ground truth.
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
