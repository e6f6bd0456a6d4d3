"""The proposal pipeline: verified stances, honest failures, typed errors for bad requests."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reachability_ros.core.config import ProposalConfig, StanceConfig
from reachability_ros.core.errors import InvalidRequest
from reachability_ros.core.geometry import matrix_to_quat, pose_error
from reachability_ros.core.pipeline import StanceProposer
from reachability_ros.core.requests import validate_grasp
from reachability_ros.core.types import BasePose, Grasp


def task_grasps(robot, visibility, n, seed):
    rng = np.random.default_rng(seed)
    q = robot.random_configurations(4000, rng)
    q = q[visibility.check(q).visible][:n]
    T = robot.fk(q, [robot.config.tool_frame])[robot.config.tool_frame]
    return [Grasp(tuple(t[:3, 3]), tuple(matrix_to_quat(t[:3, :3])), "map") for t in T]


@pytest.fixture(scope="module")
def rejection(robot):
    cfg = StanceConfig(proposal=ProposalConfig(sampler="rejection", refinement="numerical",
                                               n_samples=256, top_k=5))
    return StanceProposer(cfg, robot)


def check_candidates(robot, visibility, result, grasp, pos_tol=1e-4, ori_tol_deg=0.05):
    """Independent re-check: Pinocchio FK (not the vectorized path), limits, visibility."""
    T_goal = grasp.matrix()
    q = np.array([c.q for c in result.candidates])
    T = robot.fk_pinocchio(q, robot.config.tool_frame)
    dp, dr = pose_error(T, T_goal[None])
    assert np.all(dp <= pos_tol), dp
    assert np.all(np.degrees(dr) <= ori_tol_deg), np.degrees(dr)
    assert np.all(robot.within_limits(q))
    assert np.all(visibility.check(q).visible)
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True)


def test_rejection_baseline_finds_verified_stances(robot, visibility, rejection):
    grasps = task_grasps(robot, visibility, 4, seed=3)
    found = 0
    for g in grasps:
        r = rejection.propose(g, rng=np.random.default_rng(0))
        assert sum(v for k, v in r.funnel.items() if k not in (
            "proposed", "feasible", "not_in_top_k", "returned")) + r.funnel["feasible"] \
            == r.funnel["proposed"]
        if r.ok:
            found += 1
            check_candidates(robot, visibility, r, g)
            assert r.funnel["returned"] == len(r.candidates) <= 5
            # robustness of a returned stance: the fraction of S base errors it absorbs
            S = rejection.config.proposal.robustness_samples
            rob = np.array([c.metrics["robustness"] for c in r.candidates]) * S
            assert S > 0 and np.isfinite(rob).all()
            np.testing.assert_allclose(rob, np.round(rob), atol=1e-9)
    assert found >= 3


def test_unreachable_grasp_says_why(rejection):
    r = rejection.propose(Grasp((0.0, 0.0, 0.95), (0.0, 0.0, 0.0, 1.0)),
                          rng=np.random.default_rng(0))
    assert not r.ok and not r.candidates
    assert "of 256 proposals" in r.reason
    assert r.funnel["feasible"] == 0 and r.funnel["returned"] == 0


def test_far_from_origin_and_travel_term(robot, visibility, rejection):
    g = task_grasps(robot, visibility, 1, seed=11)[0]
    far = Grasp((g.position[0] + 1e4, g.position[1] - 1e4, g.position[2]), g.orientation)
    r = rejection.propose(far, current_base=BasePose(1e4, -1e4, 0.0),
                          rng=np.random.default_rng(1))
    assert r.ok
    check_candidates(robot, visibility, r, far)
    assert "travel" in r.candidates[0].terms and r.candidates[0].terms["travel"] <= 0


BAD = [
    ((math.nan, 0, 0.1), (0, 0, 0, 1), "non-finite"),
    ((0, math.inf, 0.1), (0, 0, 0, 1), "non-finite"),
    ((0, 0, 0.1), (0, 0, 0, 0), "unit quaternion"),
    ((0, 0, 0.1), (0, 0, 0, 2), "unit quaternion"),
    ((0, 0, 0.1), (0, 0, math.nan, 1), "non-finite"),
    ((0, 0, 25.0), (0, 0, 0, 1), "height"),
    ((1e9, 0, 0.1), (0, 0, 0, 1), "1,000 km"),
    ((0, 0), (0, 0, 0, 1), "3 numbers"),
    ((0, 0, 0.1), (0, 0, 1), "quaternion"),
    (("a", 0, 0.1), (0, 0, 0, 1), "numbers"),
]


@pytest.mark.parametrize("pos,quat,msg", BAD)
def test_bad_requests_raise_typed_errors(pos, quat, msg):
    with pytest.raises(InvalidRequest, match=msg):
        validate_grasp(Grasp(pos, quat), ProposalConfig())


finite = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=300, deadline=None)
@given(pos=st.lists(finite, min_size=0, max_size=5), quat=st.lists(finite, min_size=0,
                                                                    max_size=6))
def test_validation_fuzz_never_crashes(pos, quat):
    """Any input gives either a valid transform or InvalidRequest, never another exception."""
    try:
        T = validate_grasp(Grasp(tuple(pos), tuple(quat)), ProposalConfig())
    except InvalidRequest:
        return
    assert T.shape == (4, 4) and np.all(np.isfinite(T))
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)
    # the same pose as the vectorized conversion of the normalized grasp
    q = np.asarray(quat, dtype=float) / np.linalg.norm(quat)
    np.testing.assert_allclose(T, Grasp(tuple(pos), tuple(q)).matrix(), rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def grid(robot):
    cfg = StanceConfig(proposal=ProposalConfig(sampler="grid", n_samples=1024, top_k=5))
    return StanceProposer(cfg, robot)


def test_grid_sampler_is_exact_and_verified(robot, visibility, grid):
    assert grid.sampler_name == "grid"
    ok = 0
    for g in task_grasps(robot, visibility, 6, seed=5):
        r = grid.propose(g, rng=np.random.default_rng(0))
        if r.ok:
            ok += 1
            check_candidates(robot, visibility, r, g, pos_tol=1e-9, ori_tol_deg=1e-7)
    assert ok >= 5


def test_top_down_grasp_on_the_floor(robot, visibility, grid):
    """A vertical approach: the roll is free; the grid samples it."""
    g = Grasp((1.0, -2.0, 0.03), (0.0, 1.0, 0.0, 0.0))  # tool z pointing down
    r = grid.propose(g, rng=np.random.default_rng(0))
    if r.ok:
        check_candidates(robot, visibility, r, g, pos_tol=1e-9, ori_tol_deg=1e-7)
    else:
        assert "visible" in r.reason or "unreachable" in r.reason


class NoisyOracle:
    """A sampler that returns true stances plus noise: what a learned 8-D model gives."""

    name = "noisy-oracle"

    def __init__(self, robot, visibility, sigma):
        self.robot, self.visibility, self.sigma = robot, visibility, sigma

    def sample(self, T, n, rng):
        from reachability_ros.core.manifold import StanceManifold
        from reachability_ros.core.samplers import Proposals
        m = StanceManifold(self.robot)
        q, valid, _ = m.grid(T, n_pan=24, n_lift=24)
        q = q[valid][rng.integers(0, valid.sum(), n)]
        q = q + self.sigma * rng.standard_normal(q.shape)
        return Proposals(q, np.ones(n, dtype=bool), exact=False)


@pytest.mark.parametrize("refinement", ["exact", "numerical"])
def test_refinement_of_approximate_samples(robot, visibility, refinement):
    cfg = StanceConfig(proposal=ProposalConfig(sampler="grid", refinement=refinement,
                                               n_samples=128, top_k=3))
    p = StanceProposer(cfg, robot)
    p.sampler = NoisyOracle(robot, visibility, sigma=0.01)
    g = task_grasps(robot, visibility, 1, seed=21)[0]
    r = p.propose(g, rng=np.random.default_rng(3))
    assert r.ok, r.reason
    check_candidates(robot, visibility, r, g)
    assert r.funnel["far_from_grasp"] < 128


@pytest.mark.parametrize("min_distance_m, min_yaw_deg", [
    (0.05, 15.0), (0.05, 90.0), (0.05, 180.0), (0.05, 270.0), (0.0, 15.0), (0.2, 0.0)])
def test_diverse_top_k_matches_a_plain_greedy_loop(min_distance_m, min_yaw_deg):
    from reachability_ros.core.ranking import diverse_top_k
    rng = np.random.default_rng(0)
    # yaws on both sides of +-pi, so that the wrap-around is exercised
    q = np.c_[rng.uniform(0, 0.3, (400, 2)), rng.uniform(-np.pi, np.pi, 400)]
    score = rng.normal(size=400)
    min_yaw = np.radians(min_yaw_deg)
    got = diverse_top_k(q, score, 10, min_distance_m, min_yaw)
    keep = []
    for i in np.argsort(-score, kind="stable"):
        if all(not (np.hypot(*(q[i, :2] - q[j, :2])) < min_distance_m and
                    abs(np.angle(np.exp(1j * (q[i, 2] - q[j, 2])))) < min_yaw)
               for j in keep):
            keep.append(i)
        if len(keep) == 10:
            break
    assert got.tolist() == keep


@pytest.mark.parametrize("yaw_difference, min_yaw, duplicate", [
    (0.0, 0.0, False),      # a zero minimum yaw never makes duplicates, even at equal yaws
    (5e-10, 1e-9, True),    # tiny differences still compare right
    (2e-9, 1e-9, False),
    (np.radians(14.9), np.radians(15), True),
    (np.radians(15.1), np.radians(15), False),
    (np.pi - 1e-3, np.pi, True),
    (np.radians(190), np.radians(200), True),  # wraps to 170 deg
])
def test_diverse_top_k_yaw_edge_cases(yaw_difference, min_yaw, duplicate):
    from reachability_ros.core.ranking import diverse_top_k
    for yaw0 in (2.0590161226172397, -3.1, 0.0, 3.1):
        q = np.array([[0.0, 0.0, yaw0], [0.01, 0.0, yaw0 + yaw_difference]])
        got = diverse_top_k(q, np.array([1.0, 0.0]), 2, 0.05, min_yaw).tolist()
        assert got == ([0] if duplicate else [0, 1]), (yaw0, got)


@pytest.mark.parametrize("k", [0, -1, 1001, 2.5])
def test_top_k_out_of_range_is_refused(rejection, k):
    with pytest.raises(InvalidRequest, match="top_k"):
        rejection.propose(Grasp((0, 0, 0.1), (0, 0, 0, 1)), top_k=k)


def test_numerical_refinement_keeps_yaw_canonical(robot, visibility, rejection):
    found = 0
    for grasp in task_grasps(robot, visibility, 3, seed=8):
        r = rejection.propose(grasp, rng=np.random.default_rng(1))
        if r.ok:
            found += 1
            assert np.all(np.abs(r.feasible_q[:, 2]) <= np.pi + 1e-12)
    assert found >= 2
