"""The stance server with a map and obstacle markers, in-process with rclpy (skips without ROS).

A client node publishes a ``nav_msgs/OccupancyGrid`` latched (as Nav2 does) on the
server's ``map_topic`` and CUBE markers on its ``obstacles_topic``, then calls
``/propose_stance``: without a map a request fails (``map_required``); with one every
returned base keeps its footprint off the wall, the report's notes name the map and the
boxes, and the markers show the footprints and the boxes.
"""

import json
import math
import time

import numpy as np
import pytest
from ros_support import have, REPO, requires_ros, stance_server, wait_future

ROS_MODULES = ('rclpy', 'tf2_ros', 'tf2_geometry_msgs', 'tf_transformations', 'nav_msgs',
               'visualization_msgs', 'trajectory_msgs')
pytestmark = requires_ros(*ROS_MODULES)

if have(*ROS_MODULES):
    from geometry_msgs.msg import TransformStamped
    from nav_msgs.msg import OccupancyGrid
    from nav_msgs.srv import GetPlan
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from reachability_ros.ros.stance_node import MARKERS_TOPIC, REPORT_TOPIC, SERVICE
    from reachability_ros.ros.world_subscriber import map_qos, markers_qos
    from std_msgs.msg import String
    import tf2_ros
    from visualization_msgs.msg import Marker, MarkerArray

MAP_TOPIC = '/test_world/map'
OBSTACLES_TOPIC = '/test_world/obstacles'
TOP_DOWN_GRASP = ((1.0, 0.5, 0.1), (1.0, 0.0, 0.0, 0.0))
WALL_X = 1.25  # the map is blocked for x >= WALL_X (in its own frame)
TIMEOUT_S = 30.0


@pytest.fixture(scope='module')
def ros():
    overrides = {'config_file': str(REPO / 'config' / 'lekiwi.yaml'), 'tf_timeout_s': 0.5,
                 'map_topic': MAP_TOPIC, 'map_required': True,
                 'obstacles_topic': OBSTACLES_TOPIC}
    with stance_server(overrides, 'stance_world_test_client') as (server, node):
        got = {'reports': [], 'markers': []}
        history = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        for msg_type, topic, key in ((String, REPORT_TOPIC, 'reports'),
                                     (MarkerArray, MARKERS_TOPIC, 'markers')):
            node.create_subscription(msg_type, topic, got[key].append, history)
        client = node.create_client(GetPlan, SERVICE)
        assert client.wait_for_service(timeout_sec=TIMEOUT_S)
        yield dict(got, server=server, node=node, client=client,
                   map_pub=node.create_publisher(OccupancyGrid, MAP_TOPIC, map_qos()),
                   marker_pub=node.create_publisher(MarkerArray, OBSTACLES_TOPIC,
                                                    markers_qos()))


def _request(frame='map'):
    req = GetPlan.Request()
    req.goal.header.frame_id = frame
    p = req.goal.pose.position
    p.x, p.y, p.z = TOP_DOWN_GRASP[0]
    o = req.goal.pose.orientation
    o.x, o.y, o.z, o.w = TOP_DOWN_GRASP[1]
    return req


def _call(ros):
    res = wait_future(ros['client'].call_async(_request()), TIMEOUT_S, 0.002)
    assert res is not None, 'no answer from /propose_stance'
    return res


def _stamped(ros, key, response):
    """Return the report (dict) or marker array published with the response's stamp."""
    want = (response.plan.header.stamp.sec, response.plan.header.stamp.nanosec)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        for msg in list(ros[key]):
            if key == 'reports':
                rep = json.loads(msg.data)
                s = rep['header']['stamp']
                if (s['sec'], s['nanosec']) == want:
                    return rep
            elif msg.markers and (msg.markers[0].header.stamp.sec,
                                  msg.markers[0].header.stamp.nanosec) == want:
                return msg
        time.sleep(0.005)
    raise AssertionError(f'no {key} with the stamp {want}')


def _grid_msg(frame='map'):
    msg = OccupancyGrid()
    msg.header.frame_id = frame
    msg.info.resolution = 0.05
    msg.info.width, msg.info.height = 80, 80
    msg.info.origin.position.x, msg.info.origin.position.y = -1.0, -1.5
    msg.info.origin.orientation.w = 1.0
    values = np.zeros((80, 80), np.int8)
    values[:, int(round((WALL_X + 1.0) / 0.05)):] = 100
    msg.data = values.ravel().tolist()
    return msg


