"""Why a grasp got no stance, said with the robot's own numbers.

A failed request used to answer "unreachable: of 256 proposals 256 unreachable": true, but
it does not tell the user that the gripper reaches only so high, or that the front camera
sees it only below some height. This module measures those facts of the robot description
**once** (:func:`robot_facts`, cached per description and camera) and turns a failure
into a one-line reason (:class:`FailureDiagnosis`):

* the pipeline's funnel, as before: ``"<head>: of N proposals 3 unreachable, ..."``, where
  the head is ``unreachable``, ``reachable but not visible from the front camera`` or
  ``no feasible stance`` (clients match these first words);
* how high (and low) the gripper reaches, overall and pointing as requested;
* how high (and low) the front camera sees the gripper, overall and pointing as requested;
* with an approximate or learned sampler, whether its proposals were the problem: the
  exact manifold grid is run once on the failed grasp and its in-limit, visible stances
  are counted ("the model's proposals missed; the exact grid finds 12 stances").

The facts are measured on the tool frame's origin with the base at zero, in the base
frame (``robot.base_frame``; z up from the floor), per 2-degree bin of the approach axis's
elevation: uniform samples of the arm's joint space, then a local search for each extreme
(:func:`measure_robot_facts`). Each figure is attained by a stored configuration. The
overall figures are within millimetres of the true extremes; per approach they are said
"about": within a centimetre for the reach, and up to about 3 cm short for the camera,
whose seen region at one approach is small and ragged (``test/test_diagnosis.py``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from .config import ProposalConfig
from .errors import DescriptionError
from .outcomes import OUTCOMES, WORLD_OUTCOMES
from .robot import WholeBodyModel

#: Width of the approach-elevation bins of "pointing as requested" (degrees).
BIN_DEG = 2.0
#: Heights closer than this to a measured extreme are not called out of range (m).
SLACK_M = 0.005

_REACH_KEYS = ("unreachable", "far_from_grasp", "refine_failed", "joint_limits", "fk_mismatch")
_VIEW_KEYS = ("not_visible", "occluded", "low_visibility_margin")


@dataclass(frozen=True)
class RobotFacts:
    """What the robot can do at all, measured from its description.

    Heights are of the tool frame's origin above the floor (the base frame's z = 0), in
    metres; elevations are the angle of the tool's approach axis (+z) above the
    horizontal, in degrees (-90: pointing straight down). Per elevation bin (``BIN_DEG``
    wide, centred on -90, -88, ..., 90): the lowest and highest tool height over the joint
    limits, and the lowest and highest the front camera sees (in its frustum, not hidden
    by the robot); NaN where no configuration points that way (or none of them is seen).

    Attributes:
        bin_centres_deg: ``(B,)`` elevation bin centres.
        extremes_m: ``(B, 4)`` per bin: lowest, highest, lowest seen, highest seen height.
        witnesses: ``(B, 4, nq)`` a configuration (base at zero) at each extreme.
        footprint_radius_m: horizontal radius, around the base frame, of the collision
            geometry fixed to the base (wheels included); 0 when the description has none.
    """

    bin_centres_deg: np.ndarray
    extremes_m: np.ndarray
    witnesses: np.ndarray
    footprint_radius_m: float

    def _overall(self, column: int, lowest: bool) -> tuple[float, int]:
        values = self.extremes_m[:, column]
        if np.all(np.isnan(values)):
            return math.nan, -1
        i = int(np.nanargmin(values) if lowest else np.nanargmax(values))
        return float(values[i]), i

    @property
    def reach_min_m(self) -> float:
        """Lowest tool height over the joint limits."""
        return self._overall(0, True)[0]

    @property
    def reach_max_m(self) -> float:
        """Highest tool height over the joint limits."""
        return self._overall(1, False)[0]

    @property
    def reach_max_elevation_deg(self) -> float:
        """The approach elevation (bin centre) of :attr:`reach_max_m`."""
        return float(self.bin_centres_deg[self._overall(1, False)[1]])

    @property
    def visible_min_m(self) -> float:
        """Lowest tool height the front camera sees (NaN: never)."""
        return self._overall(2, True)[0]

    @property
    def visible_max_m(self) -> float:
        """Highest tool height the front camera sees (NaN: never)."""
        return self._overall(3, False)[0]

    def heights_pointing(self, elevation_deg: float,
                         visible_only: bool = False) -> tuple[float, float] | None:
        """Return the (lowest, highest) tool height with the approach near an elevation.

        Args:
            elevation_deg: requested approach elevation (deg); its bin is the one whose
                centre is nearest.
            visible_only: heights the front camera sees.

        Returns:
            ``(min_m, max_m)``, or None when no configuration points that way (and is seen).
        """
        i = int(np.argmin(np.abs(self.bin_centres_deg - elevation_deg)))
        lo, hi = self.extremes_m[i, 2:] if visible_only else self.extremes_m[i, :2]
        if math.isnan(lo) or math.isnan(hi):
            return None
        return float(lo), float(hi)


def footprint_radius(model, geom_model, base_frame: str) -> float:
    """Return the horizontal radius (m) of the base's collision geometry around the base frame.

    Every collision object fixed to the base (on joint 1, the planar root of a
    :class:`WholeBodyModel`'s reduced model: the base body and everything locked to it,
    such as the wheels) counts; the radius is the largest horizontal distance of any of its
    points from the origin of ``base_frame``. Spheres and capsules are exact, cylinders and
    cones are taken at 720 points around each rim (within 1e-5 of the radius), boxes at
    their corners, meshes and convex shapes at their vertices; another shape counts with
    its bounding box.

    Args:
        model: a Pinocchio model whose joint 1 is the base (``WholeBodyModel.model``).
        geom_model: its collision geometry (``WholeBodyModel.geom_model``).
        base_frame: name of the frame the radius is measured around.

    Raises:
        DescriptionError: the base frame is missing or not fixed to the base.
    """
    if not model.existFrame(base_frame):
        raise DescriptionError(f"robot.base_frame {base_frame!r} is not in the description")
    frame = model.frames[model.getFrameId(base_frame)]
    if frame.parentJoint != 1:
        raise DescriptionError(f"robot.base_frame {base_frame!r} is not fixed to the base")
    T_base_joint = np.linalg.inv(frame.placement.homogeneous)
    ring = np.linspace(0.0, 2.0 * np.pi, 720, endpoint=False)
    radius = 0.0
    for obj in geom_model.geometryObjects:
        if obj.parentJoint != 1:
            continue
        T = T_base_joint @ obj.placement.homogeneous  # the shape in the base frame
        R, c = T[:3, :3], T[:3, 3]
        g = obj.geometry
        kind = type(g).__name__
        if kind == "Sphere":
            radius = max(radius, math.hypot(c[0], c[1]) + float(g.radius))
            continue
        if kind == "Capsule":
            ends = c + np.outer([-g.halfLength, g.halfLength], R[:, 2])
            radius = max(radius, float(np.hypot(ends[:, 0], ends[:, 1]).max()) + float(g.radius))
            continue
        if kind in ("Cylinder", "Cone"):
            h, r = float(g.halfLength), float(g.radius)
            rim = r * (np.outer(np.cos(ring), R[:, 0]) + np.outer(np.sin(ring), R[:, 1]))
            top = (c + h * R[:, 2])[None] if kind == "Cone" else c + h * R[:, 2] + rim
            points = np.vstack([c - h * R[:, 2] + rim, top])  # a cone's apex is at +h
        else:
            if kind == "Box":
                local = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1)
                                  for sz in (-1, 1)]) * np.asarray(g.halfSide)
            elif hasattr(g, "vertices") and getattr(g, "num_vertices", 0):
                local = np.asarray(g.vertices(), dtype=float)
            elif hasattr(g, "points") and getattr(g, "num_points", 0):
                local = np.asarray(g.points(), dtype=float)
            else:
                g.computeLocalAABB()
                lo, hi = np.asarray(g.aabb_local.min_), np.asarray(g.aabb_local.max_)
                local = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                                  for z in (lo[2], hi[2])])
            points = local @ R.T + c
        radius = max(radius, float(np.hypot(points[:, 0], points[:, 1]).max()))
    return radius


def _tool_in_base(robot: WholeBodyModel, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tool heights ``(N,)`` and approach elevations ``(N,)`` (deg) in the base frame.

    ``q`` has the base at zero, so the poses ``fk`` gives are in the root joint's frame, to
    which the base frame is fixed.
    """
    T_root_base = robot.fk(q[:1], (robot.config.base_frame,))[robot.config.base_frame][0]
    R, p = T_root_base[:3, :3], T_root_base[:3, 3]
    T_root_tool = robot.fk(q, (robot.config.tool_frame,))[robot.config.tool_frame]
    height = (T_root_tool[:, :3, 3] - p) @ R[:, 2]
    up = np.clip(T_root_tool[:, :3, 2] @ R[:, 2], -1.0, 1.0)
    return height, np.degrees(np.arcsin(up))


