"""The ``stance_navigator`` node: ``/navigate_to_grasp``, from a grasp to the arm commanded.

Action ``/navigate_to_grasp`` (``nav2_msgs/action/NavigateToPose``, so that ``ros2 action
send_goal`` and behaviour trees can use it): ``goal.pose`` is the grasp (a ``PoseStamped`` of
``gripper_frame_link`` in any frame TF knows; transformed into ``target_frame``), and
``goal.behavior_tree`` is passed on to Nav2. The node asks ``/propose_stance`` for ranked
stances with the base's TF pose as ``start``, sends them in rank order to Nav2's
``/navigate_to_pose``, relays Nav2's feedback, and on arrival solves the arm from the landed
base, corrects the base on ``/cmd_vel`` when needed, and publishes one
``trajectory_msgs/JointTrajectory`` on ``/arm_controller/joint_trajectory``. Every decision
is in :mod:`.navigation` (tested without ROS); this module is the ROS glue.

Result: ``error_code`` 0 on success, else :data:`.navigation.RESULT_CODES` (901 and up) and
an ``error_msg`` that says what failed. The goal ends SUCCEEDED, CANCELED (after a cancel
request: the Nav2 goal is canceled and the base stopped) or ABORTED. A JSON report of every
goal goes to ``/navigate_to_grasp/report`` (latched: depth 1, transient local, reliable).
One goal at a time: a goal that arrives while one runs is rejected.

Threads: a ``MultiThreadedExecutor`` runs the callbacks; the action server, the service
and action clients and the subscriptions share one ``ReentrantCallbackGroup``, so the
goal's callback can wait on the stance server and on Nav2 (``add_done_callback`` and an
event, never spinning) while their answers and Nav2's feedback are handled on other
threads. TF has its own node and thread (:mod:`.tf_listener`), so lookups keep working
while a callback waits. SIGINT or SIGTERM: any goal ends (the base is stopped) and the node
exits within a second with code 0 (:mod:`.lifecycle`).
"""

from __future__ import annotations

from dataclasses import replace
import sys
import threading
import time
from typing import Any

from geometry_msgs.msg import PoseStamped, Twist
from nav2_msgs.action import NavigateToPose
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from reachability_ros.core.arrival import ArrivalPlanner
from reachability_ros.core.config import ProposalConfig
from reachability_ros.core.errors import ConfigError, DescriptionError, ReachabilityError
from reachability_ros.core.manifold import StanceManifold
from reachability_ros.core.robot import WholeBodyModel
from reachability_ros.core.types import BasePose, Grasp
from reachability_ros.core.visibility import Visibility
from std_msgs.msg import String
import tf2_ros
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from . import messages as msgs
from .camera_input import camera_entry, CameraInfoInput
from .conversions import (check_raw_goal, normalize_frame_id, PlanPose, PoseInput,
                          tf_remap_arguments, transform_failure_reason)
from .lifecycle import poll_until, ShutdownRequest
from .navigation import (goal_failure, goal_status, GraspNavigator, INTERNAL_ERROR,
                         INVALID_GOAL, NavigationResult, STATUS_CANCELED, STATUS_SUCCEEDED,
                         TF_MISSING)
from .navigator_io import (navigator_config, navigator_config_update,
                           navigator_parameter_specs, NavOutcome, ProposeAnswer, robot_config)
from .node_main import run_node, THREAD_STOP_S
from .parameters import unknown_parameters, unknown_parameters_message
from .qos import latched_qos
from .stance_client import StanceClient, wait_for, WAIT_STEP_S
from .tf_listener import TfListener, transform_pose

NODE_NAME = 'stance_navigator'
EXECUTOR_THREADS = 4
#: Wait for Nav2 to end a goal we canceled: on a cancel request, on shutdown (s).
NAV2_CANCEL_WAIT_S, NAV2_SHUTDOWN_WAIT_S = 2.0, 0.2
#: Accepted | |q| - 1 | of the grasp quaternion (the stance server's default).
QUATERNION_TOLERANCE = ProposalConfig().quaternion_tolerance


