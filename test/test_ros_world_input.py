"""The stance server's world inputs as plain data (ros/world_input.py), and their markers."""

import math
import threading
import time

import numpy as np
import pytest

from reachability_ros.core.errors import ConfigError
from reachability_ros.core.geometry import matrix_to_quat, rot_z
from reachability_ros.core.world import Boxes, GridField, OccupancyGrid, World
from reachability_ros.ros import markers as mk
from reachability_ros.ros import world_input as wi
from reachability_ros.ros.parameters import NODE_PARAMETERS

IDENTITY = (0.0, 0.0, 0.0, 1.0)


def yaw_quat(yaw):
    return tuple(float(v) for v in matrix_to_quat(rot_z(yaw)))


def test_the_world_parameters_are_read_only_and_documented():
    specs = {s.name: s for s in wi.world_parameter_specs()}
    assert tuple(specs) == wi.WORLD_PARAMETERS
    assert not set(specs) & set(NODE_PARAMETERS)
    assert all(s.read_only and s.description for s in specs.values())
    assert specs['map_topic'].default == '/global_costmap/costmap'
    assert specs['map_required'].default is False and specs['map_max_age_s'].kind == 'double'


def test_a_grid_message_becomes_the_cores_grid():
    data = np.arange(6, dtype=np.int8) * 20 - 1  # -1, 19, 39, ...
    grid = wi.grid_from_fields(3, 2, 0.05, (1.0, 2.0, 0.0), yaw_quat(0.3), data, '/map', 12.5)
    assert grid.values.tolist() == [[-1, 19, 39], [59, 79, 99]]  # x fastest, row 0 first
    assert grid.origin == pytest.approx((1.0, 2.0, 0.3)) and grid.frame_id == 'map'
    assert grid.stamp_s == 12.5
    with pytest.raises(ConfigError, match='5 values for 3 x 2 cells'):
        wi.grid_from_fields(3, 2, 0.05, (0, 0, 0), IDENTITY, data[:5], 'map', 0.0)
    tilted = tuple(float(v) for v in matrix_to_quat(
        np.array([[1, 0, 0], [0, math.cos(0.1), -math.sin(0.1)],
                  [0, math.sin(0.1), math.cos(0.1)]])))
    with pytest.raises(ConfigError, match='tilted by 5.73 deg'):
        wi.grid_from_fields(3, 2, 0.05, (0, 0, 0), tilted, data, 'map', 0.0)
    with pytest.raises(ConfigError, match='positive number'):
        wi.grid_from_fields(3, 2, 0.0, (0, 0, 0), IDENTITY, data, 'map', 0.0)
    with pytest.raises(ConfigError, match='-1 .unknown. or 0 ... 100'):
        wi.grid_from_fields(3, 2, 0.05, (0, 0, 0), IDENTITY, np.full(6, -5), 'map', 0.0)


def test_a_tilted_cube_becomes_the_upright_box_around_it(rng):
    for _ in range(20):
        q = rng.standard_normal(4)
        q /= np.linalg.norm(q)
        scale = rng.uniform(0.05, 0.5, 3)
        rec = wi.marker_box((1.0, 2.0, 0.3), q, scale, 'm')
        box = Boxes.from_records([rec])
        from reachability_ros.core.geometry import quat_to_matrix
        R = quat_to_matrix(q)
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1)
                            for sz in (-1, 1)]) * 0.5 * scale
        world = corners @ R.T + (1.0, 2.0, 0.3)
        c, s = math.cos(box.yaw[0]), math.sin(box.yaw[0])
        d = world - box.center[0]
        local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], 1)
        assert np.all(np.abs(local) <= 0.5 * box.size[0] + 1e-9)
    upright = wi.marker_box((0, 0, 0), yaw_quat(0.4), (0.2, 0.4, 0.6), 'u')
    assert upright['yaw'] == pytest.approx(0.4)
    assert upright['size'] == pytest.approx([0.2, 0.4, 0.6])
    with pytest.raises(ConfigError, match='scale must be positive'):
        wi.marker_box((0, 0, 0), IDENTITY, (0.2, 0.0, 0.1), 'z')


