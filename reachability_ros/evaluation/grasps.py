"""The one grasp generator of the benchmarks, the tests and the training data.

* :func:`reachable_grasps`: grasps that have a stance by construction: the tool
  pose of random configurations within the joint limits (base uniform in a square,
  any yaw), kept when the front camera sees the tool unoccluded; optionally spread
  evenly over (height, approach elevation) strata by water-filling.
* :func:`unreachable_grasps`: grasps with no valid, visible stance, of the kinds
  in :data:`UNREACHABLE_KINDS`, for false-success checks.
* :func:`detector_grasps`: a grasp detector's candidates for one object (grasp
  sets): perturbed grasps around it with mixed approach directions.

Both return a :class:`GraspSet`: the poses and the quaternions they were made
from, so a benchmark that sends :class:`~reachability_ros.core.types.Grasp`
requests sends exactly the numbers that were drawn. The strata helpers
(:func:`grasp_descriptors`, :func:`strata_index`, :func:`water_fill`) are shared
with the dataset generator (``training/data.py``).

Example:
    >>> rng = np.random.default_rng(2026)
    >>> reach = reachable_grasps(WholeBodyModel(), 200, rng)
    >>> negatives = unreachable_grasps(50, np.random.default_rng(2027))
    >>> requests = reach.grasps() + negatives.grasps()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.errors import ConfigError
from ..core.geometry import matrix_to_quat, quat_to_matrix
from ..core.types import Grasp

#: grasp height strata (m) of the training data and of stratified test grasps
DEFAULT_HEIGHT_EDGES_M = (-0.05, 0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35)
#: approach elevation strata (deg below the horizon, 90 = top-down)
DEFAULT_ELEVATION_EDGES_DEG = (-90.0, -15.0, 0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0)

#: kinds of unreachable grasps and why the packaged LeKiwi has no stance for them
UNREACHABLE_KINDS = {
    "high": "0.7-1.0 m up, any orientation: beyond the arm (its tool never rises above "
            "0.62 m at any configuration within limits, 10^6 sampled)",
    "above_view": "0.40-0.60 m up, any orientation: within the arm's reach, above anything "
                  "the front camera can watch the tool at (0.33 m is the highest visible "
                  "tool position over 10^6 configurations)",
    "from_below": "0-0.3 m up, the approach axis pointing up 55-90 deg above the horizon: "
                  "never visible (the lowest elevation of 10^6 visible grasps is -29 deg)",
}


@dataclass(frozen=True)
class GraspSet:
    """Grasps as generated.

    Attributes:
        T_world_grasp: ``(n, 4, 4)`` poses of the tool frame in the world.
        quat_xyzw: ``(n, 4)`` their orientations as unit quaternions (x, y, z, w),
            the numbers the generator drew (or converted once from the pose).
    """

    T_world_grasp: np.ndarray
    quat_xyzw: np.ndarray

    def __len__(self) -> int:
        return len(self.T_world_grasp)

    def __add__(self, other: GraspSet) -> GraspSet:
        return GraspSet(np.concatenate([self.T_world_grasp, other.T_world_grasp]),
                        np.concatenate([self.quat_xyzw, other.quat_xyzw]))

    def grasps(self, frame_id: str = "map") -> list[Grasp]:
        """Return the grasps as requests of the pipeline, in ``frame_id``."""
        return [Grasp(tuple(T[:3, 3]), tuple(q), frame_id)
                for T, q in zip(self.T_world_grasp, self.quat_xyzw)]


def _count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"the number of grasps must be an integer >= 0, got {n!r}")
    return int(n)


def reachable_grasps(robot, n: int, rng: np.random.Generator, *, visibility=None,
                     visible: bool = True, base_extent_m: float = 5.0,
                     base_frame: bool = False, batch: int = 4096,
                     strata: tuple[Sequence[float], Sequence[float]] | None = None,
                     oversample: int = 8) -> GraspSet:
    """Draw grasps that have a stance: tool poses of random in-limit configurations.

    Batches of ``robot.random_configurations`` (arm uniform within the limits, base
    uniform in ``[-base_extent_m, base_extent_m]^2``, any yaw) are drawn until ``n``
    (with ``strata``: ``oversample * n``) configurations qualify; their tool poses
    are the grasps.

    Args:
        robot: the :class:`~reachability_ros.core.robot.WholeBodyModel`.
        n: number of grasps.
        rng: random generator (the result is a function of its state).
        visibility: a :class:`~reachability_ros.core.visibility.Visibility` of
            ``robot``; built when omitted and ``visible``.
        visible: keep only configurations whose front camera sees the tool
            unoccluded (else any configuration within limits).
        base_extent_m: half-width of the square of base positions (m).
        base_frame: the base stays at the origin facing +x (the grasps are then
            in the base frame); ``base_extent_m`` is ignored.
        batch: configurations drawn per round.
        strata: ``(height_edges_m, elevation_edges_deg)``: spread the grasps over
            these strata by :func:`water_fill`, then shuffle them; None = keep the
            first ``n`` in the order drawn.
        oversample: candidates per grasp for the water-filling.

    Returns:
        ``n`` grasps.

    Raises:
        ConfigError: a negative ``n``, or bad strata edges.
    """
    n = _count(n)
    if strata is not None:
        _check_edges(strata)
    if visible and visibility is None:
        from ..core.visibility import Visibility
        visibility = Visibility(robot)
    want = n if strata is None else max(1, int(oversample)) * n
    tool = robot.config.tool_frame
    parts, have = [], 0
    while have < want:
        q = robot.random_configurations(batch, rng, base_extent_m=base_extent_m)
        if base_frame:
            q[:, :3] = 0.0
        if visible:
            q = q[visibility.check(q).visible]
        parts.append(robot.fk(q, [tool])[tool])
        have += len(q)
    T = np.concatenate(parts) if parts else np.zeros((0, 4, 4))
    if strata is None:
        T = T[:n]
    else:
        h, e = grasp_descriptors(T)
        n_bins = (len(strata[0]) - 1) * (len(strata[1]) - 1)
        sel = water_fill(strata_index(h, e, *strata), n, n_bins, rng)
        T = T[sel[rng.permutation(len(sel))]]
    return GraspSet(T, matrix_to_quat(T[:, :3, :3]).reshape(-1, 4))


def unreachable_grasps(n: int, rng: np.random.Generator,
                       kinds: Sequence[str] = ("high", "above_view"),
                       extent_m: float = 3.0) -> GraspSet:
    """Draw grasps with no valid, visible stance of the packaged LeKiwi.

    Grasp ``i`` is of kind ``kinds[i % len(kinds)]`` (see :data:`UNREACHABLE_KINDS`);
    its position is uniform in ``[-extent_m, extent_m]^2`` at the kind's heights.
    ``high`` and ``above_view`` take any orientation (a normalized Gaussian
    quaternion); ``from_below`` an approach axis 55-90 deg above the horizon with a
    random heading and jaw roll.

    Args:
        n: number of grasps.
        rng: random generator (the result is a function of its state).
        kinds: the kinds, cycled.
        extent_m: half-width of the square of grasp positions (m).

    Returns:
        ``n`` grasps.

    Raises:
        ConfigError: a negative ``n``, no kinds or an unknown kind.
    """
    n = _count(n)
    kinds = _check_kinds(kinds, UNREACHABLE_KINDS, "unreachable grasp kinds")
    T = np.zeros((n, 4, 4))
    quat = np.zeros((n, 4))
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "from_below":
            el = np.radians(rng.uniform(-90.0, -55.0))
            hd = rng.uniform(-np.pi, np.pi)
            q = matrix_to_quat(_frame_about(_approach(el, hd), rng))
            z = rng.uniform(0.0, 0.3)
        else:
            q = rng.normal(size=4)
            q /= np.linalg.norm(q)
            z = rng.uniform(0.7, 1.0) if kind == "high" else rng.uniform(0.40, 0.60)
        x, y = rng.uniform(-extent_m, extent_m), rng.uniform(-extent_m, extent_m)
        quat[i] = q
        T[i, :3, :3] = quat_to_matrix(q)
        T[i, :3, 3] = (x, y, z)
        T[i, 3, 3] = 1.0
    return GraspSet(T, quat)


def _check_kinds(kinds: Sequence[str], known, what: str) -> tuple:
    """Return the kinds as a tuple; ConfigError for none or an unknown one."""
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in known]
    if not kinds or bad:
        raise ConfigError(f"{what} {bad or list(kinds)}: use some of {sorted(known)}")
    return kinds


def _approach(elevation_rad: float, heading_rad: float) -> np.ndarray:
    """The unit approach axis ``(3,)`` at an elevation below the horizon and a heading."""
    c = np.cos(elevation_rad)
    return np.array([c * np.cos(heading_rad), c * np.sin(heading_rad), -np.sin(elevation_rad)])


def _frame_about(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A rotation ``(3, 3)`` whose z is the unit approach ``a`` and whose x is random."""
    r = rng.normal(size=3)
    bx = r - (r @ a) * a
    bx /= np.linalg.norm(bx)
    return np.stack([bx, np.cross(a, bx), a], axis=1)


