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
from dataclasses import dataclass

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


def _without_roll(e: np.ndarray | None, J: np.ndarray | None, R: np.ndarray,
                  free: np.ndarray | None) -> None:
    """Drop, in place, the rotation about the tool's approach axis from the free columns.

    ``e`` ``(6, n)`` residuals and ``J`` ``(6, n_arm, n)`` Jacobians (rotation rows
    3-5, world-aligned in the base frame), ``R`` ``(3, 3, n)`` the tool rotations,
    ``free`` ``(n,)`` the columns of free-roll grasps (None: none): their rotation
    rows are projected off the tool's +z, ``(I - a a^T)``.
    """
    if free is None:
        return
    cols = slice(None) if free.all() else free  # all free: views, no copies
    a = R[:, 2, cols]  # (3, f) the approach axes
    if e is not None:
        r = e[3:, cols]
        e[3:, cols] = r - a * (a * r).sum(0)
    if J is not None:
        Jr = J[3:, :, cols]
        J[3:, :, cols] = Jr - a[:, None, :] * np.einsum("kf,kjf->jf", a, Jr)[None]


_ROWS_BUT_ONE = np.array([[r for r in range(6) if r != i] for i in range(6)])
_ALTERNATING = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])


@dataclass
class ArmSolution:
    """The arm-only re-solve of landed base poses (all last axes ``n``).

    Attributes:
        q_landed: ``(n, nq)`` the landed base poses with the start arm joints.
        arm: ``(n_arm, n)`` the solved arm joints (within limits).
        weighted_error: ``(6, n)`` the tool residual (grasp minus tool position, then the
            rotation vector of ``R_grasp R_tool^T``), in the base frame, divided by the
            tolerances: each of its two parts is inside the tolerance when its norm is <= 1.
        weights: ``(6, 1)`` the inverse tolerances that divided it.
        tool_base: ``(3, n)`` the tool origins in the base frames.
        chain: ``(njoints, 3, 4, n)`` the solved arms' joint poses in the base frames.

    The solved configurations and the errors in metres and radians are computed when
    asked for (the robustness measure needs only :meth:`within`).
    """

    q_landed: np.ndarray
    arm: np.ndarray
    weighted_error: np.ndarray
    weights: np.ndarray
    tool_base: np.ndarray
    chain: np.ndarray

    @property
    def q(self) -> np.ndarray:
        """``(n, nq)`` the landed base poses with the solved arm joints."""
        q = self.q_landed.copy()
        q[:, 3:] = self.arm.T
        return q

    @property
    def position_error_m(self) -> np.ndarray:
        """``(n,)`` the tool's distance to the grasp (m)."""
        return np.sqrt(((self.weighted_error[:3] / self.weights[:3]) ** 2).sum(0))

    @property
    def orientation_error_rad(self) -> np.ndarray:
        """``(n,)`` the tool's rotation away from the grasp (rad)."""
        return np.sqrt(((self.weighted_error[3:] / self.weights[3:]) ** 2).sum(0))

    def within(self) -> np.ndarray:
        """Return ``(n,)``: both parts of the residual inside the tolerances."""
        e = self.weighted_error
        return (np.sqrt((e[:3] ** 2).sum(0)) <= 1.0) & (np.sqrt((e[3:] ** 2).sum(0)) <= 1.0)


def arm_only_solve(robot: WholeBodyModel, q_landed: np.ndarray, T_goal: np.ndarray,
                   tolerance_m: float, tolerance_rad: float, iterations: int = 2,
                   damping: float = 10.0, chain: np.ndarray | None = None,
                   group: int = 1, free_roll: np.ndarray | None = None) -> ArmSolution:
    """Re-solve the arm alone for landed base poses: Levenberg-Marquardt in the base frame.

    The base stays where it landed; the five arm joints move, starting at the rows'
    own arm joints, to put the tool on the grasp seen from each landed base (least
    squares in the metric where the tolerance box is a ball: position over
    ``tolerance_m``, rotation over ``tolerance_rad``), clipped to the joint limits. A
    step is kept only where it lowers the residual (adaptive damping). The robustness
    measure (:func:`nonlinear_robustness`) and the navigator's arrival check
    (:mod:`.arrival`) both use it.

    Args:
        robot: the whole-body model.
        q_landed: ``(n, nq)`` landed base poses (world frame) with the start arm joints.
        T_goal: ``(4, 4)`` grasp, or ``(n // group, 4, 4)`` one per group.
        tolerance_m: position tolerance (m) of the metric.
        tolerance_rad: orientation tolerance (rad) of the metric.
        iterations: Levenberg-Marquardt steps.
        damping: initial damping of the normal equations (weighted units).
        chain: optional :meth:`WholeBodyModel.base_chain` of the start arm joints,
            one per group (``(njoints, 3, 4, n // group)``).
        group: rows come in ``n // group`` runs of ``group`` consecutive rows that share
            their start arm joints (one stance, several landed bases): their first step
            shares one factorization.
        free_roll: ``(n // group,)`` groups whose grasp takes any roll about its
            approach axis: a rotation about the tool's own +z is no error there (None:
            none).

    Returns:
        An :class:`ArmSolution`.
    """
    qp = np.asarray(q_landed, dtype=float)
    n, S = qp.shape[0], int(group)
    M = n // S
    T_goal = np.asarray(T_goal, dtype=float)
    if T_goal.ndim == 3:  # one target per group: each of its landed bases sees it
        T_goal = np.repeat(T_goal, S, axis=0)
    pg, RgB = grasp_in_base_frames(T_goal, qp)  # the grasp seen from each landed base
    free_m = None if free_roll is None or not np.any(free_roll) else np.asarray(free_roll, bool)
    free = None if free_m is None else np.repeat(free_m, S)
    w = np.array([1 / tolerance_m] * 3 + [1 / tolerance_rad] * 3)[:, None]
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
            _without_roll(e, None, R, free)
            return X, p, e * w, J
        Jn = np.zeros((6, n_arm, qa.shape[1]))
        chain_model.jacobian_columns(X, p, j_t, Jn)
        _without_roll(e, Jn, R, free)
        return X, p, e * w, Jn * w[:, :, None]

    # start: every landed base of a group shares its arm joints, hence its chain and
    # Jacobian; only the grasp, seen from the landed base, differs
    if chain is None:
        chain = robot.base_chain(qp[::S])
    p0, R0 = robot.frame_in_chain(chain, tool)
    J0 = np.zeros((6, n_arm, M))
    chain_model.jacobian_columns(chain, p0, j_t, J0)
    _without_roll(None, J0, R0, free_m)
    J0 *= w[:, :, None]
    X, p = np.repeat(chain, S, axis=-1), np.repeat(p0, S, axis=-1)
    e = np.empty((6, n))
    e[:3] = pg - p
    e[3:] = _rotation_error(RgB, np.repeat(R0, S, axis=-1))
    _without_roll(e, None, np.repeat(R0, S, axis=-1), free)
    e *= w
    qa = np.ascontiguousarray(qp[:, 3:].T)  # (n_arm, n)
    cost = (e ** 2).sum(0)
    lam = np.full(n, damping)
    eye = np.eye(n_arm)
    J = None
    for it in range(iterations):  # Levenberg-Marquardt: keep a step only where it helps
        if it == 0:  # one shared system per group, its landed bases as right-hand sides
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
        qa = np.where(better, qc, qa)
        if not last:
            if J is None:
                J = np.repeat(J0, S, axis=-1)
            J, cost = np.where(better, Jc, J), np.where(better, cc, cost)
            lam = np.where(better, np.maximum(lam * 0.3, 1e-6), lam * 10.0)
    return ArmSolution(qp, qa, e, w, p, X)