def marker(ns='obs', mid=0, action=wi.ADD, kind=wi.CUBE, frame='map', x=0.0):
    return {'ns': ns, 'id': mid, 'type': kind, 'action': action, 'frame_id': frame,
            'position': (x, 0.0, 0.1), 'orientation': IDENTITY, 'scale': (0.1, 0.1, 0.2)}


def test_cube_markers_are_kept_until_deleted():
    boxes = wi.MarkerBoxes()
    boxes.apply([marker(mid=0), marker(mid=1, x=1.0), marker(mid=2, kind=2),
                 marker('other', 0, frame='odom')])
    assert sorted(boxes.boxes) == [('obs', 0), ('obs', 1), ('other', 0)]
    assert 'not a CUBE' in boxes.ignored[-1]
    groups = boxes.by_frame()
    assert len(groups['map']) == 2 and len(groups['odom']) == 1
    boxes.apply([marker(mid=1, x=2.0)])  # MODIFY = ADD
    assert boxes.boxes[('obs', 1)][1]['center'][0] == 2.0
    boxes.apply([marker(mid=0, action=wi.DELETE)])
    assert sorted(boxes.boxes) == [('obs', 1), ('other', 0)]
    boxes.apply([marker(action=wi.DELETEALL), marker(mid=5)])
    assert sorted(boxes.boxes) == [('obs', 5)]
    bad = marker(mid=6)
    bad['scale'] = (0.1, -0.1, 0.1)
    boxes.apply([bad])
    assert ('obs', 6) not in boxes.boxes and 'scale must be positive' in boxes.ignored[-1]


def prepare(grid):
    return World(GridField(grid, 100, True, 0.4), grid.origin)


