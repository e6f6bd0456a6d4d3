"""The scene checks against an independent brute force, and the pipeline's returned stances.

The judge (``evaluation/scene_truth.py``) shares nothing with ``core/scene.py``: points
sampled on the collision shapes as the URDF writes them, placed by Pinocchio's own
``updateGeometryPlacements``, and plain point-to-box and point-to-square distances.
"""

import math

from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np
import pinocchio as pin
import pytest

from reachability_ros.core.config import ProposalConfig, StanceConfig, WorldConfig
from reachability_ros.core.diagnosis import footprint_radius
from reachability_ros.core.pipeline import StanceProposer
from reachability_ros.core.scene import SceneChecker
from reachability_ros.core.world import Boxes, OccupancyGrid
from reachability_ros.evaluation.grasps import reachable_grasps
from reachability_ros.evaluation.scene_truth import (box_clearance, cell_clearance, disc_points,
                                                     shape_points)

#: The bounding capsules of the non-vertical cylinders (wheels, cameras) are at most this
#: much larger than the cylinders; the rest is exact.
CAPSULE_SLACK_M = 0.035


@pytest.fixture(scope="module")
def checker(robot, visibility):
    r = footprint_radius(robot.model, robot.geom_model, robot.config.base_frame)
    return SceneChecker(robot, visibility.p_base_cam, WorldConfig(), r)


@pytest.fixture(scope="module")
def proposer(robot):
    cfg = StanceConfig(proposal=ProposalConfig(sampler="grid", model_path="", n_samples=1024,
                                               robustness_samples=4))
    return StanceProposer(cfg, robot)


def random_boxes(rng, n=6, spread=0.6):
    return Boxes.from_records([
        {"center": [*rng.uniform(-spread, spread, 2), rng.uniform(0.0, 0.4)],
         "size": list(rng.uniform(0.05, 0.4, 3)), "yaw": rng.uniform(-3, 3)}
        for _ in range(n)])


def test_the_judge_measures_what_it_says(robot, rng):
    boxes = Boxes.from_records([{"center": [1, 0, 0.5], "size": [0.2, 0.4, 1.0], "yaw": 0.0}])
    pts = np.array([[1.0, 0.0, 0.5], [1.3, 0.0, 0.5], [1.1, 0.2, 1.3]])
    assert np.allclose(box_clearance(pts, boxes), [0.0, 0.2, 0.3])
    values = np.zeros((10, 10), np.int8)
    values[5, 5] = 100
    grid = OccupancyGrid(values, 0.1, (0.0, 0.0, 0.0))
    xy = np.array([[0.55, 0.55], [0.55, 0.35], [0.3, 0.3]])
    assert np.allclose(cell_clearance(xy, grid, unknown_is_blocked=False, within_m=0.5),
                       [0.0, 0.15, math.hypot(0.2, 0.2)])
    assert cell_clearance(xy, grid, unknown_is_blocked=False, within_m=0.2)[2] == 0.2
    # every sampled point lies on its shape: inside the shape's own bounding box
    q = robot.random_configurations(1, rng)[0]
    model, geom = robot.model, robot.geom_model
    data, gdata = model.createData(), pin.GeometryData(geom)
    pin.updateGeometryPlacements(model, data, geom, gdata, q)
    for k, (obj, (_, _, p)) in enumerate(zip(geom.geometryObjects, shape_points(robot, q))):
        obj.geometry.computeLocalAABB()
        lo, hi = np.asarray(obj.geometry.aabb_local.min_), np.asarray(obj.geometry.aabb_local.max_)
        local = (p - gdata.oMg[k].translation) @ gdata.oMg[k].rotation
        assert np.all(local >= lo - 1e-9) and np.all(local <= hi + 1e-9), obj.name