def _until(ros, predicate):
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        res = _call(ros)
        report = _stamped(ros, 'reports', res)
        if predicate(report):
            return res, report
        time.sleep(0.05)
    raise AssertionError('the server never saw the world')


def test_without_a_map_a_request_that_needs_one_fails(ros):
    res = _call(ros)
    report = _stamped(ros, 'reports', res)
    if report['ok']:  # a map from another test of this module is already there
        pytest.skip('the map arrived first')
    assert len(res.plan.poses) == 0
    assert report['reason'].startswith(f'no map: no map received yet on {MAP_TOPIC}')


def test_with_a_map_the_footprints_keep_off_the_wall(ros):
    ros['map_pub'].publish(_grid_msg())
    res, report = _until(ros, lambda r: r['ok'])
    radius = ros['server']._proposer.scene.footprint_outer_m
    pad = ros['server']._proposer.config.world.footprint_padding_m
    assert len(res.plan.poses) >= 1
    for pose in res.plan.poses:
        assert pose.pose.position.x <= WALL_X - radius - pad + 1e-9
    assert any(n.startswith(f'map: 80 x 80 cells of 0.05 m from {MAP_TOPIC}')
               for n in report['notes'])
    assert 'base_collision' in report['funnel'] and report['funnel']['base_collision'] > 0
    assert all(0.0 <= c['clearance_m'] <= 0.2 for c in report['candidates'])
    markers = _stamped(ros, 'markers', res).markers
    footprints = [m for m in markers if m.ns == 'footprints']
    assert len(footprints) == len(res.plan.poses)
    assert all(m.type == Marker.LINE_STRIP for m in footprints)


def test_cube_markers_are_obstacles(ros):
    ros['map_pub'].publish(_grid_msg())
    cube = Marker()
    cube.header.frame_id = 'map'
    cube.ns, cube.id, cube.type, cube.action = 'test_boxes', 0, Marker.CUBE, Marker.ADD
    cube.pose.position.x, cube.pose.position.y, cube.pose.position.z = 0.7, 0.9, 0.1
    cube.pose.orientation.w = 1.0
    cube.scale.x = cube.scale.y = cube.scale.z = 0.2
    msg = MarkerArray()
    msg.markers = [cube]
    deadline = time.monotonic() + TIMEOUT_S
    report = None
    while time.monotonic() < deadline:
        ros['marker_pub'].publish(msg)  # volatile: repeat until the server has it
        res = _call(ros)
        report = _stamped(ros, 'reports', res)
        if 'obstacles: 1 boxes' in report['notes']:
            break
        time.sleep(0.05)
    assert 'obstacles: 1 boxes' in report['notes']
    markers = _stamped(ros, 'markers', res).markers
    assert [m.type for m in markers if m.ns == 'obstacles'] == [Marker.CUBE]
    delete = Marker()
    delete.action = Marker.DELETEALL
    msg.markers = [delete]
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        ros['marker_pub'].publish(msg)
        report = _stamped(ros, 'reports', _call(ros))
        if not any(n.startswith('obstacles') for n in report['notes']):
            break
        time.sleep(0.05)
    assert not any(n.startswith('obstacles') for n in report['notes'])


def test_a_map_in_another_frame_is_placed_with_tf(ros):
    tf = TransformStamped()
    tf.header.frame_id = 'map'
    tf.child_frame_id = 'world_test_grid'
    tf.transform.translation.x = -0.2  # the wall moves to x = WALL_X - 0.2 in 'map'
    tf.transform.rotation.w = 1.0
    tf2_ros.StaticTransformBroadcaster(ros['node']).sendTransform(tf)
    ros['map_pub'].publish(_grid_msg('world_test_grid'))
    res, report = _until(ros, lambda r: r['ok'] and any(
        "in 'world_test_grid'" in n for n in r['notes']))
    radius = ros['server']._proposer.scene.footprint_outer_m
    pad = ros['server']._proposer.config.world.footprint_padding_m
    for pose in res.plan.poses:
        assert pose.pose.position.x <= WALL_X - 0.2 - radius - pad + 1e-9
    assert math.isfinite(report['candidates'][0]['clearance_m'])
    ros['map_pub'].publish(_grid_msg())  # back to 'map' for any later test
