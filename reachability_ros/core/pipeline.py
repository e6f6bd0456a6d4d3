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
numbers (``core/diagnosis.py``). Each stage's wall time is in ``result.timing_ms``
(keys ``sample``, ``coarse_filter`` and ``refine`` for approximate samplers,
``verify``, ``scene`` and ``fallback`` with a world, ``rank``, ``robustness``,
``total``). The typed records of the stages and their merging are in
``core/stages.py``, the request checks in ``core/requests.py``; this module is the
orchestration, one method per stage. It is over 500 lines on purpose: the stages of one
request (with grasp freedom and a world) read top to bottom in one class.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

import numpy as np

from .config import StanceConfig
from .diagnosis import FailureDiagnosis
from .errors import ConfigError, DescriptionError, InvalidRequest
from .freedom import (check_alternatives, check_flags, entry_name, expand_targets,
                      samples_per_grasp, Targets)
from .geometry import grasp_in_base_frames, rotation_angle, wrap_angle
from .outcomes import CODE, LABELS, LABELS_ARRAY, OUTCOMES, WORLD_OUTCOMES
from .ranking import (clearance_term, diverse_top_k, grouped_top_k, linear_robustness,
                      nonlinear_robustness, perturbations, robustness_term, score_terms)
from .refine import refine as refine_lm
from .requests import subject_of, validate_grasp, validate_grasps
from .robot import WholeBodyModel
from .samplers import DenseGridSampler, make_sampler, Proposals
from .scene import SceneChecker
from .stages import merge_sampled, merge_verified, Ranked, Sampled, target_rows, Verified
from .types import BasePose, Candidate, Grasp, ProposalResult
from .visibility import Visibility
from .world import Boxes, OccupancyGrid, World


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
        self.sampler, self.sampler_name = make_sampler(pc, self.robot, self.manifold)
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
        T = validate_grasps(alternatives, pc)  # all at once, when every one is fine
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

    def expand(self, grasps: tuple, T_grasps: list, rng: np.random.Generator,
               sampler=None, budget: tuple[int, int] | None = None) -> Targets:
        """Expand the grasps of a request with freedom or alternatives into targets.

        Each grasp gets ``samples_per_grasp`` proposals (``budget``: the proposals of a
        request with one grasp and of a set, default ``proposal.n_samples`` and
        ``proposal.set_samples``); a symmetric one as many per flip, a free roll one
        roll per proposal (a sampler without noise, the grid: an even grid of
        ``sampler.roll_grid`` rolls).
        """
        pc = self.config.proposal
        sampler = self.sampler if sampler is None else sampler
        n_one, n_set = (pc.n_samples, pc.set_samples) if budget is None else budget
        n = samples_per_grasp(len(grasps), n_one, n_set)
        return expand_targets(grasps, T_grasps, n, rng, sampler.roll_grid)

    def sample(self, T: np.ndarray, rng: np.random.Generator,
               targets: Targets | None = None, sampler=None, n: int | None = None) -> Sampled:
        """Draw the proposals; label the rows the sampler marks infeasible.

        Rows that are not finite or that the sampler marks invalid are
        ``unreachable``, except finite rows outside the joint limits (exact
        samplers mark those invalid): ``joint_limits``.

        Args:
            T: ``(4, 4)`` the (main) grasp.
            rng: the request's generator.
            targets: the request's targets (:meth:`expand`), or None: one fixed grasp.
            sampler: default the configured one.
            n: proposals to draw for one fixed grasp; default ``proposal.n_samples``.
        """
        sampler = self.sampler if sampler is None else sampler
        if targets is None:
            n = self.config.proposal.n_samples if n is None else n
            props: Proposals = sampler.sample(T, n, rng)
        else:
            props = sampler.sample_targets(targets, rng)
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
        dp, dr, _ = self._tool_error(s.q[idx], target_rows(T, idx))
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
            qr, _ = self.manifold.project(s.q[idx], target_rows(T, idx))
        else:
            qr = refine_lm(self.robot, s.q[idx], target_rows(T, idx),
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
        dp, dr, p_tool = self._tool_error(s.q[idx], target_rows(T, idx), X)
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
        ``v.good`` and ``v.clearance_m`` (NaN where not measured: every row without a
        feasible one).
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
                 v: Verified, grasps: tuple = (), T_grasps: list = ()
                 ) -> tuple[Sampled, Verified, int]:
        """Search more stances when the scene left fewer than ``world.min_feasible``.

        Runs only when the scene removed a stance (a grasp the robot cannot reach or see
        gains nothing from more proposals): ``world.fallback_samples`` proposals of the
        exact grid (or, without the closed form, of the configured sampler), for the same
        grasps as the first round: with freedom or alternatives each grasp gets its share
        of the budget (:meth:`expand`), per flip of a symmetric grasp and per roll of a
        free-roll grasp's ``GRID_ROLLS`` (the grid's own rule: a whole grid per target), a
        vertical approach's wrist rolls within it (:class:`DenseGridSampler`). The rows are
        verified and checked against the world like the first ones, then appended to them
        (``stages.merge_sampled``: each keeps its target and ranking group). The exact
        rows whose base the map surely blocks (``SceneChecker.surely_on_map``, one
        look-up per row) are labelled ``base_collision`` before verification: they would
        fail whatever the camera sees.

        Returns:
            The merged proposals and verified rows, and the number of extra proposals
            (0: no fallback).
        """
        wc = self.config.world
        removed = np.isin(s.outcome, [CODE[k] for k in WORLD_OUTCOMES]).any()
        if not removed or int(v.good.sum()) >= wc.min_feasible:
            return s, v, 0
        sampler = DenseGridSampler(self.manifold) if self.manifold is not None else self.sampler
        targets = None
        if s.targets is not None:
            budget = (wc.fallback_samples, wc.fallback_samples)
            targets = self.expand(grasps, T_grasps, rng, sampler, budget)
        s2 = self.sample(T, rng, targets, sampler, wc.fallback_samples)
        if s2.proposals.exact and s2.alive.any():
            idx = np.flatnonzero(s2.alive)
            s2.remove(idx[self.scene.surely_on_map(world, s2.q[idx])], "base_collision")
        if not s2.proposals.exact and s2.alive.any():
            self.coarse_filter(s2.T, s2)
            self.refine(s2.T, s2)
        v2 = self.verify(s2.T, s2)
        self.scene_filter(world, s2, v2)
        return merge_sampled(s, s2), merge_verified(v, v2, s.n), s2.n

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
        if clearance is not None:  # with a world only
            metrics["clearance_m"] = clearance
        terms = score_terms(metrics, pc, current_base)  # robustness not yet measured: 0
        if clearance is not None:
            terms["clearance"] = clearance_term(clearance, self.config.world)
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
                self.robot, self.visibility, r.q[r.chosen], target_rows(T, r.idx[r.chosen]),
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
                top_k: int | None = None, alternatives=(),
                world: World | None = None) -> ProposalResult:
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
            world: the obstacles, in the grasp's world frame (default: the one of
                :meth:`set_world`, if any).

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
        world = self.world if world is None else world
        extra = None
        if world is not None and not world.empty:
            self.scene_filter(world, s, v)
            clock.tick("scene")
            s, v, extra = self.fallback(T, rng, world, s, v, grasps, [T, *T_alt])
            clock.tick("fallback")
        else:
            world = None
        funnel = self._funnel(s, extra)
        if not v.good.any():
            funnel["returned"] = 0
            # the robot's numbers, and a grid check of a fixed grasp
            reason = self.diagnosis.reason(funnel, s.n, T, world, subject=subject_of(grasps),
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


def propose(grasp: Grasp, current_base: BasePose | None = None,
            config: StanceConfig | None = None,
            rng: np.random.Generator | None = None) -> ProposalResult:
    """Build a :class:`StanceProposer` and propose once (slow: builds the model every call)."""
    return StanceProposer(config).propose(grasp, current_base, rng)