def nonlinear_robustness(robot: WholeBodyModel, visibility: Visibility, q: np.ndarray,
                         T_goal: np.ndarray, delta: np.ndarray, cfg: ProposalConfig,
                         iterations: int = 2, damping: float = 10.0,
                         chain: np.ndarray | None = None,
                         free_roll: np.ndarray | None = None) -> np.ndarray:
    """Robustness ``(M,)`` with an arm-only nonlinear re-solve and a visibility check.

    For each stance and base error, the base lands at the perturbed pose; the arm
    alone is re-solved by Levenberg-Marquardt (:func:`arm_only_solve`: least squares
    in the metric where the tolerance box is a ball, started at the stance's own arm
    joints, clipped to the limits), all in the landed base frame; the perturbation
    counts when the tool error recomputed by FK after the solve is within the
    tolerance and the front camera still sees the tool (margin included).

    Args:
        robot: the whole-body model.
        visibility: the visibility checker of ``robot``.
        q: ``(M, nq)`` stances (world frame).
        T_goal: ``(4, 4)`` grasp, or ``(M, 4, 4)`` the target of each stance.
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
        free_roll: ``(M,)`` stances whose grasp takes any roll about its approach
            axis (``Grasp.free_roll``): a rotation about the tool's own approach axis
            (its +z) is no error there, neither in the re-solve nor in the tolerance.
            It changes little (0.63 -> 0.65 over 40 grasps x 16 base errors): the
            wrist roll, which turns the tool about that axis, is the joint the freedom
            frees, and the other four still face the position and the approach
            direction.
    """
    M, S = q.shape[0], delta.shape[0]
    if M == 0 or S == 0:
        return np.zeros(M)
    qp = compose_planar(q, delta).reshape(M * S, -1)
    sol = arm_only_solve(robot, qp, T_goal, cfg.grasp_tolerance_m,
                         np.radians(cfg.grasp_tolerance_deg), iterations, damping, chain, S,
                         free_roll)
    # weighted residual: the tolerance box is the unit ball in each of its two parts
    ok = sol.within()
    v = visibility.check_chain(sol.tool_base, sol.chain)
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


def grouped_top_k(q: np.ndarray, score: np.ndarray, group: np.ndarray | None, k: int,
                  min_distance_m: float, min_yaw_rad: float) -> np.ndarray:
    """Diverse top-k (:func:`diverse_top_k`) in each group, concatenated, group 0 first.

    The pool whose robustness is measured when a request has several ranking groups
    (the two flips of a symmetric grasp, ``core/freedom.py``); with one group (or
    ``group`` None) it is the diverse top-k itself.

    Args:
        q: ``(f, nq)`` stances.
        score: ``(f,)`` their scores.
        group: ``(f,)`` non-negative group labels, or None.
        k: stances per group.
        min_distance_m: see :func:`diverse_top_k`.
        min_yaw_rad: see :func:`diverse_top_k`.

    Returns:
        Indices into the stances, each group's best first.
    """
    if group is None or not group.size or group.max() == 0:
        return diverse_top_k(q, score, k, min_distance_m, min_yaw_rad)
    parts = []
    for gid in np.unique(group):
        rows = np.flatnonzero(group == gid)
        parts.append(rows[diverse_top_k(q[rows], score[rows], k, min_distance_m,
                                        min_yaw_rad)])
    return np.concatenate(parts)