def _arm_limits(robot: WholeBodyModel) -> tuple[np.ndarray, np.ndarray]:
    """Arm joint limits, a full turn where a joint is unbounded."""
    lo, hi = robot.lower[3:].copy(), robot.upper[3:].copy()
    lo[~np.isfinite(lo)], hi[~np.isfinite(hi)] = -np.pi, np.pi
    return lo, hi


def _bin_of(elevation_deg: np.ndarray) -> np.ndarray:
    """Index of the elevation bin (centres -90, -90 + BIN_DEG, ..., 90)."""
    return np.rint((np.asarray(elevation_deg) + 90.0) / BIN_DEG).astype(int)


def measure_robot_facts(robot: WholeBodyModel, visibility, n_samples: int = 32768,
                        rounds: int = 20, seed: int = 0) -> RobotFacts:
    """Measure :class:`RobotFacts` (about 0.2 s for the LeKiwi; see :func:`robot_facts`).

    ``n_samples`` uniform in-limit arm configurations (base at zero) give each elevation
    bin's extremes; a local random search then improves every extreme from the two best
    samples of its bin: each round perturbs each start a few times (steps shrinking from
    0.1 to 0.002 rad), clips into the limits and keeps the best move that stays in the bin
    (and seen, for the camera's extremes). Every extreme is attained by its stored
    witness, so it can only fall short of the true one (see the module docstring).

    Args:
        robot: the whole-body model.
        visibility: a :class:`~reachability_ros.core.visibility.Visibility` of ``robot``.
        n_samples: uniform in-limit arm configurations.
        rounds: rounds of the local search.
        seed: of the sampling and of the search (the facts are deterministic).
    """
    rng = np.random.default_rng(seed)
    lo, hi = _arm_limits(robot)
    n_bins, nq = int(round(180.0 / BIN_DEG)) + 1, robot.nq
    q = np.zeros((n_samples, nq))
    q[:, 3:] = rng.uniform(lo, hi, size=(n_samples, nq - 3))
    z, elevation = _tool_in_base(robot, q)
    seen = visibility.check(q).visible
    b = _bin_of(elevation)
    # starts: per (bin, extreme) the best samples (two; four for the camera's ragged
    # region); sign -1 minimizes, +1 maximizes
    starts, keys = [], []
    for column, (sign, need_seen) in enumerate(((-1, False), (1, False), (-1, True),
                                                (1, True))):
        order = np.lexsort((-sign * z, b))  # by bin, the best first within a bin
        if need_seen:
            order = order[seen[order]]
        first = np.searchsorted(b[order], np.arange(n_bins))
        for k in range(n_bins):
            for i in order[first[k]:first[k] + (4 if need_seen else 2)]:
                if b[i] == k:
                    starts.append(i)
                    keys.append((k, column, sign, int(need_seen)))
    keys = np.array(keys, dtype=int).reshape(-1, 4)
    qs, score = q[starts].copy(), z[starts] * keys[:, 2]  # signed: larger is better
    tries = 6
    bins_t, signs_t = np.repeat(keys[:, 0], tries), np.repeat(keys[:, 2], tries)
    need_t = np.repeat(keys[:, 3].astype(bool), tries)
    eye = 1e-6 * np.eye(nq - 3)
    for step in np.geomspace(0.1, 0.002, rounds):
        # perturb along the level set of the elevation: remove the component of each step
        # along the elevation's gradient (central differences), so that moves stay in the bin
        probe = np.repeat(qs, 2 * (nq - 3), axis=0)
        probe[:, 3:] += np.tile(np.vstack([eye, -eye]), (len(qs), 1))
        _, ep = _tool_in_base(robot, probe)
        ep = ep.reshape(len(qs), 2, nq - 3)
        grad = np.repeat((ep[:, 0] - ep[:, 1]) / 2e-6, tries, axis=0)
        delta = step * rng.standard_normal((len(qs) * tries, nq - 3))
        norm2 = np.maximum((grad * grad).sum(1, keepdims=True), 1e-12)
        delta -= (delta * grad).sum(1, keepdims=True) / norm2 * grad
        trial = np.repeat(qs, tries, axis=0)
        trial[:, 3:] = np.clip(trial[:, 3:] + delta, lo, hi)
        zt, et = _tool_in_base(robot, trial)
        good = _bin_of(et) == bins_t
        if need_t.any():
            good[need_t] &= visibility.check(trial[need_t]).visible
        st = np.where(good, zt * signs_t, -np.inf).reshape(-1, tries)
        best = st.argmax(axis=1)
        rows = np.arange(len(qs))
        better = st[rows, best] > score
        qs[better] = trial.reshape(-1, tries, nq)[better, best[better]]
        score[better] = st[better, best[better]]
    extremes = np.full((n_bins, 4), np.nan)
    witnesses = np.full((n_bins, 4, nq), np.nan)
    for (k, column, sign, _), value, qi in zip(keys, score * keys[:, 2], qs):
        current = extremes[k, column]
        if math.isnan(current) or sign * value > sign * current:
            extremes[k, column], witnesses[k, column] = value, qi
    return RobotFacts(
        bin_centres_deg=np.linspace(-90.0, 90.0, n_bins), extremes_m=extremes,
        witnesses=witnesses,
        footprint_radius_m=footprint_radius(robot.model, robot.geom_model,
                                            robot.config.base_frame))


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def robot_facts(robot: WholeBodyModel, visibility) -> RobotFacts:
    """Return the :class:`RobotFacts` of a robot, measured once per description and config.

    Cached by the description's SHA-256 and the robot config (frames, joints, camera,
    occlusion exclusions), so that building several proposers for one robot measures it
    once.
    """
    key = (robot.urdf_sha256, robot.config)
    with _CACHE_LOCK:
        facts = _CACHE.get(key)
    if facts is None:
        facts = measure_robot_facts(robot, visibility)
        with _CACHE_LOCK:
            _CACHE[key] = facts
    return facts


