"""launch_testing: ``lekiwi.launch.py navigate:=true`` against a fake Nav2 written here.

The fake Nav2 (:class:`FakeNav2`, in this test process) serves ``/navigate_to_pose``: it
lands the base off the goal (3 cm to the left, 2 deg), or aborts, or holds the goal until
it is canceled, as each test scripts it; it integrates ``/cmd_vel`` (body frame) into the
base pose and broadcasts ``map -> base_footprint`` at 50 Hz; it records the arm commands
on ``/arm_controller/joint_trajectory``. The tests send ``/navigate_to_grasp`` goals and
re-check every arm command from the fake's TRUE base pose with Pinocchio FK of the URDF:
the tool within 2 mm / 1 deg of the grasp, the arm within its limits, the tool visible.

Needs ROS 2 with nav2_msgs and the built package (``colcon build --packages-select
reachability_ros && source install/setup.bash``); run with ``launch_test
test/test_launch_navigator.py`` or ``python3 -m pytest test/test_launch_navigator.py``
(pytest < 9). Without them a single test reports the skip and its reason.
"""

import json
import math
import threading
import time
import unittest

import numpy as np
import pytest
from ros_support import (have, lekiwi_launch_description, missing_ros_test, RclpyContext,
                         spinning)

NEEDED = ('launch_testing', 'launch', 'launch_ros', 'rclpy', 'nav_msgs', 'nav2_msgs',
          'tf2_ros', 'geometry_msgs', 'trajectory_msgs', 'std_msgs', 'ament_index_python')
TIMEOUT_S = 90.0
ARGUMENTS = {'target_frame': 'map', 'use_rviz': 'false', 'model': 'none', 'sampler': 'grid',
             'navigate': 'true'}
SIDE_GRASP = ((1.0, 0.5, 0.1), (0.0, 0.7071068, 0.0, 0.7071068))
HIGH_GRASP = ((1.0, 0.5, 0.8), (0.0, 0.0, 0.0, 1.0))  # beyond the arm: no stance
#: how the fake Nav2 misses the goal: dx, dy in the goal's frame (m), dyaw (rad)
LANDING_ERROR = (0.0, 0.03, math.radians(2.0))


if not have(*NEEDED):
    test_the_navigator_reaches_grasps_through_a_fake_nav2 = missing_ros_test(
        NEEDED, 'install nav2_msgs and build the package')

