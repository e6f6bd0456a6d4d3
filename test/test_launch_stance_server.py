"""launch_testing: start the stance server with launch/lekiwi.launch.py and call the service.

Needs ROS 2 (launch_testing, launch_ros, rclpy) and the built package
(``colcon build --packages-select reachability_ros && source install/setup.bash``).
Run with ``launch_test test/test_launch_stance_server.py`` or
``python -m pytest test/test_launch_stance_server.py`` (pytest < 9). Skipped
where launch_testing is not installed; the test cases skip themselves when the
package is not built.
"""

import math
import os
import time
import unittest

import pytest

# Without launch_testing its pytest plugin is absent too: a plain module-level skip.
launch_testing = pytest.importorskip("launch_testing")

import launch  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402

try:
    from ament_index_python.packages import get_package_share_directory
    SHARE = get_package_share_directory("reachability_ros")
except Exception:  # PackageNotFoundError: not built / not sourced
    SHARE = None

TIMEOUT_S = 60.0


@pytest.mark.launch_test
def generate_test_description():
    """The package's launch file (stance server only, no RViz), then ReadyToTest."""
    actions = []
    if SHARE is not None:
        actions.append(IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(SHARE, "launch", "lekiwi.launch.py")),
            launch_arguments={"target_frame": "map", "use_rviz": "false"}.items()))
    actions.append(launch_testing.actions.ReadyToTest())
    return launch.LaunchDescription(actions)


def _request(x=1.0, y=0.5, z=0.1, orientation=(0.0, 0.7071068, 0.0, 0.7071068)):
    from nav_msgs.srv import GetPlan
    req = GetPlan.Request()
    req.goal.header.frame_id = "map"
    req.goal.pose.position.x, req.goal.pose.position.y, req.goal.pose.position.z = x, y, z
    o = req.goal.pose.orientation
    o.x, o.y, o.z, o.w = orientation
    return req


class TestProposeStance(unittest.TestCase):
    """Runs while the launched stance server is up."""

    @classmethod
    def setUpClass(cls):
        cls.owns_context = not rclpy.ok()
        if cls.owns_context:
            rclpy.init()

    @classmethod
    def tearDownClass(cls):
        if cls.owns_context and rclpy.ok():
            rclpy.shutdown()

    def setUp(self):
        if SHARE is None:
            self.skipTest("reachability_ros is not built: colcon build --packages-select "
                          "reachability_ros && source install/setup.bash")
        self.node = rclpy.create_node("launch_test_stance_client")

    def tearDown(self):
        self.node.destroy_node()

    def _call(self, client, req):
        fut = client.call_async(req)
        rclpy.spin_until_future_complete(self.node, fut, timeout_sec=TIMEOUT_S)
        self.assertTrue(fut.done(), "no answer from /propose_stance")
        return fut.result()

    def test_service_returns_ranked_poses_and_survives_bad_requests(self):
        from nav_msgs.srv import GetPlan
        client = self.node.create_client(GetPlan, "/propose_stance")
        self.assertTrue(client.wait_for_service(timeout_sec=TIMEOUT_S),
                        "/propose_stance did not appear")
        res = self._call(client, _request())
        self.assertEqual(res.plan.header.frame_id, "map")
        self.assertGreaterEqual(len(res.plan.poses), 1)
        for ps in res.plan.poses:
            self.assertEqual(ps.header.frame_id, "map")
            self.assertEqual(ps.pose.position.z, 0.0)
            q = ps.pose.orientation
            self.assertAlmostEqual(math.hypot(q.z, q.w), 1.0, places=6)
        bad = self._call(client, _request(x=float("nan")))
        self.assertEqual(len(bad.plan.poses), 0)
        zero = self._call(client, _request(orientation=(0.0, 0.0, 0.0, 0.0)))
        self.assertEqual(len(zero.plan.poses), 0)
        time.sleep(0.2)
        again = self._call(client, _request())
        self.assertGreaterEqual(len(again.plan.poses), 1)

    def test_report_is_latched(self):
        import json
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String
        from nav_msgs.srv import GetPlan
        client = self.node.create_client(GetPlan, "/propose_stance")
        self.assertTrue(client.wait_for_service(timeout_sec=TIMEOUT_S))
        res = self._call(client, _request())
        qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                         reliability=ReliabilityPolicy.RELIABLE)
        got = []
        self.node.create_subscription(String, "/propose_stance/report", got.append, qos)
        deadline = time.monotonic() + TIMEOUT_S
        while not got and time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.assertTrue(got, "no latched report")
        report = json.loads(got[-1].data)
        self.assertTrue(report["ok"])
        self.assertEqual(report["header"]["stamp"]["sec"], res.plan.header.stamp.sec)
        self.assertEqual(len(report["candidates"]), len(res.plan.poses))


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    """After the launch is shut down (SIGINT): the node exited cleanly."""

    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
