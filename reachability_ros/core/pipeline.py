"""The stance proposal pipeline: grasp in, ranked verified whole-body stances out.

``StanceProposer(config).propose(grasp, current_base, rng)`` runs named stages,
each a method that takes and returns small typed records:

1. :meth:`~StanceProposer.validate` the request (finite numbers, unit
   quaternion, sane height, ``top_k``) -> ``T_world_grasp`` or InvalidRequest;
2. :meth:`~StanceProposer.sample` proposals (ONNX model, exact grid or the
   rejection baseline) -> :class:`Sampled`, the rows the sampler marks
   infeasible already labelled;
3. :meth:`~StanceProposer.coarse_filter` (approximate samplers only) drops
   proposals too far from the grasp to refine, unless the sampler's proposals
   are seeds meant to be refined from afar (``Proposals.refine_from_afar``);
4. :meth:`~StanceProposer.refine` approximate proposals (closed-form
   projection or Levenberg-Marquardt);
5. :meth:`~StanceProposer.verify`: joint limits, FK recomputed against the
   grasp, visibility (frustum, self-occlusion, margin) -> :class:`Verified`;
6. :meth:`~StanceProposer.rank`: score terms (visibility, manipulability,
   limit margin, pose error, travel/turn), linearized robustness for the best,
   diverse top-k -> :class:`Ranked`;
7. :meth:`~StanceProposer.robustness`: the nonlinear robustness re-solve for
   the returned stances, and their final order.

With a world (an occupancy grid and/or 3-D boxes, :meth:`~StanceProposer.set_world` or
``propose(..., world=...)``), :meth:`~StanceProposer.scene_filter` runs after
verification: the base footprint against the map and the base shapes against the
boxes (``base_collision``), the arm's shapes against the boxes (``arm_collision``),
the camera's line of sight to the gripper against the boxes (``scene_occluded``),
``core/scene.py``; ranking gains a clearance term (``clearance_m`` per candidate).
When the scene leaves fewer than ``world.min_feasible`` stances, the exact grid is
searched too (``world.fallback_samples`` proposals, :meth:`~StanceProposer.fallback`).
Without a world none of this runs and nothing changes.

Every returned stance was re-verified by FK after refinement. When nothing
survives, ``result.reason`` says why, with the funnel counts and the robot's
numbers (``core/diagnosis.py``). Each stage's
wall time is in ``result.timing_ms`` (keys ``sample``, ``coarse_filter`` and
``refine`` for approximate samplers, ``verify``, ``scene`` and ``fallback`` with a
world, ``rank``, ``robustness``, ``total``). The stages and their typed records are kept
in this one module (about 600 lines) so that a request reads top to bottom.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .config import ProposalConfig, StanceConfig
from .diagnosis import FailureDiagnosis
from .errors import ConfigError, DescriptionError, InvalidRequest
from .geometry import grasp_in_base_frames, quat_to_matrix, rotation_angle, wrap_angle
from .outcomes import CODE, LABELS, LABELS_ARRAY, OUTCOMES, WORLD_OUTCOMES
from .paths import resolve_data_path
from .ranking import (clearance_term, diverse_top_k, linear_robustness, nonlinear_robustness,
                      perturbations, robustness_term, score_terms)
from .refine import refine as refine_lm
from .robot import WholeBodyModel
from .samplers import GridSampler, ModelSampler, Proposals, RejectionSampler
from .scene import SceneChecker
from .types import BasePose, Candidate, Grasp, ProposalResult
from .visibility import Visibility, VisibilityResult
from .world import Boxes, OccupancyGrid, World

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


@dataclass
class Sampled:
    """The proposals of one request and what has happened to each so far.

    Attributes:
        proposals: what the sampler returned (``q`` untouched).
        q: ``(n, nq)`` working copy; refinement writes into it.
        outcome: ``(n,)`` int8 code of each row's label (``outcomes.CODE``;
            0 = ``kept`` so far).
        alive: ``(n,)`` rows still in the running.
    """

    proposals: Proposals
    q: np.ndarray
    outcome: np.ndarray
    alive: np.ndarray

    @property
    def n(self) -> int:
        """Number of proposals."""
        return self.q.shape[0]

    def remove(self, rows: np.ndarray, label: str) -> None:
        """Label rows (indices) as removed by a stage."""
        self.outcome[rows] = CODE[label]
        self.alive[rows] = False


@dataclass
class Verified:
    """The proposals that passed limits and the FK check, with what ranking reuses.

    Attributes:
        idx: ``(m,)`` their rows among the proposals.
        q: ``(m, nq)`` their (refined) configurations.
        chain: ``(njoints, 3, 4, m)`` joint poses in each base frame.
        position_error_m: ``(m,)`` tool position error against the grasp.
        orientation_error_rad: ``(m,)`` tool orientation error.
        visibility: the visibility of the tool from the front camera.
        good: ``(m,)`` also visible with the required margin (and clear of the world,
            after :meth:`StanceProposer.scene_filter`): feasible.
        clearance_m: ``(m,)`` the stances' clearance to the world (NaN where not
            measured), or None without a world.
    """

    idx: np.ndarray
    q: np.ndarray
    chain: np.ndarray
    position_error_m: np.ndarray
    orientation_error_rad: np.ndarray
    visibility: VisibilityResult
    good: np.ndarray
    clearance_m: np.ndarray | None = None


@dataclass
class Ranked:
    """The feasible stances, scored, and the diverse top-k chosen among them.

    Attributes:
        idx: ``(f,)`` rows of the feasible stances among the proposals.
        q: ``(f, nq)`` the feasible stances.
        chain: ``(njoints, 3, 4, f)`` their joint poses in the base frames.
        metrics: raw per-stance figures ``(f,)`` (and ``q``).
        terms: weighted score terms ``(f,)``.
        base_score: ``(f,)`` the score without the robustness term.
        score: ``(f,)`` the score.
        chosen: indices into the feasible stances, best first.
        perturbations: ``(S, 3)`` base errors of the robustness estimates.
    """

    idx: np.ndarray
    q: np.ndarray
    chain: np.ndarray
    metrics: dict
    terms: dict
    base_score: np.ndarray
    score: np.ndarray
    chosen: np.ndarray
    perturbations: np.ndarray


class _Stopwatch:
    """Wall time per stage (ms), in the order the stages ran."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.ms: OrderedDict[str, float] = OrderedDict()

    def tick(self, name: str) -> None:
        now = time.perf_counter()
        self.ms[name] = (now - self.last) * 1e3
        self.last = now

    def total(self) -> dict[str, float]:
        self.ms["total"] = (time.perf_counter() - self.start) * 1e3
        return dict(self.ms)


