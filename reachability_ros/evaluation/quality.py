"""The quality of exact stances, by the ranking's own terms (numpy; no torch).

The ranking (``core/ranking.py``) scores a verified stance by its visibility margin,
manipulability, joint-limit margin, robustness to navigation error, pose error and,
with a start pose, travel and turn. For a stance that reaches the grasp exactly and
without a start pose what remains is

    quality = visibility + manipulability + limits + robustness

with the weights of the proposal config (``w_*``) and the robustness measured by the
ranking's linearized estimate (``ranking.linear_robustness``) over a fixed set of base
perturbations, so that the same stance always gets the same quality (the service
re-solves the robustness of the stances it returns with random perturbations; the
linearized figure is its deterministic proxy). :class:`StanceQuality` computes it with
the core's functions (``ranking.score_terms``), so it is the ranking's score, not a
copy of it. It is what the mixture family is trained toward (``training/target.py``) and
what the benchmark of the model families (``bench/bench_families.py``) judges samples by.

:func:`quality_reference` puts one grasp's exact ground truth (``ground_truth.py``) in
these terms: the best exact stance and the quality above which a stance is among the
best ``top_fraction`` of the grasp's stance set (by area).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.config import ProposalConfig
from ..core.ranking import linear_robustness, perturbations, score_terms

#: the score terms that make up the quality (in this order)
QUALITY_TERMS = ("visibility", "manipulability", "limits", "robustness")


class StanceQuality:
    """Quality of exact stances of the robot (``core/ranking.py`` terms).

    Args:
        robot: the :class:`~reachability_ros.core.robot.WholeBodyModel`.
        visibility: its :class:`~reachability_ros.core.visibility.Visibility`.
        config: the proposal config whose weights, perturbation model and visibility
            margin apply (default: the service's defaults).
        n_perturbations: base perturbations of the linearized robustness (0: no
            robustness term).
        seed: seed of the fixed perturbations.
    """

    def __init__(self, robot, visibility, config: ProposalConfig | None = None,
                 n_perturbations: int = 64, seed: int = 0) -> None:
        self.robot = robot
        self.visibility = visibility
        self.config = config or ProposalConfig()
        self.delta = perturbations(np.random.default_rng(seed), int(n_perturbations),
                                   self.config)

    def evaluate(self, q: np.ndarray) -> dict[str, Any]:
        """Return the quality of stances and whether they are feasible.

        Args:
            q: ``(M, nq)`` stances that reach their grasp exactly (rows with NaN are
                infeasible).

        Returns:
            ``quality (M,)`` (NaN for rows with NaN), ``feasible (M,)`` (finite, within
            the joint limits, visible with at least ``min_visibility_margin_m``), and
            ``terms``: the weighted terms ``(M,)`` of :data:`QUALITY_TERMS` (the
            robustness is measured for the feasible rows only: 0 elsewhere).
        """
        q = np.asarray(q, dtype=float)
        M = len(q)
        finite = np.all(np.isfinite(q), axis=1)
        quality = np.full(M, np.nan)
        feasible = np.zeros(M, dtype=bool)
        terms = {k: np.full(M, np.nan) for k in QUALITY_TERMS}
        idx = np.flatnonzero(finite)
        if not idx.size:
            return {"quality": quality, "feasible": feasible, "terms": terms}
        robot, cfg = self.robot, self.config
        qf = q[idx]
        X = robot.base_chain(qf)
        p_tool, _ = robot.frame_in_chain(X, robot.config.tool_frame)
        vis = self.visibility.check_chain(p_tool, X)
        q0 = qf.copy()
        q0[:, :3] = 0.0
        J = robot.jacobian(q0, chain=X)
        ok = robot.within_limits(qf) & vis.visible & (vis.margin >= cfg.min_visibility_margin_m)
        robustness = np.zeros(len(idx))  # measured where feasible only (the costly term)
        if len(self.delta) and ok.any():
            robustness[ok] = linear_robustness(robot, q0[ok], self.delta, cfg, jacobian=J[ok])
        zero = np.zeros(len(idx))
        metrics = {"q": qf, "position_error_m": zero, "orientation_error_rad": zero,
                   "angle_margin_rad": vis.angle_margin_rad,
                   "occlusion_margin_m": vis.occlusion_margin_m,
                   "manipulability": robot.manipulability(q0, jacobian=J),
                   "limit_margin": robot.limit_margin(qf), "robustness": robustness}
        t = score_terms(metrics, cfg)
        for k in QUALITY_TERMS:
            terms[k][idx] = t[k]
        quality[idx] = sum(t[k] for k in QUALITY_TERMS)
        feasible[idx] = ok
        return {"quality": quality, "feasible": feasible, "terms": terms}


def quality_reference(gt: dict[str, Any], quality: StanceQuality,
                      top_fraction: float = 0.1) -> dict[str, float]:
    """Return the best exact quality of a grasp and its top-``top_fraction`` threshold.

    Args:
        gt: :func:`~reachability_ros.evaluation.ground_truth.ground_truth` of the grasp
            (its stances are feasible; their ``weight`` is their share of the area).
        quality: the :class:`StanceQuality`.
        top_fraction: share of the stance set (by area) counted as the best.

    Returns:
        ``best`` (the largest quality on the ground-truth grid), ``threshold`` (the
        quality that the best ``top_fraction`` of the stance set's area reaches or
        exceeds) and ``n`` (ground-truth stances); NaNs when the set is empty.
    """
    if len(gt["q"]) == 0:
        return {"best": float("nan"), "threshold": float("nan"), "n": 0.0}
    qv = quality.evaluate(gt["q"])["quality"]
    order = np.argsort(-qv)
    cum = np.cumsum(gt["weight"][order])
    k = int(np.searchsorted(cum, top_fraction * cum[-1]))
    return {"best": float(qv[order[0]]), "threshold": float(qv[order[min(k, len(qv) - 1)]]),
            "n": float(len(qv))}
