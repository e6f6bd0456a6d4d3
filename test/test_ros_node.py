"""The stance server in-process with rclpy (each test skips, with the reason, without ROS 2).

Starts :class:`StanceServer` with parameter overrides, spins it and a client node
in a single-threaded executor (as ``main()`` does), calls ``/propose_stance``
with good and bad requests, and reads the companion topics: they follow the
response, so the helpers wait for the message whose header stamp is the
response's. Start-up failures and signals are in ``test_ros_processes.py``.
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
    from geometry_msgs.msg import Pose, PoseArray, TransformStamped
    from nav_msgs.srv import GetPlan
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.time import Time
    from reachability_ros.core.config import StanceConfig
    from reachability_ros.core.geometry import matrix_to_quat, quat_to_matrix
    from reachability_ros.ros import markers as mk
    from reachability_ros.ros import stance_node
    from reachability_ros.ros.conversions import tf_remap_arguments
    from reachability_ros.ros.grasp_set_input import GRASP_SET_TOPIC
    from reachability_ros.ros.stance_node import (CANDIDATES_TOPIC, latched_qos,
                                                  MARKERS_TOPIC, REPORT_TOPIC, SERVICE)
    from reachability_ros.ros.tf_listener import TfListener
    from std_msgs.msg import String
    import tf2_ros
    from trajectory_msgs.msg import JointTrajectory
    from visualization_msgs.msg import Marker, MarkerArray

SIDE_GRASP = ((1.0, 0.5, 0.1), (0.0, 0.7071068, 0.0, 0.7071068))  # the README's example
TOP_DOWN_GRASP = ((1.0, 0.5, 0.1), (1.0, 0.0, 0.0, 0.0))  # tool +z pointing down: many stances
TIMEOUT_S = 30.0


def _history_qos():
    """Keep every companion message (the server's topics are latched, depth 1)."""
    return QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL,
                      reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope='module')
def ros():
    """Return a started server, a client node and an executor spinning both in a thread."""
    overrides = {'config_file': str(REPO / 'config' / 'lekiwi.yaml'), 'target_frame': 'map',
                 'tf_timeout_s': 0.3, 'proposal.n_samples': 256}
    with stance_server(overrides, 'stance_test_client') as (server, client_node):
        got = {CANDIDATES_TOPIC: [], MARKERS_TOPIC: [], REPORT_TOPIC: []}
        for topic, msg_type in ((CANDIDATES_TOPIC, JointTrajectory),
                                (MARKERS_TOPIC, MarkerArray), (REPORT_TOPIC, String)):
            client_node.create_subscription(msg_type, topic, got[topic].append,
                                            _history_qos())
        client = client_node.create_client(GetPlan, SERVICE)
        assert client.wait_for_service(timeout_sec=TIMEOUT_S)
        yield {'server': server, 'node': client_node, 'client': client, 'got': got}


def _request(position=TOP_DOWN_GRASP[0], orientation=TOP_DOWN_GRASP[1], frame='map',
             start=None):
    req = GetPlan.Request()
    req.goal.header.frame_id = frame
    p = req.goal.pose.position
    p.x, p.y, p.z = (float(v) for v in position)
    o = req.goal.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in orientation)
    if start is not None:
        frame_s, (x, y, yaw) = start
        req.start.header.frame_id = frame_s
        req.start.pose.position.x, req.start.pose.position.y = float(x), float(y)
        req.start.pose.orientation.z = math.sin(yaw / 2.0)
        req.start.pose.orientation.w = math.cos(yaw / 2.0)
    return req


def _wait(fut, timeout_s=TIMEOUT_S):
    res = wait_future(fut, timeout_s, 0.002)
    assert res is not None, 'no answer from /propose_stance'
    return res


def _call(ros, req):
    return _wait(ros['client'].call_async(req))


def _stamp(msg):
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def _companion(ros, topic, response, timeout_s=TIMEOUT_S):
    """Return the companion message of ``topic`` that carries the response's stamp."""
    want = _stamp(response.plan)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for msg in list(ros['got'][topic]):
            if topic == REPORT_TOPIC:
                stamp = json.loads(msg.data)['header']['stamp']
                if (stamp['sec'], stamp['nanosec']) == want:
                    return json.loads(msg.data)
            elif _stamp(msg) == want:
                return msg
        time.sleep(0.005)
    raise AssertionError(f'nothing on {topic} with the stamp {want}')


def _report(ros, response):
    return _companion(ros, REPORT_TOPIC, response)


def _yaw(q):
    R = quat_to_matrix(np.array([q.x, q.y, q.z, q.w]))
    return math.atan2(R[1, 0], R[0, 0])


