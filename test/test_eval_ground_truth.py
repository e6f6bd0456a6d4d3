"""The exact ground truth of a grasp's stance set and seed 000's coverage metrics
(evaluation/ground_truth.py, evaluation/coverage.py), checked against finite differences
of the closed-form solver, a flood fill and hand-made cases."""

import numpy as np
import pytest

from reachability_ros.core.geometry import pose_error
from reachability_ros.evaluation.coverage import (azimuth_coverage_gap, evaluate_samples,
                                                  kl_to_ground_truth, mode_recall)
from reachability_ros.evaluation.ground_truth import (area_element, connected_components,
                                                      ground_truth, sample_ground_truth)

TOOL = "gripper_frame_link"


def _tool(robot, q):
    return robot.fk(q, [TOOL])[TOOL]


def _top_down_grasp(x=0.3, z=0.05):
    """A top-down grasp ``x`` m ahead of the origin: a vertical approach, the roll is free."""
    T = np.eye(4)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])
    T[:3, 3] = [x, 0.0, z]
    return T


def test_area_element_matches_finite_differences(robot, manifold):
    rng = np.random.default_rng(6)
    Tg = _tool(robot, robot.random_configurations(1, rng))[0]
    qg, valid, c = manifold.grid(Tg, 12, 12)
    idx = np.flatnonzero(valid)[:40]
    a = area_element(robot, qg[idx])
    R = robot.config.reach_m
    eps = 1e-6

    def stance(pan, lift):
        q, ok = manifold.solve(Tg, pan, lift, c["branch"][idx])
        return np.stack([q[:, 0], q[:, 1], R * np.unwrap(q[:, 2])], axis=1), ok

    p, lf = c["pan"][idx], c["lift"][idx]
    sp1, _ = stance(p + eps, lf)
    sp0, _ = stance(p - eps, lf)
    sl1, _ = stance(p, lf + eps)
    sl0, _ = stance(p, lf - eps)
    dyaw = lambda a1, a0: np.mod(a1 - a0 + np.pi, 2 * np.pi) - np.pi  # noqa: E731
    jp = sp1 - sp0
    jp[:, 2] = R * dyaw(sp1[:, 2] / R, sp0[:, 2] / R)
    jl = sl1 - sl0
    jl[:, 2] = R * dyaw(sl1[:, 2] / R, sl0[:, 2] / R)
    fd = np.linalg.norm(np.cross(jp, jl), axis=1) / (2 * eps) ** 2
    np.testing.assert_allclose(a, fd, rtol=1e-4)


def test_ground_truth_and_seed_metrics(robot, manifold, visibility):
    rng = np.random.default_rng(7)
    # a low, reachable, visible grasp in front of a base at the origin
    q = robot.random_configurations(4000, rng, base_extent_m=0.0)
    q[:, 2] = 0.0
    vis = visibility.check(q).visible
    Tg = _tool(robot, q[np.flatnonzero(vis)[0:1]])[0]
    gt = ground_truth(manifold, Tg, visibility, n_pan=24, n_lift=24)
    assert len(gt["q"]) > 20 and gt["n_modes"] >= 1
    assert gt["weight"].sum() == pytest.approx(1.0)
    assert np.all(gt["weight"] >= 0)
    assert visibility.check(gt["q"]).visible.all()
    dp, dr = pose_error(_tool(robot, gt["q"]), Tg[None])
    assert dp.max() <= 1e-9 and dr.max() <= 1e-9
    assert gt["cell_mass"].sum() == pytest.approx(1.0)
    # samples drawn from the ground truth itself score well
    draws = sample_ground_truth(manifold, gt, 20000, np.random.default_rng(0))
    m = evaluate_samples(manifold, gt, draws)
    assert m["mode_recall"] == 1.0
    assert m["kl"] < 0.1
    assert m["coverage_gap_rad"] <= np.radians(3.0)
    # one mode only: the other modes are missed and a gap opens
    first = gt["cell_mode"][gt["cell"]] == 0
    m1 = evaluate_samples(manifold, gt, gt["q"][first])
    assert m1["mode_recall"] == pytest.approx(1.0 / gt["n_modes"])
    m0 = evaluate_samples(manifold, gt, gt["q"][:1])
    assert m0["coverage_gap_rad"] > m["coverage_gap_rad"]
    assert m0["kl"] > m["kl"]


