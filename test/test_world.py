"""The world in the core: occupancy grids, their exact distance field, boxes, the footprint.

Distances are checked against brute force written here: every blocked cell's square,
one by one, and dense samples along segments.
"""

import math

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from reachability_ros.core.config import parse_footprint, WorldConfig
from reachability_ros.core.errors import ConfigError
from reachability_ros.core.clearance import segment_box_distance
from reachability_ros.core.world import Boxes, GridField, OccupancyGrid, World


def brute_grid_distance(values, res, origin, xy, threshold=100, unknown_blocked=True):
    """Distance from world points (N, 2) to the blocked squares, the outside included."""
    x0, y0, yaw = origin
    c, s = math.cos(yaw), math.sin(yaw)
    u = c * (xy[:, 0] - x0) + s * (xy[:, 1] - y0)
    v = -s * (xy[:, 0] - x0) + c * (xy[:, 1] - y0)
    blocked = (values >= threshold) | ((values < 0) & unknown_blocked)
    jj, ii = np.nonzero(blocked)
    gx = np.maximum(np.maximum(ii[None] * res - u[:, None], u[:, None] - (ii[None] + 1) * res), 0)
    gy = np.maximum(np.maximum(jj[None] * res - v[:, None], v[:, None] - (jj[None] + 1) * res), 0)
    d = np.sqrt(gx ** 2 + gy ** 2).min(axis=1) if len(ii) else np.full(len(xy), np.inf)
    if unknown_blocked:  # the outside of the map
        h, w = values.shape
        X, Y = w * res, h * res
        inside = (u >= 0) & (u <= X) & (v >= 0) & (v <= Y)
        d = np.minimum(d, np.where(inside, np.minimum.reduce([u, X - u, v, Y - v]), 0.0))
    return d


@pytest.mark.parametrize("unknown_blocked", [True, False])
@pytest.mark.parametrize("origin", [(0.0, 0.0, 0.0), (-1.3, 2.1, 0.7)])
def test_the_distance_field_is_exact(unknown_blocked, origin, rng):
    values = np.zeros((35, 48), dtype=np.int8)
    values[rng.random(values.shape) < 0.04] = 100
    values[rng.random(values.shape) < 0.02] = -1
    values[rng.random(values.shape) < 0.05] = 99  # a costmap's inscribed cells: free at 100
    grid = OccupancyGrid(values, 0.05, origin)
    reach = 0.4
    world = World(GridField(grid, 100, unknown_blocked, reach), origin)
    xy = np.stack([rng.uniform(-0.5, 3.0, 4000), rng.uniform(-0.5, 2.5, 4000)], axis=1)
    xy = (np.array([[math.cos(origin[2]), -math.sin(origin[2])],
                    [math.sin(origin[2]), math.cos(origin[2])]]) @ xy.T).T + origin[:2]
    got = world.grid_distance(xy.T)
    want = np.minimum(brute_grid_distance(values, 0.05, origin, xy, 100, unknown_blocked),
                      reach)
    assert np.abs(got - want).max() < 1e-9


def test_the_threshold_and_an_empty_map():
    values = np.full((10, 10), 99, dtype=np.int8)
    free = GridField(OccupancyGrid(values, 0.1), 100, False, 0.3)
    assert not free.any_blocked
    assert np.all(free.distance(np.array([[0.5], [0.5]])) == 0.3)
    inscribed = GridField(OccupancyGrid(values, 0.1), 99, False, 0.3)
    assert inscribed.distance(np.array([[0.5], [0.5]]))[0] == 0.0
    # far outside a map whose outside is blocked: inside the blocked outside
    outside = GridField(OccupancyGrid(np.zeros((4, 4), np.int8), 0.1), 100, True, 0.3)
    assert outside.distance(np.array([[50.0], [-3.0]]))[0] == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"values": np.zeros((0, 3), np.int8), "resolution_m": 0.05}, "height, width"),
    ({"values": np.zeros(5, np.int8), "resolution_m": 0.05}, "height, width"),
    ({"values": np.full((2, 2), 101), "resolution_m": 0.05}, "-1 .unknown. or 0 ... 100"),
    ({"values": np.zeros((2, 2)), "resolution_m": 0.05}, "integers"),
    ({"values": np.zeros((2, 2), np.int8), "resolution_m": 0.0}, "positive number"),
    ({"values": np.zeros((2, 2), np.int8), "resolution_m": float("nan")}, "positive number"),
    ({"values": np.zeros((2, 2), np.int8), "resolution_m": "0.05"}, "positive number"),
    ({"values": np.zeros((2, 2), np.int8), "resolution_m": 0.05, "origin": (0, 0)},
     "3 numbers"),
    ({"values": np.zeros((2, 2), np.int8), "resolution_m": 0.05,
      "origin": (0, float("inf"), 0)}, "non-finite"),
])
def test_a_bad_grid_is_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        OccupancyGrid(**kwargs)