def test_good_request_gives_ranked_poses_and_matching_companions(ros):
    res = _call(ros, _request())
    plan = res.plan
    assert plan.header.frame_id == 'map' and len(plan.poses) >= 2  # a real ranking
    report = _report(ros, res)
    assert report['ok'] is True and report['header']['frame_id'] == 'map'
    scores = [c['score'] for c in report['candidates']]
    assert scores == sorted(scores, reverse=True) and len(scores) == len(plan.poses)
    for ps, cand in zip(plan.poses, report['candidates']):
        assert ps.header.frame_id == 'map' and _stamp(ps) == _stamp(plan)
        assert ps.pose.position.z == 0.0
        assert ps.pose.orientation.x == pytest.approx(0.0, abs=1e-12)
        assert ps.pose.orientation.y == pytest.approx(0.0, abs=1e-12)
        assert ps.pose.position.x == pytest.approx(cand['base'][0])
        assert ps.pose.position.y == pytest.approx(cand['base'][1])
        assert _yaw(ps.pose.orientation) == pytest.approx(cand['base'][2], abs=1e-9)
        assert math.hypot(cand['base'][0] - 1.0, cand['base'][1] - 0.5) < 0.8
    traj = _companion(ros, CANDIDATES_TOPIC, res)
    assert traj.header.frame_id == 'map'
    assert list(traj.joint_names[:3]) == ['base_x', 'base_y', 'base_yaw']
    assert len(traj.joint_names) == 8 and len(traj.points) == len(plan.poses)
    for pt, ps in zip(traj.points, plan.poses):
        assert pt.positions[0] == pytest.approx(ps.pose.position.x)
        assert pt.positions[1] == pytest.approx(ps.pose.position.y)
    markers = _companion(ros, MARKERS_TOPIC, res).markers
    assert markers[0].action == Marker.DELETEALL
    assert all(_stamp(m) == _stamp(plan) for m in markers)
    ns = {m.ns for m in markers}
    assert {'stances', 'stance_labels', 'grasp', 'frustum', 'robot'} <= ns
    assert any(n.startswith('samples/') for n in ns)
    robot = [m for m in markers if m.ns == 'robot']
    assert len(robot) == len(ros['server']._proposer.robot.primitives)
    assert {m.type for m in robot} == {Marker.CYLINDER, Marker.SPHERE}
    assert mk.MARKER_TYPES['SPHERE_LIST'] == Marker.SPHERE_LIST
    assert mk.MARKER_TYPES['CYLINDER'] == Marker.CYLINDER


def test_the_companions_are_latched_for_late_subscribers(ros):
    res = _call(ros, _request(*SIDE_GRASP))
    report = _report(ros, res)  # published
    late = []
    sub = ros['node'].create_subscription(String, REPORT_TOPIC, late.append, latched_qos())
    deadline = time.monotonic() + TIMEOUT_S
    while not late and time.monotonic() < deadline:
        time.sleep(0.01)
    ros['node'].destroy_subscription(sub)
    assert late and json.loads(late[-1].data)['sequence'] == report['sequence']


def test_the_readme_side_grasp(ros):
    res = _call(ros, _request(*SIDE_GRASP))
    assert res.plan.header.frame_id == 'map' and len(res.plan.poses) >= 1
    assert res.plan.poses[0].pose.position.x < 1.0  # behind a grasp approaching along +x


def test_the_response_does_not_wait_for_the_companions(ros, monkeypatch):
    real = stance_node.marker_specs

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return real(*args, **kwargs)
    monkeypatch.setattr(stance_node, 'marker_specs', slow)
    t0 = time.monotonic()
    res = _call(ros, _request())
    answered = time.monotonic() - t0
    assert len(res.plan.poses) >= 1 and answered < 0.8
    _report(ros, res)
    assert time.monotonic() - t0 >= 1.0  # the report came after the slow markers


def test_rapid_requests_get_all_their_companions_in_order(ros):
    xs = [1.0 + 0.02 * i for i in range(8)]
    futs = [ros['client'].call_async(_request(position=(x, 0.5, 0.1))) for x in xs]
    responses = [_wait(f) for f in futs]
    reports = [_report(ros, r) for r in responses]  # one per response: none lost
    for x, res, report in zip(xs, responses, reports):
        assert report['request']['position'][0] == pytest.approx(x)
        assert len(report['candidates']) == len(res.plan.poses)
    sequences = [r['sequence'] for r in reports]
    assert sequences == sorted(sequences) and len(set(sequences)) == 8
    received = [json.loads(m.data)['sequence'] for m in ros['got'][REPORT_TOPIC]]
    mine = [s for s in received if s in sequences]
    assert mine == sequences  # published in request order