def _elevation_deg(T_world_grasp: np.ndarray) -> float:
    """Approach elevation (deg) of a grasp: its +z axis against the floor plane."""
    return math.degrees(math.asin(max(-1.0, min(1.0, float(T_world_grasp[2, 2])))))


class FailureDiagnosis:
    """Explain a failed request in one line (see the module docstring).

    Args:
        robot: the whole-body model.
        visibility: its :class:`~reachability_ros.core.visibility.Visibility`.
        config: the proposal settings (the visibility margin of the grid check).
        manifold: the closed-form stance manifold, or None (no grid check).
        sampler_name: the name the pipeline reports for its sampler; the grid check runs
            only when it is not the exact grid itself.
    """

    def __init__(self, robot: WholeBodyModel, visibility, config: ProposalConfig,
                 manifold=None, sampler_name: str = "") -> None:
        self.robot = robot
        self.visibility = visibility
        self.config = config
        self.facts = robot_facts(robot, visibility)
        self.sampler_name = sampler_name
        self._grid = None
        if manifold is not None and not sampler_name.startswith("grid"):
            from .samplers import GridSampler
            self._grid = GridSampler(manifold)

    def reason(self, funnel: dict, n: int, T_world_grasp: np.ndarray, world=None,
               subject: str = "", grid_check: bool = True) -> str:
        """Return the one-line reason of a request that got no stance.

        Args:
            funnel: the pipeline's counts per outcome label.
            n: proposals drawn.
            T_world_grasp: ``(4, 4)`` the validated (main) grasp.
            world: the :class:`~.world.World` the stances were checked against, or None.
            subject: what the proposals were for, after "of n proposals" (e.g.
                `` for 100 grasps``); "" for one fixed grasp.
            grid_check: run the exact grid on ``T_world_grasp`` (meaningful for one
                fixed grasp only; never with a world, whose fallback searched the grid).
        """
        scene = world_head(funnel, n, world) if world is not None else ""
        head = scene or _head(funnel, n)
        parts = [f"{funnel[k]} {k.replace('_', ' ')}" for k in OUTCOMES if funnel.get(k)]
        text = f"{head}: of {n} proposals{subject}: " if subject else \
            f"{head}: of {n} proposals "
        text += ", ".join(parts)
        notes = self._height_notes(T_world_grasp)
        if scene:
            if funnel.get("fallback_proposed"):
                notes.append(f"The exact grid was searched too "
                             f"({funnel['fallback_proposed']} of the proposals)")
        elif grid_check:
            grid = self._grid_note(T_world_grasp)
            if grid:
                notes.append(grid)
        return text + "".join(f". {s}" for s in notes) + ("." if notes else "")

    def _height_notes(self, T: np.ndarray) -> list[str]:
        """Sentences on the grasp's height against what the arm reaches and the camera sees.

        Per-approach figures come from 2-degree bins and are said "about"; a bin where no
        sampled configuration was seen makes no claim (the camera may see a rare one).
        """
        f = self.facts
        z, e = float(T[2, 3]), _elevation_deg(T)
        approach = f"with the approach {round(e) + 0:+d}° from horizontal"  # never "-0°"
        notes = []
        reach = f.heights_pointing(e)
        if z > f.reach_max_m + SLACK_M or z < f.reach_min_m - SLACK_M:
            pointing = (f", and about {reach[0]:.2f} to {reach[1]:.2f} m {approach}, as "
                        "requested" if reach else "")
            notes.append(f"The grasp is {z:.2f} m above the floor; the gripper reaches "
                         f"{f.reach_min_m:.2f} to {f.reach_max_m:.2f} m at best{pointing}")
        elif reach is None:
            notes.append(f"No arm configuration gives the approach {round(e) + 0:+d}° from "
                         "horizontal")
        elif z > reach[1] + SLACK_M or z < reach[0] - SLACK_M:
            notes.append(f"The grasp is {z:.2f} m above the floor; {approach}, as requested, "
                         f"the gripper reaches only about {reach[0]:.2f} to {reach[1]:.2f} m "
                         f"({f.reach_max_m:.2f} m at best, approach "
                         f"{round(f.reach_max_elevation_deg) + 0:+d}°)")
        if not math.isfinite(f.visible_max_m):
            notes.append("The front camera never sees the gripper")
            return notes
        seen = f.heights_pointing(e, visible_only=True)
        if z > f.visible_max_m + SLACK_M or z < f.visible_min_m - SLACK_M:
            pointing = f" (about {seen[0]:.2f} to {seen[1]:.2f} m {approach})" if seen else ""
            notes.append(f"The front camera sees the gripper only between "
                         f"{f.visible_min_m:.2f} and {f.visible_max_m:.2f} m above the "
                         f"floor{pointing}")
        elif seen is not None and (z > seen[1] + SLACK_M or z < seen[0] - SLACK_M):
            notes.append(f"{approach[0].upper()}{approach[1:]}, the front camera sees the "
                         f"gripper only between about {seen[0]:.2f} and {seen[1]:.2f} m "
                         f"above the floor ({f.visible_min_m:.2f} to {f.visible_max_m:.2f} m "
                         "at best)")
        return notes

    def _grid_note(self, T: np.ndarray) -> str:
        """Run the exact grid once on the grasp; say whether the sampler was the problem."""
        if self._grid is None:
            return ""
        props = self._grid.sample(T, 1024, np.random.default_rng(0))
        q = props.q[props.valid & self.robot.within_limits(props.q)]
        found = 0
        if q.shape[0]:
            vis = self.visibility.check(q)
            found = int(np.count_nonzero(vis.in_frustum & ~vis.occluded & (
                vis.margin >= self.config.min_visibility_margin_m)))
        name = self.sampler_name.split(" (")[0]
        if found:
            return (f"The sampler's proposals ({name}) missed: the exact grid finds {found} "
                    "stances for this grasp (sampler 'grid')")
        return "The exact grid finds no stance either"


