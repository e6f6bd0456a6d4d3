"""RViz marker specifications (no ROS): constants, namespaces, geometry, the robot drawing."""

import math

import numpy as np
import pinocchio as pin
import pytest
from reachability_ros.core.geometry import quat_to_matrix
from reachability_ros.core.outcomes import OUTCOMES
from reachability_ros.core.types import Grasp
from reachability_ros.ros import markers as mk
from test_ros_conversions import make_result, SIDE_GRASP_Q


def _numeric_fields_are_floats(spec):
    vals = list(spec['position']) + list(spec['orientation']) + list(spec['scale'])
    vals += list(spec['color'])
    for p in spec['points']:
        vals += list(p)
    for c in spec['colors']:
        vals += list(c)
    return all(type(v) is float for v in vals)


def _yaw(spec):
    R = quat_to_matrix(np.array(spec['orientation']))
    return math.atan2(R[1, 0], R[0, 0])


def test_marker_constants_are_the_message_constants():
    # visualization_msgs/msg/Marker (docs/ros2-jazzy-reference.md)
    assert mk.MARKER_TYPES['ARROW'] == 0 and mk.MARKER_TYPES['SPHERE'] == 2
    assert mk.MARKER_TYPES['CYLINDER'] == 3 and mk.MARKER_TYPES['LINE_LIST'] == 5
    assert mk.MARKER_TYPES['SPHERE_LIST'] == 7 and mk.MARKER_TYPES['TEXT_VIEW_FACING'] == 9
    assert mk.MARKER_ACTIONS == {'ADD': 0, 'DELETE': 2, 'DELETEALL': 3}


def test_markers_start_with_deleteall_and_have_unique_ids(robot):
    frustum = np.arange(8 * 2 * 3, dtype=float).reshape(8, 2, 3) / 10.0
    specs = mk.marker_specs(make_result(), frustum=frustum, robot=robot)
    assert specs[0]['action'] == mk.MARKER_ACTIONS['DELETEALL']
    assert all(s['action'] == mk.MARKER_ACTIONS['ADD'] for s in specs[1:])
    keys = [(s['ns'], s['id']) for s in specs[1:]]
    assert len(keys) == len(set(keys))
    assert all(_numeric_fields_are_floats(s) for s in specs)
    assert all(isinstance(s['id'], int) and isinstance(s['text'], str) for s in specs)


def test_sample_markers_are_coloured_by_outcome():
    result = make_result()
    samples = [s for s in mk.marker_specs(result) if s['ns'].startswith('samples/')]
    by_ns = {s['ns']: s for s in samples}
    assert set(by_ns) == {'samples/kept', 'samples/unreachable', 'samples/not_visible',
                          'samples/occluded'}
    assert len(by_ns['samples/kept']['points']) == 2  # the third 'kept' row is NaN
    assert len(by_ns['samples/unreachable']['points']) == 3
    for name, spec in by_ns.items():
        assert spec['type'] == mk.MARKER_TYPES['SPHERE_LIST']
        assert spec['color'] == mk.OUTCOME_COLOURS[name.split('/', 1)[1]]
        assert all(p[2] == mk.SAMPLE_HEIGHT_M for p in spec['points'])
    pts = {tuple(p[:2]) for s in samples for p in s['points']}
    finite = result.samples_q[np.all(np.isfinite(result.samples_q[:, :2]), axis=1)]
    assert pts == {(float(x), float(y)) for x, y in finite[:, :2]}


def test_every_pipeline_outcome_has_its_own_marker_colour():
    assert set(OUTCOMES) | {'kept'} <= set(mk.OUTCOME_COLOURS)
    colours = [tuple(mk.OUTCOME_COLOURS[o]) for o in mk.OUTCOME_COLOURS]
    assert len(set(colours)) == len(colours)


def test_stance_arrows_and_rank_labels():
    result = make_result()
    specs = mk.marker_specs(result)
    arrows = [s for s in specs if s['ns'] == 'stances']
    labels = [s for s in specs if s['ns'] == 'stance_labels']
    assert [a['id'] for a in arrows] == [1, 2, 3]
    assert [t['text'] for t in labels] == ['#1', '#2', '#3']
    assert arrows[0]['color'] == mk.BEST_COLOUR and arrows[1]['color'] == mk.OTHER_COLOUR
    for a, c in zip(arrows, result.candidates):
        assert a['type'] == mk.MARKER_TYPES['ARROW']
        assert a['position'][:2] == (c.q[0], c.q[1])
        assert math.isclose(_yaw(a), c.q[2], abs_tol=1e-12)
        assert a['orientation'][:2] == (0.0, 0.0)
    assert all(t['type'] == mk.MARKER_TYPES['TEXT_VIEW_FACING'] for t in labels)


@pytest.mark.parametrize('yaw', [0.0, 0.3, -1.2, math.pi - 1e-6, -math.pi + 1e-6, 2.5])
def test_yaw_quaternion_is_a_rotation_about_z(yaw):
    q = mk.yaw_quaternion(yaw)
    assert q[0] == 0.0 and q[1] == 0.0 and math.isclose(math.hypot(q[2], q[3]), 1.0)
    R = quat_to_matrix(np.array(q))
    assert np.allclose(R, [[math.cos(yaw), -math.sin(yaw), 0.0],
                           [math.sin(yaw), math.cos(yaw), 0.0], [0.0, 0.0, 1.0]], atol=1e-12)


