"""The ``stance_server`` node: ``/propose_stance`` (``nav_msgs/srv/GetPlan``) and its topics.

Request (``GetPlan``):

- ``goal``: the grasp, the desired pose of the tool frame (``gripper_frame_link``)
  in any frame known to TF; transformed into ``target_frame`` (no TF needed when
  it already is in it). It is validated AS RECEIVED, before any TF call (finite
  values, a unit quaternion within ``proposal.quaternion_tolerance``), because
  tf2 would silently normalize a bad quaternion; the height is checked by the
  core in ``target_frame``;
- ``start``: the current base pose (optional: an empty ``frame_id`` means unknown);
  it feeds the travel and turn terms of the ranking;
- ``tolerance``: unused (reported back in the JSON report).

TF: the goal (and start) are transformed at their ``header.stamp``, waiting up to
``tf_timeout_s`` (default 1.0 s). A stamp of zero means "the latest transform".
When the stamped lookup fails with ``ExtrapolationException`` (typically a goal
stamped more than ~10 s ago, older than the TF buffer), the transform is retried
once with the latest transform (stamp zero) and the report's ``notes`` say so
(``goal_tf_latest`` is then true). Any other failure of the transform, including
a non-TF exception raised inside tf2, is a bad request: an empty plan, one WARN
line and the reason in the report.

Shutdown: SIGINT while a request waits for TF ends the process after that wait
(at most ``tf_timeout_s``, the wait is not interrupted); keep ``tf_timeout_s``
small (the default 1.0 s) for a prompt shutdown.

Response: ``plan.header.frame_id = target_frame``; ``plan.poses`` are the ranked
``base_footprint`` poses (z = 0, yaw quaternion), best first, each ready for
Nav2's ``navigate_to_pose``; empty on failure.

Latched companion topics (depth 1, transient local, reliable), stamped with the
response's header: ``/propose_stance/candidates`` (``trajectory_msgs/JointTrajectory``,
one point per pose, joints ``base_x, base_y, base_yaw`` + arm: the eight names are sent
with every answer, failures included), ``/propose_stance/markers``
(``visualization_msgs/MarkerArray``) and ``/propose_stance/report`` (``std_msgs/String``, JSON).

Concurrency: requests run on a multi-threaded executor. One lock is held only
while the proposer computes; another only while one answer's three messages are
published, so a request's publishing never waits for another's computation.

This module is a thin wrapper: every decision lives in :mod:`.conversions`,
:mod:`.markers` and the core, which are tested without ROS.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import Point, PoseStamped
from nav_msgs.srv import GetPlan
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from std_msgs.msg import ColorRGBA, String
import tf2_geometry_msgs  # noqa: F401  (registers PoseStamped with Buffer.transform)
import tf2_ros
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from reachability_ros import config_io
from reachability_ros.core.config import StanceConfig
from reachability_ros.core.errors import ConfigError, ReachabilityError
from reachability_ros.core.pipeline import StanceProposer

from .conversions import (NODE_PARAMETERS, ParameterSpec, PoseInput, StanceResponse,
                          check_raw_goal, check_raw_start, config_from_parameters,
                          failure_response, json_safe, latest_transform_note,
                          node_parameter_specs, normalize_frame_id, parameter_specs,
                          plain_parameter_value, propose_response, resolve_config_paths,
                          retry_with_latest, transform_failure_reason)
from .markers import marker_specs

NODE_NAME = "stance_server"
SERVICE = "/propose_stance"
CANDIDATES_TOPIC = "/propose_stance/candidates"
MARKERS_TOPIC = "/propose_stance/markers"
REPORT_TOPIC = "/propose_stance/report"


def latched_qos() -> QoSProfile:
    """Depth 1, transient local, reliable: late subscribers get the last message."""
    return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL,
                      reliability=ReliabilityPolicy.RELIABLE)


def descriptor_from_spec(spec: ParameterSpec) -> ParameterDescriptor:
    """Build the ``ParameterDescriptor`` of a plain :class:`ParameterSpec`."""
    d = ParameterDescriptor(description=spec.description, type=spec.type_id,
                            read_only=spec.read_only)
    if spec.range is not None and spec.type == "double":
        d.floating_point_range = [FloatingPointRange(
            from_value=float(spec.range[0]), to_value=float(spec.range[1]), step=0.0)]
    elif spec.range is not None and spec.type == "integer":
        d.integer_range = [IntegerRange(
            from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=0)]
    if spec.name not in NODE_PARAMETERS:
        d.additional_constraints = "validated by reachability_ros.core.config.StanceConfig"
    return d


def _pose_input(msg: PoseStamped) -> PoseInput:
    p, o = msg.pose.position, msg.pose.orientation
    return PoseInput(msg.header.frame_id, (p.x, p.y, p.z), (o.x, o.y, o.z, o.w))


def _startup_message(exc: BaseException) -> str:
    """One line for a start-up failure, with a hint for the usual cause of a type error."""
    text = f"{type(exc).__name__}: {exc}"
    if "of type 'INTEGER', expecting type 'DOUBLE'" in text:
        text += " (write a double with a decimal point: 70.0, not 70)"
    return " ".join(text.split())


class StanceServer(Node):
    """ROS 2 node serving ranked whole-body stances. Call :meth:`start` after construction.

    Args:
        **kwargs: forwarded to ``rclpy.node.Node`` (e.g. ``parameter_overrides``).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._lock = threading.Lock()  # guards the proposer, config, frame and timeout fields
        self._compute_lock = threading.Lock()  # held around StanceProposer.propose
        self._publish_lock = threading.Lock()  # one request's three messages go out together
        self._proposer: StanceProposer | None = None
        self._config: StanceConfig | None = None
        self._specs: list[ParameterSpec] = []
        self._target_frame = "map"
        self._tf_timeout_s = 1.0
        self._tf_buffer: tf2_ros.Buffer | None = None
        self._tf_listener: tf2_ros.TransformListener | None = None

    # ------------------------------------------------------------------ start-up
    def start(self) -> None:
        """Declare parameters, load and check the model, create the service and topics.

        Raises:
            ReachabilityError: bad configuration (ConfigError), a model that does
                not match the robot (ModelMismatch), a broken description.
            rclpy.exceptions.InvalidParameterTypeException,
            rclpy.exceptions.InvalidParameterValueException: a parameter override
                of the wrong type or out of range.
        """
        for spec in node_parameter_specs():
            self.declare_parameter(spec.name, spec.default, descriptor_from_spec(spec))
        config_file = self.get_parameter("config_file").value
        self._target_frame = normalize_frame_id(self.get_parameter("target_frame").value)
        if not self._target_frame:
            raise ConfigError("parameter target_frame is empty; set it to e.g. 'map'")
        self._tf_timeout_s = float(self.get_parameter("tf_timeout_s").value)
        base = self._load_config_file(config_file) if config_file else StanceConfig()
        self._specs = parameter_specs(defaults=base.to_flat())
        for spec in self._specs:
            value: Any = spec.default
            if isinstance(value, list) and not value:
                value = Parameter.Type(spec.type_id)  # an empty list has no inferable type
            self.declare_parameter(spec.name, value, descriptor_from_spec(spec))
        self._proposer = self._build_proposer(config_from_parameters(self._current_values()))
        self._config = self._proposer.config  # model path resolved

        self._tf_buffer = tf2_ros.Buffer()
        self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        qos = latched_qos()
        self._pub_candidates = self.create_publisher(JointTrajectory, CANDIDATES_TOPIC, qos)
        self._pub_markers = self.create_publisher(MarkerArray, MARKERS_TOPIC, qos)
        self._pub_report = self.create_publisher(String, REPORT_TOPIC, qos)
        self._service = self.create_service(GetPlan, SERVICE, self._on_request,
                                            callback_group=ReentrantCallbackGroup())
        # registered last: rclpy also calls it for every declare_parameter
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def log_ready(self) -> None:
        """Log the one 'ready' line (service, frame, sampler and model)."""
        config = self._config
        self.get_logger().info(
            f"ready: {SERVICE} in frame '{self._target_frame}', sampler "
            f"{self._proposer.sampler_name}, model {config.proposal.model_path or 'none'}, "
            f"{config.proposal.n_samples} samples, top {config.proposal.top_k}")

    def _load_config_file(self, path: str) -> StanceConfig:
        """Read the ``config_file`` parameter's YAML (node-level keys are skipped)."""
        params = config_io.parameters_section(config_io.load_yaml(path), NODE_NAME)
        params = {k: v for k, v in params.items() if k not in NODE_PARAMETERS}
        return StanceConfig.from_dict(params)

    def _current_values(self) -> dict:
        values = {}
        for spec in self._specs:
            try:
                values[spec.name] = plain_parameter_value(self.get_parameter(spec.name).value)
            except Exception:  # an uninitialized, statically typed (empty list) parameter
                values[spec.name] = []
            if values[spec.name] is None:
                values[spec.name] = []
        return values

    @staticmethod
    def _build_proposer(config: StanceConfig) -> StanceProposer:
        """Resolve the model path against the package share, then load robot and sampler."""
        config = resolve_config_paths(config, config_io.resolve_data_path)
        return StanceProposer(config)

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Validate parameter changes; a config change rebuilds the proposer (or is refused)."""
        try:
            values = self._current_values()
            config_changed = False
            target_frame, tf_timeout = self._target_frame, self._tf_timeout_s
            for p in params:
                if p.name == "target_frame":
                    target_frame = normalize_frame_id(str(p.value))
                    if not target_frame:
                        return SetParametersResult(successful=False,
                                                   reason="target_frame must not be empty")
                elif p.name == "tf_timeout_s":
                    tf_timeout = float(p.value)
                elif p.name in values:
                    values[p.name] = plain_parameter_value(p.value)
                    config_changed = True
            proposer = None
            if config_changed:
                proposer = self._build_proposer(config_from_parameters(values))
            with self._lock:
                self._target_frame, self._tf_timeout_s = target_frame, tf_timeout
                if proposer is not None:
                    self._proposer, self._config = proposer, proposer.config
            if proposer is not None:
                self.get_logger().info(f"configuration updated; sampler {proposer.sampler_name}")
            return SetParametersResult(successful=True)
        except Exception as exc:  # refuse the change, keep serving with the old config
            return SetParametersResult(successful=False, reason=_startup_message(exc))

    # ------------------------------------------------------------------ service
    def _transform_to_target(self, msg: PoseStamped, target: str, timeout_s: float,
                             what: str, notes: list[str]) -> tuple[PoseInput, bool]:
        """Express a stamped pose in ``target`` (tf2; no lookup when already there).

        Returns:
            ``(pose, latest)``: ``latest`` is True when the stamped lookup failed
            with an extrapolation error and the latest transform was used (a note
            is appended to ``notes``).

        Raises:
            Exception: whatever tf2 raises (``tf2_ros.TransformException`` and others).
        """
        frame = normalize_frame_id(msg.header.frame_id)
        if frame == target:
            pose = _pose_input(msg)
            pose.frame_id = target
            return pose, False
        stamped = PoseStamped()
        stamped.header.stamp = msg.header.stamp
        stamped.header.frame_id = frame
        stamped.pose = msg.pose
        timeout = Duration(seconds=timeout_s)
        latest = False
        try:
            out = self._tf_buffer.transform(stamped, target, timeout=timeout)
        except tf2_ros.ExtrapolationException as exc:
            sec, nanosec = msg.header.stamp.sec, msg.header.stamp.nanosec
            if not retry_with_latest(True, sec, nanosec):
                raise
            stamped.header.stamp = Time().to_msg()  # zero: the latest transform
            out = self._tf_buffer.transform(stamped, target, timeout=timeout)
            notes.append(latest_transform_note(what, frame, target, sec, nanosec, exc))
            latest = True
        pose = _pose_input(out)
        pose.frame_id = target
        return pose, latest

    def _on_request(self, request: GetPlan.Request, response: GetPlan.Response
                    ) -> GetPlan.Response:
        """Answer one request; no exception ever leaves this callback."""
        with self._lock:  # one consistent snapshot for the whole request
            target, timeout_s = self._target_frame, self._tf_timeout_s
            proposer, config = self._proposer, self._config
        names = list(proposer.robot.joint_names)
        stamp = self.get_clock().now().to_msg()
        response.plan.header.frame_id = target
        response.plan.header.stamp = stamp
        notes: list[str] = []
        try:
            answer = self._answer(request, target, timeout_s, proposer, config, notes)
        except Exception as exc:  # a bug, not a bad request: still answer
            reason = " ".join(f"internal error: {type(exc).__name__}: {exc}".split())
            self.get_logger().error(reason)
            answer = failure_response(reason, names, sampler=proposer.sampler_name)
        if not answer.joint_names:
            answer.joint_names = names
        try:
            for pose in answer.poses:
                ps = PoseStamped()
                ps.header.frame_id = target
                ps.header.stamp = stamp
                ps.pose.position.x, ps.pose.position.y, ps.pose.position.z = pose.position
                o = ps.pose.orientation
                o.x, o.y, o.z, o.w = pose.orientation
                response.plan.poses.append(ps)
            report = dict(answer.report)
            report["header"] = {"frame_id": target,
                                "stamp": {"sec": stamp.sec, "nanosec": stamp.nanosec}}
            report["target_frame"] = target
            report["goal_frame"] = request.goal.header.frame_id
            report["tolerance"] = float(request.tolerance)  # unused (documented)
            report["notes"] = notes
            self._publish(answer, report, response.plan.header)
            if answer.ok:
                self.get_logger().info(
                    f"{len(answer.poses)} stances for the grasp in '{target}' "
                    f"(best score {answer.report['candidates'][0]['score']:.3f})")
            else:
                self.get_logger().warning(f"no stance: {answer.reason}")
        except Exception as exc:
            response.plan.poses = []
            self.get_logger().error(f"cannot answer: {type(exc).__name__}: {exc}")
        return response

    def _answer(self, request: GetPlan.Request, target: str, timeout_s: float,
                proposer: StanceProposer, config: StanceConfig, notes: list[str]
                ) -> StanceResponse:
        """Check the raw request, transform it into ``target`` and run the core."""
        names = list(proposer.robot.joint_names)
        sampler = proposer.sampler_name
        raw = _pose_input(request.goal)
        raw_request = {"frame_id": raw.frame_id, "position": list(raw.position),
                       "orientation": list(raw.orientation)}
        goal_frame = normalize_frame_id(raw.frame_id)
        if not goal_frame:
            reason = ("bad request: goal.header.frame_id is empty; set it to the frame of the "
                      f"grasp pose (e.g. '{target}')")
            return failure_response(reason, names, raw_request, sampler)
        try:  # before any TF call: tf2 normalizes quaternions and chokes on NaN
            check_raw_goal(raw.position, raw.orientation, config.proposal.quaternion_tolerance)
            start_raw = _pose_input(request.start)
            check_raw_start(start_raw.frame_id, start_raw.position, start_raw.orientation)
        except ReachabilityError as exc:
            return failure_response(f"bad request: {exc}", names, raw_request, sampler)
        try:
            goal, latest = self._transform_to_target(request.goal, target, timeout_s, "goal",
                                                     notes)
        except Exception as exc:  # TransformException, or e.g. LinAlgError inside tf2
            reason = transform_failure_reason(goal_frame, target, timeout_s, exc)
            return failure_response(reason, names, raw_request, sampler)
        start = None
        if normalize_frame_id(request.start.header.frame_id):
            try:
                start, _ = self._transform_to_target(request.start, target, timeout_s, "start",
                                                     notes)
            except Exception as exc:
                notes.append(f"start pose ignored (no travel term): cannot transform it from "
                             f"'{request.start.header.frame_id}' to '{target}': "
                             f"{type(exc).__name__}: {exc}")
        rng = np.random.default_rng(config.proposal.seed)
        answer = propose_response(proposer, goal, start, rng, lock=self._compute_lock)
        answer.report["goal_tf_latest"] = latest
        answer.report["start"] = None if start is None else {
            "position": list(start.position), "orientation": list(start.orientation),
            "frame_id": start.frame_id}
        return answer

    def _publish(self, answer: StanceResponse, report: dict, header: Any) -> None:
        """Publish the latched candidates, markers and report of one answer."""
        traj = JointTrajectory()
        traj.header = header
        traj.joint_names = list(answer.joint_names)
        for q in answer.positions:
            pt = JointTrajectoryPoint()
            pt.positions = [float(v) for v in q]
            traj.points.append(pt)
        markers = MarkerArray()
        specs = marker_specs(answer.result, frustum=answer.frustum)
        for spec in specs:
            markers.markers.append(_marker_msg(spec, header))
        text = String()
        text.data = json.dumps(json_safe(report), allow_nan=False)
        with self._publish_lock:  # one request's three messages go out together
            self._pub_candidates.publish(traj)
            self._pub_markers.publish(markers)
            self._pub_report.publish(text)


def _marker_msg(spec: dict, header: Any) -> Marker:
    """Copy a plain marker spec (:mod:`.markers`) into a ``visualization_msgs/Marker``."""
    m = Marker()
    m.header = header
    m.ns = spec["ns"]
    m.id = int(spec["id"])
    m.type = int(spec["type"])
    m.action = int(spec["action"])
    m.pose.position.x, m.pose.position.y, m.pose.position.z = spec["position"]
    o = m.pose.orientation
    o.x, o.y, o.z, o.w = spec["orientation"]
    m.scale.x, m.scale.y, m.scale.z = spec["scale"]
    m.color = ColorRGBA(r=float(spec["color"][0]), g=float(spec["color"][1]),
                        b=float(spec["color"][2]), a=float(spec["color"][3]))
    m.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in spec["points"]]
    m.colors = [ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(a))
                for r, g, b, a in spec["colors"]]
    m.text = spec["text"]
    return m


def main(args: list[str] | None = None) -> int:
    """Run the stance server until SIGINT; return the process exit code.

    A start-up failure (bad configuration, a model that does not match the robot)
    is logged as one FATAL line and gives exit code 1, without a traceback.
    """
    rclpy.init(args=args)
    node = None
    executor = None
    try:
        executor = MultiThreadedExecutor(num_threads=4)
        node = StanceServer()
        try:
            node.start()
        except Exception as exc:
            node.get_logger().fatal(f"cannot start: {_startup_message(exc)}")
            return 1
        executor.add_node(node)
        node.log_ready()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
