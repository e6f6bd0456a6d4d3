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
``tf_timeout_s`` (default 1.0 s; the wait ends early on shutdown). A stamp of
zero means "the latest transform". When the stamped lookup fails with
``ExtrapolationException`` (typically a goal stamped more than ~10 s ago, older
than the TF buffer), the transform is retried once with the latest transform
and the report's ``notes`` say so (``goal_tf_latest`` is then true). Any other
failure of the transform is a bad request: an empty plan, one WARN line and the
reason in the report. The TF listener has its own node and thread (:mod:`.tf_listener`);
it follows the server's remapping of ``/tf`` and ``/tf_static``.

Response: ``plan.header.frame_id = target_frame``; ``plan.poses`` are the ranked
``base_footprint`` poses (z = 0, yaw quaternion), best first, each ready for
Nav2's ``navigate_to_pose``; empty on failure. The response goes out as soon as
the core has ranked the stances.

Latched companion topics (depth 1, transient local, reliable), published just
AFTER the response, in request order, with the response's header (same stamp):
``/propose_stance/candidates`` (``trajectory_msgs/JointTrajectory``, one point
per pose, joints ``base_x, base_y, base_yaw`` + arm: the eight names are sent
with every answer, failures included), ``/propose_stance/markers``
(``visualization_msgs/MarkerArray``, the robot drawn at the best stance in
namespace ``robot``) and ``/propose_stance/report`` (``std_msgs/String``, JSON
with ``header`` and ``sequence`` to match it to its response).
Grasp sets (``PoseArray`` on ``/propose_stance/grasp_set``) and freedom: :mod:`.grasp_set_node`.

Camera: with the parameter ``camera_info_topic`` set, the intrinsics of the CameraInfo
received there replace ``robot.camera.*`` (:mod:`.camera_input`); the report's ``camera``
entry says which intrinsics each answer used and since when.

Threads: the main thread spins the node (service, parameters, subscriptions) in a
single-threaded executor; :class:`~.companions.CompanionPublisher` publishes the
companions; a third thread spins the TF node; a fourth builds each new map's distance
field. SIGINT or SIGTERM: exit within a second, code 0 (:mod:`.lifecycle`).

This module is a thin wrapper: every decision lives in :mod:`.conversions`,
:mod:`.parameters`, :mod:`.markers`, :mod:`.companions`, :mod:`.lifecycle` and
the core, which are tested without ROS. The world (the map on ``map_topic``, the boxes of
``obstacles_file`` and ``obstacles_topic``) comes in through :mod:`.world_subscriber`.
"""

from __future__ import annotations

from dataclasses import dataclass
import sys
import threading
from typing import Any, Iterator

from geometry_msgs.msg import PoseArray, PoseStamped
from nav_msgs.srv import GetPlan
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from reachability_ros.core.config import StanceConfig
from reachability_ros.core.errors import ConfigError, ReachabilityError
from reachability_ros.core.paths import resolve_data_path
from reachability_ros.core.pipeline import StanceProposer
from reachability_ros.core.report import frustum_segments
from std_msgs.msg import Header, String
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from . import messages as msgs
from .camera_input import camera_entry, follow_camera_info
from .companions import CompanionPublisher
from .conversions import (answer_request, build_report, check_raw_goal, check_raw_start,
                          failure_answer, latest_transform_note, normalize_frame_id,
                          plan_poses, pose_request, PoseInput, ReportContext, StanceAnswer,
                          tf_remap_arguments, trajectory_layout, transform_failure_reason)
from .grasp_set_node import GraspSetServer
from .lifecycle import ShutdownRequest
from .markers import marker_specs
from .node_main import run_node, THREAD_STOP_S
from .parameters import (config_from_parameters, FREEDOM_PARAMETERS, node_parameter_specs,
                         NODE_PARAMETERS, parameter_specs, ParameterSpec,
                         plain_parameter_value, resolve_config_paths, stance_config_file,
                         startup_message, unknown_parameters, unknown_parameters_message)
from .qos import latched_qos
from .tf_listener import TfListener, transform_pose
from .world_subscriber import world_parameter_specs, WorldInputs


NODE_NAME = 'stance_server'
SERVICE = '/propose_stance'
CANDIDATES_TOPIC = '/propose_stance/candidates'
MARKERS_TOPIC = '/propose_stance/markers'
REPORT_TOPIC = '/propose_stance/report'

#: Points copied into a marker message between two yields of the companion worker.
POINT_CHUNK = 64
#: The interpreter's thread switch interval in the server process (s; Python's default is
#: 0.005): a request that arrives while the companion worker builds messages waits at most
#: about this long for the interpreter.
SWITCH_INTERVAL_S = 0.0002


@dataclass
class CompanionJob:
    """One answer's companions to build: the answer, its header and report fields."""

    answer: StanceAnswer
    header: Header
    context: ReportContext
    robot: Any
    camera: dict | None = None


