"""Score terms, robustness to navigation error, and a diverse top-k.

Score of a stance (higher is better), every term documented and weighted by
``ProposalConfig.w_*``::

    score =   w_visibility     * (0.7 * clip(angle margin / 10 deg, -1, 1)
                                  + 0.3 * clip(occlusion clearance / 2 cm, -1, 1))
            + w_manipulability * min(manipulability / 0.02 m^3, 1)
            + w_limits         * joint-limit margin / 0.5          (0 at a limit, 1 mid-range)
            + w_robustness     * robustness                          (fraction in [0, 1])
            - w_pose_error     * (pos_err / 0.1 mm + ori_err / 0.05 deg)
            - w_travel         * distance from the current base (m)  (when it is known)
            - w_turn           * |yaw change| from the current base (rad)

Robustness is the "ball of feasible configurations" (seed 000 §1.2(3)): the
fraction of perturbed base poses (Gaussian, sigma_xy, sigma_yaw) from which the
arm alone still puts the tool within the grasp tolerance and keeps it visible.
A 5-DoF arm cannot absorb a generic 3-DoF base error (kinematics-notes.md), so
the figure only means something with the tolerance stated next to it. Two
passes: a linearized estimate for many stances (the part of the base error the
arm Jacobian cannot reach, weighted so that the tolerance box becomes a ball),
then the nonlinear arm-only re-solve and visibility check for the few returned.
"""

from __future__ import annotations

import numpy as np

from .config import ProposalConfig
from .refine import refine
from .robot import WholeBodyModel
from .visibility import Visibility

ANGLE_SCALE_RAD = np.radians(10.0)  # the FOV is an assumption: keep targets off the edges
OCCLUSION_SCALE_M = 0.02  # the lens is 2 cm ahead of the deck: clearance saturates there
MANIP_SCALE = 0.02


def perturbations(rng: np.random.Generator, n: int, cfg: ProposalConfig) -> np.ndarray:
    """Base pose errors ``(n, 3)`` (dx, dy in the base frame, dyaw)."""
    d = rng.standard_normal((n, 3))
    d[:, :2] *= cfg.base_sigma_xy_m
    d[:, 2] *= np.radians(cfg.base_sigma_yaw_deg)
    return d


