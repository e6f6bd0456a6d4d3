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

The exact ground truth of a grasp's stance set and the coverage metrics against it
are evaluation code: ``reachability_ros.evaluation.ground_truth`` and
``reachability_ros.evaluation.coverage``.
"""

from __future__ import annotations

import math

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
    def _grasps(self, T_world_grasp: np.ndarray, M: int | None,
                grasp_of_row: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The grasps ``(G, 4, 4)`` and the grasp of each of ``M`` rows ``(M,)``.

        ``grasp_of_row``: ``(M,)`` indices into ``G`` grasps, or None: one grasp for
        every row, or one per row.
        """
        T = np.asarray(T_world_grasp, dtype=float)
        if T.shape == (4, 4):
            T = T[None]
        if T.ndim != 3 or T.shape[1:] != (4, 4):
            raise InvalidRequest(f"T_world_grasp must have shape (4, 4) or (M, 4, 4), got "
                                 f"{T.shape}")
        if not np.all(np.isfinite(T)):
            raise InvalidRequest("T_world_grasp holds NaN or inf")
        if grasp_of_row is not None:
            gi = np.asarray(grasp_of_row)
            if gi.shape != (M,) or (M and (gi.min() < 0 or gi.max() >= len(T))):
                raise InvalidRequest(f"grasp_of_row must hold {M} indices into "
                                     f"{len(T)} grasps")
            return T, gi
        if M is not None and len(T) not in (1, M):
            raise InvalidRequest(f"T_world_grasp has {len(T)} poses for {M} rows")
        gi = np.zeros(M, dtype=int) if (M is not None and len(T) == 1) else np.arange(len(T))
        return T, gi

    def _roll_terms(self, T: np.ndarray, heading_terms: bool = True) -> dict[str, np.ndarray]:
        """Per grasp ``(G, 4, 4)``: the roll equation and the wrist-roll frame.

        ``heading_terms=False`` leaves out ``Q`` (three products per grasp) for callers
        that only ask whether the approach is vertical.
        """
        W = T @ self._T_tool_inv
        R = W[:, :3, :3]
        # R_W^T z, world z in the roll joint frame, as (G, 1, 3): a stack of (1, 3) @ (3,)
        # products gives each grasp bit for bit what it gets alone ((G, 3) @ (3,) may not)
        zW = R[:, 2, None, :]
        A = (zW @ self._m_perp)[:, 0]
        B = -(zW @ self._m_cross)[:, 0]
        C = self._m_par * (zW @ self._a6)[:, 0]
        rho = np.hypot(A, B)
        vertical = rho < self.vertical_tol
        gamma = np.arctan2(B, A)
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = np.arccos(clamp(-C / np.where(vertical, 1.0, rho), -1.0, 1.0))
        Q = [np.einsum("gij,jk->gik", R, P) for P in self._P] if heading_terms else None
        return {"W": W, "gamma": gamma, "delta": delta, "vertical": vertical, "Q": Q,
                "rho": rho}

    def is_vertical(self, T_world_grasp: np.ndarray) -> np.ndarray:
        """Return ``(G,)`` booleans: the approach is vertical, the roll is free."""
        T, _ = self._grasps(T_world_grasp, None)
        return self._roll_terms(T, heading_terms=False)["vertical"]

    def _wrap_into(self, theta: np.ndarray, k: int) -> np.ndarray:
        """Represent angles of arm joint ``k`` (0 = pan) inside its limits where possible."""
        lo, hi = self._lo[k], self._hi[k]
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return wrap_angle(theta)
        tol = self.limit_tol
        return theta - TWO_PI * np.floor((theta - lo + tol) / TWO_PI)

    # --------------------------------------------------------------- solve
    def solve(self, T_world_grasp: np.ndarray, pan: np.ndarray, lift: np.ndarray,
              branch: np.ndarray, roll: np.ndarray | None = None,
              roll_rng: np.random.Generator | None = None,
              grasp_of_row: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Solve the whole-body IK exactly at manifold coordinates.

        Args:
            T_world_grasp: ``(4, 4)`` grasp pose, ``(M, 4, 4)`` one per row, or
                ``(G, 4, 4)`` grasps shared by the rows (``grasp_of_row``).
            pan: ``(M,)`` shoulder-pan angles (rad).
            lift: ``(M,)`` shoulder-lift angles (rad).
            branch: ``(M,)`` ints in ``[0, n_branches)``: ``2 * roll_branch +
                elbow_branch`` (see the module docstring).
            roll: ``(M,)`` free wrist-roll parameter, used only by rows whose
                approach is vertical (the roll is then ``roll + pi *
                roll_branch``); default :attr:`roll_zero`.
            roll_rng: without ``roll``, draw it uniformly over the canonical
                half-circle from this generator (``M`` draws, only when a row's
                approach is vertical: other requests draw nothing).
            grasp_of_row: ``(M,)`` the grasp of each row among ``G`` grasps (many rows per
                grasp: the roll equation is solved once per grasp), or None.

        Returns:
            ``q (M, 8)`` whole-body configurations (NaN rows where the elbow
            equation has no real solution or, for a structure that holds only
            up to rounding, where the Newton steps did not converge) and
            ``valid (M,)``: a real branch with every joint within its limits.

        Raises:
            InvalidRequest: shapes that disagree, a branch or a grasp index out of range,
                NaN grasps.
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
        T, gi = self._grasps(T_world_grasp, M, grasp_of_row)
        rt = self._roll_terms(T)
        rb = branch >> 1
        eb = branch & 1
        if roll is None and roll_rng is not None and M and rt["vertical"][gi].any():
            roll = self.roll_zero + np.pi * roll_rng.random(M)
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
