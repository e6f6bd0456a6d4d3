"""The closed-form stance manifold of the LeKiwi: exact whole-body IK.

For one grasp ``T_world_grasp`` (the desired pose of the tool frame) the
whole-body configurations ``q = (x, y, yaw, pan, lift, elbow, wrist_flex,
wrist_roll)`` that put the tool exactly on the grasp form a 2-D manifold with
a few discrete branches (``docs/kinematics-notes.md``). It has a closed form
because the arm has this structure on its base:

* the shoulder-pan axis is vertical (parallel to the base yaw axis);
* the shoulder-lift, elbow-flex and wrist-flex axes are parallel and
  horizontal: they span a vertical *arm plane* that turns with pan and yaw;
* the wrist-roll axis is perpendicular to them.

The solution, with ``A`` the arm-plane frame (origin on the pan axis, z up,
y along the flex axes, x forward in the arm plane):

1. The grasp fixes the wrist-roll joint frame ``W = T_world_grasp T_tool^-1``
   (this removes the tool's 7.9 mm offset from the roll axis exactly).
2. ``R_W = Rz(h) Ry(phi) M6 R_roll(roll)``: the flex axis, ``Rz(h) e_y``, must
   be horizontal, one trigonometric equation in ``roll`` with two solutions
   (``pi`` apart when the roll axis is exactly perpendicular to the flex axes).
   ``h`` is the heading of the arm plane (base yaw combined with pan) and
   ``phi`` the total pitch (sum of the signed lift, elbow and wrist-flex angles).
   For an exactly vertical approach the roll axis is the vertical: every roll
   works, and the roll is a free parameter (sampled by the caller).
3. In the arm plane, with the shoulder-lift chosen, the height of the roll joint
   gives the forearm angle ``beta`` (a 2-link vertical equation, two solutions),
   hence the elbow and, from ``phi``, the wrist-flex. The roll joint's lateral
   offset from the arm plane (18.1 mm) is a constant ``y`` in ``A``.
4. With the pan chosen, ``yaw = h - s pan - alpha0`` and the base position
   follows from the roll joint's horizontal position.

Every constant is read from the robot model at load time (joint placements and
axes at ``q = 0``). A description without the structure is refused with
:class:`DescriptionError`; one that has it only up to rounding (the reference
URDF's ``1.5708``-style angles tilt its pan axis by 2.7e-6 rad) gets the closed
form of the nearest exact structure followed by Newton steps on the model's
own forward kinematics, with pan and lift held fixed, so that the result is
exact for the model as it is.

Size: the solver is one class of about 550 lines (structure check, roll
equation, closed form, Newton polish, coordinates, grid) whose steps share
some twenty constants read from the model; split across modules they would
have to be passed around or read back from private fields.

Branches (``n_branches = 4``): ``branch = 2 * roll_branch + elbow_branch``.

* ``roll_branch`` 0 / 1: the wrist-roll solution ``gamma + delta`` /
  ``gamma - delta`` of the roll equation ``rho cos(roll - gamma) = -c``
  (``delta = arccos(-c / rho)``, ``pi / 2`` for an exact structure). For a
  vertical approach, the roll is ``roll + pi * roll_branch`` where ``roll`` is
  the free parameter, in ``[roll_zero, roll_zero + pi)`` for a canonical pair
  (:attr:`StanceManifold.roll_zero`).
* ``elbow_branch`` 0 / 1: ``beta + mu`` in ``[0, pi]`` / ``[-pi, 0)``, where
  ``beta`` is the forearm's angle in the arm plane (signed lift + elbow) and
  ``mu`` the angle at which the forearm's height is largest. Physically:
  the two forearm directions that give the wrist the same height.

The module also holds the exact ground truth of seed 000 §6.4 transposed to
the LeKiwi (:meth:`StanceManifold.ground_truth`) and the metrics against it
(:func:`azimuth_coverage_gap`, :func:`kl_to_ground_truth`,
:func:`mode_recall`, :func:`evaluate_samples`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import DescriptionError, InvalidRequest
from .geometry import TWO_PI, clamp, log_so3, wrap_angle
from .robot import WholeBodyModel

N_ARM = 5


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _angle_between_lines(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (rad) between two lines with directions a, b (sign ignored)."""
    c = abs(float(np.dot(_unit(a), _unit(b))))
    return float(np.arccos(min(1.0, c)))


def _perp_error(a: np.ndarray, b: np.ndarray) -> float:
    """Deviation (rad) of two directions from being perpendicular."""
    return float(np.arcsin(min(1.0, abs(float(np.dot(_unit(a), _unit(b)))))))