@pytest.mark.parametrize('kwargs, words', [
    ({'position': (float('nan'), 0.5, 0.1)}, 'non-finite'),
    ({'orientation': (0.0, 0.0, 0.0, 0.0)}, 'unit quaternion'),
    ({'position': (1.0, 0.5, 25.0)}, 'height'),
    ({'frame': ''}, 'frame_id is empty'),
    ({'frame': 'no_such_frame'}, 'cannot transform'),
])
def test_bad_requests_get_an_empty_plan_and_a_reason(ros, kwargs, words):
    t0 = time.monotonic()
    res = _call(ros, _request(**kwargs))
    assert time.monotonic() - t0 < 5.0
    assert res.plan.header.frame_id == 'map' and len(res.plan.poses) == 0
    report = _report(ros, res)
    assert report['ok'] is False and words in report['reason']
    assert report['candidates'] == []
    traj = _companion(ros, CANDIDATES_TOPIC, res)
    assert len(traj.points) == 0 and len(traj.joint_names) == 8
    assert len(_call(ros, _request()).plan.poses) >= 1  # still serving


def test_goal_in_another_frame_is_transformed_with_tf(ros):
    tf = TransformStamped()
    tf.header.frame_id = 'map'
    tf.child_frame_id = 'odom_test'
    tf.transform.translation.x, tf.transform.translation.y = 2.0, -1.0
    tf.transform.rotation.z, tf.transform.rotation.w = math.sin(math.pi / 4), math.cos(math.pi / 4)
    tf2_ros.StaticTransformBroadcaster(ros['node']).sendTransform(tf)
    p_map = np.array(TOP_DOWN_GRASP[0])
    R = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    p_odom = R.T @ (p_map - np.array([2.0, -1.0, 0.0]))
    q_odom = matrix_to_quat(R.T @ quat_to_matrix(np.array(TOP_DOWN_GRASP[1])))
    direct = _report(ros, _call(ros, _request()))
    res = None
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:  # the static transform may take a moment to arrive
        res = _call(ros, _request(p_odom, q_odom, frame='odom_test'))
        if res.plan.poses:
            break
    assert res.plan.header.frame_id == 'map' and len(res.plan.poses) >= 1
    report = _report(ros, res)
    assert report['goal_frame'] == 'odom_test' and report['request']['frame_id'] == 'map'
    assert report['request']['position'] == pytest.approx(list(p_map), abs=1e-9)
    R_seen = quat_to_matrix(np.array(report['request']['orientation']))
    assert np.allclose(R_seen, quat_to_matrix(np.array(TOP_DOWN_GRASP[1])), atol=1e-9)
    assert report['candidates'][0]['score'] == pytest.approx(
        direct['candidates'][0]['score'], abs=1e-3)


def test_the_tf_node_follows_the_servers_remapping_of_the_tf_topics(ros):
    assert ros['server']._tf.topics == ('/tf', '/tf_static')  # started without remapping
    # a server in namespace robot_test with Nav2's remapping of the TF topics
    probe = rclpy.create_node('remap_probe', namespace='robot_test', cli_args=[
        '--ros-args', '-r', '/tf:=tf', '-r', '/tf_static:=tf_static'])
    listener = TfListener('remap_probe_tf', probe.get_namespace(),
                          tf_remap_arguments(probe.resolve_topic_name))
    try:
        assert listener.topics == ('/robot_test/tf', '/robot_test/tf_static')
        tf = TransformStamped()
        tf.header.frame_id, tf.child_frame_id = 'map', 'robot_test_frame'
        tf.transform.rotation.w = 1.0
        tf2_ros.StaticTransformBroadcaster(probe).sendTransform(tf)  # on /robot_test/tf_static
        deadline = time.monotonic() + TIMEOUT_S
        while (not listener.buffer.can_transform('map', 'robot_test_frame', Time())
               and time.monotonic() < deadline):
            time.sleep(0.01)
        assert listener.buffer.can_transform('map', 'robot_test_frame', Time())
        assert not ros['server']._tf.buffer.can_transform('map', 'robot_test_frame', Time())
    finally:
        assert listener.close(1.0)
        probe.destroy_node()


