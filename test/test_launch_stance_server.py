"""launch_testing: start the stance server with launch/lekiwi.launch.py and call the service.

It launches with ``model:=none sampler:=grid`` (the arguments must reach the
node: the report names the sampler) and checks the exit code after the launch
is shut down (SIGINT: 0). Needs ROS 2 (launch_testing, launch_ros, rclpy) and
the built package (``colcon build --packages-select reachability_ros && source
install/setup.bash``); run with ``launch_test test/test_launch_stance_server.py``
or ``python3 -m pytest test/test_launch_stance_server.py`` (pytest < 9). Without
ROS 2 a single test reports the skip and its reason.
"""

import json
import math
import time
import unittest

import pytest
from ros_support import have, lekiwi_launch_description, missing_ros_test, RclpyContext


NEEDED = ('launch_testing', 'launch', 'launch_ros', 'rclpy', 'nav_msgs', 'ament_index_python')
TIMEOUT_S = 60.0
ARGUMENTS = {'target_frame': 'map', 'use_rviz': 'false', 'model': 'none', 'sampler': 'grid'}


if not have(*NEEDED):
    test_the_launch_file_serves_propose_stance = missing_ros_test(NEEDED)

else:
    import launch_testing
    import launch_testing.asserts
    from nav_msgs.srv import GetPlan
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    @pytest.mark.launch_test
    def generate_test_description():
        """Include the package's launch file (no RViz), then ReadyToTest."""
        return lekiwi_launch_description(ARGUMENTS)

    def _request(x=1.0, y=0.5, z=0.1, orientation=(0.0, 0.7071068, 0.0, 0.7071068)):
        req = GetPlan.Request()
        req.goal.header.frame_id = 'map'
        req.goal.pose.position.x, req.goal.pose.position.y = x, y
        req.goal.pose.position.z = z
        o = req.goal.pose.orientation
        o.x, o.y, o.z, o.w = orientation
        return req

    class TestProposeStance(RclpyContext, unittest.TestCase):
        """Run while the launched stance server is up."""

        def setUp(self):
            self.skip_unless_built()
            self.node = rclpy.create_node('launch_test_stance_client')
            self.reports = []
            qos = QoSProfile(depth=50, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
            self.node.create_subscription(String, '/propose_stance/report',
                                          self.reports.append, qos)
            self.client = self.node.create_client(GetPlan, '/propose_stance')
            self.assertTrue(self.client.wait_for_service(timeout_sec=TIMEOUT_S),
                            '/propose_stance did not appear')

        def tearDown(self):
            self.node.destroy_node()

        def _call(self, req):
            fut = self.client.call_async(req)
            rclpy.spin_until_future_complete(self.node, fut, timeout_sec=TIMEOUT_S)
            self.assertTrue(fut.done(), 'no answer from /propose_stance')
            return fut.result()

        def _report(self, res):
            want = {'sec': res.plan.header.stamp.sec, 'nanosec': res.plan.header.stamp.nanosec}
            deadline = time.monotonic() + TIMEOUT_S
            while time.monotonic() < deadline:
                for msg in self.reports:
                    report = json.loads(msg.data)
                    if report['header']['stamp'] == want:
                        return report
                rclpy.spin_once(self.node, timeout_sec=0.05)
            self.fail('no report with the response stamp')

        def test_service_returns_ranked_poses_and_survives_bad_requests(self):
            res = self._call(_request())
            self.assertEqual(res.plan.header.frame_id, 'map')
            self.assertGreaterEqual(len(res.plan.poses), 1)
            for ps in res.plan.poses:
                self.assertEqual(ps.header.frame_id, 'map')
                self.assertEqual(ps.pose.position.z, 0.0)
                q = ps.pose.orientation
                self.assertAlmostEqual(math.hypot(q.z, q.w), 1.0, places=6)
            report = self._report(res)
            self.assertTrue(report['ok'])
            self.assertTrue(report['sampler'].startswith('grid'))  # the arguments reached it
            self.assertEqual(len(report['candidates']), len(res.plan.poses))
            bad = self._call(_request(x=float('nan')))
            self.assertEqual(len(bad.plan.poses), 0)
            self.assertIn('non-finite', self._report(bad)['reason'])
            zero = self._call(_request(orientation=(0.0, 0.0, 0.0, 0.0)))
            self.assertEqual(len(zero.plan.poses), 0)
            self.assertGreaterEqual(len(self._call(_request()).plan.poses), 1)

    @launch_testing.post_shutdown_test()
    class TestShutdown(unittest.TestCase):
        """Run after the launch is shut down (SIGINT): the node exited with code 0."""

        def test_exit_codes(self, proc_info):
            launch_testing.asserts.assertExitCodes(proc_info)
