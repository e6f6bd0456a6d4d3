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
            + w_clearance      * min(clearance / cap, 1)             (with a world only)

The clearance (``core/scene.py``) is the distance from the base footprint to the
nearest blocked map cell, or from the base's shapes to the nearest box, whichever is
smaller; ``w_clearance`` and the cap are ``world.w_clearance`` and
``world.clearance_cap_m``. Like Stretch's FUNMAP, which picks the base cell farthest
from the edge of the feasible region, it prefers stances that a navigation error does
not push into an obstacle, up to the cap.

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

import math

import numpy as np

from .config import ProposalConfig
from .geometry import clamp, compose_planar, grasp_in_base_frames, log_so3, wrap_angle
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


def _rotation_error(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Rotation vectors ``(3, N)`` of ``Ra Rb^T`` for rotations ``(3, 3, N)`` each."""
    return log_so3(np.einsum("ikn,jkn->nij", Ra, Rb)).T


def linear_robustness(robot: WholeBodyModel, q: np.ndarray, delta: np.ndarray,
                      cfg: ProposalConfig, oMi: np.ndarray | None = None,
                      chain: np.ndarray | None = None, method: str = "auto",
                      jacobian: np.ndarray | None = None) -> np.ndarray:
    """Linearized robustness ``(M,)``: fraction of base errors the arm absorbs to tolerance.

    For each stance, the tool error caused by a base error ``db`` is ``J_b db``;
    the arm removes its projection on the range of ``J_a`` (least squares in the
    metric where the tolerance box is a ball); what is left, ``(I - J_a J_a^+) J_b db``,
    must be inside the tolerance.

    With a 5-joint arm, ``range(J_a)`` is a hyperplane of the 6-D twist space and
    what is left is along its normal ``n`` (the generalized cross product of the
    five columns: signed 5 x 5 minors), so the residual is ``(n . J_b db) n``: a
    scalar per base error (``method="normal"``). Singular arms (rank < 5) and
    other arms use an orthonormal basis from QR (``method="qr"``).
    """
    J = robot.jacobian(q, oMi=oMi, chain=chain) if jacobian is None else jacobian
    tol_p, tol_o = cfg.grasp_tolerance_m, np.radians(cfg.grasp_tolerance_deg)
    w = np.array([1 / tol_p] * 3 + [1 / tol_o] * 3)
    Jw = J * w[None, :, None]
    Ja, Jb = Jw[:, :, 3:], Jw[:, :, :3]
    # base error in world coordinates: rotate (dx, dy) of the base frame
    c, s = np.cos(q[:, 2]), np.sin(q[:, 2])
    dbw = np.empty((q.shape[0], delta.shape[0], 3))
    dbw[:, :, 0] = c[:, None] * delta[None, :, 0] - s[:, None] * delta[None, :, 1]
    dbw[:, :, 1] = s[:, None] * delta[None, :, 0] + c[:, None] * delta[None, :, 1]
    dbw[:, :, 2] = delta[None, :, 2]
    ok = np.zeros((q.shape[0], delta.shape[0]), dtype=bool)
    qr_rows = np.ones(q.shape[0], dtype=bool)
    if method in ("auto", "normal") and Ja.shape[2] == 5:
        minors = np.linalg.det(Ja[:, _ROWS_BUT_ONE, :])  # (M, 6)
        n = minors * _ALTERNATING
        norm = np.sqrt((n ** 2).sum(1))
        scale = np.prod(np.sqrt((Ja ** 2).sum(1)), axis=1)  # Hadamard bound of |n|
        regular = norm > 1e-9 * scale
        if method == "normal":
            regular[:] = True
        n = n[regular] / norm[regular, None]
        a = np.einsum("mi,mij->mj", n, Jb[regular])  # the residual's size per unit base error
        alpha = np.abs(np.einsum("msj,mj->ms", dbw[regular], a))
        reach = np.maximum(np.sqrt((n[:, :3] ** 2).sum(1)), np.sqrt((n[:, 3:] ** 2).sum(1)))
        ok[regular] = alpha * reach[:, None] <= 1.0
        qr_rows = ~regular
    if qr_rows.any():
        # orthonormal basis of range(Ja) via QR; residual = Jb db - Q Q^T Jb db
        Q, _ = np.linalg.qr(Ja[qr_rows])
        r = np.einsum("mij,msj->msi", Jb[qr_rows], dbw[qr_rows])
        r = r - np.einsum("mik,msk->msi", Q, np.einsum("mik,msi->msk", Q, r))
        ok[qr_rows] = (np.linalg.norm(r[:, :, :3], axis=2) <= 1.0) & (
            np.linalg.norm(r[:, :, 3:], axis=2) <= 1.0)
    return ok.mean(axis=1)


_ROWS_BUT_ONE = np.array([[r for r in range(6) if r != i] for i in range(6)])
_ALTERNATING = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])


def nonlinear_robustness(robot: WholeBodyModel, visibility: Visibility, q: np.ndarray,
                         T_goal: np.ndarray, delta: np.ndarray, cfg: ProposalConfig,
                         iterations: int = 2, damping: float = 10.0,
                         chain: np.ndarray | None = None) -> np.ndarray:
    """Robustness ``(M,)`` with an arm-only nonlinear re-solve and a visibility check.

    For each stance and base error, the base lands at the perturbed pose; the arm
    alone is re-solved by Levenberg-Marquardt (least squares in the metric where the
    tolerance box is a ball, started at the stance's own arm joints, clipped to
    the limits), all in the landed base frame; the perturbation counts when the
    tool error recomputed by FK after the solve is within the tolerance and the
    front camera still sees the tool (margin included).

    Args:
        robot: the whole-body model.
        visibility: the visibility checker of ``robot``.
        q: ``(M, nq)`` stances (world frame).
        T_goal: ``(4, 4)`` grasp.
        delta: ``(S, 3)`` base errors (dx, dy in the base frame, dyaw).
        cfg: tolerances (``grasp_tolerance_*``) and ``min_visibility_margin_m``.
        iterations: Levenberg-Marquardt steps after the shared start. Against a
            30-step solve, two decide the same for 97 % of the base errors, three
            for 98.5 % (test_ranking.py); the fraction over 16 base errors has a
            Monte-Carlo standard error of about 0.09, larger than either bias.
        damping: initial damping of the normal equations (weighted units, where
            ``J^T J`` is of order 10^2; 10 agreed best with the reference among
            0.01 ... 300).
        chain: optional :meth:`WholeBodyModel.base_chain` of ``q`` (saves one FK).
    """
    M, S = q.shape[0], delta.shape[0]
    if M == 0 or S == 0:
        return np.zeros(M)
    qp = compose_planar(q, delta).reshape(M * S, -1)
    n = qp.shape[0]
    pg, RgB = grasp_in_base_frames(T_goal, qp)  # the grasp seen from each landed base
    tol_p, tol_o = cfg.grasp_tolerance_m, np.radians(cfg.grasp_tolerance_deg)
    w = np.array([1 / tol_p] * 3 + [1 / tol_o] * 3)[:, None]
    tool = robot.config.tool_frame
    j_t = robot.frame_placement(tool)[0]
    lo, hi = robot.lower[3:, None], robot.upper[3:, None]
    n_arm = robot.nq - 3
    chain_model = robot.chain

    def evaluate(qa, jacobian=True):
        """Chain, tool position, weighted residual and Jacobian at arm joints ``(n_arm, n)``."""
        X = chain_model.poses(np.cos(qa), np.sin(qa))  # base frame
        p, R = robot.frame_in_chain(X, tool)
        e = np.empty((6, qa.shape[1]))
        e[:3] = pg - p
        e[3:] = _rotation_error(RgB, R)
        if not jacobian:  # after the last step
            return X, p, e * w, J
        Jn = np.zeros((6, n_arm, qa.shape[1]))
        chain_model.jacobian_columns(X, p, j_t, Jn)
        return X, p, e * w, Jn * w[:, :, None]

    # start: every base error of a stance shares its arm joints, hence its chain and
    # Jacobian; only the grasp, seen from the landed base, differs
    if chain is None:
        chain = robot.base_chain(q)
    p0, R0 = robot.frame_in_chain(chain, tool)
    J0 = np.zeros((6, n_arm, M))
    chain_model.jacobian_columns(chain, p0, j_t, J0)
    J0 *= w[:, :, None]
    X, p = np.repeat(chain, S, axis=-1), np.repeat(p0, S, axis=-1)
    e = np.empty((6, n))
    e[:3] = pg - p
    e[3:] = _rotation_error(RgB, np.repeat(R0, S, axis=-1))
    e *= w
    qa = np.ascontiguousarray(qp[:, 3:].T)  # (n_arm, n)
    cost = (e ** 2).sum(0)
    lam = np.full(n, damping)
    eye = np.eye(n_arm)
    J = None
    for it in range(iterations):  # Levenberg-Marquardt: keep a step only where it helps
        if it == 0:  # one shared system per stance, its S base errors as right-hand sides
            A = np.einsum("kim,kjm->mij", J0, J0) + damping * eye
            b = np.einsum("kim,kms->mis", J0, e.reshape(6, M, S))
            step = np.linalg.solve(A, b).transpose(1, 0, 2).reshape(n_arm, n)
        else:
            A = np.einsum("kin,kjn->nij", J, J) + lam[:, None, None] * eye
            b = np.einsum("kin,kn->ni", J, e)
            step = np.linalg.solve(A, b[..., None])[..., 0].T
        qc = clamp(qa + step, lo, hi)
        last = it == iterations - 1
        Xc, pc, ec, Jc = evaluate(qc, jacobian=not last)
        cc = (ec ** 2).sum(0)
        better = cc < cost
        e, X, p = np.where(better, ec, e), np.where(better, Xc, X), np.where(better, pc, p)
        if not last:
            if J is None:
                J = np.repeat(J0, S, axis=-1)
            qa, J, cost = np.where(better, qc, qa), np.where(better, Jc, J), np.where(
                better, cc, cost)
            lam = np.where(better, np.maximum(lam * 0.3, 1e-6), lam * 10.0)
    # weighted residual: the tolerance box is the unit ball in each of its two parts
    ok = (np.sqrt((e[:3] ** 2).sum(0)) <= 1.0) & (np.sqrt((e[3:] ** 2).sum(0)) <= 1.0)
    v = visibility.check_chain(p, X)
    ok &= v.visible & (v.margin >= cfg.min_visibility_margin_m)
    return ok.reshape(M, S).mean(axis=1)


def robustness_term(robustness: np.ndarray, cfg: ProposalConfig) -> np.ndarray:
    """Weighted robustness term ``(M,)``; NaN (not measured) counts as 0."""
    return cfg.w_robustness * np.where(np.isnan(robustness), 0.0, robustness)


def clearance_term(clearance_m: np.ndarray, cfg) -> np.ndarray:
    """Weighted clearance term ``(M,)``: ``w_clearance * clip(clearance / cap, 0, 1)``.

    Args:
        clearance_m: ``(M,)`` clearances (m) of the stances.
        cfg: the :class:`~.config.WorldConfig` (``w_clearance``, ``clearance_cap_m``).
    """
    return cfg.w_clearance * clamp(np.asarray(clearance_m, dtype=float) / cfg.clearance_cap_m,
                                   0.0, 1.0)


def score_terms(metrics: dict, cfg: ProposalConfig, current_base=None) -> dict:
    """Weighted score terms per stance (arrays ``(M,)``) from the raw metrics."""
    terms = {
        "visibility": cfg.w_visibility * (
            0.7 * clamp(metrics["angle_margin_rad"] / ANGLE_SCALE_RAD, -1.0, 1.0)
            # the clearance is finite, or +inf without an occluder: that saturates at 1
            + 0.3 * clamp(metrics["occlusion_margin_m"] / OCCLUSION_SCALE_M, -1.0, 1.0)),
        "manipulability": cfg.w_manipulability * clamp(
            metrics["manipulability"] / MANIP_SCALE, 0.0, 1.0),
        "limits": cfg.w_limits * clamp(metrics["limit_margin"] / 0.5, -1.0, 1.0),
        "robustness": robustness_term(metrics.get(
            "robustness", np.zeros_like(metrics["limit_margin"])), cfg),
        "pose_error": -cfg.w_pose_error * (metrics["position_error_m"] / 1e-4
                                           + metrics["orientation_error_rad"]
                                           / np.radians(0.05)),
    }
    if current_base is not None:
        q = metrics["q"]
        terms["travel"] = -cfg.w_travel * np.hypot(q[:, 0] - current_base.x,
                                                   q[:, 1] - current_base.y)
        terms["turn"] = -cfg.w_turn * np.abs(wrap_angle(q[:, 2] - current_base.yaw))
    return terms


def diverse_top_k(q: np.ndarray, score: np.ndarray, k: int, min_distance_m: float,
                  min_yaw_rad: float) -> np.ndarray:
    """Greedy non-maximum suppression in SE(2): indices of up to ``k`` stances, best first.

    A stance is a duplicate of an accepted one when it is closer than
    ``min_distance_m`` in (x, y) AND closer than ``min_yaw_rad`` in yaw.
    """
    order = np.argsort(-score, kind="stable")
    # the stances not yet suppressed, best first (shrinking arrays): position x + iy and
    # heading e^(i yaw), so that a distance and a yaw difference are one abs each
    rest, xy, u = order, q[order, 0] + 1j * q[order, 1], np.exp(1j * q[order, 2])
    # |yaw difference wrapped to [-pi, pi]| >= min_yaw  <=>  the chord between the headings
    # on the unit circle is >= 2 sin(min_yaw / 2) (for min_yaw <= 0 always, > pi never).
    # The chord keeps small differences apart (a cosine rounds them to 1).
    chord_min = 2.0 * math.sin(0.5 * min_yaw_rad) if min_yaw_rad <= math.pi else math.inf
    keep: list[int] = []
    while len(keep) < k and rest.size:
        keep.append(int(rest[0]))  # the best stance not yet suppressed
        far = (np.abs(xy - xy[0]) >= min_distance_m) | (np.abs(u - u[0]) >= chord_min)
        far[0] = False
        rest, xy, u = rest[far], xy[far], u[far]
    return np.array(keep, dtype=int)
