"""From a landed base to the grasp: arm re-solve, nearest exact stance, bounded correction.

Nav2 stops the base somewhere within its goal tolerance (0.25 m / 0.25 rad by default),
not on the stance. A 5-DoF arm absorbs only two of the three directions of a base error
(``docs/kinematics-notes.md``), so on arrival the navigator:

1. solves the five arm joints for the grasp **from the landed base** (:meth:`ArrivalPlanner.
   check`: the core's arm-only Levenberg-Marquardt, :func:`.ranking.arm_only_solve`, started
   at the stance's arm joints) and checks the result by forward kinematics against the
   arrival tolerance, the joint limits and the front camera (:class:`.visibility.Visibility`);
2. if that fails, picks the **nearest exact stance** to the landed base (:meth:`ArrivalPlanner.
   correction_target`): on the closed-form stance manifold of the grasp
   (:class:`.manifold.StanceManifold`), the point of the stance's branch whose base pose is
   closest to the landed one, in the metric ``dx^2 + dy^2 + (yaw_weight_m * dyaw)^2``
   (Gauss-Newton over the manifold coordinates). Its base differs from the landed one only
   along the direction the arm cannot absorb, so the base moves a few centimetres and the arm
   takes the rest. It must be within the limits and keep the tool well in view
   (``target_visibility_margin_m``); otherwise the nearest such point of a coarse grid of
   the manifold, or the proposed stance itself, is the target;
3. drives there with a slow, closed-loop holonomic motion (:func:`correction_command`: a
   proportional law on the body-frame error, speed, distance and time bounded), then solves
   again from where the base stopped.

Units: metres, radians, seconds; a base pose is ``base_footprint`` in the world
(:class:`.types.BasePose`); twists are in the body frame (``cmd_vel``: x forward, y left,
yaw rate). Nothing here imports ROS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as np

from .config import config_field, ConfigSection
from .geometry import wrap_angle
from .manifold import StanceManifold
from .ranking import arm_only_solve
from .robot import WholeBodyModel
from .types import BasePose
from .visibility import Visibility

_f = config_field

#: Finite-difference step of the Gauss-Newton search over the manifold coordinates (rad).
_FD_STEP = 1e-6


@dataclass(frozen=True)
class ArrivalConfig(ConfigSection):
    """What counts as arrived, and the bounds of the base correction."""

    tolerance_m: float = _f(0.002, "the arm is commanded only when the tool, by FK from the "
                            "landed base, is this close to the grasp (m)", 1e-6, 1.0)
    tolerance_deg: float = _f(1.0, "same, orientation (deg)", 1e-4, 180.0)
    min_visibility_margin_m: float = _f(0.0, "required visibility margin of the tool from "
                                        "the front camera at the solved arm joints (m)",
                                        -1.0, 1.0)
    target_visibility_margin_m: float = _f(0.005, "visibility margin a correction target "
                                           "keeps when one near enough does, so that the "
                                           "millimetres the correction stops short do not "
                                           "take the tool out of view (m)", -1.0, 1.0)
    solve_iterations: int = _f(30, "Levenberg-Marquardt steps of the arm-only solve from the "
                               "landed base", 1, 1000)
    max_corrections: int = _f(2, "base corrections per stance before the next stance "
                              "(0: never move the base after Nav2)", 0, 20)
    max_linear_speed_mps: float = _f(0.05, "largest correction speed (m/s)", 1e-4, 1.0)
    max_angular_speed_radps: float = _f(0.2, "largest correction yaw rate (rad/s)", 1e-4, 3.0)
    max_distance_m: float = _f(0.2, "longest correction: a farther target is not attempted, "
                               "and a motion that has taken the base this far from where "
                               "it started stops (m)", 0.0, 2.0)
    max_time_s: float = _f(10.0, "longest correction motion (s)", 0.1, 600.0)
    gain_per_s: float = _f(1.0, "proportional gain of the correction (1/s): speed = gain * "
                           "error, then clipped", 0.01, 20.0)
    stop_xy_m: float = _f(0.002, "a correction ends when the base is this close to its "
                          "target (m)", 1e-5, 0.1)
    stop_yaw_deg: float = _f(0.3, "... and this close in yaw (deg)", 1e-3, 10.0)
    yaw_weight_m: float = _f(0.2, "metres of base travel that one radian of turning counts "
                             "as when the nearest exact stance is chosen (m/rad)", 1e-3, 10.0)


@dataclass(frozen=True)
class ArmCheck:
    """The arm solved from a landed base, and what FK says about it.

    Attributes:
        q: ``(nq,)`` the landed base and the solved arm joints.
        position_error_m: tool to grasp distance (m), by FK.
        orientation_error_rad: tool to grasp rotation (rad), by FK.
        within_tolerance: both errors within the arrival tolerance.
        within_limits: every arm joint within its limits.
        visible: the front camera sees the tool with the required margin.
        visibility_margin_m: that margin (m; negative: not visible).
    """

    q: np.ndarray
    position_error_m: float
    orientation_error_rad: float
    within_tolerance: bool
    within_limits: bool
    visible: bool
    visibility_margin_m: float

    @property
    def ok(self) -> bool:
        """Tell whether the arm can be commanded to ``q``."""
        return self.within_tolerance and self.within_limits and self.visible

    @property
    def arm(self) -> np.ndarray:
        """The arm joints ``(n_arm,)``."""
        return self.q[3:]

    def as_dict(self) -> dict:
        """Return the check as plain data (a report entry; angles in degrees)."""
        return {"ok": self.ok, "position_error_m": self.position_error_m,
                "orientation_error_deg": math.degrees(self.orientation_error_rad),
                "within_tolerance": self.within_tolerance, "within_limits": self.within_limits,
                "visible": self.visible, "visibility_margin_m": self.visibility_margin_m,
                "arm": [float(v) for v in self.arm], "reason": self.reason()}

    def reason(self) -> str:
        """Say why the arm cannot be commanded ('' when it can), with the numbers."""
        parts = []
        if not self.within_tolerance:
            parts.append(f"tool off the grasp by {1e3 * self.position_error_m:.1f} mm / "
                         f"{math.degrees(self.orientation_error_rad):.2f} deg")
        if not self.within_limits:
            parts.append("arm joints outside their limits")
        if not self.visible:
            parts.append(f"tool not visible from the front camera (margin "
                         f"{1e3 * self.visibility_margin_m:.1f} mm)")
        return "; ".join(parts)


@dataclass(frozen=True)
class CorrectionTarget:
    """Where the base should go to reach the grasp exactly.

    Attributes:
        q: ``(nq,)`` an exact, valid, visible stance of the grasp.
        base: its base pose.
        distance_m: straight-line distance from the landed base (m).
        yaw_rad: yaw change from the landed base (rad, wrapped).
        source: ``"manifold"`` (the nearest exact stance on the stance's branch),
            ``"grid"`` (a grid point of the grasp's manifold) or ``"stance"`` (the
            proposed stance itself).
    """

    q: np.ndarray
    base: BasePose
    distance_m: float
    yaw_rad: float
    source: str


@dataclass(frozen=True)
class CorrectionStep:
    """One tick of the correction controller.

    Attributes:
        vx, vy, wz: body-frame twist to send (m/s, m/s, rad/s); zero once finished.
        status: ``"moving"``, ``"arrived"`` (within the stop tolerance), ``"timeout"``
            (``max_time_s`` passed) or ``"too_far"`` (``max_distance_m`` from the start).
        error_xy_m: distance to the target (m).
        error_yaw_rad: yaw to the target (rad, wrapped).
    """

    vx: float
    vy: float
    wz: float
    status: str
    error_xy_m: float
    error_yaw_rad: float

    @property
    def finished(self) -> bool:
        """Tell whether the motion is over (the twist is then zero)."""
        return self.status != "moving"


class LandingStats:
    """Landing errors measured so far (dx, dy in the stance's frame, dyaw): the error model.

    The ranking's ``proposal.base_sigma_xy_m`` and ``proposal.base_sigma_yaw_deg`` are the
    standard deviations of exactly these; :meth:`summary` gives their root mean squares.
    """

    def __init__(self) -> None:
        self.errors: list[tuple[float, float, float]] = []

    def add(self, dx: float, dy: float, dyaw: float) -> None:
        """Record one landing error (m, m, rad)."""
        self.errors.append((float(dx), float(dy), float(dyaw)))

    def summary(self) -> dict:
        """Return the count and the RMS of dx, dy (m) and dyaw (deg), with the suggested sigmas."""
        if not self.errors:
            return {"count": 0}
        e = np.asarray(self.errors)
        rms = np.sqrt((e ** 2).mean(axis=0))
        return {"count": len(e), "rms_dx_m": float(rms[0]), "rms_dy_m": float(rms[1]),
                "rms_dyaw_deg": float(np.degrees(rms[2])),
                "suggested_base_sigma_xy_m": float(np.sqrt((rms[0] ** 2 + rms[1] ** 2) / 2)),
                "suggested_base_sigma_yaw_deg": float(np.degrees(rms[2]))}


def base_error(reference: BasePose, pose: BasePose) -> tuple[float, float, float]:
    """Return ``pose`` seen from ``reference``: ``(dx, dy, dyaw)`` in the reference's frame.

    The landing error of a base that was sent to ``reference`` (dx forward, dy left).
    """
    c, s = math.cos(reference.yaw), math.sin(reference.yaw)
    ex, ey = pose.x - reference.x, pose.y - reference.y
    return c * ex + s * ey, -s * ex + c * ey, float(wrap_angle(pose.yaw - reference.yaw))


def correction_command(current: BasePose, target: BasePose, elapsed_s: float,
                       moved_m: float, cfg: ArrivalConfig) -> CorrectionStep:
    """Return the body-frame twist that moves the base towards ``target`` (closed loop).

    Proportional on the error seen from the current base (``gain_per_s``), the linear
    part clipped to ``max_linear_speed_mps`` along its own direction and the yaw rate to
    ``max_angular_speed_radps``. The motion ends (zero twist) within ``stop_xy_m`` and
    ``stop_yaw_deg`` of the target, after ``max_time_s`` or once the base is
    ``max_distance_m`` from where the motion started (a displacement, not a path length:
    jitter of the measured pose does not add up).

    Args:
        current: the base now (from TF).
        target: the base pose to reach.
        elapsed_s: time since the motion started (s).
        moved_m: distance from where the motion started (m).
        cfg: bounds and gains.

    Returns:
        A :class:`CorrectionStep`.
    """
    dx, dy, dyaw = base_error(current, target)
    dist = math.hypot(dx, dy)

    def done(status: str) -> CorrectionStep:
        return CorrectionStep(0.0, 0.0, 0.0, status, dist, dyaw)

    if dist <= cfg.stop_xy_m and abs(dyaw) <= math.radians(cfg.stop_yaw_deg):
        return done("arrived")
    if elapsed_s >= cfg.max_time_s:
        return done("timeout")
    if moved_m >= cfg.max_distance_m:
        return done("too_far")
    vx, vy = cfg.gain_per_s * dx, cfg.gain_per_s * dy
    speed = math.hypot(vx, vy)
    if speed > cfg.max_linear_speed_mps:
        vx, vy = vx * cfg.max_linear_speed_mps / speed, vy * cfg.max_linear_speed_mps / speed
    wz = min(max(cfg.gain_per_s * dyaw, -cfg.max_angular_speed_radps),
             cfg.max_angular_speed_radps)
    return CorrectionStep(vx, vy, wz, "moving", dist, dyaw)


def integrate_twist(pose: BasePose, vx: float, vy: float, wz: float, dt: float) -> BasePose:
    """Move a base by a constant body-frame twist for ``dt`` seconds (exact on SE(2)).

    For simulations (the benchmark, the tests, a fake Nav2 that integrates ``cmd_vel``).
    """
    th = wz * dt
    if abs(th) < 1e-9:
        a, b = dt, 0.5 * wz * dt * dt  # sin(th)/wz and (1 - cos(th))/wz to second order
    else:
        a, b = math.sin(th) / wz, (1.0 - math.cos(th)) / wz
    lx, ly = a * vx - b * vy, b * vx + a * vy  # displacement in the start frame
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    return BasePose(pose.x + c * lx - s * ly, pose.y + s * lx + c * ly,
                    float(wrap_angle(pose.yaw + th)))


@dataclass
class ArrivalPlanner:
    """Arm solve from a landed base and the nearest exact stance, for one robot.

    Args:
        robot: the whole-body model.
        visibility: the front camera's visibility checker of ``robot``.
        manifold: the closed-form stance manifold (None for a description without the
            closed form: the correction target is then always the proposed stance).
        config: tolerances and correction bounds.
    """

    robot: WholeBodyModel
    visibility: Visibility
    manifold: StanceManifold | None
    config: ArrivalConfig = field(default_factory=ArrivalConfig)

    # ---------------------------------------------------------------- arm solve
    def check(self, T_goal: np.ndarray, landed: BasePose, arm_seed: np.ndarray) -> ArmCheck:
        """Solve the arm joints for the grasp from the landed base and check them by FK.

        Args:
            T_goal: ``(4, 4)`` the grasp (tool pose in the world).
            landed: where the base is.
            arm_seed: ``(n_arm,)`` start arm joints (the stance's).

        Returns:
            An :class:`ArmCheck`.
        """
        return self.check_many(T_goal, np.array([[landed.x, landed.y, landed.yaw]]),
                               np.asarray(arm_seed, dtype=float)[None])[0]

    def check_many(self, T_goal: np.ndarray, bases: np.ndarray,
                   arm_seeds: np.ndarray) -> list[ArmCheck]:
        """Batched :meth:`check`: bases ``(n, 3)`` (x, y, yaw), seeds ``(n, n_arm)``."""
        cfg = self.config
        q = np.concatenate([np.asarray(bases, dtype=float),
                            np.asarray(arm_seeds, dtype=float)], axis=1)
        sol = arm_only_solve(self.robot, q, np.asarray(T_goal, dtype=float), cfg.tolerance_m,
                             math.radians(cfg.tolerance_deg), cfg.solve_iterations)
        # ArmSolution computes q and the errors when asked: once each, not once per row
        q_solved, dp, dr, within = (sol.q, sol.position_error_m, sol.orientation_error_rad,
                                    sol.within())
        limits = self.robot.within_limits(q_solved)
        vis = self.visibility.check_chain(sol.tool_base, sol.chain)
        margin = vis.margin
        seen = vis.visible & (margin >= cfg.min_visibility_margin_m)
        return [ArmCheck(q_solved[i].copy(), float(dp[i]), float(dr[i]), bool(within[i]),
                         bool(limits[i]), bool(seen[i]), float(margin[i]))
                for i in range(q.shape[0])]

    # ---------------------------------------------------------------- correction
    def _weighted(self, q: np.ndarray, landed: BasePose) -> np.ndarray:
        """Residuals ``(k, 3)``: stance bases minus the landed one (yaw weighted, wrapped)."""
        r = np.empty((q.shape[0], 3))
        r[:, 0] = q[:, 0] - landed.x
        r[:, 1] = q[:, 1] - landed.y
        r[:, 2] = self.config.yaw_weight_m * wrap_angle(q[:, 2] - landed.yaw)
        return r

    def nearest_exact_stance(self, T_goal: np.ndarray, landed: BasePose,
                             stance_q: np.ndarray, iterations: int = 12
                             ) -> tuple[np.ndarray, bool]:
        """Find the exact stance of the grasp, on the stance's branch, nearest the landed base.

        Gauss-Newton over the manifold coordinates (pan, lift, and the roll for a
        vertical approach), started at the stance's own, with the Jacobian by finite
        differences of the closed form; pan and lift stay within their limits.

        Args:
            T_goal: ``(4, 4)`` the grasp.
            landed: the landed base.
            stance_q: ``(nq,)`` an exact stance of the grasp (its branch is kept).
            iterations: Gauss-Newton steps.

        Returns:
            ``(q, valid)``: the stance ``(nq,)`` (NaN when the closed form has no
            solution there) and whether every joint is within its limits.
        """
        sm = self.manifold
        T = np.asarray(T_goal, dtype=float)
        pan, lift, branch, roll = sm.coordinates(np.asarray(stance_q, dtype=float)[None], T,
                                                 return_roll=True)
        vertical = bool(sm.is_vertical(T)[0])
        x = np.array([pan[0], lift[0]] + ([roll[0]] if vertical else []))
        lo = np.array([sm.robot.lower[3], sm.robot.lower[4]] + ([-np.inf] if vertical else []))
        hi = np.array([sm.robot.upper[3], sm.robot.upper[4]] + ([np.inf] if vertical else []))
        k = x.size
        eye = np.eye(k)

        def solve(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            rolls = points[:, 2] if vertical else None
            return sm.solve(T, points[:, 0], points[:, 1], np.full(len(points), branch[0]),
                            roll=rolls)

        for _ in range(iterations):
            q, _ = solve(np.vstack([x, x + _FD_STEP * eye]))
            if not np.all(np.isfinite(q)):
                break  # at the edge of the branch: keep the last point
            r = self._weighted(q, landed)
            J = (r[1:] - r[0]).T / _FD_STEP  # (3, k)
            try:
                step = np.linalg.lstsq(J, -r[0], rcond=None)[0]
            except np.linalg.LinAlgError:  # a non-finite landed pose
                break
            x_new = np.clip(x + step, lo, hi)
            if np.max(np.abs(x_new - x)) < 1e-12:
                break
            x = x_new
        q, valid = solve(x[None])
        return q[0], bool(valid[0])

    def correction_target(self, T_goal: np.ndarray, landed: BasePose,
                          stance_q: np.ndarray, n_grid: int = 24) -> CorrectionTarget:
        """Choose where the base goes: the nearest exact stance that stays well in view.

        Candidates, all exact stances of the grasp within the joint limits: the nearest
        one on the stance's branch (:meth:`nearest_exact_stance`), the points of a coarse
        grid of the grasp's manifold (every branch; :meth:`StanceManifold.grid`) and the
        proposed stance. Among those within ``max_distance_m`` of the landed base, the
        nearest (the metric of :meth:`nearest_exact_stance`) whose tool the camera sees
        with ``target_visibility_margin_m`` wins; when none keeps that margin, the one
        with the largest margin (at least ``min_visibility_margin_m``); else the proposed
        stance. A target right at the edge of the view would leave it again with the
        few millimetres the correction stops short.

        Args:
            T_goal: ``(4, 4)`` the grasp.
            landed: the landed base.
            stance_q: ``(nq,)`` the proposed (exact, valid, visible) stance.
            n_grid: pan and lift cells of the grid.

        Returns:
            A :class:`CorrectionTarget`.
        """
        stance_q = np.asarray(stance_q, dtype=float)
        cands, sources = [stance_q[None]], ["stance"]
        if self.manifold is not None:
            near, valid = self.nearest_exact_stance(T_goal, landed, stance_q)
            if valid and np.all(np.isfinite(near)):
                cands.append(near[None])
                sources.append("manifold")
            grid, ok, _ = self.manifold.grid(np.asarray(T_goal, dtype=float), n_grid, n_grid)
            grid = grid[ok & np.all(np.isfinite(grid), axis=1)]
            cands.append(grid)
            sources += ["grid"] * len(grid)
        q = np.concatenate(cands)
        vis = self.visibility.check(q)
        margin = np.where(vis.visible, vis.margin, -np.inf)
        cfg = self.config
        dist = np.sqrt((self._weighted(q, landed) ** 2).sum(1))
        reach = np.hypot(q[:, 0] - landed.x, q[:, 1] - landed.y) <= cfg.max_distance_m
        reach[0] = True  # the proposed stance stays a candidate
        margin[~reach] = -np.inf
        if (margin >= cfg.target_visibility_margin_m).any():  # the nearest well in view
            best = int(np.argmin(np.where(margin >= cfg.target_visibility_margin_m, dist,
                                          np.inf)))
        elif (margin >= cfg.min_visibility_margin_m).any():  # else the best in view
            best = int(np.argmax(margin))
        else:
            best = 0
        q = q[best]
        base = BasePose(float(q[0]), float(q[1]), float(wrap_angle(q[2])))
        return CorrectionTarget(q.copy(), base, math.hypot(base.x - landed.x, base.y - landed.y),
                                float(wrap_angle(base.yaw - landed.yaw)), sources[best])

    def served_target(self, T_goal: np.ndarray, stance_q: np.ndarray
                      ) -> tuple[np.ndarray, float]:
        """Return the grasp as a stance serves it: turned about its approach axis, and the turn.

        A stance server with grasp freedom (``grasp_symmetric``, ``grasp_free_roll``)
        answers with stances whose tool reaches the grasp turned about its approach axis
        (the tool's +z): its flip, or any roll. The stance was verified, ranked and found
        robust for that tool pose, so the arrival solves and checks for it, not for the
        requested roll (from which the arm may not reach, or see, the grasp at all).

        Args:
            T_goal: ``(4, 4)`` the requested grasp (tool pose in the world).
            stance_q: ``(nq,)`` the stance (exact for the tool pose it serves).

        Returns:
            ``T_goal`` turned about its own +z by the stance's turn (position and
            approach axis exactly the request's), and the turn (rad, in (-pi, pi]); the
            request itself and 0.0 when the stance's tool is not at the grasp's position
            and approach within the arrival tolerance, or turned by 1e-9 rad or less.
        """
        T = np.asarray(T_goal, dtype=float)
        tool = self.robot.config.tool_frame
        T_tool = self.robot.fk(np.asarray(stance_q, dtype=float)[None], [tool])[tool][0]
        cfg = self.config
        cos_tilt = float(np.clip(T[:3, 2] @ T_tool[:3, 2], -1.0, 1.0))
        if (np.linalg.norm(T_tool[:3, 3] - T[:3, 3]) > cfg.tolerance_m
                or math.acos(cos_tilt) > math.radians(cfg.tolerance_deg)):
            return T, 0.0
        x = T[:3, :3].T @ T_tool[:3, 0]  # the tool's x in the grasp's frame
        turn = math.atan2(x[1], x[0])
        if abs(turn) <= 1e-9:
            return T, 0.0
        c, s = math.cos(turn), math.sin(turn)
        out = T.copy()
        out[:3, :3] = T[:3, :3] @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return out, turn

    def arm_of_stance(self, T_goal: np.ndarray, base: BasePose,
                      n_pan: int = 24, n_lift: int = 24) -> np.ndarray | None:
        """Find the arm joints of a stance known only by its base pose.

        For a base pose from ``/propose_stance`` without its arm joints: the exact,
        valid and visible grid point of the grasp's manifold whose base is nearest,
        then :meth:`nearest_exact_stance` from it.

        Returns:
            ``(nq,)`` the stance, or None when the grasp has no valid, visible grid point
            or no manifold.
        """
        if self.manifold is None:
            return None
        q, valid, _ = self.manifold.grid(np.asarray(T_goal, dtype=float), n_pan, n_lift)
        ok = valid & np.all(np.isfinite(q), axis=1)
        if ok.any():
            ok[ok] = self.visibility.check(q[ok]).visible
        if not ok.any():
            return None
        cand = q[ok]
        r = self._weighted(cand, base)
        best = cand[int(np.argmin((r ** 2).sum(1)))]
        near, valid = self.nearest_exact_stance(T_goal, base, best)
        return near if valid and np.all(np.isfinite(near)) else best
