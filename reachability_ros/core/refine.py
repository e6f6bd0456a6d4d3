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

from .geometry import log_so3
from .robot import WholeBodyModel


def pose_residual(T_goal: np.ndarray, T: np.ndarray) -> np.ndarray:
    """6-D residual ``(N, 6)``: goal position minus position, then the log of ``R_goal R^T``.

    Args:
        T_goal: ``(4, 4)`` or ``(N, 4, 4)`` goal poses.
        T: ``(N, 4, 4)`` current poses.
    """
    e = np.empty((T.shape[0], 6))
    e[:, :3] = T_goal[..., :3, 3] - T[:, :3, 3]
    e[:, 3:] = log_so3(T_goal[..., :3, :3] @ np.swapaxes(T[:, :3, :3], 1, 2))
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