@pytest.mark.parametrize("records, match", [
    ({"center": [0, 0, 0]}, "must be a list of boxes"),
    ([3], "must be a mapping"),
    ([{"center": [0, 0, 0]}], "missing 'size'"),
    ([{"size": [1, 1, 1]}], "missing 'center'"),
    ([{"center": [0, 0], "size": [1, 1, 1]}], "center must be 3 numbers"),
    ([{"center": [0, 0, 0], "size": [1, -1, 1]}], "size must be positive"),
    ([{"center": [0, 0, 0], "size": [1, 0, 1]}], "size must be positive"),
    ([{"center": [0, float("nan"), 0], "size": [1, 1, 1]}], "non-finite"),
    ([{"center": [0, 0, 0], "size": [1, 1, 1], "yaw": float("nan")}], "yaw must be a finite"),
    ([{"center": [0, 0, 0], "size": [1, 1, 1], "yaw": "left"}], "yaw must be a finite"),
    ([{"center": [0, 0, 0], "size": [1, 1, 1], "colour": "red"}], "unknown keys"),
    ([{"name": "t", "center": [0, 0, "x"], "size": [1, 1, 1]}], "'t'"),
])
def test_bad_boxes_are_refused_with_the_box_named(records, match):
    with pytest.raises(ConfigError, match=match):
        Boxes.from_records(records)


def test_boxes_move_with_a_planar_transform():
    boxes = Boxes.from_records([{"name": "a", "center": [1, 0, 0.2], "size": [0.4, 0.2, 0.4],
                                 "yaw": 0.1}])
    moved = boxes.transformed(2.0, 1.0, math.pi / 2)
    assert np.allclose(moved.center, [[2.0, 2.0, 0.2]])
    assert moved.yaw[0] == pytest.approx(0.1 + math.pi / 2)
    corners = moved.corners_xy()[0]
    assert np.allclose(corners.mean(axis=0), [2.0, 2.0])
    assert len(boxes + moved) == 2 and (boxes + moved).names == ("a", "a")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=9, max_size=9), st.floats(0.01, 0.5),
       st.floats(0.01, 0.5), st.floats(0.01, 0.5), st.sampled_from([0, 1, 2]))
def test_segment_box_distance_is_exact(v, hx, hy, hz, degenerate):
    p0, d = np.array(v[:3]), np.array(v[3:6])
    if degenerate == 1:
        d[:] = 0.0  # a point
    elif degenerate == 2:
        d[1] = 0.0  # parallel to a face
    half = np.array([hx, hy, hz])
    got = segment_box_distance(p0[:, None], d[:, None], half[:, None])[0]
    t = np.linspace(0.0, 1.0, 20001)
    g = np.maximum(np.abs(p0[None] + t[:, None] * d[None]) - half[None], 0.0)
    want = np.sqrt((g ** 2).sum(1)).min()
    # the samples can only overestimate, by at most half a step's length
    assert got <= want + 1e-12
    assert got >= want - 0.5 * np.linalg.norm(d) / 20000 - 1e-12


def test_the_footprint_follows_nav2s_format():
    assert parse_footprint("") == () and parse_footprint(" [] ") == ()
    square = parse_footprint("[[0.2, 0.2], [0.2, -0.2], [-0.2, -0.2], [-0.2, 0.2]]")
    assert square[1] == (0.2, -0.2)
    for bad, match in (("[[0, 0], [1, 0]]", "at least 3"), ("0.2", "must read"),
                       ("[[0, 0], [1, 0], [2, 0]]", "no area"), ("[[0, 0], [1, 0], [1]]",
                                                                 "must read"),
                       ("[[0, 0], [1, 0], [1, NaN]]", "must read|non-finite")):
        with pytest.raises(ConfigError, match=match):
            parse_footprint(bad)
    with pytest.raises(ConfigError, match="world.footprint"):
        WorldConfig(footprint="[[1, 2]]")


def test_moving_a_world_keeps_its_field():
    grid = OccupancyGrid(np.zeros((5, 5), np.int8), 0.1)
    world = World(GridField(grid, reach_m=0.2), (0.0, 0.0, 0.0))
    moved = world.moved(grid_pose=(1.0, 2.0, 0.5))
    assert moved.grid_field is world.grid_field and moved.grid_pose == (1.0, 2.0, 0.5)
    assert World().empty and not world.empty
    with pytest.raises(ConfigError, match="grid pose"):
        world.moved(grid_pose=(1.0, float("nan"), 0.0))


def test_the_sure_map_collisions_are_collisions(robot, visibility, rng):
    from reachability_ros.core.scene import SceneChecker
    for footprint in ("", "[[0.2, 0.1], [0.2, -0.1], [-0.15, -0.15], [-0.15, 0.15]]"):
        checker = SceneChecker(robot, visibility.p_base_cam, WorldConfig(footprint=footprint),
                               0.145)
        values = np.zeros((40, 40), np.int8)
        values[rng.random(values.shape) < 0.05] = 100
        world = checker.prepare(OccupancyGrid(values, 0.05, (-1.0, -1.0, 0.2)))
        q = robot.random_configurations(2000, rng, base_extent_m=1.5)
        sure = checker.surely_on_map(world, q)
        collides = checker.base_collision(world, q).collides
        assert sure.sum() > 100 and np.all(collides[sure])
