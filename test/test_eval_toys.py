"""Toy robots of seed 000 (evaluation/toy*): closed forms, URDFs, features, data, metrics."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reachability_ros.core.errors import ConfigError, InvalidRequest
from reachability_ros.core.robot import WholeBodyModel
from reachability_ros.evaluation.coverage import kl_to_uniform, max_circular_gap
from reachability_ros.evaluation.toy_data import (NearestNeighbourLookup, exact_sampler,
                                                  feature_sampler, sample_targets,
                                                  toy_v1_samples, toy_v2_dataset,
                                                  toy_v2_samples)
from reachability_ros.evaluation.toy_metrics import (SEED_METRIC_KEYS, SEED_NN_ROW,
                                                     format_metrics, implied_angles,
                                                     nn_baseline_row, toy_metrics)
from reachability_ros.evaluation.toy_urdf import TOY_ARM_JOINTS
from reachability_ros.evaluation.toys import StickToy, TwoLinkToy

TIGHT = TwoLinkToy(l1_m=0.7, l2_m=0.45, theta1_limits=(-1.0, 0.6), theta2_limits=(-2.2, 2.9),
                   base_pos_eps_m=0.02, base_heading_stddev_rad=0.6)


def _targets(rng, n=400):
    """Targets near the origin and a few far from it (1 km)."""
    h = rng.uniform(-5.0, 5.0, size=(n, 2))
    h[:20] += rng.uniform(-1e3, 1e3, size=(20, 2))
    return h


@pytest.fixture(scope="module")
def stick_model(tmp_path_factory):
    toy = StickToy(1.3)
    return toy, WholeBodyModel(toy.write(tmp_path_factory.mktemp("stick")))


@pytest.fixture(scope="module", params=["default", "tight"])
def two_link_model(request, tmp_path_factory):
    toy = TwoLinkToy() if request.param == "default" else TIGHT
    return toy, WholeBodyModel(toy.write(tmp_path_factory.mktemp("two_link")))


# ------------------------------------------------------------ descriptions
def test_stick_description_loads(stick_model):
    toy, wb = stick_model
    assert wb.nq == 3 and wb.joint_names == ("base_x", "base_y", "base_yaw")
    assert wb.config.reach_m == pytest.approx(1.3)
    _, T = wb.frame_placement(wb.config.tool_frame)
    np.testing.assert_allclose(T[:3, 3], [1.3, 0.0, 0.0], atol=1e-15)


def test_two_link_description_loads(two_link_model):
    toy, wb = two_link_model
    assert wb.nq == 5 and wb.joint_names[3:] == TOY_ARM_JOINTS
    np.testing.assert_array_equal(wb.lower, toy.lower)
    np.testing.assert_array_equal(wb.upper, toy.upper)
    q = np.array([[0.0, 0.0, 0.0, 0.3, 5.0]])
    assert wb.within_limits(q)[0] == toy.within_limits(q)[0]


def test_camera_frame_on_the_base_looks_forward(two_link_model):
    toy, wb = two_link_model
    q = np.array([[1.0, 2.0, 0.5, 0.0, 0.0]])
    T = wb.fk(q, [wb.config.camera.frame])[wb.config.camera.frame][0]
    np.testing.assert_allclose(T[:3, 2], [math.cos(0.5), math.sin(0.5), 0.0], atol=1e-12)


# ------------------------------------------------------------- closed forms
def test_stick_solutions_hit_target(stick_model, rng):
    toy, wb = stick_model
    h = _targets(rng)
    t = rng.uniform(-math.pi, math.pi, size=len(h))
    q = toy.solutions(h, t)
    assert np.abs(toy.fk(q) - h).max() < 1e-9
    T = wb.fk(q)[wb.config.tool_frame]
    assert np.abs(T[:, :2, 3] - h).max() < 1e-9 and np.abs(T[:, 2, 3]).max() < 1e-12
    assert np.abs(T - toy.tool_pose(q)).max() < 1e-9
    assert np.abs(wb.fk_pinocchio(q[:50], wb.config.tool_frame) - T[:50]).max() < 1e-9
    # the implied angle of the circle point is its parameter
    np.testing.assert_allclose(np.cos(implied_angles(q, h) - t), 1.0, atol=1e-12)
    # one target, many angles: the whole circle of radius L around it
    qc = toy.solutions(np.array([3.0, -1.0]), np.linspace(0, 2 * math.pi, 50))
    np.testing.assert_allclose(np.linalg.norm(qc[:, :2] - [3.0, -1.0], axis=1), 1.3)


def test_two_link_ik_hits_target_both_branches(two_link_model, rng):
    toy, wb = two_link_model
    h = _targets(rng)
    base = toy.sample_bases(h, rng)
    r = np.linalg.norm(base[:, :2] - h, axis=1)
    eps = toy.base_pos_eps_m
    assert np.all((r >= toy.r_min_m + eps - 1e-9) & (r <= toy.r_max_m - eps + 1e-9))
    q, valid = toy.ik(base, h)
    assert valid.any()
    # both branches solve the arm equation wherever the target is in reach
    qa = q.reshape(-1, 5)
    assert np.abs(toy.fk(qa) - np.repeat(h, 2, axis=0)).max() < 1e-9
    T = wb.fk(qa)[wb.config.tool_frame]
    assert np.abs(T[:, :2, 3] - np.repeat(h, 2, axis=0)).max() < 1e-9
    assert np.abs(T - toy.tool_pose(qa)).max() < 1e-9
    assert np.abs(wb.fk_pinocchio(qa[:60], wb.config.tool_frame) - T[:60]).max() < 1e-9
    # branches are mirror elbows, and "valid" is exactly "within the limits"
    np.testing.assert_allclose(q[:, 0, 4], -q[:, 1, 4])
    assert np.all(q[:, 0, 4] >= 0.0)
    np.testing.assert_array_equal(valid.reshape(-1), wb.within_limits(qa, tol=0.0))


def test_two_link_manipulability_matches_jacobian(two_link_model, rng):
    toy, wb = two_link_model
    q = toy.sample_solutions(sample_targets(100, rng), rng)
    J = wb.jacobian(q)[:, :2, 3:]  # planar position rows, arm columns
    np.testing.assert_allclose(toy.manipulability(q), np.abs(np.linalg.det(J)), atol=1e-12)
    q[:, 4] = 0.0
    assert np.all(toy.manipulability(q) == 0.0)


def test_two_link_ik_reports_unreachable():
    toy = TwoLinkToy()
    base = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    h = np.array([[toy.r_max_m + 0.01, 0.0], [0.5 * toy.r_min_m, 0.0]])
    _, valid = toy.ik(base, h)
    assert not valid.any()


def test_two_link_solutions_follow_the_limits(rng):
    h = sample_targets(3000, rng)
    q = TIGHT.sample_solutions(h, rng)
    assert np.all(TIGHT.within_limits(q))
    assert np.abs(TIGHT.fk(q) - h).max() < 1e-9
    # both elbow branches appear
    assert 0.2 < np.mean(q[:, 4] > 0) < 0.8
    # the implied angle is uniform (rotational symmetry of the pipeline)
    assert kl_to_uniform(implied_angles(q, h), 36) < 0.01


# ---------------------------------------------------------------- features
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), shift=st.floats(-1e4, 1e4), yaw=st.floats(-7.0, 7.0))
def test_two_link_features_round_trip_and_translation_invariance(seed, shift, yaw):
    rng = np.random.default_rng(seed)
    toy = TIGHT
    h = sample_targets(32, rng) + shift
    q = toy.sample_solutions(h, rng)
    x = toy.featurize(q, h)
    back = toy.decode(x, h)
    np.testing.assert_allclose(back[:, :2], q[:, :2], rtol=0, atol=1e-12 * (1 + abs(shift)))
    np.testing.assert_allclose(np.cos(back[:, 2:] - q[:, 2:]), 1.0, atol=1e-13)
    np.testing.assert_allclose(toy.featurize(back, h), x, atol=1e-12)
    # translate robot and target together: same features
    d = np.array([shift, -0.5 * shift])
    q2 = q.copy()
    q2[:, :2] += d
    np.testing.assert_allclose(toy.featurize(q2, h + d), x, atol=1e-11)
    # the decode of the same features at another target still reaches it
    h3 = h + np.array([yaw, 2 * yaw])
    assert np.abs(toy.fk(toy.decode(x, h3)) - h3).max() < 1e-9


def test_decode_is_exact_for_angles_in_range(rng):
    toy = TwoLinkToy()
    h = sample_targets(500, rng)
    q = toy.sample_solutions(h, rng)
    back = toy.decode(toy.featurize(q, h), h)
    np.testing.assert_allclose(back, q, rtol=0, atol=1e-14)


def test_stick_features_round_trip(rng):
    toy = StickToy(0.8)
    q, h = toy_v1_samples(300, rng, toy)
    x = toy.featurize(q, h)
    np.testing.assert_allclose(np.linalg.norm(x[:, :2], axis=1), 1.0)
    np.testing.assert_allclose(toy.decode(x, h), q, atol=1e-14)


# -------------------------------------------------------------------- data
def test_v2_dataset_deterministic_and_exact():
    c1, x1 = toy_v2_dataset(2000, np.random.default_rng(7), TIGHT)
    c2, x2 = toy_v2_dataset(2000, np.random.default_rng(7), TIGHT)
    _, x3 = toy_v2_dataset(2000, np.random.default_rng(8), TIGHT)
    assert c1.shape == (2000, 2) and not c1.any() and x1.shape == (2000, 8)
    np.testing.assert_array_equal(x1, x2)
    assert not np.array_equal(x1, x3)
    assert toy_v2_dataset(10, np.random.default_rng(0), cond_dim=0)[0].shape == (10, 0)
    # every row decodes, at any target, to a stance that reaches it within the limits
    h = np.tile([[123.4, -56.7]], (len(x1), 1))
    q = TIGHT.decode(x1, h)
    assert np.abs(TIGHT.fk(q) - h).max() < 1e-9
    assert np.all(TIGHT.within_limits(q, tol=1e-12))
    r = np.linalg.norm(x1[:, :2], axis=1) * TIGHT.reach_m
    assert r.min() >= TIGHT.r_min_m + TIGHT.base_pos_eps_m - 1e-9
    assert r.max() <= TIGHT.r_max_m - TIGHT.base_pos_eps_m + 1e-9


def test_v2_samples_pipeline(rng):
    q, h = toy_v2_samples(3000, rng, TIGHT)
    assert q.shape == (3000, 5) and h.shape == (3000, 2)
    assert np.abs(TIGHT.fk(q) - h).max() < 1e-9
    assert np.all(h >= -2.0) and np.all(h <= 2.0)
    # the shoulder limit of TIGHT cuts the heading noise: the filter shapes the data
    dpsi = np.angle(np.exp(1j * (q[:, 2] - implied_angles(q, h))))
    assert np.std(dpsi) < 0.9 * TIGHT.base_heading_stddev_rad
    # with the default limits (never binding for the shoulder) the heading noise is N(0, s^2)
    toy = TwoLinkToy()
    q, h = toy_v2_samples(3000, rng, toy)
    dpsi = np.angle(np.exp(1j * (q[:, 2] - implied_angles(q, h))))
    assert abs(np.std(dpsi) - toy.base_heading_stddev_rad) < 0.02
    assert abs(np.mean(dpsi)) < 0.02


def test_bad_parameters_raise():
    with pytest.raises(ConfigError, match="length_m"):
        StickToy(0.0)
    with pytest.raises(ConfigError, match="theta1_limits"):
        TwoLinkToy(theta1_limits=(1.0, -1.0))
    with pytest.raises(ConfigError, match="base_pos_eps_m"):
        TwoLinkToy(l1_m=0.5, l2_m=0.4, base_pos_eps_m=0.4)
    with pytest.raises(ConfigError, match="workspace_m"):
        sample_targets(3, np.random.default_rng(0), ((0, 0), (0, 1)))
    with pytest.raises(InvalidRequest, match="shape"):
        TwoLinkToy().fk(np.zeros((3, 4)))
    with pytest.raises(InvalidRequest, match="finite"):
        StickToy().fk(np.array([[0.0, np.nan, 0.0]]))
    with pytest.raises(ConfigError, match="directory"):
        StickToy().write("/nonexistent/dir")


# ------------------------------------------------------------------ metrics
def test_max_gap_and_kl_basics():
    assert max_circular_gap(np.zeros((1, 5)))[0] == pytest.approx(2 * math.pi)
    # one target as a 1-D array, and no samples at all: fully uncovered
    assert max_circular_gap(np.array([0.1, 0.1 + math.pi])) == pytest.approx(math.pi)
    assert max_circular_gap(np.zeros(0)) == pytest.approx(2 * math.pi)
    np.testing.assert_allclose(max_circular_gap(np.zeros((3, 0))), 2 * math.pi)
    grid = np.linspace(-math.pi, math.pi, 8, endpoint=False)[None]
    assert max_circular_gap(grid)[0] == pytest.approx(2 * math.pi / 8)
    assert max_circular_gap(np.array([[3.0, -3.0]]))[0] == pytest.approx(2 * math.pi - 0.283185,
                                                                          abs=1e-6)
    flat = np.linspace(0, 2 * math.pi, 3600, endpoint=False) + 1e-3
    assert kl_to_uniform(flat, 36) == pytest.approx(0.0, abs=1e-12)
    assert kl_to_uniform(np.full(100, 0.3), 36) == pytest.approx(math.log(36))


@pytest.mark.parametrize("toy", [StickToy(1.0), TIGHT], ids=["v1", "v2"])
def test_metrics_exact_sampler_and_collapsed_sampler(toy, rng):
    h = sample_targets(200, rng)
    good = toy_metrics(exact_sampler(toy, rng), toy, h, n_samples=100)
    assert set(SEED_METRIC_KEYS) <= set(good)
    assert good["hand_err/max"] < 1e-9
    assert good["coverage/kl_to_uniform"] < 0.01
    assert good["coverage/max_gap_mean"] < 0.5 and good["coverage/max_gap_p95"] < 0.7
    assert good["stochasticity/var_Q_fixed_H"] > 0.1
    assert good["valid/within_limits"] == 1.0

    def collapsed(hq):  # always the same stance relative to the target: mode collapse
        x = np.tile(toy.featurize(toy.sample_solutions(h[:1], np.random.default_rng(0)),
                                  h[:1]), (len(hq), 1))
        return toy.decode(x, hq)

    bad = toy_metrics(collapsed, toy, h, n_samples=100)
    assert bad["hand_err/max"] < 1e-9
    assert bad["coverage/max_gap_mean"] == pytest.approx(2 * math.pi, abs=1e-9)
    assert bad["coverage/kl_to_uniform"] == pytest.approx(math.log(36))
    assert bad["stochasticity/var_Q_fixed_H"] < 1e-20
    text = format_metrics(bad, "collapsed")
    assert text.splitlines()[0] == "=== Results: collapsed ===" and "max_gap_mean 6.283185" in text


def test_metrics_reject_bad_sampler():
    toy = StickToy()
    with pytest.raises(InvalidRequest, match="expected"):
        toy_metrics(lambda h: np.zeros((len(h), 5)), toy, np.zeros((3, 2)), n_samples=4)
    with pytest.raises(InvalidRequest, match="non-finite"):
        toy_metrics(lambda h: np.full((len(h), 3), np.nan), toy, np.zeros((3, 2)), n_samples=4)


def test_feature_sampler_from_dataset_bootstrap(rng):
    """A sampler of Q_feat (here: resampling the data set) decoded at any target."""
    _, x = toy_v2_dataset(20000, rng, TIGHT)
    m = toy_metrics(feature_sampler(TIGHT, lambda n: x[rng.integers(0, len(x), n)]), TIGHT,
                    sample_targets(100, rng, ((-1e3, 1e3), (-1e3, 1e3))), n_samples=100)
    assert m["hand_err/max"] < 1e-9 and m["coverage/kl_to_uniform"] < 0.02
    assert m["valid/within_limits"] == 1.0


# -------------------------------------------------------------- NN baseline
def test_nn_baseline_reproduces_seed_row():
    row = nn_baseline_row(np.random.default_rng(0))
    print("\n" + format_metrics(row, "NNDeterministicLookup"))
    # deterministic lookup: collapsed per target, pooled angles uniform (seed 000 5.3.1)
    assert row["coverage/max_gap_mean"] == pytest.approx(SEED_NN_ROW["coverage/max_gap_mean"],
                                                         abs=1e-6)
    assert row["coverage/max_gap_p95"] == pytest.approx(2 * math.pi, abs=1e-9)
    assert row["stochasticity/var_Q_fixed_H"] < 1e-20
    assert row["coverage/kl_to_uniform"] < 0.04
    # hand error = distance to the nearest training target, same scale as the seed's
    for k in ("hand_err/mean", "hand_err/median", "hand_err/p95"):
        assert row[k] == pytest.approx(SEED_NN_ROW[k], rel=0.15), k


def test_knn_sampler_is_stochastic_and_near(rng):
    toy = StickToy()
    q_train, h_train = toy_v1_samples(5000, rng, toy)
    h = sample_targets(50, rng)
    nn = NearestNeighbourLookup(h_train, q_train, k=8, sigma_m=0.1, rng=rng)
    idx, dist = nn.neighbours(h)
    assert idx.shape == (50, 8) and np.all(np.diff(np.sort(dist, axis=1), axis=1) >= 0)
    brute = np.sort(np.linalg.norm(h[:, None] - h_train[None], axis=2), axis=1)[:, :8]
    np.testing.assert_allclose(np.sort(dist, axis=1), brute, atol=1e-12)
    m = toy_metrics(nn, toy, h, n_samples=50)
    assert m["stochasticity/var_Q_fixed_H"] > 0.01
    assert m["hand_err/max"] <= brute[:, -1].max() + 1e-12
    with pytest.raises(ConfigError, match="rng"):
        NearestNeighbourLookup(h_train, q_train, k=3)