def test_start_pose_is_used_and_reported(ros):
    res = _call(ros, _request(start=('map', (0.0, 0.0, 0.3))))
    assert len(res.plan.poses) >= 1
    report = _report(ros, res)
    assert report['start']['frame_id'] == 'map'
    assert report['start']['position'][:2] == [0.0, 0.0]
    assert any('travel' in k for k in report['candidates'][0]['terms'])
    res = _call(ros, _request(start=('nowhere', (0.0, 0.0, 0.0))))
    assert len(res.plan.poses) >= 1  # an untransformable start is ignored, with a note
    report = _report(ros, res)
    assert report['start'] is None and any('start pose ignored' in n for n in report['notes'])


class FakeTf:
    """Stand in for the TF listener: identity into the target frame, or an exception."""

    def __init__(self, fail=None, extrapolate=''):
        self.fail, self.extrapolate, self.stamps = fail, extrapolate, []  # 'stamped', 'always'

    def transform(self, stamped, target, timeout_s, should_stop):
        st = stamped.header.stamp
        self.stamps.append((st.sec, st.nanosec))
        if self.fail is not None:
            raise self.fail
        if self.extrapolate == 'always' or (self.extrapolate == 'stamped'
                                            and (st.sec, st.nanosec) != (0, 0)):
            raise tf2_ros.ExtrapolationException(
                'Lookup would require extrapolation into the past')
        out = type(stamped)()
        out.header.frame_id = target
        out.pose = stamped.pose
        return out


@pytest.mark.parametrize('orientation, words', [
    ((0.0, 0.0, 0.0, 0.0), 'unit quaternion'),  # tf2 would turn it into the identity
    ((0.0, 0.0, 0.0, 2.0), 'norm is 2'),  # tf2 would normalize it
    ((float('nan'), 0.0, 0.0, 1.0), 'non-finite'),  # tf2 would raise LinAlgError
])
def test_a_bad_goal_in_another_frame_is_refused_before_tf(ros, monkeypatch, orientation,
                                                          words):
    fake = FakeTf()
    monkeypatch.setattr(ros['server'], '_tf', fake)
    res = _call(ros, _request(orientation=orientation, frame='odom_x'))
    report = _report(ros, res)
    assert report['ok'] is False and words in report['reason'] and fake.stamps == []
    assert report['request']['frame_id'] == 'odom_x'  # the raw goal is reported


@pytest.mark.parametrize('exc, words', [
    (np.linalg.LinAlgError('Singular matrix'), 'LinAlgError: Singular matrix'),
    (tf2_ros.LookupException('frame does not exist') if have('tf2_ros') else None,
     'cannot transform'),
])
def test_any_transform_exception_is_a_bad_request(ros, monkeypatch, exc, words):
    monkeypatch.setattr(ros['server'], '_tf', FakeTf(fail=exc))
    res = _call(ros, _request(frame='odom_x'))
    report = _report(ros, res)
    assert report['ok'] is False and words in report['reason']
    assert report['reason'].startswith("bad request: cannot transform the goal from 'odom_x'")
    assert 'internal error' not in report['reason']


def test_a_goal_too_old_for_the_tf_buffer_uses_the_latest_transform(ros, monkeypatch):
    fake = FakeTf(extrapolate='stamped')
    monkeypatch.setattr(ros['server'], '_tf', fake)
    req = _request(frame='odom_x')
    req.goal.header.stamp.sec, req.goal.header.stamp.nanosec = 100, 5
    res = _call(ros, req)
    assert len(res.plan.poses) >= 1 and fake.stamps == [(100, 5), (0, 0)]
    report = _report(ros, res)
    assert report['goal_tf_latest'] is True
    assert any('LATEST' in n and '100.000000005' in n for n in report['notes'])
    fake.stamps.clear()
    fake.extrapolate = 'always'
    res = _call(ros, _request(frame='odom_x'))
    assert fake.stamps == [(0, 0)]  # a zero stamp that still extrapolates is not retried
    assert 'ExtrapolationException' in _report(ros, res)['reason']
    assert _report(ros, _call(ros, _request()))['goal_tf_latest'] is False


def test_an_internal_error_keeps_the_joint_names(ros, monkeypatch):
    real = ros['server']._proposer

    class Broken:
        robot, sampler_name, config = real.robot, real.sampler_name, real.config

        def propose(self, grasp, base, rng):
            raise RuntimeError('boom')
    monkeypatch.setattr(ros['server'], '_proposer', Broken())
    res = _call(ros, _request())
    assert len(res.plan.poses) == 0
    assert _report(ros, res)['reason'].startswith('internal error: RuntimeError: boom')
    traj = _companion(ros, CANDIDATES_TOPIC, res)
    assert len(traj.joint_names) == 8 and len(traj.points) == 0


