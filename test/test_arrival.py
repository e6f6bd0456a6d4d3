"""Arrival at a stance (core/arrival.py): arm solve from a landed base, nearest exact stance,
the correction law; every result checked with Pinocchio FK from the URDF."""

import math

import numpy as np
import pinocchio as pin
import pytest

from reachability_ros.core.arrival import (ArrivalConfig, ArrivalPlanner, base_error,
                                           correction_command, integrate_twist)
from reachability_ros.core.errors import ConfigError
from reachability_ros.core.geometry import compose_planar, pose_error, wrap_angle
from reachability_ros.core.ranking import arm_only_solve
from reachability_ros.core.types import BasePose


@pytest.fixture(scope="module")
def stances(robot, visibility):
    """Visible in-limit configurations; each one's tool pose is its grasp (an exact stance)."""
    rng = np.random.default_rng(11)
    q = robot.random_configurations(4000, rng, base_extent_m=20.0)
    q = q[visibility.check(q).visible][:24]
    return q, robot.fk_pinocchio(q, robot.config.tool_frame)


@pytest.fixture(scope="module")
def planner(robot, visibility, manifold):
    return ArrivalPlanner(robot, visibility, manifold, ArrivalConfig())


def fk_error(robot, q, T):
    """Position (m) and orientation (deg) errors of the tool by Pinocchio FK, ``(n,)`` each."""
    dp, dr = pose_error(robot.fk_pinocchio(np.atleast_2d(q), robot.config.tool_frame), T)
    return dp, np.degrees(dr)


def landed_near(q, d):
    """The base of stance ``q`` moved by ``d`` (dx, dy in its frame, dyaw)."""
    x = compose_planar(np.asarray(q)[None], np.asarray(d, dtype=float)[None])[0, 0]
    return BasePose(float(x[0]), float(x[1]), float(x[2]))


def test_arm_only_solve_groups_agree_with_single_rows(robot, stances):
    q, T = stances
    delta = np.random.default_rng(2).standard_normal((5, 3)) * [0.02, 0.02, 0.03]
    qp = compose_planar(q[:1], delta).reshape(5, -1)
    grouped = arm_only_solve(robot, qp, T[0], 0.01, np.radians(5.0), 4, group=5)
    for i in range(5):
        single = arm_only_solve(robot, qp[i:i + 1], T[0], 0.01, np.radians(5.0), 4)
        np.testing.assert_allclose(single.q[0], grouped.q[i], atol=1e-12)
        np.testing.assert_allclose(single.position_error_m[0], grouped.position_error_m[i],
                                   atol=1e-12)
    # the reported errors are the FK errors of the returned joints
    dp, dr = fk_error(robot, grouped.q, T[0])
    np.testing.assert_allclose(grouped.position_error_m, dp, atol=1e-9)
    np.testing.assert_allclose(np.degrees(grouped.orientation_error_rad), dr, atol=1e-7)


def test_arm_only_solve_with_a_target_per_group_is_one_call_per_group(robot, stances):
    """The two merged forms of the arm-only solve: targets ``(n // group, 4, 4)`` and
    ``free_roll`` per group give, group by group, what a call for that group alone gives
    (and what one row per call gives); a free-roll group ignores only the turn about its
    approach axis (Pinocchio FK)."""
    q, T = stances
    M, S = 6, 5
    delta = np.random.default_rng(4).standard_normal((S, 3)) * [0.03, 0.03, 0.05]
    qp = compose_planar(q[:M], delta).reshape(M * S, -1)
    free = np.array([True, False, False, True, False, True])
    tol_m, tol_rad = 0.002, np.radians(1.0)
    for flags in (None, free):
        both = arm_only_solve(robot, qp, T[:M], tol_m, tol_rad, 3, group=S, free_roll=flags)
        for m in range(M):
            rows = slice(m * S, (m + 1) * S)
            f = None if flags is None else flags[m:m + 1]
            alone = arm_only_solve(robot, qp[rows], T[m], tol_m, tol_rad, 3, group=S,
                                   free_roll=f)
            one_by_one = arm_only_solve(robot, qp[rows], np.repeat(T[m][None], S, axis=0),
                                        tol_m, tol_rad, 3, free_roll=None if f is None
                                        else np.repeat(f, S))
            for other in (alone, one_by_one):
                np.testing.assert_allclose(other.q, both.q[rows], atol=1e-9)
                np.testing.assert_allclose(other.weighted_error, both.weighted_error[:, rows],
                                           atol=1e-7)
                assert np.array_equal(other.within(), both.within()[rows])
    # the free groups: the reported rotation error leaves out the turn about the approach
    # axis (Pinocchio FK); the fixed groups keep all of it
    T_fk = robot.fk_pinocchio(both.q, robot.config.tool_frame)
    T_goal = np.repeat(T[:M], S, axis=0)
    fixed = arm_only_solve(robot, qp, T[:M], tol_m, tol_rad, 3, group=S)
    for i, is_free in enumerate(np.repeat(free, S)):
        w = pin.log3(T_goal[i, :3, :3].T @ T_fk[i, :3, :3])
        expect = np.hypot(w[0], w[1]) if is_free else np.linalg.norm(w)
        assert both.orientation_error_rad[i] == pytest.approx(expect, abs=1e-7)
    assert (both.within() & ~fixed.within()).any()  # the freedom helps somewhere


