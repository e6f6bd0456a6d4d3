"""Robustness to navigation error: the fused arm-only re-solve against a slow reference."""

import numpy as np
import pytest

from reachability_ros.core.config import ProposalConfig
from reachability_ros.core.geometry import compose_planar
from reachability_ros.core.ranking import nonlinear_robustness, perturbations
from reachability_ros.core.refine import refine


@pytest.fixture(scope="module")
def stances(robot, visibility):
    """Visible in-limit configurations far from the origin; each one's tool pose is its grasp."""
    rng = np.random.default_rng(7)
    q = robot.random_configurations(4000, rng, base_extent_m=50.0)
    q = q[visibility.check(q).visible][:30]
    T = robot.fk_pinocchio(q, robot.config.tool_frame)
    return q, T


def reference_robustness(robot, visibility, q, T, delta, cfg):
    """Per base error: Levenberg-Marquardt on the arm (30 iterations, same least-squares
    metric: the tolerance box as a ball), Pinocchio FK, visibility."""
    qp = compose_planar(q[None], delta)[0]
    res = refine(robot, qp, T, iterations=30, columns=np.arange(3, robot.nq),
                 position_tol_m=1e-7, orientation_tol_rad=1e-7,
                 orientation_weight=cfg.grasp_tolerance_m / np.radians(cfg.grasp_tolerance_deg))
    Tf = robot.fk_pinocchio(res.q, robot.config.tool_frame)
    dp = np.linalg.norm(Tf[:, :3, 3] - T[:3, 3], axis=1)
    cos = (np.trace(T[:3, :3].T @ Tf[:, :3, :3], axis1=1, axis2=2) - 1) / 2
    dr = np.arccos(np.clip(cos, -1, 1))
    v = visibility.check(res.q)
    return ((dp <= cfg.grasp_tolerance_m) & (dr <= np.radians(cfg.grasp_tolerance_deg))
            & v.visible & (v.margin >= cfg.min_visibility_margin_m))


def test_no_base_error_is_fully_robust_and_a_metre_is_not(robot, visibility, stances):
    q, T = stances
    cfg = ProposalConfig()
    for qi, Ti in zip(q[:10], T[:10]):
        assert nonlinear_robustness(robot, visibility, qi[None], Ti, np.zeros((4, 3)), cfg)[0] \
            == 1.0
        far = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [-1.0, 0.5, 0.0]])
        assert nonlinear_robustness(robot, visibility, qi[None], Ti, far, cfg)[0] == 0.0


@pytest.mark.parametrize("iterations,min_agreement", [(2, 0.96), (3, 0.975)])
def test_matches_the_levenberg_marquardt_reference_per_base_error(
        robot, visibility, stances, iterations, min_agreement):
    q, T = stances
    cfg = ProposalConfig()
    rng = np.random.default_rng(3)
    agree = total = positives = 0
    for qi, Ti in zip(q, T):
        delta = perturbations(rng, 24, cfg)
        ref = reference_robustness(robot, visibility, qi, Ti, delta, cfg)
        got = np.array([nonlinear_robustness(robot, visibility, qi[None], Ti, d[None], cfg,
                                             iterations=iterations)[0]
                        for d in delta]) == 1.0
        agree += int((got == ref).sum())
        total += len(delta)
        positives += int(ref.sum())
    # both outcomes occur, and the few-step solve decides like the 30-step reference
    # (measured: 97.1 % with two steps, 98.5 % with three)
    assert 0.1 * total < positives < 0.95 * total
    assert agree / total >= min_agreement, f"agreement {agree / total:.3f}"


def test_fraction_is_the_mean_over_base_errors(robot, visibility, stances):
    q, T = stances
    cfg = ProposalConfig()
    delta = perturbations(np.random.default_rng(5), 16, cfg)
    whole = nonlinear_robustness(robot, visibility, q[:1], T[0], delta, cfg)[0]
    each = [nonlinear_robustness(robot, visibility, q[:1], T[0], d[None], cfg)[0] for d in delta]
    assert whole == pytest.approx(np.mean(each))


def test_linear_robustness_normal_formula_matches_qr(robot, visibility, stances):
    from reachability_ros.core.ranking import linear_robustness
    q, _ = stances
    cfg = ProposalConfig()
    rng = np.random.default_rng(11)
    delta = perturbations(rng, 256, cfg)
    qb = q.copy()
    qb[:, :3] = 0.0
    normal = linear_robustness(robot, qb, delta, cfg, method="normal")
    qr = linear_robustness(robot, qb, delta, cfg, method="qr")
    assert np.abs(normal - qr).max() <= 1.0 / 256  # a tie at the boundary at most
    assert 0.0 < normal.mean() < 1.0


def test_rotation_error_reads_a_half_turn_as_pi():
    from reachability_ros.core.ranking import _rotation_error
    eye = np.repeat(np.eye(3)[:, :, None], 2, axis=2)
    half = eye.copy()
    half[:, :, 1] = np.diag([1.0, -1.0, -1.0])  # pi about x: the skew part vanishes
    e = _rotation_error(half, eye)
    assert np.allclose(e[:, 0], 0.0)
    assert np.linalg.norm(e[:, 1]) == pytest.approx(np.pi)