def test_metric_helpers():
    full = np.linspace(-np.pi, np.pi, 3600, endpoint=False)
    gap = azimuth_coverage_gap(np.array([0.0, np.pi / 2]), full)
    assert gap == pytest.approx(1.5 * np.pi, abs=np.radians(2.0))
    assert azimuth_coverage_gap(np.zeros(0), full) == pytest.approx(2 * np.pi)
    arc = np.linspace(0.0, 1.0, 500)
    assert azimuth_coverage_gap(np.array([0.5]), arc) == pytest.approx(0.5, abs=0.03)
    assert azimuth_coverage_gap(np.array([3.0]), arc) == pytest.approx(1.0, abs=0.03)
    mass = np.array([0.5, 0.5, 0.0])
    assert kl_to_ground_truth(np.array([0, 1]), mass) == pytest.approx(0.0, abs=1e-5)
    assert kl_to_ground_truth(np.array([0, 0]), mass) == pytest.approx(np.log(2), abs=1e-5)
    assert kl_to_ground_truth(np.array([2]), mass) > 10.0
    mask = np.zeros((2, 4, 4), bool)
    mask[0, 0, :2] = mask[0, 3, 3] = mask[1, 1:3, 1] = True
    lab = connected_components(mask)
    assert lab.max() + 1 == 3 and lab[0, 0, 0] == lab[0, 0, 1] and (lab[~mask] == -1).all()
    assert mode_recall(np.array([0]), np.array([0, 1, -1]), 2) == 0.5


def _flood_fill(mask):
    B, P, L = mask.shape
    lab = -np.ones(mask.shape, int)
    n = 0
    for b, i, j in zip(*np.nonzero(mask)):
        if lab[b, i, j] >= 0:
            continue
        stack, lab[b, i, j] = [(i, j)], n
        while stack:
            x, y = stack.pop()
            for u, v in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if 0 <= u < P and 0 <= v < L and mask[b, u, v] and lab[b, u, v] < 0:
                    lab[b, u, v] = n
                    stack.append((u, v))
        n += 1
    return lab


def test_components_match_flood_fill():
    rng = np.random.default_rng(8)
    for _ in range(20):
        m = rng.random((3, 20, 17)) < rng.uniform(0.2, 0.8)
        a, b = connected_components(m)[m], _flood_fill(m)[m]
        # the same partition of the feasible cells
        assert len(set(zip(a, b))) == len(set(a)) == len(set(b))
        assert (connected_components(m)[~m] == -1).all()


def test_volume_element_of_a_vertical_approach(robot, manifold):
    Tg = _top_down_grasp(0.25, 0.1)
    qg, valid, c = manifold.grid(Tg, 8, 8, n_roll=4)
    assert c["vertical"] and valid.sum() >= 30
    idx = np.flatnonzero(valid)[:30]
    a = area_element(robot, qg[idx], vertical=True)
    R = robot.config.reach_m
    eps = 1e-6
    base = (c["roll"][idx], c["pan"][idx], c["lift"][idx])

    def stance(k, d):
        x = [v.copy() for v in base]
        x[k] = x[k] + d
        q, _ = manifold.solve(Tg, x[1], x[2], c["branch"][idx], roll=x[0])
        return q[:, :3]

    cols = []
    for k in range(3):
        d = stance(k, eps) - stance(k, -eps)
        d[:, 2] = R * (np.mod(d[:, 2] + np.pi, 2 * np.pi) - np.pi)
        cols.append(d / (2 * eps))
    fd = np.abs(np.linalg.det(np.stack(cols, axis=2)))
    np.testing.assert_allclose(a, fd, rtol=1e-4)


def test_area_uniform_draws_beat_joint_space_uniform(robot, manifold):
    # a top-down grasp 0.3 m ahead on a low table: the roll circle, no visibility filter
    T = _top_down_grasp()
    gt = ground_truth(manifold, T, None, n_pan=32, n_lift=32, n_roll=4)
    assert gt["vertical"] and gt["n_modes"] >= 1
    draws = sample_ground_truth(manifold, gt, 3000, np.random.default_rng(10))
    assert len(draws) > 2900 and robot.within_limits(draws).all()
    dp, dr = pose_error(_tool(robot, draws), T[None])
    assert dp.max() <= 1e-9 and dr.max() <= 1e-9
    uniform_grid = gt["q"][np.random.default_rng(11).integers(0, len(gt["q"]), 3000)]
    m_area = evaluate_samples(manifold, gt, draws)
    m_joint = evaluate_samples(manifold, gt, uniform_grid)
    assert m_area["kl"] < m_joint["kl"]