def test_the_served_target_is_the_grasp_turned_to_the_stances_tool(planner, robot, stances):
    """A stance reaching the grasp turned about its approach axis (the server's grasp
    freedom) is served that turned grasp; its own grasp, or another pose, leave the request
    as it is (bit for bit: fixed grasps are untouched)."""
    q, T = stances
    rng = np.random.default_rng(8)
    for qi, Ti in zip(q[:8], T[:8]):
        same, turn = planner.served_target(Ti, qi)
        assert turn == 0.0 and np.array_equal(same, Ti)
        r = rng.uniform(-np.pi, np.pi)
        request = Ti.copy()  # the stance's tool is this request turned by r about its z
        request[:3, :3] = Ti[:3, :3] @ pin.exp3(np.array([0.0, 0.0, -r]))
        served, turn = planner.served_target(request, qi)
        assert turn == pytest.approx(r, abs=1e-9)
        np.testing.assert_allclose(served, Ti, atol=1e-9)
        assert np.array_equal(served[:3, 3], request[:3, 3])
        assert np.array_equal(served[:3, 2], request[:3, 2])
        tilted = request.copy()  # the approach axis 3 degrees off: not a turn
        tilted[:3, :3] = request[:3, :3] @ pin.exp3(np.array([np.radians(3.0), 0.0, 0.0]))
        other, turn = planner.served_target(tilted, qi)
        assert turn == 0.0 and np.array_equal(other, tilted)


def test_check_at_the_stance_itself_is_exact(planner, robot, stances):
    q, T = stances
    for qi, Ti in zip(q[:8], T[:8]):
        c = planner.check(Ti, BasePose(*qi[:3]), qi[3:])
        assert c.ok and c.reason() == ""
        dp, dr = fk_error(robot, c.q, Ti)
        assert dp[0] < 1e-9 and dr[0] < 1e-7
        np.testing.assert_allclose(c.q, qi, atol=1e-9)


def test_check_from_a_landed_base_solves_what_the_arm_can_and_says_why_not(planner, robot,
                                                                           stances):
    q, T = stances
    outcomes = []
    for qi, Ti in zip(q, T):
        for d in ([0.03, 0.0, 0.0], [0.0, 0.03, 0.0], [0.0, 0.0, 0.05]):
            landed = landed_near(qi, d)
            c = planner.check(Ti, landed, qi[3:])
            np.testing.assert_allclose(c.q[:3], [landed.x, landed.y, landed.yaw])
            dp, dr = fk_error(robot, c.q, Ti)
            assert dp[0] == pytest.approx(c.position_error_m, abs=1e-9)
            assert dr[0] == pytest.approx(math.degrees(c.orientation_error_rad), abs=1e-6)
            assert c.within_tolerance == (dp[0] <= 0.002 and dr[0] <= 1.0)
            assert robot.within_limits(c.q[None])[0] == c.within_limits
            assert planner.visibility.check(c.q[None]).visible[0] == c.visible
            if not c.ok:
                assert c.reason()
            if not c.within_tolerance:
                assert "mm" in c.reason() and "deg" in c.reason()
            outcomes.append(c.ok)
    # a 5-DoF arm absorbs some base errors, not all
    assert 0 < sum(outcomes) < len(outcomes)


def weighted_distance(planner, q, landed):
    r = planner._weighted(np.atleast_2d(q), landed)
    return np.sqrt((r ** 2).sum(1))


def test_the_nearest_exact_stance_is_exact_and_nearest(planner, robot, manifold, stances):
    q, T = stances
    rng = np.random.default_rng(4)
    for qi, Ti in zip(q[:10], T[:10]):
        landed = landed_near(qi, rng.standard_normal(3) * [0.03, 0.03, math.radians(3)])
        near, valid = planner.nearest_exact_stance(Ti, landed, qi)
        if not np.all(np.isfinite(near)):
            continue
        dp, dr = fk_error(robot, near, Ti)
        assert dp[0] < 1e-8 and dr[0] < 1e-6  # exact: the arm needs no slack
        d_near = weighted_distance(planner, near, landed)[0]
        assert d_near <= weighted_distance(planner, qi, landed)[0] + 1e-12
        # brute force: no stance of the branch on a fine (pan, lift) grid is nearer
        pan, lift, branch, roll = manifold.coordinates(qi[None], Ti, return_roll=True)
        P, L = np.meshgrid(pan[0] + np.linspace(-0.6, 0.6, 121),
                           lift[0] + np.linspace(-0.6, 0.6, 121))
        grid, ok = manifold.solve(Ti, P.ravel(), L.ravel(), np.full(P.size, branch[0]),
                                  roll=np.full(P.size, roll[0]))
        inside = (robot.lower[3:5] <= grid[:, 3:5]).all(1) & (grid[:, 3:5] <= robot.upper[
            3:5]).all(1)  # the search keeps pan and lift within their limits
        grid = grid[np.all(np.isfinite(grid), axis=1) & inside]
        assert weighted_distance(planner, grid, landed).min() >= d_near - 2e-3


