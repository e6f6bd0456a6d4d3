"""The one grasp generator (evaluation/grasps.py): reachable, stratified and unreachable grasps."""

import numpy as np
import pytest

from reachability_ros.core.errors import ConfigError
from reachability_ros.core.geometry import quat_to_matrix
from reachability_ros.core.manifold import StanceManifold
from reachability_ros.evaluation.ground_truth import ground_truth
from reachability_ros.evaluation.grasps import (DEFAULT_ELEVATION_EDGES_DEG,
                                                DEFAULT_HEIGHT_EDGES_M, UNREACHABLE_KINDS,
                                                grasp_descriptors, reachable_grasps,
                                                unreachable_grasps)

STRATA = (DEFAULT_HEIGHT_EDGES_M, DEFAULT_ELEVATION_EDGES_DEG)


def _orthonormal(T):
    R = T[:, :3, :3]
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape),
                               atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)


def test_reachable_grasps_are_seen_tool_poses(robot, visibility):
    g = reachable_grasps(robot, 60, np.random.default_rng(3), visibility=visibility)
    assert len(g) == 60 and g.T_world_grasp.shape == (60, 4, 4) and g.quat_xyzw.shape == (60, 4)
    _orthonormal(g.T_world_grasp)
    np.testing.assert_allclose(quat_to_matrix(g.quat_xyzw), g.T_world_grasp[:, :3, :3],
                               atol=1e-12)
    # deterministic given the generator's state, different for another seed
    again = reachable_grasps(robot, 60, np.random.default_rng(3), visibility=visibility)
    np.testing.assert_array_equal(again.T_world_grasp, g.T_world_grasp)
    other = reachable_grasps(robot, 60, np.random.default_rng(4), visibility=visibility)
    assert not np.array_equal(other.T_world_grasp, g.T_world_grasp)
    # as requests: the same numbers
    req = g.grasps("odom")
    assert len(req) == 60 and req[5].frame_id == "odom"
    np.testing.assert_array_equal(req[5].position, g.T_world_grasp[5, :3, 3])
    np.testing.assert_array_equal(req[5].orientation, g.quat_xyzw[5])
    # each has a visible exact stance: the manifold's ground truth is not empty
    sm = StanceManifold(robot)
    for T in g.T_world_grasp[:8]:
        assert len(ground_truth(sm, T, visibility, n_pan=32, n_lift=32)["q"]) > 0


def test_base_frame_grasps_and_without_visibility(robot):
    g = reachable_grasps(robot, 200, np.random.default_rng(5), visible=False, base_frame=True)
    h, _ = grasp_descriptors(g.T_world_grasp)
    # any in-limit tool pose, the base at the origin: within the arm's reach of it
    assert np.linalg.norm(g.T_world_grasp[:, :2, 3], axis=1).max() < 0.6
    assert h.max() > 0.4  # high grasps come back when visibility is not asked for
    assert len(reachable_grasps(robot, 0, np.random.default_rng(0))) == 0
    with pytest.raises(ConfigError, match="integer >= 0"):
        reachable_grasps(robot, -1, np.random.default_rng(0))


def test_stratified_grasps_spread_over_heights_and_approaches(robot, visibility):
    rng = np.random.default_rng(2)
    g = reachable_grasps(robot, 300, rng, visibility=visibility, base_extent_m=2.0,
                         strata=STRATA)
    assert len(g) == 300
    h, e = grasp_descriptors(g.T_world_grasp)
    assert h.min() > -0.06 and h.max() < 0.36
    # floor pick-ups, top-down and side approaches all present
    assert np.sum(e > 75) > 20 and np.sum(np.abs(e) < 15) > 20 and np.sum(h < 0.05) > 20
    plain = reachable_grasps(robot, 300, np.random.default_rng(2), visibility=visibility,
                             base_extent_m=2.0)
    hp, ep = grasp_descriptors(plain.T_world_grasp)
    # stratification lifts the rare strata: below the floor, above 0.3 m, from below
    rare, rare_plain = ((h < 0) | (h > 0.3) | (e < -15)), ((hp < 0) | (hp > 0.3) | (ep < -15))
    assert rare.sum() > 2 * rare_plain.sum()
    with pytest.raises(ConfigError, match="height_edges_m"):
        reachable_grasps(robot, 3, rng, strata=((0.3, 0.1), DEFAULT_ELEVATION_EDGES_DEG))


def test_unreachable_grasps_have_no_visible_stance(robot, visibility):
    kinds = tuple(UNREACHABLE_KINDS)
    g = unreachable_grasps(90, np.random.default_rng(1), kinds=kinds)
    _orthonormal(g.T_world_grasp)
    np.testing.assert_allclose(quat_to_matrix(g.quat_xyzw), g.T_world_grasp[:, :3, :3],
                               atol=1e-12)
    h, e = grasp_descriptors(g.T_world_grasp)
    high, above, below = (slice(i, None, 3) for i in range(3))
    # "high": above anything the arm reaches at any configuration within limits
    q = robot.random_configurations(100000, np.random.default_rng(0))
    top = robot.fk(q, [robot.config.tool_frame])[robot.config.tool_frame][:, 2, 3].max()
    assert h[high].min() >= 0.7 > top + 0.05
    assert h[above].min() >= 0.4 and h[above].max() <= 0.6
    # "from_below": far below the lowest elevation a visible stance reaches (-29 deg)
    assert e[below].max() <= -55.0 + 1e-9 and h[below].min() >= 0.0 and h[below].max() <= 0.3
    assert np.abs(g.T_world_grasp[:, :2, 3]).max() <= 3.0
    # and the exact ground truth agrees: no visible stance for any of them
    sm = StanceManifold(robot)
    for T in g.T_world_grasp[:12]:
        assert len(ground_truth(sm, T, visibility, n_pan=32, n_lift=32)["q"]) == 0


def test_unreachable_kinds_are_checked():
    rng = np.random.default_rng(0)
    g = unreachable_grasps(4, rng, kinds=("from_below",), extent_m=0.5)
    assert np.abs(g.T_world_grasp[:, :2, 3]).max() <= 0.5
    with pytest.raises(ConfigError, match="far"):
        unreachable_grasps(3, rng, kinds=("far",))
    with pytest.raises(ConfigError, match="kinds"):
        unreachable_grasps(3, rng, kinds=())


def test_detector_grasps_cycle_their_approaches_around_the_object():
    from reachability_ros.evaluation.grasps import DETECTOR_APPROACHES_DEG, detector_grasps
    center = np.array([1.0, -2.0, 0.1])
    a = detector_grasps(center, 30, np.random.default_rng(3))
    b = detector_grasps(center, 30, np.random.default_rng(3))
    np.testing.assert_array_equal(a.T_world_grasp, b.T_world_grasp)
    R = a.T_world_grasp[:, :3, :3]
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape),
                               atol=1e-12)
    assert np.all(np.linalg.norm(a.T_world_grasp[:, :3, 3] - center, axis=1) < 0.1)
    elevation = np.degrees(np.arcsin(-R[:, 2, 2]))
    want = np.tile(list(DETECTOR_APPROACHES_DEG.values()), 10)
    assert np.all(np.abs(elevation - want) < 45.0) and np.median(np.abs(elevation - want)) < 15
    np.testing.assert_allclose(quat_to_matrix(a.quat_xyzw), R, atol=1e-12)