def test_box_checks_agree_with_the_brute_force(robot, checker, rng):
    pad = checker.config.box_padding_m
    q = robot.random_configurations(150, rng, base_extent_m=0.3)
    boxes = random_boxes(rng)
    world = checker.prepare(None, boxes)
    base = checker.base_collision(world, q)
    arm = checker.arm_collision(world, q, robot.base_chain(q))
    assert base.collides.any() and (~base.collides).any() and arm.any() and (~arm).any()
    for i in range(len(q)):
        shapes = shape_points(robot, q[i], 150, np.random.default_rng(i))
        near_base = min(box_clearance(p, boxes).min() for _, on, p in shapes if on)
        near_arm = min(box_clearance(p, boxes).min() for _, on, p in shapes if not on)
        # never a miss: a point of the real shapes within the padding is a collision
        assert base.collides[i] or near_base >= pad, (i, near_base)
        assert arm[i] or near_arm >= pad, (i, near_arm)
        # and never far too early
        assert not base.collides[i] or near_base < pad + CAPSULE_SLACK_M, (i, near_base)
        assert not arm[i] or near_arm < pad + CAPSULE_SLACK_M, (i, near_arm)


def test_the_line_of_sight_check_agrees_with_the_brute_force(robot, checker, rng):
    pad = checker.config.occlusion_padding_m
    q = robot.random_configurations(200, rng, base_extent_m=0.3)
    boxes = random_boxes(rng)
    chain = robot.base_chain(q)
    p_tool, _ = robot.frame_in_chain(chain, robot.config.tool_frame)
    hidden = checker.scene_occlusion(checker.prepare(None, boxes), q, p_tool)
    cam = robot.fk_pinocchio(q, robot.config.camera.frame)[:, :3, 3]
    tool = robot.fk_pinocchio(q, robot.config.tool_frame)[:, :3, 3]
    t = np.linspace(0.0, 1.0, 4001)[:, None]
    assert hidden.any() and (~hidden).any()
    for i in range(len(q)):
        d = box_clearance(cam[i] + t * (tool[i] - cam[i]), boxes).min()
        if abs(d - pad) > 1e-3:  # beyond the samples' spacing
            assert hidden[i] == (d < pad), (i, d)


@pytest.mark.parametrize("footprint", ["", "[[0.2, 0.1], [0.2, -0.1], [-0.15, -0.15], "
                                       "[-0.15, 0.15]]", "[[0.3, 0.2], [0.4, 0.2], [0.4, 0.3]]"])
def test_the_footprint_check_agrees_with_the_brute_force(robot, visibility, footprint, rng):
    r = footprint_radius(robot.model, robot.geom_model, robot.config.base_frame)
    checker = SceneChecker(robot, visibility.p_base_cam,
                           WorldConfig(footprint=footprint, footprint_padding_m=0.02), r)
    values = np.zeros((50, 50), np.int8)
    values[rng.random(values.shape) < 0.02] = 100
    values[:3] = -1
    grid = OccupancyGrid(values, 0.05, (-1.2, -1.3, 0.4))
    world = checker.prepare(grid)
    q = robot.random_configurations(250, rng, base_extent_m=1.0)
    check = checker.base_collision(world, q)
    assert check.collides.any() and (~check.collides).any()
    assert np.array_equal(check.collides, check.on_map)
    if checker.polygon.size:  # the edges densely, the inside on a 1 cm lattice
        poly = checker.polygon
        edges = np.linspace(0.0, 1.0, 80, endpoint=False)[:, None]
        rim = np.vstack([a + edges * (b - a) for a, b in zip(poly, np.roll(poly, -1, 0))])
        lattice = np.stack(np.meshgrid(np.arange(-0.5, 0.5, 0.01), np.arange(-0.5, 0.5, 0.01)),
                           -1).reshape(-1, 2)
        inside = np.zeros(len(lattice), bool)  # even-odd rule, written here
        for a, b in zip(poly, np.roll(poly, -1, 0)):
            crosses = (a[1] > lattice[:, 1]) != (b[1] > lattice[:, 1])
            x_at = a[0] + (lattice[:, 1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1] + 1e-300)
            inside ^= crosses & (lattice[:, 0] < x_at)
        local = np.vstack([rim, lattice[inside]])
    else:
        local = disc_points(0.0, 0.0, r, 720)
    for i in range(len(q)):
        c, s = math.cos(q[i, 2]), math.sin(q[i, 2])
        pts = q[i, :2] + local @ np.array([[c, s], [-s, c]])
        d = cell_clearance(pts, grid, 100, True, 0.05).min()
        if abs(d - 0.02) > 2e-3:
            assert check.collides[i] == (d < 0.02), (i, d)
    if not checker.polygon.size:  # the circle's clearance is exact
        centre = cell_clearance(q[:, :2], grid, 100, True, 0.5) - r
        assert np.allclose(check.clearance_m, np.minimum(centre, 0.2), atol=1e-9)