def test_a_landed_base_on_the_manifold_needs_no_correction(planner, manifold, stances):
    q, T = stances
    tried = 0
    for qi, Ti in zip(q, T):
        pan, lift, branch, roll = manifold.coordinates(qi[None], Ti, return_roll=True)
        other, ok = manifold.solve(Ti, pan + 0.02, lift - 0.02, branch, roll=roll)
        if not (ok[0] and planner.visibility.check(other).visible[0]):
            continue
        tried += 1
        landed = BasePose(*other[0, :3])  # another exact stance's base
        target = planner.correction_target(Ti, landed, qi)
        assert target.source == "manifold"
        assert target.distance_m < 1e-6 and abs(target.yaw_rad) < 1e-6
        assert planner.check(Ti, landed, qi[3:]).ok
    assert tried >= 5


def test_the_correction_target_is_exact_valid_and_visible(planner, robot, stances):
    q, T = stances
    rng = np.random.default_rng(6)
    sources = []
    for qi, Ti in zip(q, T):
        landed = landed_near(qi, rng.standard_normal(3) * [0.03, 0.03, math.radians(3)])
        t = planner.correction_target(Ti, landed, qi)
        sources.append(t.source)
        dp, dr = fk_error(robot, t.q, Ti)
        assert dp[0] < 1e-8 and dr[0] < 1e-6
        assert robot.within_limits(t.q[None])[0] and planner.visibility.check(
            t.q[None]).visible[0]
        assert t.distance_m == pytest.approx(math.hypot(t.base.x - landed.x,
                                                        t.base.y - landed.y))
        # from the target, the arm reaches the grasp
        assert planner.check(Ti, t.base, t.q[3:]).ok
    assert "manifold" in sources


def test_the_target_keeps_the_tool_in_view_and_within_reach(robot, visibility, manifold,
                                                            stances):
    q, T = stances
    rng = np.random.default_rng(8)
    strict = ArrivalPlanner(robot, visibility, manifold,
                            ArrivalConfig(target_visibility_margin_m=0.5))  # never kept
    near = ArrivalPlanner(robot, visibility, manifold, ArrivalConfig(max_distance_m=0.0))
    default = ArrivalPlanner(robot, visibility, manifold, ArrivalConfig())
    for qi, Ti in zip(q[:8], T[:8]):
        landed = landed_near(qi, rng.standard_normal(3) * [0.03, 0.03, math.radians(3)])
        t = default.correction_target(Ti, landed, qi)
        margin = visibility.check(t.q[None]).margin[0]
        if t.source != "stance":
            assert margin >= 0.005 - 1e-12
        # no candidate keeps the margin: the one seen best, never worse than the default's
        best = strict.correction_target(Ti, landed, qi)
        assert visibility.check(best.q[None]).margin[0] >= margin - 1e-12
        assert best.distance_m <= 0.2 + 1e-9
        # nothing within reach but the proposed stance
        assert near.correction_target(Ti, landed, qi).source == "stance"


def test_without_a_manifold_the_target_is_the_proposed_stance(robot, visibility, stances):
    q, T = stances
    p = ArrivalPlanner(robot, visibility, None)
    t = p.correction_target(T[0], landed_near(q[0], [0.02, 0.01, 0.02]), q[0])
    assert t.source == "stance"
    np.testing.assert_allclose(t.q, q[0])
    assert p.arm_of_stance(T[0], BasePose(*q[0, :3])) is None


def test_arm_of_stance_recovers_the_stance_from_its_base(planner, robot, stances):
    q, T = stances
    for qi, Ti in zip(q[:6], T[:6]):
        got = planner.arm_of_stance(Ti, BasePose(*qi[:3]))
        assert got is not None
        np.testing.assert_allclose(got[:3], qi[:3], atol=1e-7)
        dp, dr = fk_error(robot, got, Ti)
        assert dp[0] < 1e-8 and dr[0] < 1e-6