class StanceProposer:
    """Propose ranked whole-body stances for grasps. Build once, call many times.

    Args:
        config: robot and proposal settings.
        robot: an already built model (default: built from ``config.robot``).

    Raises:
        ConfigError: unknown sampler name, missing model file.
        ModelMismatch: the model was exported for another robot/description.
    """

    def __init__(self, config: StanceConfig | None = None,
                 robot: WholeBodyModel | None = None) -> None:
        self.config = config or StanceConfig()
        self.robot = robot or WholeBodyModel(self.config.robot)
        self.visibility = Visibility(self.robot)
        pc = self.config.proposal
        try:
            from .manifold import StanceManifold
            self.manifold = StanceManifold(self.robot)
        except (ImportError, DescriptionError):
            self.manifold = None
        self.sampler, self.sampler_name = self._make_sampler(pc)
        self.diagnosis = FailureDiagnosis(self.robot, self.visibility, pc, self.manifold,
                                          self.sampler_name)
        self.scene = SceneChecker(self.robot, self.visibility.p_base_cam, self.config.world,
                                  self.diagnosis.facts.footprint_radius_m)
        self.world: World | None = None
        self.refinement = pc.refinement
        if self.refinement == "auto":
            self.refinement = "exact" if self.manifold is not None else "numerical"
        if self.refinement not in ("exact", "numerical"):
            raise ConfigError(f"proposal.refinement {pc.refinement!r}: use exact, numerical "
                              "or auto")
        if self.refinement == "exact" and self.manifold is None:
            raise ConfigError("proposal.refinement 'exact' needs the closed-form manifold, "
                              "which this description does not have; use 'numerical'")

    def _make_sampler(self, pc: ProposalConfig) -> tuple:
        kind = pc.sampler
        if kind not in ("auto", "model", "grid", "rejection"):
            raise ConfigError(f"proposal.sampler {kind!r}: use auto, model, grid or rejection")
        if kind == "auto":
            kind = "model" if pc.model_path else ("grid" if self.manifold else "rejection")
            fallback = kind != "model"
        else:
            fallback = False
        if kind == "model":
            if not pc.model_path:
                raise ConfigError("proposal.sampler is 'model' but proposal.model_path is empty")
            from .onnx_sampler import OnnxStanceModel
            model = OnnxStanceModel(resolve_data_path(pc.model_path), self.robot)
            s = ModelSampler(model, self.robot, self.manifold)
            return s, f"{s.name} ({pc.model_path})"
        if kind == "grid":
            if self.manifold is None:
                raise ConfigError("the grid sampler needs the closed-form manifold of the LeKiwi")
            s = GridSampler(self.manifold)
        else:
            s = RejectionSampler(self.robot)
        name = s.name + (" (fallback: no model configured)" if fallback else "")
        return s, name

    def _tool_error(self, q: np.ndarray, T: np.ndarray, chain: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Measure the tool against the grasp in each base frame (exact far from the origin).

        Args:
            q: ``(N, nq)`` configurations.
            T: ``(4, 4)`` the grasp.
            chain: their :meth:`WholeBodyModel.base_chain`, when already computed.

        Returns:
            Position errors ``(N,)`` (m), orientation errors ``(N,)`` (rad) and the
            tool positions ``(3, N)`` in the base frames.
        """
        if chain is None:
            chain = self.robot.base_chain(q)
        p_tool, R_tool = self.robot.frame_in_chain(chain, self.robot.config.tool_frame)
        pg, Rg = grasp_in_base_frames(T, q)
        dp = np.sqrt(((pg - p_tool) ** 2).sum(0))
        dr = rotation_angle(np.einsum("ikn,jkn->nij", Rg, R_tool))
        return dp, dr, p_tool

    # ---------------------------------------------------------------- stages
    def validate(self, grasp: Grasp, current_base: BasePose | None,
                 top_k: int | None) -> tuple[np.ndarray, int]:
        """Check the request; return ``T_world_grasp`` ``(4, 4)`` and the number of stances.

        Raises:
            InvalidRequest: a malformed grasp or base pose, or ``top_k`` not an
                integer in [1, 1000].
        """
        pc = self.config.proposal
        T = validate_grasp(grasp, pc)
        if current_base is not None and not all(
                math.isfinite(v) for v in (current_base.x, current_base.y, current_base.yaw)):
            raise InvalidRequest(f"current base pose has non-finite values: {current_base}")
        k = pc.top_k if top_k is None else top_k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 1000:
            raise InvalidRequest(f"top_k must be an integer in [1, 1000], got {top_k!r}")
        return T, k

    def sample(self, T: np.ndarray, rng: np.random.Generator, sampler=None,
               n: int | None = None) -> Sampled:
        """Draw the proposals; label the rows the sampler marks infeasible.

        Rows that are not finite or that the sampler marks invalid are
        ``unreachable``, except finite rows outside the joint limits (exact
        samplers mark those invalid): ``joint_limits``.

        Args:
            sampler: default the configured one.
            n: proposals to draw; default ``proposal.n_samples``.
        """
        sampler = self.sampler if sampler is None else sampler
        n = self.config.proposal.n_samples if n is None else n
        props: Proposals = sampler.sample(T, n, rng)
        n = props.q.shape[0]
        q = props.q.copy()
        finite = np.all(np.isfinite(q), axis=1)
        s = Sampled(props, q, np.zeros(n, dtype=np.int8), props.valid & finite)
        s.outcome[~s.alive] = CODE["unreachable"]
        lim_bad = ~s.alive & finite
        if lim_bad.any():
            s.outcome[np.flatnonzero(lim_bad)[~self.robot.within_limits(q[lim_bad])]] = CODE[
                "joint_limits"]
        return s

    def coarse_filter(self, T: np.ndarray, s: Sampled) -> None:
        """Drop approximate proposals whose tool is too far from the grasp to refine.

        Skipped for proposals meant to be refined from afar (the rejection baseline).
        """
        if s.proposals.refine_from_afar:
            return
        pc = self.config.proposal
        idx = np.flatnonzero(s.alive)
        dp, dr, _ = self._tool_error(s.q[idx], T)
        far = (dp > pc.coarse_position_tol_m) | (dr > np.radians(pc.coarse_orientation_tol_deg))
        s.remove(idx[far], "far_from_grasp")

    def refine(self, T: np.ndarray, s: Sampled) -> None:
        """Move the approximate proposals onto the grasp (in place); label the failures.

        ``exact`` refinement projects with the closed form (rows it cannot
        project, a lift without an elbow solution, become NaN: with N
        proposals a few are cheap to lose); ``numerical`` runs
        Levenberg-Marquardt. The base yaw is wrapped to [-pi, pi).
        """
        idx = np.flatnonzero(s.alive)
        if not idx.size:
            return
        pc = self.config.proposal
        if self.refinement == "exact":
            qr, _ = self.manifold.project(s.q[idx], T)
        else:
            qr = refine_lm(self.robot, s.q[idx], T, iterations=pc.refine_iterations,
                           position_tol_m=0.5 * pc.refine_position_tol_m,
                           orientation_tol_rad=0.5 * np.radians(pc.refine_orientation_tol_deg)).q
        ok = np.all(np.isfinite(qr), axis=1)
        qr[:, 2] = wrap_angle(qr[:, 2])
        s.q[idx] = qr
        s.remove(idx[~ok], "refine_failed")

    def verify(self, T: np.ndarray, s: Sampled) -> Verified:
        """Joint limits, the tool pose recomputed by FK, and visibility, for the live rows.

        One structure-of-arrays FK pass in the base frame serves the check,
        visibility and ranking; the grasp is brought into each base frame
        (exact at any distance from the world origin).
        """
        pc = self.config.proposal
        robot = self.robot
        idx = np.flatnonzero(s.alive)
        lim = robot.within_limits(s.q[idx])
        s.remove(idx[~lim], "joint_limits")
        idx = idx[lim]
        X = robot.base_chain(s.q[idx])
        dp, dr, p_tool = self._tool_error(s.q[idx], T, X)
        bad = (dp > pc.refine_position_tol_m) | (dr > np.radians(pc.refine_orientation_tol_deg))
        s.remove(idx[bad], "fk_mismatch" if s.proposals.exact else "refine_failed")
        if bad.any():
            keep = ~bad
            idx, dp, dr, X, p_tool = idx[keep], dp[keep], dr[keep], X[..., keep], p_tool[:, keep]
        vis = self.visibility.check_chain(p_tool, X)
        labels = np.where(~vis.in_frustum, CODE["not_visible"],
                          np.where(vis.occluded, CODE["occluded"],
                                   np.where(vis.margin < pc.min_visibility_margin_m,
                                            CODE["low_visibility_margin"], 0)))
        s.outcome[idx] = labels
        s.alive[idx] = labels == 0
        return Verified(idx, s.q[idx], X, dp, dr, vis, labels == 0)

    def set_world(self, grid: OccupancyGrid | None = None, boxes: Boxes | None = None,
                  grid_pose: tuple | None = None) -> World | None:
        """Set the world every later request is checked against (None, None: no world).

        The grid's distance field is built here, once (``core/world.py``); requests
        never do per-map work. ``grid_pose`` is the pose of the grid's frame in the
        grasps' world frame (default: the grid's own origin, the frames being the same).

        Returns:
            The prepared :class:`~.world.World` (also for ``propose(..., world=...)``).
        """
        world = self.scene.prepare(grid, boxes, grid_pose)
        self.world = None if world.empty else world
        return self.world

    def scene_filter(self, world: World, s: Sampled, v: Verified) -> None:
        """Check the feasible rows against the world; label the failures, in place.

        Base footprint and base shapes (``base_collision``), arm shapes
        (``arm_collision``), then the camera's line of sight to the tool
        (``scene_occluded``), each on the rows the previous one kept. Sets
        ``v.good`` and ``v.clearance_m``.
        """
        scene = self.scene
        good = np.flatnonzero(v.good)
        clearance = np.full(v.idx.size, np.nan)
        base = scene.base_collision(world, v.q[good])
        clearance[good] = base.clearance_m
        s.remove(v.idx[good[base.collides]], "base_collision")
        good = good[~base.collides]
        if good.size:
            arm = scene.arm_collision(world, v.q[good], v.chain[..., good])
            s.remove(v.idx[good[arm]], "arm_collision")
            good = good[~arm]
        if good.size:
            p_tool, _ = self.robot.frame_in_chain(v.chain[..., good],
                                                  self.robot.config.tool_frame)
            hidden = scene.scene_occlusion(world, v.q[good], p_tool)
            s.remove(v.idx[good[hidden]], "scene_occluded")
            good = good[~hidden]
        v.good = np.zeros(v.idx.size, dtype=bool)
        v.good[good] = True
        v.clearance_m = clearance

    def fallback(self, T: np.ndarray, rng: np.random.Generator, world: World, s: Sampled,
                 v: Verified) -> tuple[Sampled, Verified, int]:
        """Search more stances when the scene left fewer than ``world.min_feasible``.

        Runs only when the scene removed a stance (a grasp the robot cannot reach or see
        gains nothing from more proposals): ``world.fallback_samples`` proposals of the
        exact grid (or, without the closed form, of the configured sampler), verified
        and checked against the world like the first ones, then appended to them. The
        exact rows whose base the map surely blocks (``SceneChecker.surely_on_map``, one
        look-up per row) are labelled ``base_collision`` before verification: they
        would fail whatever the camera sees.

        Returns:
            The merged proposals and verified rows, and the number of extra proposals
            (0: no fallback).
        """
        wc = self.config.world
        removed = np.isin(s.outcome, [CODE[k] for k in WORLD_OUTCOMES]).any()
        if not removed or int(v.good.sum()) >= wc.min_feasible:
            return s, v, 0
        sampler = _DenseGrid(self.manifold) if self.manifold is not None else self.sampler
        s2 = self.sample(T, rng, sampler, wc.fallback_samples)
        if s2.proposals.exact and s2.alive.any():
            idx = np.flatnonzero(s2.alive)
            s2.remove(idx[self.scene.surely_on_map(world, s2.q[idx])], "base_collision")
        if not s2.proposals.exact and s2.alive.any():
            self.coarse_filter(T, s2)
            self.refine(T, s2)
        v2 = self.verify(T, s2)
        if v2.good.any():
            self.scene_filter(world, s2, v2)
        else:
            v2.clearance_m = np.full(v2.idx.size, np.nan)
        return _merge_sampled(s, s2), _merge_verified(v, v2, s.n), s2.n

    def rank(self, v: Verified, k: int, rng: np.random.Generator,
             current_base: BasePose | None) -> Ranked:
        """Score the feasible stances, estimate the robustness of the best, pick a diverse top-k.

        The linearized robustness (in the base frame, where the perturbations
        are expressed) is measured for the ``robustness_candidates`` best
        stances by the other terms; NaN elsewhere (not measured).
        """
        pc = self.config.proposal
        robot = self.robot
        idx, qf, dp, dr, X, vis = (v.idx, v.q, v.position_error_m, v.orientation_error_rad,
                                   v.chain, v.visibility)
        clearance = v.clearance_m
        if not v.good.all():
            g = v.good
            idx, qf, dp, dr, X, vis = idx[g], qf[g], dp[g], dr[g], X[..., g], vis.subset(g)
            clearance = clearance[g] if clearance is not None else None
        q_base0 = qf.copy()
        q_base0[:, :3] = 0.0
        J = robot.jacobian(q_base0, chain=X)  # base frame, for manipulability and robustness
        metrics = {
            "q": qf,
            "position_error_m": dp,
            "orientation_error_rad": dr,
            "visibility_margin_m": vis.margin,
            "angle_margin_rad": vis.angle_margin_rad,
            "occlusion_margin_m": vis.occlusion_margin_m,
            "manipulability": robot.manipulability(q_base0, jacobian=J),
            "limit_margin": robot.limit_margin(qf),
        }
        delta = perturbations(rng, pc.robustness_samples, pc)
        rob = np.full(idx.size, np.nan)  # NaN = not measured (reported as null)
        terms = score_terms(metrics, pc, current_base)  # robustness not yet measured: 0
        if clearance is not None:  # with a world only
            metrics["clearance_m"] = clearance
            terms["clearance"] = clearance_term(clearance, self.config.world)
        pre = sum(terms.values())
        if pc.robustness_samples > 0 and pc.robustness_candidates > 0:
            top = np.argsort(-pre)[:pc.robustness_candidates]
            rob[top] = linear_robustness(robot, q_base0[top], delta, pc, jacobian=J[top])
        metrics["robustness_linear"] = rob
        metrics["robustness"] = rob
        terms["robustness"] = robustness_term(rob, pc)
        score = pre + terms["robustness"]
        chosen = diverse_top_k(qf, score, k, pc.nms_min_distance_m,
                               np.radians(pc.nms_min_yaw_deg))
        return Ranked(idx, qf, X, metrics, terms, pre, score, chosen, delta)

    def robustness(self, T: np.ndarray, r: Ranked) -> None:
        """Re-solve the chosen stances' robustness nonlinearly; re-score and re-order them."""
        pc = self.config.proposal
        if not (pc.robustness_samples > 0 and r.chosen.size):
            return
        rob = r.metrics["robustness"].copy()
        rob[r.chosen] = nonlinear_robustness(
            self.robot, self.visibility, r.q[r.chosen], T, r.perturbations, pc,
            iterations=pc.robustness_iterations, chain=r.chain[..., r.chosen])
        r.metrics["robustness"] = rob
        r.terms["robustness"] = robustness_term(rob, pc)
        r.score = r.base_score + r.terms["robustness"]
        r.chosen = r.chosen[np.argsort(-r.score[r.chosen], kind="stable")]

    # ------------------------------------------------------------------ main
    def propose(self, grasp: Grasp, current_base: BasePose | None = None,
                rng: np.random.Generator | None = None,
                top_k: int | None = None, world: World | None = None) -> ProposalResult:
        """Propose ranked stances for one grasp.

        Args:
            grasp: desired tool pose in a world frame.
            current_base: where the base is now (for the travel/turn terms), or None.
            rng: random generator (default: seeded from ``proposal.seed``).
            top_k: number of stances to return (default ``proposal.top_k``).
            world: the obstacles, in the grasp's world frame (default: the one of
                :meth:`set_world`, if any).

        Returns:
            A :class:`ProposalResult`; ``ok`` is False with a reason and the
            funnel when nothing survives.

        Raises:
            InvalidRequest: the grasp is malformed.
        """
        clock = _Stopwatch()
        T, k = self.validate(grasp, current_base, top_k)
        rng = rng if rng is not None else np.random.default_rng(self.config.proposal.seed)
        s = self.sample(T, rng)
        clock.tick("sample")
        if not s.proposals.exact and s.alive.any():
            self.coarse_filter(T, s)
            clock.tick("coarse_filter")
            self.refine(T, s)
            clock.tick("refine")
        v = self.verify(T, s)
        clock.tick("verify")
        world = self.world if world is None else world
        extra = None
        if world is not None and not world.empty:
            if v.good.any():
                self.scene_filter(world, s, v)
            else:
                v.clearance_m = np.full(v.idx.size, np.nan)
            clock.tick("scene")
            s, v, extra = self.fallback(T, rng, world, s, v)
            clock.tick("fallback")
        else:
            world = None
        funnel = self._funnel(s, extra)
        if not v.good.any():
            funnel["returned"] = 0
            reason = self.diagnosis.reason(funnel, s.n, T, world)  # the robot's numbers
            return ProposalResult(False, reason, [], self.robot.joint_names,
                                  dict(funnel), clock.total(), self.sampler_name,
                                  s.proposals.q, LABELS_ARRAY[s.outcome], grasp)
        r = self.rank(v, k, rng, current_base)
        clock.tick("rank")
        self.robustness(T, r)
        clock.tick("robustness")
        funnel["not_in_top_k"] = int(r.idx.size - r.chosen.size)
        funnel["returned"] = int(r.chosen.size)
        return ProposalResult(True, "", self._candidates(r), self.robot.joint_names,
                              dict(funnel), clock.total(), self.sampler_name, s.proposals.q,
                              LABELS_ARRAY[s.outcome], grasp, feasible_q=r.q)

    @staticmethod
    def _funnel(s: Sampled, fallback: int | None = None) -> OrderedDict:
        """How many proposals each stage removed, and how many are feasible.

        Args:
            fallback: the fallback's extra proposals (counted in ``proposed``), or None
                without a world (then the world's stages are not listed).
        """
        counts = np.bincount(s.outcome, minlength=len(LABELS))
        funnel = OrderedDict(proposed=int(s.n))
        if fallback is not None:
            funnel["fallback_proposed"] = int(fallback)
        for key in OUTCOMES:
            if fallback is None and key in WORLD_OUTCOMES:
                continue
            funnel[key] = int(counts[CODE[key]])
        funnel["feasible"] = int(counts[0])
        return funnel

    @staticmethod
    def _candidates(r: Ranked) -> list[Candidate]:
        """The chosen stances as :class:`Candidate` objects (Python floats), best first."""
        chosen = r.chosen
        # one conversion per metric and term
        mcols = {key: v[chosen].tolist() for key, v in r.metrics.items() if key != "q"}
        tcols = {name: v[chosen].tolist() for name, v in r.terms.items()}
        scores, sample_index = r.score[chosen].tolist(), r.idx[chosen].tolist()
        cands = []
        for i, row in enumerate(chosen):
            m = {key: col[i] for key, col in mcols.items()}
            m["visible"] = True
            m["sample_index"] = sample_index[i]
            cands.append(Candidate(r.q[row].copy(), scores[i],
                                   {name: col[i] for name, col in tcols.items()}, m))
        return cands