else:
    from geometry_msgs.msg import TransformStamped, Twist
    import launch_testing
    import launch_testing.asserts
    from nav2_msgs.action import NavigateToPose
    import rclpy
    from rclpy.action import ActionClient, ActionServer, CancelResponse
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from reachability_ros.core.arrival import integrate_twist
    from reachability_ros.core.geometry import pose_error, quat_to_matrix
    from reachability_ros.core.robot import WholeBodyModel
    from reachability_ros.core.types import BasePose
    from reachability_ros.core.visibility import Visibility
    from std_msgs.msg import String
    from tf2_ros import TransformBroadcaster
    from trajectory_msgs.msg import JointTrajectory

    @pytest.mark.launch_test
    def generate_test_description():
        """Include the package's launch file with navigate:=true, then ReadyToTest."""
        return lekiwi_launch_description(ARGUMENTS)

    class FakeNav2(Node):
        """``/navigate_to_pose`` that lands the base off the goal; ``/cmd_vel`` moves the base."""

        def __init__(self):
            super().__init__('fake_nav2')
            group = ReentrantCallbackGroup()
            self.lock = threading.Lock()
            self.pose = BasePose(0.0, 0.0, 0.0)
            self.twist = (0.0, 0.0, 0.0)
            self.last = time.monotonic()
            self.script = []  # per goal: 'succeed' (default), 'abort' or 'hold'
            self.goals, self.canceled, self.twists, self.arm = [], 0, [], []
            self.tf = TransformBroadcaster(self)
            self.create_subscription(Twist, '/cmd_vel', self.on_twist, 10, callback_group=group)
            self.create_subscription(JointTrajectory, '/arm_controller/joint_trajectory',
                                     lambda msg: self.arm.append(msg), 10,
                                     callback_group=group)
            self.create_timer(0.02, self.broadcast, callback_group=group)
            self.server = ActionServer(self, NavigateToPose, '/navigate_to_pose', self.execute,
                                       callback_group=group,
                                       cancel_callback=lambda _r: CancelResponse.ACCEPT)

        def advance(self):
            """Integrate the current twist up to now (call with the lock held)."""
            now = time.monotonic()
            if any(self.twist):
                self.pose = integrate_twist(self.pose, *self.twist, now - self.last)
            self.last = now

        def on_twist(self, msg):
            with self.lock:
                self.advance()
                self.twist = (msg.linear.x, msg.linear.y, msg.angular.z)
                self.twists.append(self.twist)

        def broadcast(self):
            with self.lock:
                self.advance()
                p = self.pose
            t = TransformStamped()
            t.header.stamp = self.get_clock().now().to_msg()
            t.header.frame_id, t.child_frame_id = 'map', 'base_footprint'
            t.transform.translation.x, t.transform.translation.y = p.x, p.y
            t.transform.rotation.z, t.transform.rotation.w = (math.sin(p.yaw / 2),
                                                              math.cos(p.yaw / 2))
            self.tf.sendTransform(t)

        def execute(self, goal_handle):
            goal = goal_handle.request.pose.pose
            self.goals.append(goal)
            outcome = self.script.pop(0) if self.script else 'succeed'
            deadline = time.monotonic() + (60.0 if outcome == 'hold' else 0.3)
            while time.monotonic() < deadline:
                if goal_handle.is_cancel_requested:
                    self.canceled += 1
                    goal_handle.canceled()
                    return NavigateToPose.Result()
                feedback = NavigateToPose.Feedback()
                feedback.distance_remaining = 0.1
                goal_handle.publish_feedback(feedback)
                time.sleep(0.05)
            if outcome == 'abort':
                goal_handle.abort()
                return NavigateToPose.Result(error_code=104, error_msg='fake: patience exceeded')
            yaw = 2.0 * math.atan2(goal.orientation.z, goal.orientation.w)
            dx, dy, dyaw = LANDING_ERROR
            c, s = math.cos(yaw), math.sin(yaw)
            with self.lock:
                self.advance()
                self.pose = BasePose(goal.position.x + c * dx - s * dy,
                                     goal.position.y + s * dx + c * dy, yaw + dyaw)
            goal_handle.succeed()
            return NavigateToPose.Result()

    class TestNavigateToGrasp(RclpyContext, unittest.TestCase):
        """Run while the launched stance server and navigator are up."""

        @classmethod
        def setUpClass(cls):
            super().setUpClass()
            cls.robot = WholeBodyModel()
            cls.visibility = Visibility(cls.robot)

        def setUp(self):
            self.skip_unless_built()
            self.nav2 = FakeNav2()
            self.node = rclpy.create_node('navigate_to_grasp_client')
            self.reports = []
            qos = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
            self.node.create_subscription(String, '/navigate_to_grasp/report',
                                          lambda m: self.reports.append(json.loads(m.data)),
                                          qos)
            self.client = ActionClient(self.node, NavigateToPose, '/navigate_to_grasp')
            self.executor = MultiThreadedExecutor(num_threads=4)
            self.executor.add_node(self.nav2)
            self.executor.add_node(self.node)
            self.spin = spinning(self.executor)
            self.spin.__enter__()
            self.assertTrue(self.client.wait_for_server(timeout_sec=TIMEOUT_S),
                            '/navigate_to_grasp did not appear')

        def tearDown(self):
            self.spin.__exit__(None, None, None)
            self.executor.shutdown()
            self.nav2.destroy_node()
            self.node.destroy_node()

        def _wait(self, future, timeout=TIMEOUT_S):
            deadline = time.monotonic() + timeout
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertTrue(future.done(), 'no answer in time')
            return future.result()

        def _goal(self, grasp=SIDE_GRASP, frame='map'):
            goal = NavigateToPose.Goal()
            goal.pose.header.frame_id = frame
            p, o = goal.pose.pose.position, goal.pose.pose.orientation
            p.x, p.y, p.z = grasp[0]
            o.x, o.y, o.z, o.w = grasp[1]
            return goal

        def _send(self, goal):
            handle = self._wait(self.client.send_goal_async(goal))
            self.assertTrue(handle.accepted)
            return handle

        def _report(self, count):
            deadline = time.monotonic() + 10.0
            while len(self.reports) < count and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertGreaterEqual(len(self.reports), count, 'no report')
            return self.reports[-1]

        def _check_arm_from_the_true_pose(self, grasp=SIDE_GRASP):
            self.assertEqual(len(self.nav2.arm), 1)
            msg = self.nav2.arm[0]
            self.assertEqual(list(msg.joint_names), list(self.robot.config.arm_joints))
            (point,) = msg.points
            p = self.nav2.pose  # the base has stopped: no twist is left running
            q = np.array([[p.x, p.y, p.yaw, *point.positions]])
            T = self.robot.fk_pinocchio(q, self.robot.config.tool_frame)
            T_goal = np.eye(4)
            T_goal[:3, :3], T_goal[:3, 3] = quat_to_matrix(np.array(grasp[1])), grasp[0]
            dp, dr = pose_error(T, T_goal[None])
            self.assertLessEqual(dp[0], 0.002)
            self.assertLessEqual(math.degrees(dr[0]), 1.0)
            self.assertTrue(self.robot.within_limits(q)[0])
            self.assertTrue(self.visibility.check(q).visible[0])

        def test_a_grasp_is_reached_from_where_the_base_landed(self):
            n = len(self.reports)
            result = self._wait(self._send(self._goal()).get_result_async())
            self.assertEqual(result.status, 4, result.result.error_msg)  # SUCCEEDED
            self.assertEqual(result.result.error_code, 0)
            self.assertEqual(len(self.nav2.goals), 1)
            self._check_arm_from_the_true_pose()
            if self.nav2.twists:
                self.assertEqual(self.nav2.twists[-1], (0.0, 0.0, 0.0))
                for vx, vy, wz in self.nav2.twists:  # slow, as bounded
                    self.assertLessEqual(math.hypot(vx, vy), 0.05 + 1e-9)
                    self.assertLessEqual(abs(wz), 0.2 + 1e-9)
            report = self._report(n + 1)
            self.assertTrue(report['ok'])
            self.assertAlmostEqual(report['landing_error']['dy_m'], LANDING_ERROR[1], delta=0.005)
            self.assertLessEqual(report['final_tool_error']['position_m'], 0.002)
            self.assertIn('correction_distance_m', report)

        def test_a_failed_navigation_falls_back_to_the_next_stance(self):
            self.nav2.script = ['abort']
            result = self._wait(self._send(self._goal()).get_result_async())
            self.assertEqual(result.status, 4, result.result.error_msg)
            self.assertEqual(len(self.nav2.goals), 2)
            self._check_arm_from_the_true_pose()

        def test_no_stance_fails_at_once(self):
            result = self._wait(self._send(self._goal(HIGH_GRASP)).get_result_async())
            self.assertEqual(result.status, 6)  # ABORTED
            self.assertEqual(result.result.error_code, 901)
            self.assertIn('0.80 m above the floor', result.result.error_msg)
            self.assertEqual(self.nav2.goals, [])
            self.assertEqual(self.nav2.arm, [])

        def test_a_cancel_cancels_nav2_and_stops_the_base(self):
            self.nav2.script = ['hold']
            handle = self._send(self._goal())
            deadline = time.monotonic() + TIMEOUT_S
            while not self.nav2.goals and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(len(self.nav2.goals), 1, 'Nav2 got no goal')
            self._wait(handle.cancel_goal_async())
            result = self._wait(handle.get_result_async())
            self.assertEqual(result.status, 5)  # CANCELED
            self.assertEqual(result.result.error_code, 907)
            self.assertEqual(self.nav2.canceled, 1)
            self.assertEqual(self.nav2.arm, [])
            deadline = time.monotonic() + 5.0
            while not self.nav2.twists and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(self.nav2.twists[-1], (0.0, 0.0, 0.0))  # the base was stopped

        def test_a_goal_without_a_frame_is_refused(self):
            result = self._wait(self._send(self._goal(frame='')).get_result_async())
            self.assertEqual(result.status, 6)
            self.assertEqual(result.result.error_code, 908)
            self.assertEqual(self.nav2.goals, [])

    @launch_testing.post_shutdown_test()
    class TestShutdown(unittest.TestCase):
        """Run after the launch is shut down (SIGINT): both nodes exited with code 0."""

        def test_exit_codes(self, proc_info):
            launch_testing.asserts.assertExitCodes(proc_info)
