"""The stance proposal pipeline: grasp in, ranked verified whole-body stances out.

``StanceProposer(config).propose(grasp, current_base, rng)``:

1. validate the request (finite numbers, unit quaternion, sane height) -> InvalidRequest;
2. sample proposals (ONNX model, exact grid or rejection baseline);
3. drop proposals the sampler marks infeasible, and (approximate samplers)
   those too far from the grasp to refine;
4. refine approximate proposals (closed-form projection or Levenberg-Marquardt);
5. verify: joint limits, FK recomputed against the grasp, visibility
   (frustum, self-occlusion, margin);
6. score (visibility, manipulability, limit margin, pose error, travel/turn),
   linearized robustness for the best, diverse top-k, then the nonlinear
   robustness re-solve for the returned stances.

Every returned stance was re-verified by FK after refinement. When nothing
survives, ``result.reason`` says why, with the funnel counts and the robot's
numbers (``core/diagnosis.py``).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

import numpy as np

from .config import ProposalConfig, StanceConfig
from .diagnosis import FailureDiagnosis
from .errors import ConfigError, DescriptionError, InvalidRequest
from .outcomes import CODE, LABELS, LABELS_ARRAY, OUTCOMES
from .paths import resolve_data_path
from .geometry import grasp_in_base_frames, rotation_angle
from .ranking import (diverse_top_k, linear_robustness, nonlinear_robustness, perturbations,
                      robustness_term, score_terms)
from .refine import refine
from .robot import WholeBodyModel
from .samplers import GridSampler, ModelSampler, Proposals, RejectionSampler
from .types import BasePose, Candidate, Grasp, ProposalResult
from .visibility import Visibility

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
    norm = float(np.linalg.norm(q))
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
    # one pose: plain floats (the same formula as geometry.quat_to_matrix)
    x, y, z, w = (float(v) / norm for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y), float(p[0])],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x), float(p[1])],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y), float(p[2])],
        [0.0, 0.0, 0.0, 1.0]])


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

    def _make_sampler(self, pc: ProposalConfig):
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

    def _tool_error(self, q: np.ndarray, T: np.ndarray, chain: np.ndarray | None = None):
        """Position and orientation errors ``(N,)`` of the tool against the grasp, and the
        tool positions ``(3, N)`` in each base frame (exact far from the world origin)."""
        if chain is None:
            chain = self.robot.base_chain(q)
        p_tool, R_tool = self.robot.frame_in_chain(chain, self.robot.config.tool_frame)
        pg, Rg = grasp_in_base_frames(T, q)
        dp = np.sqrt(((pg - p_tool) ** 2).sum(0))
        dr = rotation_angle(np.einsum("ikn,jkn->nij", Rg, R_tool))
        return dp, dr, p_tool

    # ------------------------------------------------------------------ main
    def propose(self, grasp: Grasp, current_base: BasePose | None = None,
                rng: np.random.Generator | None = None,
                top_k: int | None = None) -> ProposalResult:
        """Propose ranked stances for one grasp.

        Args:
            grasp: desired tool pose in a world frame.
            current_base: where the base is now (for the travel/turn terms), or None.
            rng: random generator (default: seeded from ``proposal.seed``).
            top_k: number of stances to return (default ``proposal.top_k``).

        Returns:
            A :class:`ProposalResult`; ``ok`` is False with a reason and the
            funnel when nothing survives.

        Raises:
            InvalidRequest: the grasp is malformed.
        """
        pc = self.config.proposal
        t0 = time.perf_counter()
        timing = OrderedDict()
        T = validate_grasp(grasp, pc)
        if current_base is not None and not all(
                math.isfinite(v) for v in (current_base.x, current_base.y, current_base.yaw)):
            raise InvalidRequest(f"current base pose has non-finite values: {current_base}")
        rng = rng if rng is not None else np.random.default_rng(pc.seed)
        k = pc.top_k if top_k is None else top_k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 1000:
            raise InvalidRequest(f"top_k must be an integer in [1, 1000], got {top_k!r}")
        robot = self.robot

        def tick(name: str, since: float) -> float:
            now = time.perf_counter()
            timing[name] = (now - since) * 1e3
            return now

        # 2. sample
        props: Proposals = self.sampler.sample(T, pc.n_samples, rng)
        t = tick("sample", t0)
        n = props.q.shape[0]
        outcome = np.zeros(n, dtype=np.int8)  # index into LABELS; 0 = kept
        q = props.q.copy()
        finite = np.all(np.isfinite(q), axis=1)
        alive = props.valid & finite
        outcome[~alive] = CODE["unreachable"]
        # exact samplers mark out-of-limit solutions invalid: tell them apart
        lim_bad = ~alive & finite
        if lim_bad.any():
            outcome[np.flatnonzero(lim_bad)[~robot.within_limits(q[lim_bad])]] = CODE[
                "joint_limits"]
        # 3-4. coarse filter and refinement of approximate proposals
        if not props.exact and alive.any():
            idx = np.flatnonzero(alive)
            dp, dr, _ = self._tool_error(q[idx], T)
            far = (dp > pc.coarse_position_tol_m) | (dr > np.radians(pc.coarse_orientation_tol_deg))
            if isinstance(self.sampler, RejectionSampler):
                far[:] = False  # the baseline relies on refinement from afar
            outcome[idx[far]] = CODE["far_from_grasp"]
            alive[idx[far]] = False
            idx = np.flatnonzero(alive)
            t = tick("coarse_filter", t)
            if idx.size:
                qr = q[idx].copy()
                todo = np.ones(idx.size, dtype=bool)
                if self.refinement == "exact":
                    # rows the closed form cannot project (a lift without an elbow
                    # solution) are dropped: with N proposals, a few are cheap to lose
                    qr, _ = self.manifold.project(q[idx], T)
                    todo[:] = False
                if todo.any():
                    res = refine(robot, q[idx[todo]], T, iterations=pc.refine_iterations,
                                 position_tol_m=0.5 * pc.refine_position_tol_m,
                                 orientation_tol_rad=0.5 * np.radians(
                                     pc.refine_orientation_tol_deg))
                    qr[todo] = res.q
                ok = np.all(np.isfinite(qr), axis=1)
                qr[:, 2] = np.angle(np.exp(1j * qr[:, 2]))  # base yaw back into (-pi, pi]
                q[idx] = qr
                outcome[idx[~ok]] = CODE["refine_failed"]
                alive[idx[~ok]] = False
            t = tick("refine", t)
        # 5. verify: limits, FK, visibility
        idx = np.flatnonzero(alive)
        lim = robot.within_limits(q[idx])
        outcome[idx[~lim]] = CODE["joint_limits"]
        idx = idx[lim]
        # one structure-of-arrays FK pass in the base frame serves the check, visibility
        # and ranking; the grasp is brought into each base frame (exact at any distance
        # from the world origin)
        X = robot.base_chain(q[idx])
        dp, dr, p_tool = self._tool_error(q[idx], T, X)
        bad = (dp > pc.refine_position_tol_m) | (dr > np.radians(pc.refine_orientation_tol_deg))
        outcome[idx[bad]] = CODE["fk_mismatch" if props.exact else "refine_failed"]
        if bad.any():
            keep = ~bad
            idx, dp, dr, X, p_tool = idx[keep], dp[keep], dr[keep], X[..., keep], p_tool[:, keep]
        vis = self.visibility.check_chain(p_tool, X)
        labels = np.where(~vis.in_frustum, CODE["not_visible"],
                          np.where(vis.occluded, CODE["occluded"],
                                   np.where(vis.margin < pc.min_visibility_margin_m,
                                            CODE["low_visibility_margin"], 0)))
        outcome[idx] = labels
        good = labels == 0
        t = tick("verify", t)
        counts = np.bincount(outcome, minlength=len(LABELS))
        funnel = OrderedDict(proposed=int(n))
        for key in OUTCOMES:
            funnel[key] = int(counts[CODE[key]])
        funnel["feasible"] = int(counts[0])
        if not good.any():
            funnel["returned"] = 0
            reason = self.diagnosis.reason(funnel, n, T)  # the robot's numbers, a grid check
            timing["total"] = (time.perf_counter() - t0) * 1e3
            return ProposalResult(False, reason, [], robot.joint_names,
                                  dict(funnel), dict(timing), self.sampler_name, props.q,
                                  LABELS_ARRAY[outcome], grasp)
        # 6. score, robustness, diverse top-k
        if not good.all():
            idx, dp, dr, X = idx[good], dp[good], dr[good], X[..., good]
            vis = vis.subset(good)
        qf = q[idx]
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
            # base frame: the perturbations are already expressed in it
            rob[top] = linear_robustness(robot, q_base0[top], delta, pc, jacobian=J[top])
        metrics["robustness_linear"] = rob
        metrics["robustness"] = rob
        terms["robustness"] = robustness_term(rob, pc)
        score = pre + terms["robustness"]
        chosen = diverse_top_k(qf, score, k, pc.nms_min_distance_m,
                               np.radians(pc.nms_min_yaw_deg))
        t = tick("rank", t)
        if pc.robustness_samples > 0 and chosen.size:
            rob = rob.copy()
            rob[chosen] = nonlinear_robustness(robot, self.visibility, qf[chosen], T, delta, pc,
                                               iterations=pc.robustness_iterations,
                                               chain=X[..., chosen])
            metrics["robustness"] = rob
            terms["robustness"] = robustness_term(rob, pc)
            score = pre + terms["robustness"]
            chosen = chosen[np.argsort(-score[chosen], kind="stable")]
        t = tick("robustness", t)
        funnel["not_in_top_k"] = int(idx.size - chosen.size)
        funnel["returned"] = int(chosen.size)
        # Python floats for the chosen stances, one conversion per metric and term
        mcols = {key: v[chosen].tolist() for key, v in metrics.items() if key != "q"}
        tcols = {name: v[chosen].tolist() for name, v in terms.items()}
        scores, sample_index = score[chosen].tolist(), idx[chosen].tolist()
        cands = []
        for r, i in enumerate(chosen):
            m = {key: col[r] for key, col in mcols.items()}
            m["visible"] = True
            m["sample_index"] = sample_index[r]
            cands.append(Candidate(qf[i].copy(), scores[r],
                                   {name: col[r] for name, col in tcols.items()}, m))
        timing["total"] = (time.perf_counter() - t0) * 1e3
        return ProposalResult(True, "", cands, robot.joint_names, dict(funnel), dict(timing),
                              self.sampler_name, props.q, LABELS_ARRAY[outcome], grasp,
                              feasible_q=qf)


def propose(grasp: Grasp, current_base: BasePose | None = None,
            config: StanceConfig | None = None,
            rng: np.random.Generator | None = None) -> ProposalResult:
    """One-shot convenience: build a :class:`StanceProposer` and propose (slow: builds the model)."""
    return StanceProposer(config).propose(grasp, current_base, rng)