def test_grasp_axes_point_along_the_grasp_frame():
    specs = mk.marker_specs(make_result())
    axes = sorted((s for s in specs if s['ns'] == 'grasp'), key=lambda s: s['id'])
    assert len(axes) == 3
    R = quat_to_matrix(np.array(SIDE_GRASP_Q))
    for i, a in enumerate(axes):
        start, end = np.array(a['points'][0]), np.array(a['points'][1])
        assert np.allclose(start, [1.0, 0.5, 0.1])
        assert np.allclose((end - start) / mk.AXIS_LENGTH_M, R[:, i], atol=1e-6)
    assert np.allclose(np.array(axes[2]['points'][1]) - axes[2]['points'][0],
                       [mk.AXIS_LENGTH_M, 0, 0], atol=1e-6)  # approach axis along +x
    nan = Grasp((float('nan'), 0.0, 0.0), (0, 0, 0, 1), 'map')
    assert mk.grasp_markers(nan) == []
    assert mk.grasp_markers(Grasp((0.0, 0.0, 0.0), (0, 0, 0, 0), 'map')) == []


def test_frustum_is_a_line_list_of_the_best_stance_only():
    frustum = np.random.default_rng(1).normal(size=(8, 2, 3))
    specs = mk.marker_specs(make_result(), frustum=frustum)
    lines = [s for s in specs if s['ns'] == 'frustum']
    assert len(lines) == 1 and lines[0]['type'] == mk.MARKER_TYPES['LINE_LIST']
    assert np.allclose(np.array(lines[0]['points']), frustum.reshape(-1, 3))
    failed = mk.marker_specs(make_result(ok=False), frustum=frustum)
    assert not [s for s in failed if s['ns'] in ('frustum', 'stances')]
    assert [s for s in failed if s['ns'].startswith('samples/')]  # the donut still shows why
    assert mk.frustum_marker(np.zeros((3, 3))) == []


def test_markers_without_a_result_only_delete():
    specs = mk.marker_specs(None)
    assert len(specs) == 1 and specs[0]['action'] == mk.MARKER_ACTIONS['DELETEALL']
    g = Grasp((1.0, 0.0, 0.2), (0, 0, 0, 1), 'map')
    assert [s['ns'] for s in mk.marker_specs(None, grasp=g)] == ['', 'grasp', 'grasp', 'grasp']


# ------------------------------------------------------------------ the robot
def test_primitives_are_placed_where_pinocchio_places_the_geometry(robot):
    """Independent check: Pinocchio's own geometry placements of the same model."""
    rng = np.random.default_rng(5)
    geom_data = pin.GeometryData(robot.geom_model)
    data = robot.model.createData()
    by_name = {obj.name: i for i, obj in enumerate(robot.geom_model.geometryObjects)}
    assert robot.primitives
    for _ in range(5):
        q = robot.random_configurations(1, rng)[0]
        q[:3] = rng.uniform(-2.0, 2.0, size=3)
        pin.updateGeometryPlacements(robot.model, data, robot.geom_model, geom_data, q)
        for prim, T in mk.primitive_poses(robot, q):
            ref = geom_data.oMg[by_name[prim.name]].homogeneous
            assert np.allclose(T, ref, atol=1e-12), prim.name


def test_the_robot_is_drawn_at_the_best_stance_from_its_primitives(robot):
    result = make_result()
    q = np.array(result.candidates[0].q)
    drawn = [s for s in mk.marker_specs(result, robot=robot) if s['ns'] == 'robot']
    placed = mk.primitive_poses(robot, q)
    assert [s['id'] for s in drawn] == list(range(len(robot.primitives)))
    for spec, (prim, T) in zip(drawn, placed):
        d = 2.0 * prim.radius
        assert np.allclose(spec['position'], T[:3, 3])
        assert np.allclose(quat_to_matrix(np.array(spec['orientation'])), T[:3, :3],
                           atol=1e-9)
        if prim.kind == 'cylinder':
            assert spec['type'] == mk.MARKER_TYPES['CYLINDER']
            assert spec['scale'] == pytest.approx((d, d, 2.0 * prim.half_length))
        else:
            assert spec['type'] == mk.MARKER_TYPES['SPHERE']
            assert spec['scale'] == pytest.approx((d, d, d))
    # the base primitives stand where the best stance puts the base
    base = [s for s, (prim, _) in zip(drawn, placed) if prim.joint == 1]
    assert base and all(math.hypot(s['position'][0] - q[0], s['position'][1] - q[1]) < 0.3
                        for s in base)
    assert {s['type'] for s in drawn} == {mk.MARKER_TYPES['CYLINDER'], mk.MARKER_TYPES['SPHERE']}


def test_no_robot_without_a_stance(robot):
    assert not [s for s in mk.marker_specs(make_result(ok=False), robot=robot)
                if s['ns'] == 'robot']
    assert not [s for s in mk.marker_specs(make_result()) if s['ns'] == 'robot']
    assert mk.robot_markers(robot, None) == []
    assert mk.robot_markers(robot, np.full(robot.nq, np.nan)) == []