class StanceServer(GraspSetServer, Node):
    """ROS 2 node serving ranked whole-body stances. Call :meth:`start` after construction.

    Args:
        stop: the process's shutdown request (long waits end early when it is set).
        **kwargs: forwarded to ``rclpy.node.Node`` (e.g. ``parameter_overrides``).
    """

    def __init__(self, stop: ShutdownRequest | None = None, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._stop = stop if stop is not None else ShutdownRequest(raise_on_signal=False)
        self._lock = threading.Lock()  # guards the proposer, config, frame, timeout, sequence
        self._compute_lock = threading.Lock()  # held around StanceProposer.propose
        self._proposer: StanceProposer | None = None
        self._config: StanceConfig | None = None
        self._specs: list[ParameterSpec] = []
        self._target_frame = 'map'
        self._tf_timeout_s = 1.0
        self._sequence = 0
        self._tf: TfListener | None = None
        self._companions: CompanionPublisher | None = None
        self._world: WorldInputs | None = None

    # ------------------------------------------------------------------ start-up
    def start(self) -> None:
        """Declare parameters, load and check the model, create the service and topics.

        Raises:
            ReachabilityError: bad configuration (ConfigError, unknown parameters
                included), a model that does not match the robot (ModelMismatch), a
                broken description.
            rclpy.exceptions.InvalidParameterTypeException,
            rclpy.exceptions.InvalidParameterValueException: a parameter override
                of the wrong type or out of range.
        """
        for spec in node_parameter_specs() + world_parameter_specs():
            self.declare_parameter(spec.name, spec.default, msgs.descriptor_from_spec(spec))
        config_file = self.get_parameter('config_file').value
        self._target_frame = normalize_frame_id(self.get_parameter('target_frame').value)
        if not self._target_frame:
            raise ConfigError("parameter target_frame is empty; set it to e.g. 'map'")
        self._tf_timeout_s = float(self.get_parameter('tf_timeout_s').value)
        base = stance_config_file(config_file, NODE_NAME) if config_file else StanceConfig()
        self._specs = parameter_specs(defaults=base.to_flat())
        for spec in self._specs:
            value: Any = spec.default
            if isinstance(value, list) and not value:
                value = Parameter.Type(spec.type_id)  # an empty list has no inferable type
            self.declare_parameter(spec.name, value, msgs.descriptor_from_spec(spec))
        self._refuse_unknown_parameters()
        self._proposer = self._build_proposer(config_from_parameters(self._current_values()))
        self._config = self._proposer.config  # model path resolved

        self._tf = TfListener(f'{NODE_NAME}_tf', self.get_namespace(),
                              tf_remap_arguments(self.resolve_topic_name))
        self._world = WorldInputs(self, self._tf, self._proposer.scene.prepare,
                                  self._stop.is_set)
        qos = latched_qos()
        self._pub_candidates = self.create_publisher(JointTrajectory, CANDIDATES_TOPIC, qos)
        self._pub_markers = self.create_publisher(MarkerArray, MARKERS_TOPIC, qos)
        self._pub_report = self.create_publisher(String, REPORT_TOPIC, qos)
        self._companions = CompanionPublisher(self._companion_steps,
                                              on_error=self._companion_error)
        self._service = self.create_service(GetPlan, SERVICE, self._on_request)
        self._start_grasp_sets()
        # registered last: rclpy also calls it for every declare_parameter
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._camera_input = follow_camera_info(self, lambda: self._config.robot.camera)

    def log_ready(self) -> None:
        """Log the one 'ready' line (service, frame, sampler and model)."""
        config = self._config
        self.get_logger().info(
            f"ready: {SERVICE} in frame '{self._target_frame}', sampler "
            f'{self._proposer.sampler_name}, model {config.proposal.model_path or "none"}, '
            f'{config.proposal.n_samples} samples, top {config.proposal.top_k}')

    def close(self, timeout_s: float = THREAD_STOP_S) -> bool:
        """Publish the queued companions, stop the TF thread; return True if both stopped."""
        ok = True
        if self._companions is not None:
            ok = self._companions.close(timeout_s) and ok
        if self._tf is not None:
            ok = self._tf.close(timeout_s) and ok
        ok = (self._world is None or self._world.close(timeout_s)) and ok
        return ok

    def _refuse_unknown_parameters(self) -> None:
        """Raise ConfigError for parameters set on the node that it does not declare."""
        given = list(getattr(self, '_parameter_overrides', None) or {})
        declared = [s.name for s in self._specs] + list(NODE_PARAMETERS + FREEDOM_PARAMETERS)
        declared += [n for n in given if self.has_parameter(n)]
        unknown = unknown_parameters(given, declared)
        if unknown:
            raise ConfigError(unknown_parameters_message(NODE_NAME, unknown, declared))

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
        """Resolve the model path (working directory, then package share), then load."""
        return StanceProposer(resolve_config_paths(config, resolve_data_path))

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Validate parameter changes; a config change rebuilds the proposer (or is refused)."""
        try:
            values = self._current_values()
            config_changed = False
            target_frame, tf_timeout = self._target_frame, self._tf_timeout_s
            for p in params:
                if p.name == 'target_frame':
                    target_frame = normalize_frame_id(str(p.value))
                    if not target_frame:
                        return SetParametersResult(successful=False,
                                                   reason='target_frame must not be empty')
                elif p.name == 'tf_timeout_s':
                    tf_timeout = float(p.value)
                elif p.name in values:
                    values[p.name] = plain_parameter_value(p.value)
                    config_changed = True
            proposer = None
            if config_changed:
                proposer = self._build_proposer(config_from_parameters(values))
            with self._lock:
                self._freedom = self._freedom_after(params)  # first: it may refuse
                self._target_frame, self._tf_timeout_s = target_frame, tf_timeout
                if proposer is not None:
                    self._proposer, self._config = proposer, proposer.config
            if proposer is not None:
                self._world.set_prepare(proposer.scene.prepare)  # the map's field depends on it
                self.get_logger().info(f'configuration updated; sampler {proposer.sampler_name}')
            return SetParametersResult(successful=True)
        except Exception as exc:  # refuse the change, keep serving with the old config
            return SetParametersResult(successful=False, reason=startup_message(exc))

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
        out, fallback = msg, None
        if frame != target:
            out, fallback = transform_pose(self._tf, msg, frame, target, timeout_s,
                                           self._stop.is_set)
        if fallback is not None:
            notes.append(latest_transform_note(what, frame, target, *msgs.stamp_of(msg.header),
                                               fallback))
        pose = msgs.pose_input(out)
        pose.frame_id = target
        return pose, fallback is not None

    def _on_request(self, request: GetPlan.Request, response: GetPlan.Response
                    ) -> GetPlan.Response:
        """Answer one request; no exception ever leaves this callback."""
        with self._companions.answering():
            return self._respond(request, response)

    def _respond(self, request: GetPlan.Request, response: GetPlan.Response
                 ) -> GetPlan.Response:
        with self._lock:  # one consistent snapshot for the whole request
            target, timeout_s = self._target_frame, self._tf_timeout_s
            proposer, config, freedom = self._proposer, self._config, self._freedom
            self._sequence += 1
            sequence = self._sequence
        header = msgs.header_msg(target, self.get_clock().now().to_msg())
        response.plan.header = header
        names = list(proposer.robot.joint_names)
        try:
            answer = self._answer(request, target, timeout_s, proposer, config, freedom)
        except Exception as exc:  # a bug, not a bad request: still answer
            answer = failure_answer(f'internal error: {type(exc).__name__}: {exc}', names,
                                    sampler=proposer.sampler_name)
        if not answer.joint_names:
            answer.joint_names = names
        try:
            response.plan.poses = [msgs.plan_pose_stamped(p, header)
                                   for p in plan_poses(answer.result)]
        except Exception as exc:
            response.plan.poses = []
            answer = failure_answer(f'internal error: {type(exc).__name__}: {exc}', names,
                                    answer.request, proposer.sampler_name, answer.notes)
        context = ReportContext(target, msgs.stamp_of(header), request.goal.header.frame_id,
                                float(request.tolerance), sequence)
        camera = camera_entry(self._camera_input, config.robot.camera)
        self._companions.submit(CompanionJob(answer, header, context, proposer.robot, camera))
        return response

    def _answer(self, request: GetPlan.Request, target: str, timeout_s: float,
                proposer: StanceProposer, config: StanceConfig, freedom: Any
                ) -> StanceAnswer:
        """Check the raw request, transform it into ``target`` and run the core."""
        names = list(proposer.robot.joint_names)
        sampler = proposer.sampler_name
        raw = msgs.pose_input(request.goal)
        raw_request = pose_request(raw)
        goal_frame = normalize_frame_id(raw.frame_id)
        if not goal_frame:
            reason = ('bad request: goal.header.frame_id is empty; set it to the frame of the '
                      f"grasp pose (e.g. '{target}')")
            return failure_answer(reason, names, raw_request, sampler)
        try:  # before any TF call: tf2 normalizes quaternions and chokes on NaN
            check_raw_goal(raw.position, raw.orientation, config.proposal.quaternion_tolerance)
            start_raw = msgs.pose_input(request.start)
            check_raw_start(start_raw.frame_id, start_raw.position, start_raw.orientation)
        except ReachabilityError as exc:
            return failure_answer(f'bad request: {exc}', names, raw_request, sampler)
        notes: list[str] = []
        try:
            goal, latest = self._transform_to_target(request.goal, target, timeout_s, 'goal',
                                                     notes)
        except Exception as exc:  # TransformException, or e.g. LinAlgError inside tf2
            reason = transform_failure_reason(goal_frame, target, timeout_s, exc)
            return failure_answer(reason, names, raw_request, sampler, notes)
        start = start_request = None
        if normalize_frame_id(request.start.header.frame_id):
            try:
                start_pose, _ = self._transform_to_target(request.start, target, timeout_s,
                                                          'start', notes)
                start, start_request = msgs.base_pose(start_pose), pose_request(start_pose)
            except Exception as exc:
                notes.append(' '.join(
                    f'start pose ignored (no travel term): cannot transform it from '
                    f"'{request.start.header.frame_id}' to '{target}': "
                    f'{type(exc).__name__}: {exc}'.split()))
        world = self._world.for_request(target, timeout_s)
        if world.failure:
            return failure_answer(world.failure, names, pose_request(goal), sampler, notes)
        rng = np.random.default_rng(config.proposal.seed)
        answer = answer_request(proposer, goal, start, rng, self._compute_lock,
                                freedom.symmetric, freedom.free_roll, world=world.world)
        answer.notes = notes + list(world.notes) + answer.notes
        answer.goal_tf_latest = latest
        answer.start_request = start_request
        return answer

    def _on_grasp_set(self, msg: PoseArray) -> None:
        """Answer a grasp set on the companion topics (:mod:`.grasp_set_node`)."""
        with self._companions.answering():
            self._companions.submit(CompanionJob(*self._grasp_set_answer(msg)))

    # ------------------------------------------------------------------ companions
    def _companion_steps(self, job: CompanionJob) -> Iterator[None]:
        """Build and publish one answer's companions; each ``yield`` lets a request go first."""
        answer, header = job.answer, job.header
        names, rows = trajectory_layout(answer)
        trajectory = msgs.trajectory_msg(names, rows, header)
        yield
        frustum, robot = None, None
        if answer.ok and answer.result is not None:
            best_q = np.asarray(answer.result.candidates[0].q, dtype=float)
            with self._compute_lock:  # the robot's FK is shared with the pipeline
                frustum = frustum_segments(job.robot, best_q)
            robot = job.robot
        specs = marker_specs(answer.result, frustum=frustum, robot=robot,
                             footprint=answer.footprint, boxes=answer.world_boxes)
        yield
        markers = MarkerArray()
        for spec in specs:
            points = spec['points']
            marker = msgs.marker_msg(dict(spec, points=[]), header)
            copied = []
            for i in range(0, len(points), POINT_CHUNK):
                copied += msgs.point_msgs(points[i:i + POINT_CHUNK])
                yield
            marker.points = copied
            markers.markers.append(marker)
        report = build_report(answer, job.context)
        report['camera'] = job.camera  # the intrinsics the visibility check used, since when
        report = msgs.report_msg(report)
        yield
        self._pub_candidates.publish(trajectory)
        self._pub_markers.publish(markers)
        self._pub_report.publish(report)
        if answer.ok:
            best = answer.result.candidates[0]
            self.get_logger().info(
                f'{len(answer.result.candidates)} stances for the grasp in '
                f"'{job.context.target_frame}' (best score {float(best.score):.3f})")
        elif answer.reason.startswith('internal error'):
            self.get_logger().error(answer.reason)
        else:
            self.get_logger().warning(f'no stance: {answer.reason}')

    def _companion_error(self, exc: BaseException) -> None:
        self.get_logger().error(
            ' '.join(f'cannot publish the companion topics: {type(exc).__name__}: {exc}'.split()))


def main(args: list[str] | None = None) -> int:
    """Run the stance server until SIGINT or SIGTERM; return the process exit code.

    Exit codes: 0 after SIGINT or SIGTERM; 1 when it cannot start (a bad
    configuration, an unknown parameter, a model that does not match the robot),
    logged as one FATAL line, without a traceback.
    """
    return run_node(NODE_NAME, lambda stop: StanceServer(stop=stop), SingleThreadedExecutor,
                    args, before_spin=lambda: sys.setswitchinterval(SWITCH_INTERVAL_S))


if __name__ == '__main__':
    raise SystemExit(main())