#: approach kinds of :func:`detector_grasps`: elevation of the approach below the horizon
DETECTOR_APPROACHES_DEG = {"top_down": 90.0, "oblique": 45.0, "side": 0.0}


def detector_grasps(center_m: Sequence[float], n: int, rng: np.random.Generator, *,
                    position_sigma_m: float = 0.015, tilt_sigma_deg: float = 10.0,
                    approaches: Sequence[str] = ("top_down", "oblique", "side")) -> GraspSet:
    """Draw a grasp detector's candidates for one object: perturbed grasps, mixed approaches.

    Grasp ``i`` approaches the object along kind ``approaches[i % len(approaches)]``
    (:data:`DETECTOR_APPROACHES_DEG`) from a random heading, its approach axis (the
    tool's +z) tilted by a Gaussian ``tilt_sigma_deg`` and turned about itself by a
    uniform roll; its position is ``center_m`` plus Gaussian ``position_sigma_m`` noise
    per axis. Whether a grasp has a stance is not known (that is what a planner is for).

    Args:
        center_m: ``(3,)`` the object's position (m).
        n: number of grasps.
        rng: random generator (the result is a function of its state).
        position_sigma_m: std of the position noise (m).
        tilt_sigma_deg: std of the approach axis' tilt (deg).
        approaches: the approach kinds, cycled.

    Returns:
        ``n`` grasps.

    Raises:
        ConfigError: a negative ``n``, or no or an unknown approach kind.
    """
    n = _count(n)
    approaches = _check_kinds(approaches, DETECTOR_APPROACHES_DEG, "approach kinds")
    T = np.zeros((n, 4, 4))
    for i in range(n):
        el = np.radians(DETECTOR_APPROACHES_DEG[approaches[i % len(approaches)]])
        a = _approach(el, rng.uniform(-np.pi, np.pi))
        a = a + np.radians(tilt_sigma_deg) * rng.normal(size=3)
        T[i, :3, :3] = _frame_about(a / np.linalg.norm(a), rng)
        T[i, :3, 3] = np.asarray(center_m, dtype=float) + position_sigma_m * rng.normal(size=3)
        T[i, 3, 3] = 1.0
    return GraspSet(T, matrix_to_quat(T[:, :3, :3]).reshape(-1, 4))


