"""Local whole-body refinement: damped least squares (Levenberg-Marquardt), batched.

Each iteration solves, for every configuration at once,
``dq = J^T (J J^T + lambda^2 I)^-1 e`` with ``e`` the 6-D pose error of the tool
(position, then the rotation vector of ``R_goal R^T``; world-aligned like the
Jacobian), takes the step with an adaptive damping, and clips to the joint
limits. Columns can be masked so that only the arm moves (the robustness check:
the base has landed, only the arm may correct).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .robot import WholeBodyModel


def rotation_vector(R: np.ndarray) -> np.ndarray:
    """Rotation vectors (axis * angle) of rotation matrices ``(N, 3, 3)`` -> ``(N, 3)``."""
    skew = np.stack([R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]],
                    axis=1)
    s = 0.5 * np.linalg.norm(skew, axis=1)
    c = 0.5 * (np.trace(R, axis1=1, axis2=2) - 1.0)
    theta = np.arctan2(s, c)
    out = np.empty((R.shape[0], 3))
    small = s > 1e-9
    factor = np.where(small, theta / np.maximum(2.0 * s, 1e-300), 0.5)
    out[:] = factor[:, None] * skew
    near_pi = (c < -0.999) & (theta > 2.5)
    if near_pi.any():  # axis from the symmetric part
        B = 0.5 * (R[near_pi] + np.eye(3))
        k = np.argmax(np.diagonal(B, axis1=1, axis2=2), axis=1)
        axis = B[np.arange(len(k)), :, k]
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        sign = np.sign(np.einsum("ni,ni->n", axis, skew[near_pi]))
        sign[sign == 0] = 1.0
        out[near_pi] = axis * (sign * theta[near_pi])[:, None]
    return out


def pose_residual(T_goal: np.ndarray, T: np.ndarray) -> np.ndarray:
    """6-D residual ``(N, 6)``: goal position minus position, then rotation vector of R_goal R^T."""
    e = np.empty((T.shape[0], 6))
    e[:, :3] = T_goal[..., :3, 3] - T[:, :3, 3]
    e[:, 3:] = rotation_vector(T_goal[..., :3, :3] @ np.swapaxes(T[:, :3, :3], 1, 2))
    return e


@dataclass
class RefineResult:
    """Refined configurations and their final errors (all first axis N)."""

    q: np.ndarray
    position_error_m: np.ndarray
    orientation_error_rad: np.ndarray
    iterations: int


def refine(robot: WholeBodyModel, q0: np.ndarray, T_goal: np.ndarray, *,
           iterations: int = 30, position_tol_m: float = 1e-5,
           orientation_tol_rad: float = 1e-4, columns: np.ndarray | None = None,
           damping: float = 1e-3, orientation_weight: float = 0.2) -> RefineResult:
    """Move configurations so the tool frame meets ``T_goal``, joint limits respected.

    Args:
        robot: the whole-body model.
        q0: ``(N, nq)`` start configurations.
        T_goal: ``(4, 4)`` or ``(N, 4, 4)`` goal poses of the tool frame.
        iterations: maximum iterations (rows that meet both tolerances stop early).
        position_tol_m: stop tolerance on the position error (m).
        orientation_tol_rad: stop tolerance on the orientation error (rad).
        columns: indices of the joints allowed to move (default all).
        damping: initial Levenberg-Marquardt damping (adapted per row).
        orientation_weight: metres per radian in the least-squares metric.

    Returns:
        A :class:`RefineResult` with the final configurations and errors.
    """
    q = np.array(q0, dtype=float, ndmin=2)
    n = q.shape[0]
    T_goal = np.broadcast_to(T_goal, (n, 4, 4))
    cols = np.arange(robot.nq) if columns is None else np.asarray(columns)
    w = np.array([1.0, 1.0, 1.0, orientation_weight, orientation_weight, orientation_weight])
    lam = np.full(n, damping)
    tool = robot.config.tool_frame
    j_tool, T_jt = robot.frame_placement(tool)
    active = np.arange(n)
    oMi = robot.joint_transforms(q)
    e = pose_residual(T_goal, oMi[:, j_tool] @ T_jt)
    it = 0
    for it in range(1, iterations + 1):
        ep = np.linalg.norm(e[:, :3], axis=1)
        eo = np.linalg.norm(e[:, 3:], axis=1)
        active = np.flatnonzero((ep > position_tol_m) | (eo > orientation_tol_rad))
        if active.size == 0:
            it -= 1
            break
        qa = q[active]
        J = robot.jacobian(qa, oMi=oMi[active])[:, :, cols] * w[None, :, None]
        ea = e[active] * w
        JJt = J @ np.swapaxes(J, 1, 2)
        A = JJt + (lam[active] ** 2)[:, None, None] * np.eye(6)
        dq = np.einsum("nji,nj->ni", J, np.linalg.solve(A, ea[..., None])[..., 0])
        q_new = qa.copy()
        q_new[:, cols] += dq
        q_new = np.clip(q_new, robot.lower, robot.upper)
        oMi_new = robot.joint_transforms(q_new)
        e_new = pose_residual(T_goal[active], oMi_new[:, j_tool] @ T_jt)
        better = np.linalg.norm(e_new * w, axis=1) < np.linalg.norm(ea, axis=1)
        idx = active[better]
        q[idx], oMi[idx], e[idx] = q_new[better], oMi_new[better], e_new[better]
        lam[idx] = np.maximum(lam[idx] * 0.3, 1e-6)
        lam[active[~better]] *= 10.0
    return RefineResult(q, np.linalg.norm(e[:, :3], axis=1), np.linalg.norm(e[:, 3:], axis=1), it)