class _DenseGrid:
    """The exact grid with about ``n`` stances in all, a vertical approach's rolls included.

    (:class:`~.samplers.GridSampler` gives a vertical approach 8 rolls on top of ``n``.)
    """

    name = "grid"

    def __init__(self, manifold) -> None:
        self.manifold = manifold

    def sample(self, T_world_grasp: np.ndarray, n: int, rng: np.random.Generator) -> Proposals:
        """Return about ``n`` exact grid stances; ``rng`` unused."""
        rolls = 8 if self.manifold.is_vertical(T_world_grasp[None])[0] else 1
        side = max(2, int(round(math.sqrt(n / (self.manifold.n_branches * rolls)))))
        q, valid, _ = self.manifold.grid(T_world_grasp, n_pan=side, n_lift=side, n_roll=rolls)
        return Proposals(q, valid, exact=True)


def _merge_sampled(a: Sampled, b: Sampled) -> Sampled:
    """The proposals of two rounds, the second appended."""
    props = Proposals(np.vstack([a.proposals.q, b.proposals.q]),
                      np.concatenate([a.proposals.valid, b.proposals.valid]),
                      a.proposals.exact and b.proposals.exact,
                      a.proposals.refine_from_afar and b.proposals.refine_from_afar)
    return Sampled(props, np.vstack([a.q, b.q]), np.concatenate([a.outcome, b.outcome]),
                   np.concatenate([a.alive, b.alive]))


def _merge_verified(a: Verified, b: Verified, offset: int) -> Verified:
    """The verified rows of two rounds; ``b``'s proposal rows start at ``offset``."""
    vis = VisibilityResult(*(np.concatenate([getattr(a.visibility, f), getattr(b.visibility, f)])
                             for f in VisibilityResult.__dataclass_fields__))
    return Verified(np.concatenate([a.idx, b.idx + offset]), np.vstack([a.q, b.q]),
                    np.concatenate([a.chain, b.chain], axis=-1),
                    np.concatenate([a.position_error_m, b.position_error_m]),
                    np.concatenate([a.orientation_error_rad, b.orientation_error_rad]), vis,
                    np.concatenate([a.good, b.good]),
                    np.concatenate([a.clearance_m, b.clearance_m]))


def propose(grasp: Grasp, current_base: BasePose | None = None,
            config: StanceConfig | None = None,
            rng: np.random.Generator | None = None) -> ProposalResult:
    """Build a :class:`StanceProposer` and propose once (slow: builds the model every call)."""
    return StanceProposer(config).propose(grasp, current_base, rng)