def _pitched(d: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arm-plane (x, z) of a link vector ``d`` (x, _, z) pitched by ``angle`` about y."""
    c, s = np.cos(angle), np.sin(angle)
    return d[0] * c + d[2] * s, -d[0] * s + d[2] * c


class StanceManifold:
    """Exact whole-body IK of the LeKiwi over the manifold coordinates (pan, lift, branch).

    Args:
        robot: the whole-body model; every kinematic constant is read from it.
        structure_tol_rad: largest accepted deviation of the axes from the
            structure (pan vertical; lift, elbow, wrist-flex parallel and
            perpendicular to pan; roll perpendicular to them).
        vertical_tol: a grasp whose roll equation has amplitude ``rho`` below
            this (``rho = |sin|`` of the roll axis' angle to the vertical) is a
            vertical approach: the roll is free.
        limit_tol: tolerance of the joint-limit test (rad).
        polish_tol: for a description whose structure holds only up to rounding,
            a solution is kept only if its tool pose error after the Newton steps
            is below this (m and rad).

    Raises:
        DescriptionError: the description lacks the structure (axes off by more
            than ``structure_tol_rad``, a joint order or tool frame that is not
            pan -> lift -> elbow -> wrist-flex -> wrist-roll -> tool). Callers
            then use the numerical refinement (``core/refine.py``).

    Example:
        >>> robot = WholeBodyModel()
        >>> sm = StanceManifold(robot)
        >>> q, valid = sm.solve(T_grasp, pan=np.zeros(2), lift=np.zeros(2),
        ...                     branch=np.array([0, 1]))
    """

    n_branches = 4

    def __init__(self, robot: WholeBodyModel, structure_tol_rad: float = 1e-4,
                 vertical_tol: float = 1e-9, limit_tol: float = 1e-9,
                 polish_tol: float = 1e-10) -> None:
        self.robot = robot
        self.structure_tol_rad = float(structure_tol_rad)
        self.vertical_tol = float(vertical_tol)
        self.limit_tol = float(limit_tol)
        self.polish_tol = float(polish_tol)
        self._load_constants()

    # ------------------------------------------------------------ constants
    def _load_constants(self) -> None:
        robot = self.robot
        m = robot.model
        names = list(robot.config.arm_joints)
        if robot.nq != 3 + N_ARM or m.njoints != 2 + N_ARM:
            raise DescriptionError(
                f"the closed-form stance manifold needs a planar base and {N_ARM} arm joints "
                f"(pan, lift, elbow, wrist-flex, wrist-roll); {robot.urdf_path.name} has "
                f"nq={robot.nq}: use the numerical refinement")
        parents = [int(m.parents[j]) for j in range(m.njoints)]
        if parents[2:] != [1, 2, 3, 4, 5]:
            raise DescriptionError(
                f"arm joints {names} must form one serial chain on the base; parents are "
                f"{parents[2:]}: use the numerical refinement")
        j_tool, T_tool = robot.frame_placement(robot.config.tool_frame)
        if j_tool != 6:
            raise DescriptionError(
                f"tool frame {robot.config.tool_frame!r} must be carried by the wrist-roll "
                f"joint {names[-1]!r}; it is on joint {m.names[j_tool]!r}")
        oMi = robot.joint_transforms(np.zeros((1, robot.nq)))[0]
        axes = {j: oMi[j, :3, :3] @ robot.chain.axes[j] for j in range(2, 7)}
        z = np.array([0.0, 0.0, 1.0])
        dev = {
            "pan axis to vertical": _angle_between_lines(axes[2], z),
            "lift || elbow axes": _angle_between_lines(axes[3], axes[4]),
            "lift || wrist-flex axes": _angle_between_lines(axes[3], axes[5]),
            "lift axis _|_ pan axis": _perp_error(axes[3], axes[2]),
            "roll axis _|_ flex axes": _perp_error(axes[6], axes[3]),
        }
        bad = {k: v for k, v in dev.items() if not v <= self.structure_tol_rad}
        if bad:
            txt = ", ".join(f"{k}: off by {v:.3g} rad" for k, v in bad.items())
            raise DescriptionError(
                f"{robot.urdf_path.name} lacks the structure of the closed-form stance "
                f"manifold ({txt}; tolerance {self.structure_tol_rad:g} rad): use the "
                "numerical refinement (proposal.refinement: numerical)")
        self.structure_deviation_rad = max(dev.values())
        self.structure_deviations = dev
        # Newton steps on the model's own FK when the structure is only approximate
        d = self.structure_deviation_rad
        self.newton_steps = 0 if d < 1e-13 else (2 if d < 1e-6 else 3)

        self._s_pan = float(np.sign(axes[2] @ z))  # pan turns about s * z
        e_z = z
        e_y = _unit(axes[3] - (axes[3] @ e_z) * e_z)
        e_x = np.cross(e_y, e_z)
        R_A0 = np.stack([e_x, e_y, e_z], axis=1)  # base <- A at pan = 0
        self._alpha0 = float(np.arctan2(e_x[1], e_x[0]))
        p2 = oMi[2, :3, 3].copy()
        self._p2 = p2

        def in_a(v):
            return R_A0.T @ v

        self._o3 = in_a(oMi[3, :3, 3] - p2)
        self._d34 = in_a(oMi[4, :3, 3] - oMi[3, :3, 3])
        self._d45 = in_a(oMi[5, :3, 3] - oMi[4, :3, 3])
        self._d56 = in_a(oMi[6, :3, 3] - oMi[5, :3, 3])
        self._sig = np.array([float(np.sign(in_a(axes[j]) @ np.array([0, 1.0, 0])))
                              for j in (3, 4, 5)])
        M6 = R_A0.T @ oMi[6, :3, :3]
        a6 = _unit(np.asarray(robot.chain.axes[6], dtype=float))
        self._a6 = a6
        # roll equation: z . R_W R6(-roll) m = 0 with m = M6^T e_y
        mvec = M6.T @ np.array([0.0, 1.0, 0.0])
        m_par = float(mvec @ a6)
        m_perp = mvec - m_par * a6
        self._m_par, self._m_perp, self._m_cross = m_par, m_perp, np.cross(a6, m_perp)
        # N = R_W R6(-roll) M6^T = R_W (P0 + cos P1 - sin P2)
        E = M6.T
        P0 = np.outer(a6, a6) @ E
        ax = np.array([[0, -a6[2], a6[1]], [a6[2], 0, -a6[0]], [-a6[1], a6[0], 0]])
        self._P = (P0, E - P0, ax @ E)
        self._T_tool_inv = np.linalg.inv(T_tool)
        self._T_tool = T_tool
        self._Y = float(self._o3[1] + self._d34[1] + self._d45[1] + self._d56[1])
        self._rho45 = float(np.hypot(self._d45[0], self._d45[2]))
        self._mu = float(np.arctan2(self._d45[0], self._d45[2]))
        lo, hi = robot.lower[3:].copy(), robot.upper[3:].copy()
        self._lo, self._hi = lo, hi
        mid = 0.5 * (lo[4] + hi[4]) if np.isfinite(lo[4]) and np.isfinite(hi[4]) else 0.0
        self.roll_zero = float(mid - 0.5 * np.pi)
        """Start of the canonical half-circle of free rolls for a vertical approach."""

    @property
    def lateral_offset_m(self) -> float:
        """Offset of the wrist-roll joint from the arm plane (m), read from the model."""
        return self._Y - float(self._o3[1])

    # ------------------------------------------------------------- grasps
    def _grasps(self, T_world_grasp: np.ndarray, M: int | None) -> tuple[np.ndarray, np.ndarray]:
        T = np.asarray(T_world_grasp, dtype=float)
        if T.shape == (4, 4):
            T = T[None]
        if T.ndim != 3 or T.shape[1:] != (4, 4):
            raise InvalidRequest(f"T_world_grasp must have shape (4, 4) or (M, 4, 4), got "
                                 f"{T.shape}")
        if not np.all(np.isfinite(T)):
            raise InvalidRequest("T_world_grasp holds NaN or inf")
        if M is not None and len(T) not in (1, M):
            raise InvalidRequest(f"T_world_grasp has {len(T)} poses for {M} rows")
        gi = np.zeros(M, dtype=int) if (M is not None and len(T) == 1) else np.arange(len(T))
        return T, gi

    def _roll_terms(self, T: np.ndarray) -> dict[str, np.ndarray]:
        """Per grasp ``(G, 4, 4)``: the roll equation and the wrist-roll frame."""
        W = T @ self._T_tool_inv
        R = W[:, :3, :3]
        zW = R[:, 2, :]  # R_W^T z, world z in the roll joint frame
        A = zW @ self._m_perp
        B = -(zW @ self._m_cross)
        C = self._m_par * (zW @ self._a6)
        rho = np.hypot(A, B)
        vertical = rho < self.vertical_tol
        gamma = np.arctan2(B, A)
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = np.arccos(clamp(-C / np.where(vertical, 1.0, rho), -1.0, 1.0))
        Q = [np.einsum("gij,jk->gik", R, P) for P in self._P]
        return {"W": W, "gamma": gamma, "delta": delta, "vertical": vertical, "Q": Q,
                "rho": rho}

    def is_vertical(self, T_world_grasp: np.ndarray) -> np.ndarray:
        """Return ``(G,)`` booleans: the approach is vertical, the roll is free."""
        T, _ = self._grasps(T_world_grasp, None)
        return self._roll_terms(T)["vertical"]

    def _wrap_into(self, theta: np.ndarray, k: int) -> np.ndarray:
        """Represent angles of arm joint ``k`` (0 = pan) inside its limits where possible."""
        lo, hi = self._lo[k], self._hi[k]
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return wrap_angle(theta)
        tol = self.limit_tol
        return theta - TWO_PI * np.floor((theta - lo + tol) / TWO_PI)

    # --------------------------------------------------------------- solve
    def solve(self, T_world_grasp: np.ndarray, pan: np.ndarray, lift: np.ndarray,
              branch: np.ndarray, roll: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """Solve the whole-body IK exactly at manifold coordinates.

        Args:
            T_world_grasp: ``(4, 4)`` grasp pose, or ``(M, 4, 4)`` one per row.
            pan: ``(M,)`` shoulder-pan angles (rad).
            lift: ``(M,)`` shoulder-lift angles (rad).
            branch: ``(M,)`` ints in ``[0, n_branches)``: ``2 * roll_branch +
                elbow_branch`` (see the module docstring).
            roll: ``(M,)`` free wrist-roll parameter, used only by rows whose
                approach is vertical (the roll is then ``roll + pi *
                roll_branch``); default :attr:`roll_zero`.

        Returns:
            ``q (M, 8)`` whole-body configurations (NaN rows where the elbow
            equation has no real solution or, for a structure that holds only
            up to rounding, where the Newton steps did not converge) and
            ``valid (M,)``: a real branch with every joint within its limits.

        Raises:
            InvalidRequest: shapes that disagree, a branch out of range, NaN grasps.
        """
        pan = np.atleast_1d(np.asarray(pan, dtype=float))
        M = pan.shape[0]
        lift = np.broadcast_to(np.asarray(lift, dtype=float), (M,))
        branch = np.broadcast_to(np.asarray(branch), (M,))
        if pan.ndim != 1:
            raise InvalidRequest(f"pan must have shape (M,), got {pan.shape}")
        if not np.issubdtype(branch.dtype, np.integer):
            if not np.all(branch == np.round(branch)):
                raise InvalidRequest("branch must hold integers")
            branch = branch.astype(int)
        if M and (branch.min() < 0 or branch.max() >= self.n_branches):
            raise InvalidRequest(f"branch must lie in [0, {self.n_branches}), got values in "
                                 f"[{branch.min()}, {branch.max()}]")
        T, gi = self._grasps(T_world_grasp, M)
        rt = self._roll_terms(T)
        rb = branch >> 1
        eb = branch & 1
        roll_free = (np.full(M, self.roll_zero) if roll is None
                     else np.broadcast_to(np.asarray(roll, dtype=float), (M,)))
        if len(T) == 1 and not rt["vertical"][0]:
            # one grasp: two roll solutions, heading and pitch per roll branch
            th6_b = rt["gamma"][0] + np.array([1.0, -1.0]) * rt["delta"][0]
            h_b, phi_b = self._heading_pitch([Q[0] for Q in rt["Q"]], th6_b)
            th6, h, phi = th6_b[rb], h_b[rb], phi_b[rb]
            o = rt["W"][0, :3, 3]
        else:
            vert = rt["vertical"][gi]
            th6 = np.where(vert, roll_free + np.pi * rb,
                           rt["gamma"][gi] + np.where(rb == 0, 1.0, -1.0) * rt["delta"][gi])
            h, phi = self._heading_pitch([Q[gi] for Q in rt["Q"]], th6)
            o = rt["W"][gi, :3, 3]
        q, ok = self._solve_core(h, phi, th6, o[..., 0], o[..., 1], o[..., 2], pan, lift, eb)
        return self._finish(q.reshape(M, 8), ok.reshape(M), T, gi)

    def _finish(self, q, ok, T, gi):
        """NaN rows without a real branch; Newton steps where the structure is approximate."""
        real = np.isfinite(q[:, 5])
        q[~real] = np.nan
        if not self.newton_steps:
            return q, ok & real
        q = self._polish(q, T[gi])
        return q, self._valid(q)

    @staticmethod
    def _heading_pitch(Q, th6):
        """Heading ``h`` and pitch ``phi`` of ``N = R_W R6(-roll) M6^T = Rz(h) Ry(phi)``.

        ``Q`` holds ``R_W P_k`` as arrays ``(..., 3, 3)`` broadcastable with ``th6``.
        """
        c6, s6 = np.cos(th6), np.sin(th6)

        def n(i, j):
            return Q[0][..., i, j] + c6 * Q[1][..., i, j] - s6 * Q[2][..., i, j]

        return np.arctan2(-n(0, 1), n(1, 1)), np.arctan2(-n(2, 0), n(2, 2))

    def _solve_core(self, h, phi, th6, ox, oy, oz, pan, lift, eb):
        """Closed form on broadcastable arrays; returns ``q (..., 8)`` and ``ok (...)``.

        ``h, phi, th6``: heading, pitch and wrist roll (per roll branch);
        ``ox, oy, oz``: the wrist-roll joint's position; ``pan, lift, eb``: the
        manifold coordinates and the elbow branch.
        """
        s3, s4, s5 = self._sig
        d34, d45, d56, o3 = self._d34, self._d45, self._d56, self._o3
        phi3 = s3 * lift
        ux, uz = _pitched(d34, phi3)
        wx, wz = _pitched(d56, phi)
        ratio = ((oz - self._p2[2]) - o3[2] - wz - uz) / self._rho45
        real = np.abs(ratio) <= 1.0 + 1e-12
        ratio = clamp(ratio, -1.0, 1.0)
        sgn = 1.0 - 2.0 * eb
        beta = np.where(real, sgn * np.arccos(ratio) - self._mu, np.nan)
        # cos/sin of beta = -mu + sgn * acos(ratio) without more trigonometry
        sa = sgn * np.sqrt(1.0 - ratio * ratio)
        cm, sm = math.cos(self._mu), math.sin(self._mu)
        cb = cm * ratio + sm * sa
        sb = -sm * ratio + cm * sa
        X = (o3[0] + wx) + ux + (d45[0] * cb + d45[2] * sb)
        Y = self._Y
        ch, sh = np.cos(h), np.sin(h)
        # psi = h - s pan - alpha0
        ha = h - self._alpha0
        ca, sa_ = np.cos(ha), np.sin(ha)
        cpn, spn = np.cos(pan), np.sin(pan)
        s = self._s_pan
        cy = ca * cpn + s * sa_ * spn
        sy = sa_ * cpn - s * ca * spn
        p2 = self._p2
        x = ox - (cy * p2[0] - sy * p2[1]) - (ch * X - sh * Y)
        y = oy - (sy * p2[0] + cy * p2[1]) - (sh * X + ch * Y)
        psi = wrap_angle(ha - s * pan)
        arm = [pan, lift, self._wrap_into(s4 * (beta - phi3), 2),
               self._wrap_into(s5 * (phi - beta), 3), self._wrap_into(th6, 4)]
        # limits on the (small) broadcast factors, before the grid is expanded
        ok = real
        for k, a in enumerate(arm):
            ok = ok & self._in_limits(a, k)
        cols = (x, y, psi, *arm)
        shape = np.broadcast(*cols).shape
        q = np.empty(shape + (8,))
        for k, c in enumerate(cols):
            q[..., k] = c
        return q, (ok if np.shape(ok) == shape else np.broadcast_to(ok, shape))

    def _in_limits(self, a: np.ndarray, k: int) -> np.ndarray:
        """Arm joint ``k`` (0 = pan) within its limits (+ ``limit_tol``)."""
        tol = self.limit_tol
        return (a >= self._lo[k] - tol) & (a <= self._hi[k] + tol)

    def _valid(self, q: np.ndarray) -> np.ndarray:
        tol = self.limit_tol
        arm = q[:, 3:]
        ok = np.all((arm >= self._lo - tol) & (arm <= self._hi + tol), axis=1)
        return ok & np.all(np.isfinite(q), axis=1)

    def _polish(self, q: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Newton steps on the model's FK over (x, y, yaw, elbow, wrist-flex, roll)."""
        robot = self.robot
        ok = np.all(np.isfinite(q), axis=1)
        if not ok.any():
            return q
        qq, TT = q[ok].copy(), T[ok]
        cols = [0, 1, 2, 5, 6, 7]
        for _ in range(self.newton_steps):
            oMi = robot.joint_transforms(qq)
            Tc = oMi[:, 6] @ self._T_tool
            e = np.concatenate([TT[:, :3, 3] - Tc[:, :3, 3],
                                log_so3(TT[:, :3, :3] @ np.swapaxes(Tc[:, :3, :3], 1, 2))],
                               axis=1)
            J = robot.jacobian(qq, oMi=oMi)[:, :, cols]
            JJt = J @ np.swapaxes(J, 1, 2) + 1e-14 * np.eye(6)
            dq = np.einsum("nji,nj->ni", J, np.linalg.solve(JJt, e[..., None])[..., 0])
            qq[:, cols] += dq
        qq[:, 2] = wrap_angle(qq[:, 2])
        for k in (2, 3, 4):
            qq[:, 3 + k] = self._wrap_into(qq[:, 3 + k], k)
        # rows where Newton has not converged (next to the elbow fold or a vertical
        # approach the 6x6 block is nearly singular) are dropped: valid means exact
        Tc = robot.joint_transforms(qq)[:, 6] @ self._T_tool
        dp = np.linalg.norm(TT[:, :3, 3] - Tc[:, :3, 3], axis=1)
        dr = np.linalg.norm(log_so3(TT[:, :3, :3] @ np.swapaxes(Tc[:, :3, :3], 1, 2)), axis=1)
        qq[~((dp <= self.polish_tol) & (dr <= self.polish_tol))] = np.nan
        out = q.copy()
        out[ok] = qq
        return out

    # --------------------------------------------------------- coordinates
    def coordinates(self, q: np.ndarray, T_world_grasp: np.ndarray | None = None,
                    return_roll: bool = False):
        """Read the manifold coordinates of configurations.

        Args:
            q: ``(M, 8)`` whole-body configurations.
            T_world_grasp: ``(4, 4)`` or ``(M, 4, 4)`` grasp against whose roll
                solutions the roll branch is read; default each configuration's
                own tool pose (its forward kinematics).
            return_roll: also return the free roll parameter (meaningful for
                vertical approaches; ``q[:, 7] - pi * roll_branch``).

        Returns:
            ``pan (M,)``, ``lift (M,)``, ``branch (M,)`` int (and ``roll (M,)``):
            :meth:`solve` at these coordinates returns ``q`` when ``q`` reaches
            the grasp exactly.
        """
        q = self.robot.check_q(q)
        M = q.shape[0]
        if T_world_grasp is None:
            T = self.robot.fk(q, [self.robot.config.tool_frame])[self.robot.config.tool_frame]
            gi = np.arange(M)
        else:
            T, gi = self._grasps(T_world_grasp, M)
        rt = self._roll_terms(T)
        th6 = q[:, 7]
        gamma, delta = rt["gamma"][gi], rt["delta"][gi]
        d_plus = np.abs(wrap_angle(th6 - gamma - delta))
        d_minus = np.abs(wrap_angle(th6 - gamma + delta))
        rb_gen = (d_minus < d_plus).astype(int)
        rb_vert = (np.mod(th6 - self.roll_zero, TWO_PI) >= np.pi).astype(int)
        rb = np.where(rt["vertical"][gi], rb_vert, rb_gen)
        s3, s4, _ = self._sig
        beta = s3 * q[:, 4] + s4 * q[:, 5]
        eb = (np.sin(beta + self._mu) < 0.0).astype(int)
        branch = 2 * rb + eb
        if return_roll:
            return q[:, 3].copy(), q[:, 4].copy(), branch, th6 - np.pi * rb
        return q[:, 3].copy(), q[:, 4].copy(), branch

    def project(self, q_approx: np.ndarray, T_world_grasp: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Decode approximate stances exactly: read (pan, lift, branch), solve.

        Args:
            q_approx: ``(M, 8)`` approximate configurations (e.g. a learned sampler's).
            T_world_grasp: ``(4, 4)`` or ``(M, 4, 4)`` grasp poses.

        Returns:
            ``q_exact (M, 8)`` and ``valid (M,)`` as :meth:`solve`. The roll branch
            is the grasp's roll solution nearest ``q_approx``'s wrist roll; for a
            vertical approach ``q_approx``'s roll itself is kept.
        """
        pan, lift, branch, roll = self.coordinates(q_approx, T_world_grasp, return_roll=True)
        return self.solve(T_world_grasp, pan, lift, branch, roll=roll)

    # ---------------------------------------------------------------- grid
    def _axes_grid(self, n_pan: int, n_lift: int):
        if n_pan < 1 or n_lift < 1:
            raise InvalidRequest(f"grid sizes must be >= 1, got n_pan={n_pan}, n_lift={n_lift}")
        lo, hi = self._lo, self._hi
        if not np.all(np.isfinite([lo[0], hi[0], lo[1], hi[1]])):
            raise DescriptionError("the grid needs finite pan and shoulder-lift limits")
        dp, dl = (hi[0] - lo[0]) / n_pan, (hi[1] - lo[1]) / n_lift
        pans = lo[0] + (np.arange(n_pan) + 0.5) * dp
        lifts = lo[1] + (np.arange(n_lift) + 0.5) * dl
        return pans, lifts, dp, dl

    def grid(self, T_world_grasp: np.ndarray, n_pan: int = 64, n_lift: int = 64,
             n_roll: int = 8) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Solve on a dense grid over the pan and lift ranges and every branch.

        Cell centres of an ``n_pan x n_lift`` grid over the joint-limit box, for
        each of the ``n_branches`` branches. For a vertical approach the free
        roll adds ``n_roll`` values over ``[roll_zero, roll_zero + pi)`` (with
        the roll branch: the whole circle), so the grid has ``n_roll`` times
        more points.

        Args:
            T_world_grasp: ``(4, 4)`` grasp pose.
            n_pan: pan cells.
            n_lift: lift cells.
            n_roll: roll values for a vertical approach.

        Returns:
            ``q (K, 8)``, ``valid (K,)`` and ``coords``: ``pan``, ``lift``,
            ``branch``, ``roll`` ``(K,)`` and the integer cell indices
            ``i_pan``, ``i_lift``, ``i_roll`` ``(K,)``, with ``dpan``, ``dlift``,
            ``droll`` (cell sizes) and ``vertical`` (bool).
        """
        T = np.asarray(T_world_grasp, dtype=float)
        if T.shape != (4, 4):
            raise InvalidRequest(f"grid takes one grasp (4, 4), got {T.shape}")
        self._grasps(T, None)
        rt = self._roll_terms(T[None])
        vertical = bool(rt["vertical"][0])
        pans, lifts, dp, dl = self._axes_grid(n_pan, n_lift)
        nr = max(1, int(n_roll)) if vertical else 1
        dr = np.pi / nr
        rolls = self.roll_zero + (np.arange(nr) + 0.5) * dr if vertical else np.zeros(1)
        ir, ib, ip, il = np.meshgrid(np.arange(nr), np.arange(self.n_branches),
                                     np.arange(n_pan), np.arange(n_lift), indexing="ij")
        ir, ib, ip, il = ir.ravel(), ib.ravel(), ip.ravel(), il.ravel()
        coords = {"pan": pans[ip], "lift": lifts[il], "branch": ib, "roll": rolls[ir],
                  "i_pan": ip, "i_lift": il, "i_roll": ir, "dpan": dp, "dlift": dl,
                  "droll": dr if vertical else 0.0, "vertical": vertical}
        # separable: solve on broadcast (roll, roll branch, elbow branch, pan, lift) axes
        Qg = [Q[0] for Q in rt["Q"]]
        if vertical:
            th6 = rolls[:, None] + np.pi * np.arange(2)[None, :]
        else:
            th6 = (rt["gamma"][0] + np.array([1.0, -1.0]) * rt["delta"][0])[None, :]
        h, phi = self._heading_pitch(Qg, th6)
        ex = (slice(None), slice(None), None, None, None)
        o = rt["W"][0, :3, 3]
        qb, real = self._solve_core(
            h[ex], phi[ex], th6[ex], o[0], o[1], o[2],
            pans[None, None, None, :, None], lifts[None, None, None, None, :],
            np.arange(2)[None, None, :, None, None])
        q, ok = self._finish(qb.reshape(-1, 8), real.reshape(-1), T[None],
                             np.zeros(qb.shape[:-1], dtype=int).reshape(-1))
        return q, ok, coords

    # --------------------------------------------------------- area element
    def area_element(self, q: np.ndarray, T_world_grasp: np.ndarray,
                     vertical: bool = False) -> np.ndarray:
        """Area (volume) element of the stance manifold per unit of its coordinates.

        The stance of a configuration is its base pose ``(x, y, yaw)``; with a
        branch fixed, the manifold is a surface in stance space, measured with
        the metric ``dx^2 + dy^2 + (R dyaw)^2`` (``R = robot.config.reach_m``).
        Returns ``sqrt(det(J^T J))`` of ``J = d(x, y, R yaw) / d(pan, lift)``
        (with ``roll`` as a first coordinate for a vertical approach, where the
        set is 3-D and this is a volume element), computed in closed form.

        Args:
            q: ``(K, 8)`` exact stances of the grasp (from :meth:`solve`).
            T_world_grasp: ``(4, 4)`` the grasp.
            vertical: the approach is vertical (the roll is a coordinate).

        Returns:
            ``(K,)`` non-negative elements (m^2 per rad^2, m^3 per rad^3).
        """
        R = self.robot.config.reach_m
        T = np.asarray(T_world_grasp, dtype=float)
        W = T @ self._T_tool_inv
        s3, s4, s5 = self._sig
        psi = q[:, 2]
        h = psi + self._s_pan * q[:, 3] + self._alpha0
        phi3 = s3 * q[:, 4]
        beta = phi3 + s4 * q[:, 5]
        d34, d45 = self._d34, self._d45
        ux, uz = _pitched(d34, phi3)
        vx, vz = _pitched(d45, beta)
        with np.errstate(divide="ignore", invalid="ignore"):
            dX = s3 * (uz - vz * ux / vx)
        ch, sh = np.cos(h), np.sin(h)
        cy, sy = np.cos(psi), np.sin(psi)
        p2 = self._p2
        rp = np.stack([cy * p2[0] - sy * p2[1], sy * p2[0] + cy * p2[1]], axis=1)
        perp_rp = np.stack([-rp[:, 1], rp[:, 0]], axis=1)
        s = self._s_pan
        col_pan = np.stack([s * perp_rp[:, 0], s * perp_rp[:, 1],
                            np.full(len(q), -s * R)], axis=1)
        col_lift = np.stack([-ch * dX, -sh * dX, np.zeros(len(q))], axis=1)
        if not vertical:
            return np.linalg.norm(np.cross(col_pan, col_lift), axis=1)
        # the roll turns the heading: dh/droll = -(roll axis . z)
        dh = -(W[2, :3] @ self._a6) * np.ones(len(q))
        # (X, Y) of the roll joint in the arm plane do not move with the roll (phi is
        # fixed by the vertical approach); they turn with the heading h
        phi = self._phi_of(q)
        d56 = self._d56
        X = self._o3[0] + ux + vx + d56[0] * np.cos(phi) + d56[2] * np.sin(phi)
        Y = self._Y
        perp_hxy = np.stack([-(sh * X + ch * Y), ch * X - sh * Y], axis=1)
        col_roll = np.stack([-(perp_rp[:, 0] + perp_hxy[:, 0]) * dh,
                             -(perp_rp[:, 1] + perp_hxy[:, 1]) * dh, R * dh], axis=1)
        J = np.stack([col_roll, col_pan, col_lift], axis=2)
        return np.abs(np.linalg.det(J))

    def _phi_of(self, q: np.ndarray) -> np.ndarray:
        """Total signed pitch of the flex joints, ``(K,)``."""
        return q[:, 4:7] @ self._sig

    # ------------------------------------------------------- ground truth
    def ground_truth(self, T_world_grasp: np.ndarray, visibility=None, n_pan: int = 64,
                     n_lift: int = 64, n_roll: int = 8, min_visibility_margin_m: float = 0.0,
                     min_mode_fraction: float = 0.01) -> dict[str, Any]:
        """The exact feasible stance set of a grasp, uniform in the manifold's area.

        The grid of :meth:`grid` is filtered by joint limits and, when
        ``visibility`` is given, by the front camera's frustum and the robot's
        self-occlusion (``Visibility.check``, margin at least
        ``min_visibility_margin_m``). Each feasible grid point carries the
        area of its cell on the manifold (:meth:`area_element` times the cell
        size); normalized, these weights make the set a discretization of the
        **uniform distribution over the manifold's area**.

        Why area and not joint space: seed 000 §6.4 compares samples against
        the uniform distribution over the feasible set as a geometric object
        (the circle of base positions, ``theta ~ U[0, 2 pi)``, i.e. uniform in
        arc length), independent of how it is parametrized. Uniform in
        (pan, lift) would over-weight the stances where the base barely moves
        as pan and lift change (near the elbow's fold) and depend on the
        arbitrary choice of coordinates; uniform in the stance (base pose)
        area is the LeKiwi counterpart of the seed's arc length.

        Modes are the connected components (4-neighbourhood on the
        (pan, lift) cells) of the feasible set, per branch, holding at least
        ``min_mode_fraction`` of the total area. For a vertical approach the
        cells are the (pan, lift) cells feasible at some roll.

        Args:
            T_world_grasp: ``(4, 4)`` the grasp.
            visibility: a :class:`~reachability_ros.core.visibility.Visibility`;
                None = no visibility filter.
            n_pan, n_lift, n_roll: grid sizes (see :meth:`grid`).
            min_visibility_margin_m: required ``VisibilityResult.margin``.
            min_mode_fraction: smallest area fraction of a mode.

        Returns:
            A dict: ``q (K, 8)`` the feasible stances, ``pan, lift, branch,
            roll (K,)``, ``weight (K,)`` (sum 1), ``area (K,)`` (cell area on
            the manifold), ``azimuth (K,)`` (of the base around the grasp,
            rad), ``cell (K,)`` (flat index into ``n_branches x n_pan x
            n_lift``), ``cell_mass (n_branches * n_pan * n_lift,)``,
            ``cell_mode`` (mode label per cell, -1 = none), ``n_modes``,
            ``mode_area (n_modes,)``, ``n_pan``, ``n_lift``, ``pan_range``,
            ``lift_range``, ``grasp_xy (2,)``, ``n_grid`` (points solved),
            ``n_reachable`` (within limits), ``vertical``.
        """
        T = np.asarray(T_world_grasp, dtype=float)
        q, valid, c = self.grid(T, n_pan, n_lift, n_roll)
        keep = valid.copy()
        n_reach = int(valid.sum())
        if visibility is not None and keep.any():
            idx = np.flatnonzero(keep)
            res = visibility.check(q[idx])
            ok = res.visible & (res.margin >= min_visibility_margin_m)
            keep[idx[~ok]] = False
        idx = np.flatnonzero(keep)
        qk = q[idx]
        cell_size = c["dpan"] * c["dlift"] * (c["droll"] if c["vertical"] else 1.0)
        area = self.area_element(qk, T, vertical=c["vertical"]) * cell_size
        area = np.where(np.isfinite(area), area, 0.0)
        total = area.sum()
        weight = area / total if total > 0 else np.full(len(idx), 1.0 / max(1, len(idx)))
        cell = (c["branch"][idx] * n_pan + c["i_pan"][idx]) * n_lift + c["i_lift"][idx]
        n_cells = self.n_branches * n_pan * n_lift
        cell_mass = np.bincount(cell, weights=weight, minlength=n_cells)
        feas = np.bincount(cell, minlength=n_cells) > 0
        labels = _components(feas.reshape(self.n_branches, n_pan, n_lift)).ravel()
        n_lab = labels.max() + 1 if labels.size else 0
        lab_mass = np.bincount(labels[labels >= 0], weights=cell_mass[labels >= 0],
                               minlength=n_lab) if n_lab else np.zeros(0)
        big = np.flatnonzero(lab_mass >= min_mode_fraction * lab_mass.sum()) if n_lab else []
        remap = np.full(max(n_lab, 1), -1)
        remap[big] = np.arange(len(big))
        cell_mode = np.where(labels >= 0, remap[np.maximum(labels, 0)], -1)
        g = T[:2, 3]
        return {
            "q": qk, "pan": c["pan"][idx], "lift": c["lift"][idx],
            "branch": c["branch"][idx], "roll": c["roll"][idx], "weight": weight,
            "area": area, "azimuth": np.arctan2(qk[:, 1] - g[1], qk[:, 0] - g[0]),
            "cell": cell, "cell_mass": cell_mass, "cell_mode": cell_mode,
            "n_modes": int(len(big)), "mode_area": lab_mass[big] if n_lab else np.zeros(0),
            "n_pan": int(n_pan), "n_lift": int(n_lift),
            "pan_range": (float(self._lo[0]), float(self._hi[0])),
            "lift_range": (float(self._lo[1]), float(self._hi[1])),
            "grasp_xy": g.copy(), "n_grid": int(len(q)), "n_reachable": n_reach,
            "vertical": c["vertical"], "droll": float(c["droll"]), "T_world_grasp": T.copy(),
        }

    def sample_ground_truth(self, gt: dict[str, Any], n: int, rng: np.random.Generator,
                            quality: np.ndarray | None = None) -> np.ndarray:
        """Draw exact stances from a ground truth, uniform in area (optionally x quality).

        Each draw picks a feasible cell with probability ``weight * quality``
        (normalized), jitters (pan, lift, and the roll of a vertical approach)
        uniformly inside the cell and solves
        exactly; draws that leave the feasible set (cell borders) are redrawn
        once and otherwise dropped.

        Args:
            gt: a :meth:`ground_truth` dict.
            n: number of draws.
            rng: random generator.
            quality: optional ``(K,)`` non-negative factors per ground-truth point.

        Returns:
            ``(n', 8)`` exact stances, ``n' <= n``, all within limits.
        """
        if len(gt["q"]) == 0 or n <= 0:
            return np.zeros((0, 8))
        p = gt["weight"] if quality is None else gt["weight"] * np.asarray(quality, float)
        if p.sum() <= 0:
            return np.zeros((0, 8))
        p = p / p.sum()
        out = []
        need = n
        for _ in range(2):
            k = rng.choice(len(p), size=need, p=p)
            dp = (gt["pan_range"][1] - gt["pan_range"][0]) / gt["n_pan"]
            dl = (gt["lift_range"][1] - gt["lift_range"][0]) / gt["n_lift"]
            pan = gt["pan"][k] + (rng.random(need) - 0.5) * dp
            lift = gt["lift"][k] + (rng.random(need) - 0.5) * dl
            roll = (gt["roll"][k] + (rng.random(need) - 0.5) * gt["droll"]
                    if gt["vertical"] else None)
            q, ok = self.solve(gt["T_world_grasp"], pan, lift, gt["branch"][k], roll=roll)
            out.append(q[ok])
            need -= int(ok.sum())
            if need <= 0:
                break
        return np.concatenate(out)[:n]


# ------------------------------------------------------------------ helpers
def _components(mask: np.ndarray) -> np.ndarray:
    """Label 4-connected components of each 2-D slice of ``mask (B, P, L)``; -1 = empty.

    Union-find over the feasible cells only (hook to the smaller root, then
    pointer jumping), vectorized; labels are 0..n-1 in order of first cell.
    """
    B, P, L = mask.shape
    idx = np.full(mask.shape, -1)
    cells = np.flatnonzero(mask.ravel())
    idx.ravel()[cells] = np.arange(cells.size)
    pairs = []
    for a, b in ((idx[:, 1:, :], idx[:, :-1, :]), (idx[:, :, 1:], idx[:, :, :-1])):
        both = (a >= 0) & (b >= 0)
        pairs.append(np.stack([a[both], b[both]], axis=1))
    edges = np.concatenate(pairs)
    parent = np.arange(cells.size)
    while edges.size:
        pa, pb = parent[edges[:, 0]], parent[edges[:, 1]]
        diff = pa != pb
        if not diff.any():
            break
        np.minimum.at(parent, np.maximum(pa, pb)[diff], np.minimum(pa, pb)[diff])
        while True:
            pp = parent[parent]
            if np.array_equal(pp, parent):
                break
            parent = pp
    roots, lab = np.unique(parent, return_inverse=True)
    out = np.full(B * P * L, -1)
    out[cells] = lab.ravel()
    return out.reshape(B, P, L)


# ------------------------------------------------------------------ metrics
def azimuth_coverage_gap(sample_azimuth: np.ndarray, true_azimuth: np.ndarray,
                         bin_rad: float = math.radians(1.0)) -> float:
    """Largest arc of the true donut's azimuths that no sample covers (rad).

    Seed 000 §6.4's max gap, restricted to the true support: the azimuths (of
    base positions around the grasp) of the true stances and of the samples
    are binned at ``bin_rad``; the gap is the longest run of consecutive
    (circular) bins that are in the true support and hold no sample. A run
    ends at a sample or where the support ends. With a full circle of
    support this is the seed's ``max_i (theta_{i+1} - theta_i)`` (to one
    bin); without samples it is the longest arc of the support.

    Args:
        sample_azimuth: ``(S,)`` sample azimuths (rad).
        true_azimuth: ``(K,)`` azimuths of the ground-truth stances (rad).
        bin_rad: resolution of the support.

    Returns:
        The gap (rad); 0 when the true support is empty or fully covered.
    """
    nb = max(1, int(round(TWO_PI / bin_rad)))
    w = TWO_PI / nb

    def bins(a):
        return np.floor(np.mod(np.asarray(a, dtype=float), TWO_PI) / w).astype(int) % nb

    gap = np.zeros(nb, dtype=bool)
    gap[bins(true_azimuth)] = True
    gap[bins(sample_azimuth)] = False
    if gap.all():
        return float(TWO_PI)
    if not gap.any():
        return 0.0
    # longest circular run of True: start the walk just after a False bin
    start = int(np.flatnonzero(~gap)[0])
    g = np.roll(gap, -start - 1)
    edges = np.diff(np.concatenate([[0], g.astype(np.int8), [0]]))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return float(runs.max() * w)


def kl_to_ground_truth(sample_cell: np.ndarray, cell_mass: np.ndarray,
                       eps: float = 1e-6) -> float:
    """KL(sample histogram || true density) over the manifold's cells (nats).

    Seed 000's ``KL(p_hat || Unif)`` with the exact density in place of the
    uniform one. The true mass is mixed with ``eps`` of the uniform so that
    samples in infeasible cells cost ``log(1 / eps)``-ish instead of infinity.

    Args:
        sample_cell: ``(S,)`` flat cell indices of the samples (see
            :func:`sample_cells`).
        cell_mass: ``(C,)`` true probability mass per cell.
        eps: smoothing weight.

    Returns:
        The divergence; nan without samples.
    """
    cell_mass = np.asarray(cell_mass, dtype=float)
    sc = np.asarray(sample_cell, dtype=int)
    if sc.size == 0:
        return float("nan")
    p = np.bincount(sc, minlength=len(cell_mass)).astype(float)
    p /= p.sum()
    qm = cell_mass / max(cell_mass.sum(), 1e-300)
    qm = (1.0 - eps) * qm + eps / len(qm)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / qm[nz])))


def mode_recall(sample_cell: np.ndarray, cell_mode: np.ndarray, n_modes: int) -> float:
    """Fraction of the true modes that hold at least one sample (1.0 if there are none)."""
    if n_modes == 0:
        return 1.0
    sc = np.asarray(sample_cell, dtype=int)
    m = cell_mode[sc] if sc.size else np.zeros(0, dtype=int)
    return float(np.unique(m[m >= 0]).size / n_modes)


def sample_cells(gt: dict[str, Any], pan: np.ndarray, lift: np.ndarray,
                 branch: np.ndarray) -> np.ndarray:
    """Flat (branch, pan, lift) cell indices of manifold coordinates in a ground truth's grid."""
    p0, p1 = gt["pan_range"]
    l0, l1 = gt["lift_range"]
    ip = np.clip(np.floor((pan - p0) / (p1 - p0) * gt["n_pan"]), 0, gt["n_pan"] - 1).astype(int)
    il = np.clip(np.floor((lift - l0) / (l1 - l0) * gt["n_lift"]), 0,
                 gt["n_lift"] - 1).astype(int)
    return (np.asarray(branch, dtype=int) * gt["n_pan"] + ip) * gt["n_lift"] + il


def coarsen_cells(gt: dict[str, Any], cell: np.ndarray, bins: int) -> np.ndarray:
    """Map flat (branch, pan, lift) cells of ``gt``'s grid to a ``bins x bins`` grid per branch."""
    cell = np.asarray(cell, dtype=int)
    n_pan, n_lift = gt["n_pan"], gt["n_lift"]
    b, rest = np.divmod(cell, n_pan * n_lift)
    ip, il = np.divmod(rest, n_lift)
    kp, kl = min(bins, n_pan), min(bins, n_lift)
    return (b * kp + ip * kp // n_pan) * kl + il * kl // n_lift


def evaluate_samples(manifold: StanceManifold, gt: dict[str, Any], q: np.ndarray,
                     bin_rad: float = math.radians(1.0),
                     kl_bins: int | None = 16) -> dict[str, float]:
    """Seed-000 metrics of stance samples against a grasp's exact ground truth.

    Args:
        manifold: the solver (reads the samples' coordinates).
        gt: :meth:`StanceManifold.ground_truth` of the grasp.
        q: ``(S, 8)`` samples (pass the ones the caller counts, e.g. valid and visible).
        bin_rad: azimuth resolution of the coverage gap.
        kl_bins: (pan, lift) cells per axis and branch of the KL histogram
            (the ground truth's cells merged into at most this many); None =
            the ground truth's own grid. A plug-in KL is biased upwards by
            about ``(cells - 1) / (2 S)`` for ``S`` samples: keep the cells
            well below the samples.

    Returns:
        ``coverage_gap_rad`` (largest uncovered azimuth arc of the true donut),
        ``support_rad`` (the true donut's azimuth measure, to one bin), ``kl`` (sample
        histogram to the true density over the (branch, pan, lift) cells),
        ``mode_recall`` (fraction of true modes reached), ``n_modes``, ``n_samples``.
    """
    q = np.asarray(q, dtype=float).reshape(-1, 8)
    q = q[np.all(np.isfinite(q), axis=1)]
    g = gt["grasp_xy"]
    az = np.arctan2(q[:, 1] - g[1], q[:, 0] - g[0])
    if len(q):
        pan, lift, br = manifold.coordinates(q, gt["T_world_grasp"])
        cells = sample_cells(gt, pan, lift, br)
    else:
        cells = np.zeros(0, dtype=int)
    return {
        "coverage_gap_rad": azimuth_coverage_gap(az, gt["azimuth"], bin_rad),
        "support_rad": float(np.unique(np.floor(np.mod(gt["azimuth"], TWO_PI) / bin_rad)).size
                             * bin_rad),
        "kl": (kl_to_ground_truth(cells, gt["cell_mass"]) if kl_bins is None else
               kl_to_ground_truth(
                   coarsen_cells(gt, cells, kl_bins),
                   np.bincount(coarsen_cells(gt, np.arange(len(gt["cell_mass"])), kl_bins),
                               weights=gt["cell_mass"]))),
        "mode_recall": mode_recall(cells, gt["cell_mode"], gt["n_modes"]),
        "n_modes": float(gt["n_modes"]),
        "n_samples": float(len(q)),
    }