def test_every_config_key_is_a_parameter_with_a_descriptor(ros):
    server = ros['server']
    for name, info in StanceConfig.describe().items():
        assert server.has_parameter(name), name
        d = server.describe_parameter(name)
        assert d.description.startswith(info['description'])
        if info['range'] is not None and isinstance(info['default'], float):
            assert len(d.floating_point_range) == 1
        if info['range'] is not None and type(info['default']) is int:
            assert len(d.integer_range) == 1
    assert server.get_parameter('proposal.n_samples').value == 256
    assert server.get_parameter('target_frame').value == 'map'
    assert server.describe_parameter('config_file').read_only


def test_parameter_changes_are_validated(ros):
    server = ros['server']
    ok = server.set_parameters([Parameter('proposal.top_k', value=2)])[0]
    assert ok.successful, ok.reason
    assert 1 <= len(_call(ros, _request()).plan.poses) <= 2
    bad = server.set_parameters([Parameter('proposal.sampler', value='bogus')])[0]
    assert not bad.successful and 'bogus' in bad.reason
    assert server.get_parameter('proposal.sampler').value != 'bogus'
    assert not server.set_parameters([Parameter('proposal.n_samples', value=0)])[0].successful
    assert server.set_parameters([Parameter('proposal.top_k', value=10)])[0].successful
    assert len(_call(ros, _request()).plan.poses) >= 1


# ------------------------------------------------------------------ grasp sets and freedom
def _pose_array(poses, frame='map'):
    msg = PoseArray()
    msg.header.frame_id = frame
    for position, orientation in poses:
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
        o = pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in orientation)
        msg.poses.append(pose)
    return msg


def _publish_grasp_set(ros, msg):
    """Publish a grasp set; return its report (the next one with a set as its request)."""
    seen = max([json.loads(m.data)['sequence'] for m in ros['got'][REPORT_TOPIC]] or [0])
    pub = ros['node'].create_publisher(PoseArray, GRASP_SET_TOPIC, 10)
    deadline = time.monotonic() + TIMEOUT_S
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    pub.publish(msg)
    try:
        while time.monotonic() < deadline:
            for m in list(ros['got'][REPORT_TOPIC]):
                report = json.loads(m.data)
                if report['sequence'] > seen and 'alternatives' in (report['request'] or {}):
                    return report
            time.sleep(0.005)
    finally:
        ros['node'].destroy_publisher(pub)
    raise AssertionError(f'no report after the grasp set on {GRASP_SET_TOPIC}')


def test_a_grasp_set_is_answered_on_the_companion_topics(ros):
    high = ((1.0, 0.5, 0.9), (0.0, 0.0, 0.0, 1.0))
    report = _publish_grasp_set(ros, _pose_array([high, SIDE_GRASP, TOP_DOWN_GRASP]))
    assert report['ok'] is True, report['reason']
    assert len(report['request']['alternatives']) == 2
    assert any(n.startswith('grasp set of 3 poses') for n in report['notes'])
    assert {c['grasp_index'] for c in report['candidates']} <= {1, 2}
    for c in report['candidates']:
        assert set(c['tool_pose']) == {'position', 'orientation'}
    stamp = report['header']['stamp']
    deadline = time.monotonic() + TIMEOUT_S
    traj = None
    while traj is None and time.monotonic() < deadline:
        traj = next((m for m in list(ros['got'][CANDIDATES_TOPIC])
                     if _stamp(m) == (stamp['sec'], stamp['nanosec'])), None)
        time.sleep(0.005)
    assert traj is not None and len(traj.points) == len(report['candidates'])


def test_a_bad_pose_of_a_grasp_set_is_named_in_the_report(ros):
    zero = ((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 0.0))
    report = _publish_grasp_set(ros, _pose_array([SIDE_GRASP, TOP_DOWN_GRASP, zero]))
    assert report['ok'] is False and 'poses[2] (grasp_index 2)' in report['reason']
    assert report['candidates'] == []


def test_the_grasp_freedom_parameters_change_at_run_time(ros):
    server = ros['server']
    assert server.get_parameter('grasp_free_roll').value is False
    assert server.set_parameters([Parameter('grasp_free_roll', value=True)])[0].successful
    try:
        report = _report(ros, _call(ros, _request(*SIDE_GRASP)))
        assert report['request']['free_roll'] is True
    finally:
        assert server.set_parameters([Parameter('grasp_free_roll', value=False)])[0].successful
    assert 'free_roll' not in _report(ros, _call(ros, _request(*SIDE_GRASP)))['request']
    assert not server.set_parameters([Parameter('grasp_symmetric', value='yes')])[0].successful