class StanceNavigator(Node):
    """ROS 2 node offering ``/navigate_to_grasp``. Call :meth:`start` after construction.

    Args:
        stop: the process's shutdown request (waits end early when it is set).
        **kwargs: forwarded to ``rclpy.node.Node`` (e.g. ``parameter_overrides``).
    """

    def __init__(self, stop: ShutdownRequest | None = None, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._stop = stop if stop is not None else ShutdownRequest(raise_on_signal=False)
        self._group = ReentrantCallbackGroup()
        self._busy = threading.Lock()  # held while a goal runs
        self._planner_lock = threading.Lock()  # around replacing the arrival planner
        self._tf: TfListener | None = None
        self._camera_input: CameraInfoInput | None = None
        self._pub_twist = None

    # ------------------------------------------------------------------ start-up
    def start(self) -> None:
        """Declare the parameters, build the robot model, create the action and its clients.

        Raises:
            ReachabilityError: a bad configuration or an unknown parameter.
        """
        specs = navigator_parameter_specs()
        for spec in specs:
            self.declare_parameter(spec.name, spec.default, msgs.descriptor_from_spec(spec))
        given = list(getattr(self, '_parameter_overrides', None) or {})
        unknown = unknown_parameters(given, [s.name for s in specs])
        if unknown:
            raise ConfigError(unknown_parameters_message(NODE_NAME, unknown,
                                                         [s.name for s in specs]))
        values = {s.name: self.get_parameter(s.name).value for s in specs}
        cfg = navigator_config(values)
        self._target = normalize_frame_id(cfg.target_frame)
        if not self._target:
            raise ConfigError("parameter target_frame is empty; set it to e.g. 'map'")
        self._config = cfg = replace(cfg, target_frame=self._target)
        robot = self._robot = WholeBodyModel(robot_config(values['config_file']))
        try:
            manifold = StanceManifold(robot)
        except DescriptionError:  # the correction then returns to the proposed stance
            manifold = None
        planner = ArrivalPlanner(robot, Visibility(robot), manifold, cfg.arrival)
        self._navigator = GraspNavigator(planner, cfg, robot.config.arm_joints)
        self._tf = TfListener(f'{NODE_NAME}_tf', self.get_namespace(),
                              tf_remap_arguments(self.resolve_topic_name))
        self._pub_twist = self.create_publisher(Twist, cfg.cmd_vel_topic, 10)
        self._pub_arm = self.create_publisher(JointTrajectory, cfg.arm_topic, 10)
        self._pub_report = self.create_publisher(String, cfg.report_topic, latched_qos())
        group = self._group
        self._nav2 = ActionClient(self, NavigateToPose, cfg.nav2_action, callback_group=group)
        self._stances = StanceClient(self, cfg.propose_service, self._target, group,
                                     self._stop.is_set)
        if cfg.camera_info_topic:
            self._camera_input = CameraInfoInput(
                self, cfg.camera_info_topic, lambda: self._navigator.planner.visibility.camera,
                self._apply_camera, callback_group=group)
        self._server = ActionServer(self, NavigateToPose, cfg.action_name, self._execute,
                                    callback_group=group, goal_callback=self._on_goal,
                                    cancel_callback=lambda _request: CancelResponse.ACCEPT)
        # registered last: rclpy also calls it for every declare_parameter
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        """Apply run-time changes (attempts, timeouts, ``arrival.*``); refuse bad ones."""
        try:
            cfg = navigator_config_update(self._config, {p.name: p.value for p in params})
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        with self._planner_lock:  # the camera callback replaces the planner too
            self._config = self._navigator.config = cfg  # the next reads of a goal use it
            self._navigator.planner = replace(self._navigator.planner, config=cfg.arrival)
        return SetParametersResult(successful=True)

    def log_ready(self) -> None:
        """Log the one 'ready' line."""
        cfg = self._config
        self.get_logger().info(
            f'ready: {cfg.action_name} in frame {self._target!r} via {cfg.propose_service} and '
            f'{cfg.nav2_action}; arm within {cfg.arrival.tolerance_m * 1e3:g} mm / '
            f'{cfg.arrival.tolerance_deg:g} deg, up to {cfg.max_attempts} stances')

    def close(self, timeout_s: float = THREAD_STOP_S) -> bool:
        """Stop the base and the TF thread; return True if the thread stopped."""
        self.stop_base()
        return self._tf.close(timeout_s) if self._tf is not None else True

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; return False (at once) when the node is shutting down."""
        return not self._stop.wait(seconds)

    def stop_base(self) -> None:
        """Publish a zero twist (best effort)."""
        if self._pub_twist is not None:
            try:
                self._pub_twist.publish(Twist())
            except Exception:  # the context is already shut down
                pass

    def _apply_camera(self, camera) -> str:
        """Use live intrinsics in the arrival's visibility check; '' or why not."""
        try:
            visibility = Visibility(self._robot, camera)
        except (ReachabilityError, ValueError) as exc:
            return str(exc)
        with self._planner_lock:
            self._navigator.planner = replace(self._navigator.planner, visibility=visibility)
        return ''

    # ------------------------------------------------------------------ goals
    def _on_goal(self, goal_request: NavigateToPose.Goal) -> GoalResponse:
        if self._stop.is_set() or not self._busy.acquire(blocking=False):
            self.get_logger().warning('goal rejected: another goal is running (or shutting '
                                      'down); cancel it first')
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, goal_handle) -> NavigateToPose.Result:
        try:
            return self._run_goal(goal_handle)
        finally:
            self._busy.release()

    def _run_goal(self, goal_handle) -> NavigateToPose.Result:
        robot = _GoalRobot(self, goal_handle)
        navigator = self._navigator
        try:
            grasp, failure = self._grasp(goal_handle.request.pose)
            outcome = navigator.run(robot, grasp) if failure is None else failure
        except Exception as exc:  # a bug: the goal still ends, with the reason
            outcome = goal_failure(INTERNAL_ERROR, f'internal error: {type(exc).__name__}: '
                                   f'{exc}', navigator.landing)
        finally:
            if robot.moved:  # Nav2 or a correction drove the base: leave it stopped
                self.stop_base()
        report = outcome.report
        stamp = self.get_clock().now().to_msg()
        report['header'] = {'frame_id': self._target,
                            'stamp': {'sec': int(stamp.sec), 'nanosec': int(stamp.nanosec)}}
        report['behavior_tree'] = goal_handle.request.behavior_tree
        report['camera'] = camera_entry(self._camera_input, navigator.planner.visibility.camera)
        status = goal_status(outcome.code, goal_handle.is_cancel_requested)
        try:
            self._pub_report.publish(msgs.report_msg(report))
            if status == STATUS_SUCCEEDED:
                goal_handle.succeed()
            elif status == STATUS_CANCELED:
                goal_handle.canceled()
            else:
                goal_handle.abort()
        except Exception as exc:  # shutting down: the context may be gone
            self.get_logger().warning(f'cannot end the goal cleanly: {exc}')
        log = self.get_logger().info if outcome.code == 0 else self.get_logger().warning
        log(f'/navigate_to_grasp: {outcome.message} (error_code {outcome.code})')
        return NavigateToPose.Result(error_code=int(outcome.code), error_msg=outcome.message)

    def _grasp(self, msg: PoseStamped) -> tuple[Grasp | None, NavigationResult | None]:
        """Check the goal's grasp as received, then express it in the target frame."""
        raw = msgs.pose_input(msg)
        frame = normalize_frame_id(raw.frame_id)
        landing = self._navigator.landing
        if not frame:
            return None, goal_failure(INVALID_GOAL, 'goal.pose.header.frame_id is empty; set '
                                      f"it to the grasp's frame (e.g. '{self._target}')",
                                      landing)
        try:  # before any TF call: tf2 normalizes quaternions and chokes on NaN
            check_raw_goal(raw.position, raw.orientation, QUATERNION_TOLERANCE)
        except ReachabilityError as exc:
            return None, goal_failure(INVALID_GOAL, f'bad goal: {exc}', landing)
        if frame != self._target:
            try:
                raw = msgs.pose_input(self._transform(msg, frame))
            except Exception as exc:  # TransformException, or e.g. LinAlgError inside tf2
                return None, goal_failure(TF_MISSING, transform_failure_reason(
                    frame, self._target, self._config.tf_timeout_s, exc), landing)
        return Grasp(tuple(raw.position), tuple(raw.orientation), self._target), None

    def _transform(self, msg: PoseStamped, frame: str) -> PoseStamped:
        """Transform a pose into the target frame at its stamp (the latest if too old)."""
        return transform_pose(self._tf, msg, frame, self._target, self._config.tf_timeout_s,
                              self._stop.is_set)[0]

    # ------------------------------------------------------------------ for the navigator
    def base_pose(self) -> BasePose | None:
        """Return the base pose in the target frame from TF (latest), None when missing."""
        try:
            t = self._tf.lookup_latest(self._target, self._robot.config.base_frame,
                                       self._config.tf_timeout_s, self._stop.is_set)
        except tf2_ros.TransformException:
            return None
        p, r = t.transform.translation, t.transform.rotation
        return msgs.base_pose(PoseInput(self._target, (p.x, p.y, p.z), (r.x, r.y, r.z, r.w)))

    def navigate(self, stance: BasePose, goal_handle) -> NavOutcome:
        """Send one stance to Nav2 and wait for the end; relay feedback; honour cancel."""
        cfg, stop = self._config, self._stop.is_set
        if not poll_until(self._nav2.server_is_ready, cfg.server_timeout_s, stop, WAIT_STEP_S):
            return NavOutcome('shutdown' if stop() else 'unavailable', 0,
                              f'no Nav2 action server {cfg.nav2_action}')
        goal = NavigateToPose.Goal()
        goal.pose = msgs.plan_pose_stamped(PlanPose(stance.x, stance.y, stance.yaw),
                                           msgs.header_msg(self._target,
                                                           self.get_clock().now().to_msg()))
        goal.behavior_tree = goal_handle.request.behavior_tree
        sent = self._nav2.send_goal_async(
            goal, feedback_callback=lambda m: self._relay(goal_handle, m.feedback))
        if not wait_for(sent, cfg.server_timeout_s,
                        lambda: stop() or goal_handle.is_cancel_requested):
            sent.add_done_callback(_cancel_if_accepted)  # never leave Nav2 driving to it
            if stop() or goal_handle.is_cancel_requested:
                self.stop_base()
                return NavOutcome('shutdown' if stop() else 'canceled', 0,
                                  'the Nav2 goal was canceled before Nav2 accepted it')
            return NavOutcome('failed', 0, 'Nav2 did not answer the goal request')
        handle = sent.result()
        if not handle.accepted:
            return NavOutcome('failed', 0, 'Nav2 rejected the goal')
        result = handle.get_result_async()
        if not wait_for(result, cfg.navigation_timeout_s,
                        lambda: stop() or goal_handle.is_cancel_requested):
            why = 'shutdown' if stop() else (
                'canceled' if goal_handle.is_cancel_requested else 'timeout')
            handle.cancel_goal_async()
            wait_for(result, NAV2_SHUTDOWN_WAIT_S if why == 'shutdown' else NAV2_CANCEL_WAIT_S,
                     lambda: False)
            self.stop_base()
            return NavOutcome(why, 0, {
                'shutdown': 'the navigator is shutting down; the Nav2 goal was canceled',
                'canceled': 'canceled; the Nav2 goal was canceled and the base stopped',
                'timeout': f'Nav2 took longer than {cfg.navigation_timeout_s} s; canceled',
            }[why])
        response = result.result()
        code, text = int(response.result.error_code), str(response.result.error_msg)
        if response.status == STATUS_SUCCEEDED:
            return NavOutcome('succeeded', code, text)
        return NavOutcome('failed', code, text or f'Nav2 ended with status {response.status}')

    def _relay(self, goal_handle, feedback: NavigateToPose.Feedback) -> None:
        try:
            goal_handle.publish_feedback(feedback)
        except Exception:  # the goal has ended meanwhile
            pass

    def correction_feedback(self, goal_handle, base: BasePose, distance_m: float) -> None:
        """Publish the goal's feedback during a base correction."""
        feedback = NavigateToPose.Feedback()
        feedback.current_pose = msgs.plan_pose_stamped(
            PlanPose(base.x, base.y, base.yaw),
            msgs.header_msg(self._target, self.get_clock().now().to_msg()))
        feedback.distance_remaining = float(distance_m)
        self._relay(goal_handle, feedback)

    def send_twist(self, vx: float, vy: float, wz: float) -> None:
        """Publish a body-frame twist on the correction topic."""
        msg = Twist()
        msg.linear.x, msg.linear.y, msg.angular.z = float(vx), float(vy), float(wz)
        self._pub_twist.publish(msg)

    def command_arm(self, joint_names, positions) -> None:
        """Publish the arm command: one point, ``arm_time_from_start_s`` from now (stamp 0)."""
        msg = JointTrajectory()
        msg.joint_names = [str(n) for n in joint_names]
        point = JointTrajectoryPoint()
        point.positions = [float(v) for v in positions]
        point.time_from_start = Duration(seconds=self._config.arm_time_from_start_s).to_msg()
        msg.points = [point]
        self._pub_arm.publish(msg)