# ----------------------------------------------------------------- strata
def grasp_descriptors(T_world_grasp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the height (m) and approach elevation (deg) of grasps.

    Args:
        T_world_grasp: ``(N, 4, 4)`` grasp poses; the tool's +z is the approach axis.

    Returns:
        ``height_m (N,)`` and ``elevation_deg (N,)``: the angle of the approach
        axis below the horizon (90 = top-down, 0 = side, < 0 = from below).
    """
    T = np.asarray(T_world_grasp, dtype=float)
    a_z = np.clip(T[..., 2, 2], -1.0, 1.0)
    return T[..., 2, 3].copy(), np.degrees(np.arcsin(-a_z))


def _check_edges(strata) -> None:
    for name, edges in zip(("height_edges_m", "elevation_edges_deg"), strata):
        e = np.asarray(edges, dtype=float)
        if e.ndim != 1 or len(e) < 2 or np.any(np.diff(e) <= 0):
            raise ConfigError(f"{name} must be >= 2 increasing edges, got {e.tolist()}")


def strata_index(height_m: np.ndarray, elevation_deg: np.ndarray,
                 height_edges_m: Sequence[float],
                 elevation_edges_deg: Sequence[float]) -> np.ndarray:
    """Return the flat (height, elevation) bin ``(N,)``; values outside go to the edge bins."""
    he = np.asarray(height_edges_m, dtype=float)
    ee = np.asarray(elevation_edges_deg, dtype=float)
    ih = np.clip(np.searchsorted(he, height_m, side="right") - 1, 0, len(he) - 2)
    ie = np.clip(np.searchsorted(ee, elevation_deg, side="right") - 1, 0, len(ee) - 2)
    return ih * (len(ee) - 1) + ie


def water_fill(bins: np.ndarray, n: int, n_bins: int, rng: np.random.Generator) -> np.ndarray:
    """Select ``n`` indices as evenly over bins as possible (each bin ``min(count, L)``).

    Args:
        bins: ``(M,)`` bin index of each candidate.
        n: how many to keep (all if ``n >= M``).
        n_bins: number of bins.
        rng: shuffles which candidates of a thinned bin are kept.

    Returns:
        ``(min(n, M),)`` sorted indices into ``bins``.
    """
    m = len(bins)
    if n >= m:
        return np.arange(m)
    perm = rng.permutation(m)
    b = bins[perm]
    order = np.argsort(b, kind="stable")
    sorted_b = b[order]
    starts = np.searchsorted(sorted_b, np.arange(n_bins))
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.arange(m) - starts[sorted_b]
    # the n candidates of smallest rank within their bin (ties broken by the shuffle)
    keep = np.argsort(rank, kind="stable")[:n]
    return np.sort(perm[keep])