def _head(funnel: dict, n: int) -> str:
    """The first words of a failure reason (stable: clients match them)."""
    vis = sum(funnel.get(k, 0) for k in _VIEW_KEYS)
    reach = sum(funnel.get(k, 0) for k in _REACH_KEYS)
    if vis and vis >= n - reach and reach < n:
        return "reachable but not visible from the front camera"
    if reach == n:
        return "unreachable"
    return "no feasible stance"


def world_head(funnel: dict, n: int, world) -> str:
    """The first words of a failure the scene caused ("" when it did not).

    The scene caused it when some proposals were reachable and visible and the world's
    checks removed every one of them. Clients match ``"reachable and visible, but"``.
    """
    counts = {k: funnel.get(k, 0) for k in WORLD_OUTCOMES}
    removed = sum(counts.values())
    before = sum(funnel.get(k, 0) for k in _REACH_KEYS + _VIEW_KEYS)
    if not removed or before >= n:
        return ""
    has_map, has_boxes = world.grid_field is not None, len(world.boxes) > 0
    things = ("the map's obstacles or a box" if has_map and has_boxes
              else "the map's obstacles" if has_map else "a box")
    says = {"base_collision": f"the base overlaps {things}",
            "arm_collision": "the arm comes too close to a box",
            "scene_occluded": "a box hides the gripper from the front camera"}
    kinds = [k for k in WORLD_OUTCOMES if counts[k]]
    if len(kinds) == 1:
        only = {"base_collision": f"every stance's base overlaps {things}",
                "arm_collision": "at every stance the arm comes too close to a box",
                "scene_occluded": "at every stance a box hides the gripper from the front "
                                  "camera"}
        return f"reachable and visible, but {only[kinds[0]]}"
    listed = ", ".join(f"{says[k]} ({counts[k]})" for k in kinds)
    return f"reachable and visible, but the scene rules out every stance: {listed}"