def _cancel_if_accepted(sent: Any) -> None:
    """Cancel a Nav2 goal that was accepted after the navigator stopped waiting for it."""
    try:
        handle = sent.result()
        if handle is not None and handle.accepted:
            handle.cancel_goal_async()
    except Exception:  # the node is shutting down
        pass


class _GoalRobot:
    """The :class:`.navigation.NavigatorRobot` of one goal: the node's operations, its handle."""

    def __init__(self, node: StanceNavigator, goal_handle) -> None:
        self._node, self._goal = node, goal_handle
        self.moved = False

    def base_pose(self) -> BasePose | None:
        return self._node.base_pose()

    def propose(self, grasp: Grasp, start: BasePose | None) -> ProposeAnswer:
        cfg = self._node._config
        return self._node._stances.propose(grasp, start, self._node._robot.joint_names,
                                           cfg.server_timeout_s, cfg.propose_timeout_s,
                                           self.cancel_requested)

    def navigate(self, stance: BasePose) -> NavOutcome:
        self.moved = True
        return self._node.navigate(stance, self._goal)

    def send_twist(self, vx: float, vy: float, wz: float) -> None:
        self.moved = True
        self._node.send_twist(vx, vy, wz)

    def command_arm(self, joint_names, positions) -> None:
        self._node.command_arm(joint_names, positions)

    def feedback(self, base: BasePose, distance_remaining_m: float) -> None:
        self._node.correction_feedback(self._goal, base, distance_remaining_m)

    def cancel_requested(self) -> bool:
        return bool(self._goal.is_cancel_requested)

    def sleep(self, seconds: float) -> bool:
        return self._node.pause(seconds)

    def now(self) -> float:
        return time.monotonic()


def main(args: list[str] | None = None) -> int:
    """Run the stance navigator until SIGINT or SIGTERM; return the process exit code.

    Exit codes: 0 after SIGINT or SIGTERM; 1 when it cannot start (a bad configuration,
    an unknown parameter, a broken description), logged as one FATAL line.
    """
    return run_node(NODE_NAME, lambda stop: StanceNavigator(stop=stop),
                    lambda: MultiThreadedExecutor(num_threads=EXECUTOR_THREADS), args,
                    stop_first=lambda node: node.stop_base())


if __name__ == '__main__':
    sys.exit(main())
