"""The stance navigator as a process (each test skips, with the reason, without ROS 2).

- start-up failures: one FATAL line, exit code 1, no traceback;
- SIGINT or SIGTERM right after ready, and while a goal waits (for a stance server that
  is not there): the node exits within a second with code 0, without a traceback.
"""

import signal
import time

import pytest
from ros_support import (assert_exited_within, have, interrupt, kill_if_running, Lines,
                         requires_ros, spun_node, start_node_process)

ROS_MODULES = ('rclpy', 'tf2_ros', 'tf2_geometry_msgs', 'tf_transformations', 'nav_msgs',
               'nav2_msgs', 'geometry_msgs', 'sensor_msgs', 'std_msgs', 'trajectory_msgs')
pytestmark = requires_ros(*ROS_MODULES)

if have(*ROS_MODULES):
    from geometry_msgs.msg import TransformStamped
    from nav2_msgs.action import NavigateToPose
    from rclpy.action import ActionClient
    from rclpy.executors import MultiThreadedExecutor
    from tf2_ros import StaticTransformBroadcaster

NAVIGATOR = ('from reachability_ros.ros.stance_navigator import main; '
             'raise SystemExit(main())')


def _start(ros_args):
    return start_node_process(NAVIGATOR, ros_args)


@pytest.mark.parametrize('ros_args, words', [
    (['-p', 'max_attempt:=2'], "did you mean 'max_attempts'"),
    (['-p', 'arrival.tolerance_m:=5.0'], 'tolerance_m'),
    (['-p', 'config_file:=/no/such/config.yaml'], 'not found'),
    (['-p', "target_frame:='/'"], 'target_frame is empty'),
])
def test_start_up_failures_are_one_fatal_line(ros_args, words):
    proc = _start(ros_args)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert 'FATAL' in out and words in out and 'Traceback' not in out
    assert len([ln for ln in out.splitlines() if 'FATAL' in ln]) == 1


@pytest.fixture(scope='module')
def client_node():
    with spun_node('navigator_process_test',
                   lambda: MultiThreadedExecutor(num_threads=2)) as node:
        t = TransformStamped()  # the base stands at the origin of the map
        t.header.frame_id, t.child_frame_id = 'map', 'base_footprint'
        t.transform.rotation.w = 1.0
        broadcaster = StaticTransformBroadcaster(node)
        broadcaster.sendTransform(t)
        yield node


@pytest.mark.parametrize('moment, signum', [('ready', signal.SIGINT),
                                            ('ready', signal.SIGTERM),
                                            ('goal', signal.SIGINT), ('goal', signal.SIGTERM)])
def test_the_navigator_exits_within_a_second_of_a_signal(client_node, moment, signum):
    proc = _start(['-p', 'server_timeout_s:=60.0'])
    lines = Lines(proc)
    client = None
    try:
        lines.wait_for('ready:')
        if moment == 'goal':  # the goal waits for /propose_stance, which nobody serves
            client = ActionClient(client_node, NavigateToPose, '/navigate_to_grasp')
            assert client.wait_for_server(timeout_sec=30.0)
            goal = NavigateToPose.Goal()
            goal.pose.header.frame_id = 'map'
            goal.pose.pose.position.x, goal.pose.pose.position.z = 1.0, 0.1
            goal.pose.pose.orientation.w = 1.0
            client.send_goal_async(goal)
            time.sleep(1.5)
        elapsed = interrupt(proc, lines, signum)
    finally:
        if client is not None:
            client.destroy()
        kill_if_running(proc)
    assert_exited_within(proc, lines, elapsed, 0)