def wait_for(predicate, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, 'timed out'
        time.sleep(0.005)


def test_the_map_is_prepared_off_the_request_path():
    ready = threading.Event()
    started = threading.Event()

    def slow_prepare(grid):
        started.set()
        ready.wait(5.0)
        return prepare(grid)

    state = wi.WorldState(slow_prepare)
    try:
        grid = OccupancyGrid(np.zeros((4, 4), np.int8), 0.1, (0, 0, 0), 'map', 1.0)
        state.set_grid(grid, 2.0)  # returns at once
        started.wait(5.0)
        snap = state.snapshot()
        assert snap.grid is grid and snap.field_world is None  # still being prepared
        ready.set()
        wait_for(lambda: state.snapshot().field_world is not None)
        # a new prepare function (a config change) rebuilds the same map
        state.set_prepare(prepare)
        assert state.snapshot().field_world is None
        wait_for(lambda: state.snapshot().field_world is not None)
        state.refuse_grid('bad map')
        assert state.snapshot().map_error == 'bad map'
    finally:
        ready.set()
        assert state.close(1.0)


def test_until_a_new_map_is_prepared_requests_use_the_previous_one_whole():
    """A request never pairs the newest map's origin and stamp with an older map's field."""
    gates, started = {}, []

    def gated_prepare(grid):
        started.append(grid)
        gate = gates.get(grid)
        if gate is not None:
            gate.wait(5.0)
        return prepare(grid)

    state = wi.WorldState(gated_prepare)
    try:
        first = OccupancyGrid(np.zeros((4, 4), np.int8), 0.1, (0, 0, 0), 'map', 1.0)
        state.set_grid(first, 2.0)
        wait_for(lambda: state.snapshot().field_world is not None)
        # a rolling costmap moved its origin; its field takes a while
        moved = OccupancyGrid(np.zeros((4, 4), np.int8), 0.1, (3.0, 1.0, 0.5), 'odom', 0.0)
        newest = OccupancyGrid(np.zeros((4, 4), np.int8), 0.1, (4.0, 1.0, 0.0), 'odom', 9.0)
        gates[moved], gates[newest] = threading.Event(), threading.Event()
        state.set_grid(moved, 7.0)
        wait_for(lambda: moved in started)
        state.set_grid(newest, 8.0)  # arrives while the moved one is being built
        snap = state.snapshot()
        assert snap.grid is first and snap.received_s == 2.0
        assert snap.field_world.grid_field.grid is first
        answer = wi.world_for_request(snap, 'map', 10.0, map_topic='/m', map_required=True,
                                      max_age_s=0.0, lookup=no_tf)
        assert answer.world.grid_pose == (0.0, 0.0, 0.0) and "in 'map'" in answer.notes[0]
        gates[moved].set()  # built, while a newer map waits: it is used, with its own data
        wait_for(lambda: state.snapshot().grid is moved)
        snap = state.snapshot()
        assert snap.field_world.grid_field.grid is moved and snap.received_s == 7.0
        gates[newest].set()
        wait_for(lambda: state.snapshot().grid is newest)
        assert state.snapshot().received_s == 8.0
    finally:
        for gate in gates.values():
            gate.set()
        assert state.close(1.0)


def snapshot(grid=None, field=True, boxes=None, received=None, error=''):
    world = prepare(grid) if grid is not None and field else None
    return wi.WorldSnapshot(grid, world, received, boxes or {}, error)


def no_tf(frame):
    raise LookupError(f'no transform to {frame}')


def test_a_request_without_a_usable_map():
    kw = {'map_topic': '/global_costmap/costmap', 'max_age_s': 0.0, 'lookup': no_tf}
    answer = wi.world_for_request(snapshot(), 'map', 10.0, map_required=False, **kw)
    assert answer.world is None and not answer.failure
    assert answer.notes == ('no map received yet on /global_costmap/costmap: the stances '
                            'ignore the map',)
    answer = wi.world_for_request(snapshot(), 'map', 10.0, map_required=True, **kw)
    assert answer.failure.startswith('no map: no map received yet on /global_costmap/costmap')
    grid = OccupancyGrid(np.zeros((4, 4), np.int8), 0.1, (0, 0, 0), 'map', 1.0)
    answer = wi.world_for_request(snapshot(grid, field=False), 'map', 10.0, map_required=True,
                                  **kw)
    assert 'still being prepared' in answer.failure
    answer = wi.world_for_request(snapshot(error='map has 5 values'), 'map', 10.0,
                                  map_required=True, **kw)
    assert 'refused: map has 5 values' in answer.failure
    old = dict(kw, max_age_s=5.0)
    answer = wi.world_for_request(snapshot(grid), 'map', 10.0, map_required=True, **old)
    assert answer.failure == ('map too old: the map on /global_costmap/costmap is 9.0 s old '
                              '(map_max_age_s 5)')
    answer = wi.world_for_request(snapshot(grid), 'map', 10.0, map_required=False, **old)
    assert answer.world is None and 'ignore the map' in answer.notes[0]
    none = wi.world_for_request(snapshot(), 'map', 10.0, map_topic='', map_required=False,
                                max_age_s=0.0, lookup=no_tf)
    assert none.world is None and none.notes == () and not none.failure


def test_the_map_and_boxes_are_placed_in_the_target_frame():
    grid = OccupancyGrid(np.zeros((4, 4), np.int8), 0.1, (1.0, 0.0, 0.0), 'map', 9.0)
    boxes = {'map': Boxes.from_records([{'center': [1, 0, 0.1], 'size': [0.1, 0.1, 0.2]}],
                                       'map'),
             '': Boxes.from_records([{'center': [0, 2, 0.1], 'size': [0.1, 0.1, 0.2]}])}
    odom_in_map = {'map': (10.0, 0.0, 0.5, math.pi / 2)}
    answer = wi.world_for_request(snapshot(grid, boxes=boxes), 'odom', 10.0,
                                  map_topic='/map', map_required=True, max_age_s=5.0,
                                  lookup=lambda f: odom_in_map[f])
    assert not answer.failure
    w = answer.world
    assert w.grid_pose == pytest.approx((10.0, 1.0, math.pi / 2))
    assert np.allclose(w.boxes.center, [[10.0, 1.0, 0.6], [0.0, 2.0, 0.1]])
    assert w.boxes.yaw.tolist() == pytest.approx([math.pi / 2, 0.0])
    assert answer.notes[0].startswith("map: 4 x 4 cells of 0.1 m from /map in 'map', 1.0 s old")
    assert answer.notes[1] == 'obstacles: 2 boxes'
    failed = wi.world_for_request(snapshot(grid), 'odom', 10.0, map_topic='/map',
                                  map_required=False, max_age_s=0.0, lookup=no_tf)
    assert failed.failure.startswith("map: cannot place the map's frame 'map' in 'odom': "
                                     'LookupError: no transform to map')
    skipped = wi.WorldSnapshot(None, None, None, {}, '', ('obs/2: type 2 is not a CUBE',))
    answer = wi.world_for_request(skipped, 'map', 10.0, map_topic='', map_required=False,
                                  max_age_s=0.0, lookup=no_tf)
    assert answer.notes == ('obstacle markers skipped: obs/2: type 2 is not a CUBE',)
    failed = wi.world_for_request(snapshot(boxes={'base': boxes['map']}), 'map', 10.0,
                                  map_topic='', map_required=False, max_age_s=0.0,
                                  lookup=no_tf)
    assert failed.failure.startswith("obstacles: cannot place the boxes of frame 'base'")


def test_planar_transforms_only():
    assert wi.planar_pose((1, 2, 3), yaw_quat(0.7), 't') == pytest.approx((1, 2, 3, 0.7))
    with pytest.raises(ConfigError, match='zero quaternion'):
        wi.planar_pose((0, 0, 0), (0, 0, 0, 0), 't')
    with pytest.raises(ConfigError, match='non-finite'):
        wi.planar_pose((0, float('nan'), 0), IDENTITY, 't')


class Candidate:

    def __init__(self, q, clearance):
        self.q = np.asarray(q, float)
        self.metrics = {} if clearance is None else {'clearance_m': clearance}


def test_footprint_markers_are_coloured_by_clearance():
    assert mk.clearance_colour(0.0, 0.2) == (1.0, 0.0, 0.1, 1.0)
    assert mk.clearance_colour(0.5, 0.2) == (0.0, 1.0, 0.1, 1.0)
    cands = [Candidate([1, 2, 0.5] + [0] * 5, 0.05), Candidate([0, 0, 0] + [0] * 5, None)]
    specs = mk.footprint_markers(cands, 0.15)
    assert len(specs) == 1 and specs[0]['ns'] == 'footprints' and specs[0]['id'] == 1
    pts = np.array(specs[0]['points'])
    assert np.allclose(np.hypot(pts[:, 0] - 1, pts[:, 1] - 2), 0.15)
    assert np.allclose(pts[0], pts[-1])  # closed
    square = np.array([[0.2, 0.2], [0.2, -0.2], [-0.2, -0.2], [-0.2, 0.2]])
    specs = mk.footprint_markers(cands, 0.15, square)
    assert len(specs[0]['points']) == 5
    assert specs[0]['points'][0][:2] == pytest.approx((1 + 0.2 * math.cos(0.5) - 0.2 * math.sin(
        0.5), 2 + 0.2 * math.sin(0.5) + 0.2 * math.cos(0.5)))
    boxes = Boxes.from_records([{'center': [1, 0, 0.1], 'size': [0.1, 0.2, 0.3], 'yaw': 0.2}])
    cube = mk.obstacle_markers(boxes)[0]
    assert cube['type'] == mk.MARKER_TYPES['CUBE'] and cube['scale'] == (0.1, 0.2, 0.3)
    assert cube['orientation'] == pytest.approx(yaw_quat(0.2))


def test_the_markers_of_an_answer_with_a_world(robot):
    from reachability_ros.core.config import ProposalConfig, StanceConfig
    from reachability_ros.core.pipeline import StanceProposer
    from reachability_ros.ros.conversions import answer_request, PoseInput
    proposer = StanceProposer(StanceConfig(proposal=ProposalConfig(
        sampler='grid', model_path='', robustness_samples=2)), robot)
    boxes = Boxes.from_records([{'center': [0.6, 0.9, 0.1], 'size': [0.2, 0.2, 0.2]}])
    world = proposer.scene.prepare(None, boxes)
    goal = PoseInput('map', (1.0, 0.5, 0.1), (1.0, 0.0, 0.0, 0.0))
    answer = answer_request(proposer, goal, None, np.random.default_rng(0), world=world)
    assert answer.ok and answer.world_boxes is boxes
    assert answer.footprint[0] == proposer.scene.footprint_outer_m
    specs = mk.marker_specs(answer.result, footprint=answer.footprint, boxes=answer.world_boxes)
    names = {s['ns'] for s in specs}
    assert {'footprints', 'obstacles'} <= names
    assert len({(s['ns'], s['id']) for s in specs}) == len(specs)
    plain = answer_request(proposer, goal, None, np.random.default_rng(0))
    assert plain.footprint is None and plain.world_boxes is None