# ------------------------------------------------------------------ the correction law
def test_base_error_is_seen_from_the_reference():
    ref = BasePose(1.0, 2.0, math.pi / 2)
    dx, dy, dyaw = base_error(ref, BasePose(1.0, 2.1, math.pi / 2 + 0.1))
    assert (dx, dy) == pytest.approx((0.1, 0.0)) and dyaw == pytest.approx(0.1)
    dx, dy, _ = base_error(ref, BasePose(0.9, 2.0, 0.0))
    assert (dx, dy) == pytest.approx((0.0, 0.1))


@pytest.mark.parametrize("target,expect", [
    (BasePose(0.01, 0.0, 0.0), (0.01, 0.0, 0.0)),     # slow near the goal: gain * error
    (BasePose(0.0, 0.5, 0.0), (0.0, 0.05, 0.0)),      # clipped to the speed bound
    (BasePose(0.3, 0.4, 0.0), (0.03, 0.04, 0.0)),     # clipped along its own direction
    (BasePose(0.0, 0.0, 1.0), (0.0, 0.0, 0.2)),       # yaw rate bound
    (BasePose(0.0, 0.0, -0.1), (0.0, 0.0, -0.1)),
])
def test_the_command_is_proportional_and_bounded(target, expect):
    step = correction_command(BasePose(0.0, 0.0, 0.0), target, 0.0, 0.0, ArrivalConfig())
    assert step.status == "moving"
    assert (step.vx, step.vy, step.wz) == pytest.approx(expect)


def test_the_command_is_in_the_body_frame():
    # the target is straight ahead of a base facing +y
    step = correction_command(BasePose(0.0, 0.0, math.pi / 2), BasePose(0.0, 0.01, math.pi / 2),
                              0.0, 0.0, ArrivalConfig())
    assert (step.vx, step.vy) == pytest.approx((0.01, 0.0), abs=1e-12)


@pytest.mark.parametrize("current,elapsed,moved,status", [
    (BasePose(0.0, 0.001, 0.001), 0.0, 0.0, "arrived"),
    (BasePose(0.0, 0.05, 0.0), 10.0, 0.0, "timeout"),
    (BasePose(0.0, 0.05, 0.0), 1.0, 0.2, "too_far"),
])
def test_the_motion_ends_with_a_zero_twist(current, elapsed, moved, status):
    step = correction_command(current, BasePose(0.0, 0.0, 0.0), elapsed, moved, ArrivalConfig())
    assert step.status == status and step.finished
    assert (step.vx, step.vy, step.wz) == (0.0, 0.0, 0.0)


def test_integrate_twist_is_exact_on_se2():
    pose = BasePose(1.0, -1.0, 0.3)
    vx, vy, wz = 0.05, -0.02, 0.2
    fine = pose
    for _ in range(20000):
        fine = integrate_twist(fine, vx, vy, wz, 1e-4)  # 20,000 short steps compose to one
    exact = integrate_twist(pose, vx, vy, wz, 2.0)
    assert (exact.x, exact.y) == pytest.approx((fine.x, fine.y), abs=1e-9)
    assert wrap_angle(exact.yaw - fine.yaw) == pytest.approx(0.0, abs=1e-9)
    straight = integrate_twist(pose, 0.1, 0.0, 0.0, 1.0)
    assert (straight.x, straight.y) == pytest.approx((1.0 + 0.1 * math.cos(0.3),
                                                      -1.0 + 0.1 * math.sin(0.3)))


@pytest.mark.parametrize("scale", [0.7, 1.0, 1.3])
def test_the_closed_loop_reaches_the_stop_tolerance_within_the_bounds(scale):
    cfg = ArrivalConfig()
    target = BasePose(0.0, 0.0, 0.0)
    rng = np.random.default_rng(1)
    for _ in range(20):
        pose = BasePose(*(rng.standard_normal(3) * [0.04, 0.04, 0.06]))
        start, t, dt = pose, 0.0, 0.05
        while True:
            moved = math.hypot(pose.x - start.x, pose.y - start.y)
            step = correction_command(pose, target, t, moved, cfg)
            assert math.hypot(step.vx, step.vy) <= cfg.max_linear_speed_mps + 1e-12
            assert abs(step.wz) <= cfg.max_angular_speed_radps + 1e-12
            if step.finished:
                break
            pose = integrate_twist(pose, scale * step.vx, scale * step.vy, scale * step.wz, dt)
            t += dt
        assert step.status == "arrived" and t < cfg.max_time_s
        assert step.error_xy_m <= cfg.stop_xy_m


def test_arrival_config_is_validated():
    with pytest.raises(ConfigError, match="max_linear_speed_mps"):
        ArrivalConfig(max_linear_speed_mps=5.0)
    with pytest.raises(ConfigError, match="unknown"):
        ArrivalConfig.from_dict({"tolerance_mm": 2})
    assert ArrivalConfig.from_flat({"tolerance_m": 0.003}).tolerance_m == 0.003