def perturb_base(q: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Apply base errors ``(S, 3)`` (in each base frame) to stances ``(M, nq)`` -> ``(M, S, nq)``."""
    M, S = q.shape[0], delta.shape[0]
    out = np.repeat(q[:, None, :], S, axis=1)
    c, s = np.cos(q[:, 2])[:, None], np.sin(q[:, 2])[:, None]
    out[:, :, 0] += c * delta[None, :, 0] - s * delta[None, :, 1]
    out[:, :, 1] += s * delta[None, :, 0] + c * delta[None, :, 1]
    out[:, :, 2] += delta[None, :, 2]
    return out


def linear_robustness(robot: WholeBodyModel, q: np.ndarray, delta: np.ndarray,
                      cfg: ProposalConfig, oMi: np.ndarray | None = None) -> np.ndarray:
    """Linearized robustness ``(M,)``: fraction of base errors the arm absorbs to tolerance.

    For each stance, the tool error caused by a base error ``db`` is ``J_b db``;
    the arm removes its projection on the range of ``J_a`` (least squares in the
    metric where the tolerance box is a ball); what is left, ``(I - J_a J_a^+) J_b db``,
    must be inside the tolerance.
    """
    J = robot.jacobian(q, oMi=oMi)
    tol_p, tol_o = cfg.grasp_tolerance_m, np.radians(cfg.grasp_tolerance_deg)
    w = np.array([1 / tol_p] * 3 + [1 / tol_o] * 3)
    Jw = J * w[None, :, None]
    Ja, Jb = Jw[:, :, 3:], Jw[:, :, :3]
    # orthonormal basis of range(Ja) via QR; residual = Jb db - Q Q^T Jb db
    Q, _ = np.linalg.qr(Ja)
    # base error in world coordinates: rotate (dx, dy) of the base frame
    c, s = np.cos(q[:, 2]), np.sin(q[:, 2])
    dbw = np.empty((q.shape[0], delta.shape[0], 3))
    dbw[:, :, 0] = c[:, None] * delta[None, :, 0] - s[:, None] * delta[None, :, 1]
    dbw[:, :, 1] = s[:, None] * delta[None, :, 0] + c[:, None] * delta[None, :, 1]
    dbw[:, :, 2] = delta[None, :, 2]
    r = np.einsum("mij,msj->msi", Jb, dbw)
    r = r - np.einsum("mik,msk->msi", Q, np.einsum("mik,msi->msk", Q, r))
    ok = (np.linalg.norm(r[:, :, :3], axis=2) <= 1.0) & (np.linalg.norm(r[:, :, 3:], axis=2) <= 1.0)
    return ok.mean(axis=1)


def nonlinear_robustness(robot: WholeBodyModel, visibility: Visibility, q: np.ndarray,
                         T_goal: np.ndarray, delta: np.ndarray,
                         cfg: ProposalConfig) -> np.ndarray:
    """Robustness ``(M,)`` with the arm-only nonlinear re-solve and a visibility check."""
    M, S = q.shape[0], delta.shape[0]
    if M == 0 or S == 0:
        return np.zeros(M)
    qp = perturb_base(q, delta).reshape(M * S, -1)
    res = refine(robot, qp, T_goal, iterations=3, columns=np.arange(3, robot.nq),
                 position_tol_m=0.1 * cfg.grasp_tolerance_m,
                 orientation_tol_rad=0.1 * np.radians(cfg.grasp_tolerance_deg))
    ok = (res.position_error_m <= cfg.grasp_tolerance_m) & (
        res.orientation_error_rad <= np.radians(cfg.grasp_tolerance_deg))
    v = visibility.check(res.q)
    vis = v.visible & (v.margin >= cfg.min_visibility_margin_m)
    return (ok & vis).reshape(M, S).mean(axis=1)


def score_terms(metrics: dict, cfg: ProposalConfig, current_base=None) -> dict:
    """Weighted score terms per stance (arrays ``(M,)``) from the raw metrics."""
    terms = {
        "visibility": cfg.w_visibility * (
            0.7 * np.clip(metrics["angle_margin_rad"] / ANGLE_SCALE_RAD, -1.0, 1.0)
            + 0.3 * np.clip(np.nan_to_num(metrics["occlusion_margin_m"], posinf=1.0)
                            / OCCLUSION_SCALE_M, -1.0, 1.0)),
        "manipulability": cfg.w_manipulability * np.clip(
            metrics["manipulability"] / MANIP_SCALE, 0.0, 1.0),
        "limits": cfg.w_limits * np.clip(metrics["limit_margin"] / 0.5, -1.0, 1.0),
        "robustness": cfg.w_robustness * np.nan_to_num(metrics.get(
            "robustness", np.zeros_like(metrics["limit_margin"])), nan=0.0),
        "pose_error": -cfg.w_pose_error * (metrics["position_error_m"] / 1e-4
                                           + metrics["orientation_error_rad"]
                                           / np.radians(0.05)),
    }
    if current_base is not None:
        q = metrics["q"]
        terms["travel"] = -cfg.w_travel * np.hypot(q[:, 0] - current_base.x,
                                                   q[:, 1] - current_base.y)
        terms["turn"] = -cfg.w_turn * np.abs(np.angle(np.exp(1j * (q[:, 2] - current_base.yaw))))
    return terms


def diverse_top_k(q: np.ndarray, score: np.ndarray, k: int, min_distance_m: float,
                  min_yaw_rad: float) -> np.ndarray:
    """Greedy non-maximum suppression in SE(2): indices of up to ``k`` stances, best first.

    A stance is a duplicate of an accepted one when it is closer than
    ``min_distance_m`` in (x, y) AND closer than ``min_yaw_rad`` in yaw.
    """
    order = np.argsort(-score, kind="stable")
    qo = q[order]
    free = np.ones(len(order), dtype=bool)
    keep: list[int] = []
    while len(keep) < k:
        rest = np.flatnonzero(free)
        if rest.size == 0:
            break
        j = rest[0]  # the best stance not yet suppressed
        keep.append(int(order[j]))
        near = (np.hypot(qo[rest, 0] - qo[j, 0], qo[rest, 1] - qo[j, 1]) < min_distance_m) & (
            np.abs(np.angle(np.exp(1j * (qo[rest, 2] - qo[j, 2])))) < min_yaw_rad)
        free[rest[near]] = False
        free[j] = False
    return np.array(keep, dtype=int)