RETURNED: list = []


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000))
def test_no_returned_stance_touches_the_world(robot, proposer, seed):
    """Property: whatever the room, every returned stance clears it (independent check)."""
    rng = np.random.default_rng(seed)
    g = reachable_grasps(robot, 1, rng).grasps()[0]
    gx, gy = g.position[0], g.position[1]
    boxes = Boxes.from_records([
        {"center": [gx + rng.uniform(-0.8, 0.8), gy + rng.uniform(-0.8, 0.8),
                    rng.uniform(0.0, 0.4)], "size": list(rng.uniform(0.05, 0.4, 3)),
         "yaw": rng.uniform(-3, 3)} for _ in range(int(rng.integers(1, 6)))])
    values = np.zeros((60, 60), np.int8)
    values[rng.random(values.shape) < 0.003] = 100
    values[:, int(rng.choice([rng.integers(0, 20), rng.integers(40, 60)]))] = 100  # a wall
    yaw = float(rng.uniform(-3, 3))  # the map turned about its centre, the grasp
    c, s = math.cos(yaw), math.sin(yaw)
    grid = OccupancyGrid(values, 0.05, (gx - 1.5 * (c - s), gy - 1.5 * (s + c), yaw))
    world = proposer.scene.prepare(grid, boxes)
    wc = proposer.config.world
    result = proposer.propose(g, rng=np.random.default_rng(seed), world=world)
    assert set(result.funnel) >= {"base_collision", "arm_collision", "scene_occluded"}
    RETURNED.append(len(result.candidates))
    for c in result.candidates:
        shapes = shape_points(robot, c.q, 100, np.random.default_rng(0))
        assert min(box_clearance(p, boxes).min() for _, _, p in shapes) >= wc.box_padding_m
        floor = np.vstack([disc_points(c.q[0], c.q[1], proposer.scene.footprint_outer_m)]
                          + [p[:, :2] for _, on, p in shapes if on])
        assert cell_clearance(floor, grid, 100, True, 0.1).min() >= wc.footprint_padding_m
        cam = robot.fk_pinocchio(c.q[None], robot.config.camera.frame)[0, :3, 3]
        tool = robot.fk_pinocchio(c.q[None], robot.config.tool_frame)[0, :3, 3]
        seg = cam + np.linspace(0.0, 1.0, 500)[:, None] * (tool - cam)
        assert box_clearance(seg, boxes).min() >= wc.occlusion_padding_m
        assert 0.0 <= c.metrics["clearance_m"] <= wc.clearance_cap_m


def test_the_property_saw_returned_stances():
    """The property above is not vacuous: its rooms let some stances through."""
    assert sum(RETURNED) >= 10, RETURNED


def _default_footprint(model, want):
    r = footprint_radius(model.model, model.geom_model, model.config.base_frame)
    checker = SceneChecker(model, np.zeros(3), WorldConfig(), r)
    assert checker.footprint_outer_m == pytest.approx(want, abs=1e-4)
    assert SceneChecker(model, np.zeros(3), WorldConfig(robot_radius_m=0.2),
                        r).footprint_outer_m == 0.2
    # every base shape lies within the circle's cylinder, up to the capsules' slack
    assert checker.base_radius_m <= r + CAPSULE_SLACK_M


def test_the_default_footprint_is_the_descriptions(robot):
    _default_footprint(robot, 0.1445)


def test_the_reference_descriptions_footprint(reference_robot):
    """The reference LeKiwi (meshes, wheels included) reaches 0.166 m (issue 14)."""
    _default_footprint(reference_robot, 0.1663)
