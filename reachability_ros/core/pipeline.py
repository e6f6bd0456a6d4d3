"""The stance proposal pipeline: grasp in, ranked verified whole-body stances out.

``StanceProposer(config).propose(grasp, current_base, rng)`` runs named stages,
each a method that takes and returns small typed records:

1. :meth:`~StanceProposer.validate` the request (finite numbers, unit
   quaternion, sane height, ``top_k``) -> ``T_world_grasp`` or InvalidRequest;
   :meth:`~StanceProposer.validate_alternatives` the other grasps of a grasp set;
2. :meth:`~StanceProposer.sample` proposals (ONNX model, exact grid or the
   rejection baseline) -> :class:`Sampled`, the rows the sampler marks
   infeasible already labelled. A request with freedom (symmetric, free roll) or
   alternatives is first expanded into *targets* (:meth:`~StanceProposer.expand`,
   ``core/freedom.py``): exact tool poses, each serving one grasp; one sampler
   call draws for all of them and every row carries its own target pose
   (``Sampled.T``) and grasp (``Sampled.grasp_index``) through the stages below;
3. :meth:`~StanceProposer.coarse_filter` (approximate samplers only) drops
   proposals too far from the grasp to refine, unless the sampler's proposals
   are seeds meant to be refined from afar (``Proposals.refine_from_afar``);
4. :meth:`~StanceProposer.refine` approximate proposals (closed-form
   projection or Levenberg-Marquardt);
5. :meth:`~StanceProposer.verify`: joint limits, FK recomputed against the
   grasp, visibility (frustum, self-occlusion, margin) -> :class:`Verified`;
6. :meth:`~StanceProposer.rank`: score terms (visibility, manipulability,
   limit margin, pose error, travel/turn), linearized robustness for the best,
   diverse top-k in SE(2) across every grasp -> :class:`Ranked` (one diverse
   top-k per ranking group: the two flips of a symmetric grasp);
7. :meth:`~StanceProposer.robustness`: the nonlinear robustness re-solve for
   the returned stances (for the pool of every group), and their final order.

Every returned stance was re-verified by FK after refinement. When nothing
survives, ``result.reason`` says why, with the funnel counts and the robot's
numbers (``core/diagnosis.py``). Each stage's
wall time is in ``result.timing_ms`` (keys ``sample``, ``coarse_filter`` and
``refine`` for approximate samplers, ``verify``, ``rank``, ``robustness``,
``total``). The stages and their typed records are kept in this one module
(about 500 lines) so that a request reads top to bottom.
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
from .freedom import (check_alternatives, check_flags, entry_name, expand_targets, GRID_ROLLS,
                      samples_per_grasp, Targets)
from .geometry import grasp_in_base_frames, quat_to_matrix, rotation_angle, wrap_angle
from .outcomes import CODE, LABELS, LABELS_ARRAY, OUTCOMES
from .paths import resolve_data_path
from .ranking import (diverse_top_k, grouped_top_k, linear_robustness, nonlinear_robustness,
                      perturbations, robustness_term, score_terms)
from .refine import refine as refine_lm
from .robot import WholeBodyModel
from .samplers import GridSampler, ModelSampler, Proposals, RejectionSampler
from .types import BasePose, Candidate, Grasp, ProposalResult
from .visibility import Visibility, VisibilityResult

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


def _valid_poses(grasps: tuple, cfg: ProposalConfig) -> np.ndarray | None:
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


@dataclass
class Sampled:
    """The proposals of one request and what has happened to each so far.

    Attributes:
        proposals: what the sampler returned (``q`` untouched).
        q: ``(n, nq)`` working copy; refinement writes into it.
        outcome: ``(n,)`` int8 code of each row's label (``outcomes.CODE``;
            0 = ``kept`` so far).
        alive: ``(n,)`` rows still in the running.
        T: the grasp of the rows: ``(4, 4)`` one for all, or ``(n, 4, 4)`` each
            row's own target (a grasp turned about its approach axis, an
            alternative).
        grasp_index: ``(n,)`` the grasp of the request each row serves (0 = main).
        target: ``(n,)`` each row's target among ``targets``, or None.
        targets: the request's targets (``core/freedom.py``), or None (one grasp).
    """

    proposals: Proposals
    q: np.ndarray
    outcome: np.ndarray
    alive: np.ndarray
    T: np.ndarray | None = None
    grasp_index: np.ndarray | None = None
    target: np.ndarray | None = None
    targets: Targets | None = None

    @property
    def group(self) -> np.ndarray | None:
        """``(n,)`` ranking group of each row (``Targets.group``), or None (one group)."""
        if self.targets is None or self.targets.n_groups == 1:
            return None
        return self.targets.group[self.target]

    @property
    def free_roll(self) -> np.ndarray | None:
        """``(n,)`` the row's grasp takes any roll about its approach, or None (none does)."""
        if self.targets is None or not self.targets.free.any():
            return None
        return self.targets.free[self.target]

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
        good: ``(m,)`` also visible with the required margin: feasible.
    """

    idx: np.ndarray
    q: np.ndarray
    chain: np.ndarray
    position_error_m: np.ndarray
    orientation_error_rad: np.ndarray
    visibility: VisibilityResult
    good: np.ndarray


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
        k: stances to return.
        pooled: ``chosen`` is the pool of several ranking groups (each group's
            diverse top-k); :meth:`StanceProposer.robustness` picks the final top-k.
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
    k: int = 0
    pooled: bool = False


def _rows(T: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The grasp of rows ``idx``: ``T`` when one (4, 4) serves all, else ``T[idx]``."""
    return T if T.ndim == 2 else T[idx]


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
            T: ``(4, 4)`` the grasp, or ``(N, 4, 4)`` one per configuration.
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

    def validate_alternatives(self, grasp: Grasp, alternatives) -> tuple[tuple, list]:
        """Check the freedom of the main grasp and the alternatives of a grasp set.

        Every alternative is checked like the main grasp; its ``frame_id`` is not
        used (a request's grasps are all in the main grasp's frame).

        Returns:
            The alternatives as a tuple and their ``T_world_grasp`` ``(4, 4)`` each.

        Raises:
            InvalidRequest: freedom flags that are not booleans, ``alternatives`` not
                a list of grasps or longer than ``freedom.MAX_ALTERNATIVES``, or a
                malformed alternative (the reason names its entry:
                ``alternatives[36] (grasp_index 37): ...``).
        """
        check_flags(grasp, "grasp ")
        alternatives = check_alternatives(alternatives)
        if not alternatives:
            return alternatives, []
        pc = self.config.proposal
        T = _valid_poses(alternatives, pc)  # all at once, when every one is fine
        if T is None:  # one by one: the first bad one raises with validate_grasp's reason
            Ts = []
            for i, g in enumerate(alternatives, start=1):
                try:
                    Ts.append(validate_grasp(g, pc))
                except InvalidRequest as exc:
                    raise InvalidRequest(f"{entry_name(i)}: {exc}") from None
            T = np.array(Ts)
        for i, g in enumerate(alternatives, start=1):
            check_flags(g, f"{entry_name(i)}: ")
        return alternatives, list(T)

    def expand(self, grasps: tuple, T_grasps: list, rng: np.random.Generator) -> Targets:
        """Expand the grasps of a request with freedom or alternatives into targets.

        Each grasp gets ``samples_per_grasp`` proposals (``proposal.n_samples``
        alone, a share of ``proposal.set_samples`` in a set); a symmetric one as
        many per flip, a free roll one roll per proposal (the grid sampler: an even
        grid of ``freedom.GRID_ROLLS`` rolls).
        """
        pc = self.config.proposal
        n = samples_per_grasp(len(grasps), pc.n_samples, pc.set_samples)
        roll_grid = GRID_ROLLS if isinstance(self.sampler, GridSampler) else None
        return expand_targets(grasps, T_grasps, n, rng, roll_grid)

    def sample(self, T: np.ndarray, rng: np.random.Generator,
               targets: Targets | None = None) -> Sampled:
        """Draw the proposals; label the rows the sampler marks infeasible.

        Rows that are not finite or that the sampler marks invalid are
        ``unreachable``, except finite rows outside the joint limits (exact
        samplers mark those invalid): ``joint_limits``.

        Args:
            T: ``(4, 4)`` the (main) grasp.
            rng: the request's generator.
            targets: the request's targets (:meth:`expand`), or None: one fixed grasp.
        """
        if targets is None:
            props: Proposals = self.sampler.sample(T, self.config.proposal.n_samples, rng)
        else:
            props = self.sampler.sample_targets(targets, rng)
        n = props.q.shape[0]
        q = props.q.copy()
        finite = np.all(np.isfinite(q), axis=1)
        if targets is None:
            s = Sampled(props, q, np.zeros(n, dtype=np.int8), props.valid & finite, T,
                        np.zeros(n, dtype=int))
        else:
            s = Sampled(props, q, np.zeros(n, dtype=np.int8), props.valid & finite,
                        targets.T[props.target], targets.grasp_index[props.target],
                        props.target, targets)
        s.outcome[~s.alive] = CODE["unreachable"]
        lim_bad = ~s.alive & finite
        if lim_bad.any():
            s.outcome[np.flatnonzero(lim_bad)[~self.robot.within_limits(q[lim_bad])]] = CODE[
                "joint_limits"]
        return s

    def coarse_filter(self, T: np.ndarray, s: Sampled) -> None:
        """Drop approximate proposals whose tool is too far from the grasp to refine.

        ``T``: ``(4, 4)`` the grasp of every row, or ``(n, 4, 4)`` each row's
        (``Sampled.T``; the same for :meth:`refine` and :meth:`verify`). Skipped for
        proposals meant to be refined from afar (the rejection baseline).
        """
        if s.proposals.refine_from_afar:
            return
        pc = self.config.proposal
        idx = np.flatnonzero(s.alive)
        dp, dr, _ = self._tool_error(s.q[idx], _rows(T, idx))
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
            qr, _ = self.manifold.project(s.q[idx], _rows(T, idx))
        else:
            qr = refine_lm(self.robot, s.q[idx], _rows(T, idx),
                           iterations=pc.refine_iterations,
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
        dp, dr, p_tool = self._tool_error(s.q[idx], _rows(T, idx), X)
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

    def rank(self, v: Verified, k: int, rng: np.random.Generator,
             current_base: BasePose | None, group: np.ndarray | None = None) -> Ranked:
        """Score the feasible stances, estimate the robustness of the best, pick a diverse top-k.

        The linearized robustness (in the base frame, where the perturbations
        are expressed) is measured for the ``robustness_candidates`` best
        stances by the other terms; NaN elsewhere (not measured). The diverse
        top-k is taken in SE(2) over the stances of every grasp together; with
        ranking groups (``group``: ``(n,)`` per proposal, e.g. the two flips of a
        symmetric grasp) each group gets its own diverse top-k, and
        :meth:`robustness` keeps the best ``k`` of their pool.
        """
        pc = self.config.proposal
        robot = self.robot
        idx, qf, dp, dr, X, vis = (v.idx, v.q, v.position_error_m, v.orientation_error_rad,
                                   v.chain, v.visibility)
        if not v.good.all():
            g = v.good
            idx, qf, dp, dr, X, vis = idx[g], qf[g], dp[g], dr[g], X[..., g], vis.subset(g)
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
        pre = sum(terms.values())
        if pc.robustness_samples > 0 and pc.robustness_candidates > 0:
            top = np.argsort(-pre)[:pc.robustness_candidates]
            rob[top] = linear_robustness(robot, q_base0[top], delta, pc, jacobian=J[top])
        metrics["robustness_linear"] = rob
        metrics["robustness"] = rob
        terms["robustness"] = robustness_term(rob, pc)
        score = pre + terms["robustness"]
        pooled = group is not None
        chosen = grouped_top_k(qf, score, group[idx] if pooled else None, k,
                               pc.nms_min_distance_m, np.radians(pc.nms_min_yaw_deg))
        return Ranked(idx, qf, X, metrics, terms, pre, score, chosen, delta, k, pooled)

    def robustness(self, T: np.ndarray, r: Ranked, free_roll: np.ndarray | None = None
                   ) -> None:
        """Re-solve the chosen stances' robustness nonlinearly; re-score and re-order them.

        ``T``: ``(4, 4)`` the grasp, or ``(n, 4, 4)`` the target of each proposal
        (``Sampled.T``); ``free_roll``: ``(n,)`` proposals whose grasp takes any roll
        (``Sampled.free_roll``: the roll about the approach is then no error), or
        None. A pool of several ranking groups is cut to the diverse top-k by the
        final score.
        """
        pc = self.config.proposal
        if pc.robustness_samples > 0 and r.chosen.size:
            rob = r.metrics["robustness"].copy()
            rob[r.chosen] = nonlinear_robustness(
                self.robot, self.visibility, r.q[r.chosen], _rows(T, r.idx[r.chosen]),
                r.perturbations, pc, iterations=pc.robustness_iterations,
                chain=r.chain[..., r.chosen],
                free_roll=None if free_roll is None else free_roll[r.idx[r.chosen]])
            r.metrics["robustness"] = rob
            r.terms["robustness"] = robustness_term(rob, pc)
            r.score = r.base_score + r.terms["robustness"]
        if r.pooled:
            pool = r.chosen
            r.chosen = pool[diverse_top_k(r.q[pool], r.score[pool], r.k, pc.nms_min_distance_m,
                                          np.radians(pc.nms_min_yaw_deg))]
            r.pooled = False
        elif pc.robustness_samples > 0 and r.chosen.size:
            r.chosen = r.chosen[np.argsort(-r.score[r.chosen], kind="stable")]

    # ------------------------------------------------------------------ main
    def propose(self, grasp: Grasp, current_base: BasePose | None = None,
                rng: np.random.Generator | None = None,
                top_k: int | None = None, alternatives=()) -> ProposalResult:
        """Propose ranked stances for a grasp, or for any grasp of a set.

        Args:
            grasp: desired tool pose in a world frame, with its freedom
                (``symmetric``, ``free_roll``).
            current_base: where the base is now (for the travel/turn terms), or None.
            rng: random generator (default: seeded from ``proposal.seed``).
            top_k: number of stances to return (default ``proposal.top_k``).
            alternatives: other grasps (a list of :class:`Grasp`, at most
                ``freedom.MAX_ALTERNATIVES``), any of which will do: the stances are
                ranked across all of them and each says which it serves
                (``Candidate.grasp_index``: 0 = ``grasp``, i = ``alternatives[i - 1]``).

        Returns:
            A :class:`ProposalResult`; ``ok`` is False with a reason and the
            funnel when nothing survives.

        Raises:
            InvalidRequest: a grasp is malformed (the reason names it).
        """
        clock = _Stopwatch()
        T, k = self.validate(grasp, current_base, top_k)
        alternatives, T_alt = self.validate_alternatives(grasp, alternatives)
        rng = rng if rng is not None else np.random.default_rng(self.config.proposal.seed)
        grasps = (grasp, *alternatives)
        targets = None
        if alternatives or not grasp.fixed:
            targets = self.expand(grasps, [T, *T_alt], rng)
        s = self.sample(T, rng, targets)
        clock.tick("sample")
        if not s.proposals.exact and s.alive.any():
            self.coarse_filter(s.T, s)
            clock.tick("coarse_filter")
            self.refine(s.T, s)
            clock.tick("refine")
        v = self.verify(s.T, s)
        clock.tick("verify")
        funnel = self._funnel(s)
        if not v.good.any():
            funnel["returned"] = 0
            # the robot's numbers, and a grid check of a fixed grasp
            reason = self.diagnosis.reason(funnel, s.n, T, subject=_subject(grasps),
                                           grid_check=targets is None)
            return ProposalResult(False, reason, [], self.robot.joint_names,
                                  dict(funnel), clock.total(), self.sampler_name,
                                  s.proposals.q, LABELS_ARRAY[s.outcome], grasp,
                                  alternatives=alternatives,
                                  samples_grasp_index=s.grasp_index)
        r = self.rank(v, k, rng, current_base, s.group)
        clock.tick("rank")
        self.robustness(s.T, r, s.free_roll)
        clock.tick("robustness")
        funnel["not_in_top_k"] = int(r.idx.size - r.chosen.size)
        funnel["returned"] = int(r.chosen.size)
        return ProposalResult(True, "", self._candidates(r, s, grasp), self.robot.joint_names,
                              dict(funnel), clock.total(), self.sampler_name, s.proposals.q,
                              LABELS_ARRAY[s.outcome], grasp, feasible_q=r.q,
                              alternatives=alternatives, samples_grasp_index=s.grasp_index,
                              feasible_grasp_index=s.grasp_index[r.idx])

    @staticmethod
    def _funnel(s: Sampled) -> OrderedDict:
        """How many proposals each stage removed, and how many are feasible."""
        counts = np.bincount(s.outcome, minlength=len(LABELS))
        funnel = OrderedDict(proposed=int(s.n))
        for key in OUTCOMES:
            funnel[key] = int(counts[CODE[key]])
        funnel["feasible"] = int(counts[0])
        return funnel

    @staticmethod
    def _candidates(r: Ranked, s: Sampled, grasp: Grasp) -> list[Candidate]:
        """The chosen stances as :class:`Candidate` objects (Python floats), best first.

        Each carries its grasp (``grasp_index``) and the tool pose it reaches: its
        target, in the main grasp's frame.
        """
        chosen = r.chosen
        # one conversion per metric and term
        mcols = {key: v[chosen].tolist() for key, v in r.metrics.items() if key != "q"}
        tcols = {name: v[chosen].tolist() for name, v in r.terms.items()}
        rows = r.idx[chosen]
        scores, sample_index = r.score[chosen].tolist(), rows.tolist()
        grasp_index = s.grasp_index[rows].tolist()
        if s.targets is None:
            poses = [Grasp(tuple(grasp.position), tuple(grasp.orientation), grasp.frame_id)
                     ] * len(rows)
        else:
            tg = s.target[rows]
            poses = [Grasp(tuple(p), tuple(o), grasp.frame_id) for p, o in zip(
                s.targets.T[tg, :3, 3].tolist(), s.targets.quat[tg].tolist())]
        cands = []
        for i, row in enumerate(chosen):
            m = {key: col[i] for key, col in mcols.items()}
            m["visible"] = True
            m["sample_index"] = sample_index[i]
            cands.append(Candidate(r.q[row].copy(), scores[i],
                                   {name: col[i] for name, col in tcols.items()}, m,
                                   grasp_index[i], poses[i]))
        return cands


def _subject(grasps: tuple) -> str:
    """What a failure reason says the proposals were for, beyond one fixed grasp."""
    n_free = sum(bool(g.free_roll) for g in grasps)
    n_sym = sum(bool(g.symmetric and not g.free_roll) for g in grasps)
    if len(grasps) == 1:
        return " (free roll)" if n_free else (" (symmetric: both flips)" if n_sym else "")
    kinds = ", ".join(k for k in (f"{n_free} with a free roll" if n_free else "",
                                  f"{n_sym} symmetric" if n_sym else "") if k)
    return (f" for {len(grasps)} grasps" + (f" ({kinds})" if kinds else "")
            + "; the notes are about the main grasp")


def propose(grasp: Grasp, current_base: BasePose | None = None,
            config: StanceConfig | None = None,
            rng: np.random.Generator | None = None) -> ProposalResult:
    """Build a :class:`StanceProposer` and propose once (slow: builds the model every call)."""
    return StanceProposer(config).propose(grasp, current_base, rng)
