"""Live camera intrinsics in the stance server, in-process (skips, with the reason, without ROS).

The server follows ``camera_info_topic``: a CameraInfo for its camera frame replaces the
configured 70 deg camera (a grasp above that camera's view gets stances with a 116 deg one,
and the report says which intrinsics were used and since when); a CameraInfo for another
frame, or an uncalibrated one, is ignored.
"""

import json
import time

import pytest
from ros_support import have, REPO, requires_ros, stance_server, wait_future

ROS_MODULES = ('rclpy', 'tf2_ros', 'tf2_geometry_msgs', 'tf_transformations', 'nav_msgs',
               'sensor_msgs', 'visualization_msgs', 'trajectory_msgs', 'std_msgs')
pytestmark = requires_ros(*ROS_MODULES)

if have(*ROS_MODULES):
    from nav_msgs.srv import GetPlan
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from reachability_ros.ros.stance_node import REPORT_TOPIC, SERVICE
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import String

TOPIC = '/test_front_camera/camera_info'
WIDE_K = [200.0, 0.0, 320.0, 0.0, 200.0, 240.0, 0.0, 0.0, 1.0]  # 116 deg horizontal
#: above what the configured 70 deg camera watches, within the 116 deg camera's view
HIGH_GRASP = ((0.277, -0.027, 0.36), (-0.1528, 0.4725, -0.3502, 0.7942))
TIMEOUT_S = 30.0


@pytest.fixture(scope='module')
def ros():
    overrides = {'config_file': str(REPO / 'config' / 'lekiwi.yaml'),
                 'camera_info_topic': TOPIC, 'proposal.model_path': '',
                 'proposal.sampler': 'grid'}
    with stance_server(overrides, 'camera_info_test_client') as (server, node):
        reports = []
        node.create_subscription(String, REPORT_TOPIC,
                                 lambda m: reports.append(json.loads(m.data)),
                                 QoSProfile(depth=50, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                            reliability=ReliabilityPolicy.RELIABLE))
        publisher = node.create_publisher(CameraInfo, TOPIC, 10)
        client = node.create_client(GetPlan, SERVICE)
        assert client.wait_for_service(timeout_sec=TIMEOUT_S)
        yield {'server': server, 'client': client, 'publisher': publisher,
               'reports': reports, 'node': node}


def _ask(ros):
    req = GetPlan.Request()
    req.goal.header.frame_id = 'map'
    p, o = req.goal.pose.position, req.goal.pose.orientation
    p.x, p.y, p.z = HIGH_GRASP[0]
    o.x, o.y, o.z, o.w = HIGH_GRASP[1]
    deadline = time.monotonic() + TIMEOUT_S
    res = wait_future(ros['client'].call_async(req), TIMEOUT_S)
    assert res is not None, 'no answer from /propose_stance'
    want = {'sec': res.plan.header.stamp.sec, 'nanosec': res.plan.header.stamp.nanosec}
    while time.monotonic() < deadline:
        for report in list(ros['reports']):
            if report['header']['stamp'] == want:
                return res, report
        time.sleep(0.005)
    raise AssertionError('no report for the answer')


def _publish(ros, k, frame='front_camera_optical_frame', sec=42):
    msg = CameraInfo()
    msg.header.frame_id, msg.header.stamp.sec = frame, sec
    msg.width, msg.height = 640, 480
    msg.k = [float(v) for v in k]
    ros['publisher'].publish(msg)


def _fx(ros):
    return ros['server'].get_parameter('robot.camera.fx').value


def _wait_fx(ros, value, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while _fx(ros) != value and time.monotonic() < deadline:
        _publish(ros, WIDE_K)
        time.sleep(0.1)
    return _fx(ros)


def test_live_intrinsics_replace_the_assumed_camera_and_bad_ones_are_ignored(ros):
    res, report = _ask(ros)
    assert len(res.plan.poses) == 0  # the configured 70 deg camera cannot watch it
    assert report['camera']['source'] == 'config'
    assert report['camera']['hfov_deg'] == pytest.approx(70.0)
    assert _wait_fx(ros, 200.0) == 200.0
    res, report = _ask(ros)
    assert len(res.plan.poses) >= 1, report['reason']
    cam = report['camera']
    assert cam['source'] == 'camera_info' and cam['topic'] == TOPIC
    assert (cam['fx'], cam['fy'], cam['cx'], cam['cy']) == (200.0, 200.0, 320.0, 240.0)
    assert cam['since'] == {'sec': 42, 'nanosec': 0}
    # another frame, an uncalibrated camera: ignored, the live intrinsics stay
    for _ in range(5):
        _publish(ros, [300.0] + WIDE_K[1:], frame='wrist_camera_optical_frame')
        _publish(ros, [0.0] * 9)
        time.sleep(0.05)
    time.sleep(0.5)
    assert _fx(ros) == 200.0
    assert _ask(ros)[1]['camera']['since'] == {'sec': 42, 'nanosec': 0}
