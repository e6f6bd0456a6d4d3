"""Plain-value request handling of the stance server: checks, answers, reports.

Nothing here imports rclpy or a message package: the stance server reads the
fields of its messages into tuples and floats once, at the boundary
(:mod:`.messages`), calls the functions below, and copies their plain results
back into messages. This keeps every decision of the ROS layer testable without ROS.

A request is answered in two steps. :func:`answer_request` runs the core and
returns a :class:`StanceAnswer`; the service response needs only its
:func:`plan_poses`. Everything else (:func:`build_report`,
:func:`trajectory_layout`, the markers) is built afterwards from the same
answer, off the response path.

Frames and units: metres, radians, quaternions ordered (x, y, z, w) as in
``geometry_msgs/Quaternion``. A whole-body configuration ``q`` is
``(base_x, base_y, base_yaw, arm joints...)`` (see :mod:`reachability_ros.core.types`).
"""

from __future__ import annotations

import array
import contextlib
from dataclasses import dataclass, field
import math
import threading
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from reachability_ros.core.errors import InvalidRequest, ReachabilityError
from reachability_ros.core.types import BasePose, Grasp, ProposalResult

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


# ---------------------------------------------------------------- poses and frames
def normalize_frame_id(frame_id: str) -> str:
    """Strip the leading slash that tf2 rejects (``'/map'`` -> ``'map'``) and blanks.

    Raises:
        InvalidRequest: ``frame_id`` is not a string.
    """
    if not isinstance(frame_id, str):
        raise InvalidRequest(f'frame_id must be a string, got {frame_id!r}')
    return frame_id.strip().lstrip('/')


@dataclass
class PoseInput:
    """The fields of a ``geometry_msgs/PoseStamped`` as plain values."""

    frame_id: str
    position: Vec3
    orientation: Quat


@dataclass(frozen=True)
class PlanPose:
    """One pose of the response ``nav_msgs/Path``: ``base_footprint`` on the floor (z = 0)."""

    x: float
    y: float
    yaw: float


def plan_poses(result: ProposalResult | None) -> list[PlanPose]:
    """Return the ranked base poses of a result, best first.

    Args:
        result: the core result (None: no poses).

    Returns:
        One :class:`PlanPose` per candidate, with plain floats.
    """
    if result is None:
        return []
    out = []
    for c in result.candidates:
        x, y, yaw = (float(v) for v in np.asarray(c.q, dtype=float)[:3])
        out.append(PlanPose(x, y, yaw))
    return out


def _numbers(values: Sequence[Any], what: str) -> list[float]:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f'{what} must be numbers: {exc}') from None


def check_raw_goal(position: Sequence[float], orientation: Sequence[float],
                   quaternion_tolerance: float) -> None:
    """Validate a goal pose as received, BEFORE any TF call.

    tf2's ``do_transform_pose`` (Jazzy) turns a zero quaternion into the identity,
    normalizes any other one and raises ``numpy.linalg.LinAlgError`` on NaN, so the
    goal must be checked in its own frame. Same rules and wording as
    ``core.requests.validate_grasp`` except the height check, which only makes
    sense in the target frame (the core does it after the transform).

    Args:
        position: ``(3,)`` x, y, z (m).
        orientation: ``(4,)`` quaternion (x, y, z, w).
        quaternion_tolerance: accepted ``| |q| - 1 |`` (``proposal.quaternion_tolerance``).

    Raises:
        InvalidRequest: wrongly sized or non-finite values, or a quaternion whose
            norm is off by more than ``quaternion_tolerance`` (a zero one included).
    """
    p = _numbers(position, 'goal position/orientation')
    q = _numbers(orientation, 'goal position/orientation')
    if len(p) != 3 or len(q) != 4:
        raise InvalidRequest(f'a goal needs 3 position and 4 quaternion values, got {p}, {q}')
    if not all(math.isfinite(v) for v in p):
        raise InvalidRequest(f'goal position has non-finite values: {p}')
    if not all(math.isfinite(v) for v in q):
        raise InvalidRequest(f'goal orientation has non-finite values: {q}')
    norm = math.sqrt(sum(v * v for v in q))
    if abs(norm - 1.0) > float(quaternion_tolerance):
        raise InvalidRequest(
            f'goal orientation must be a unit quaternion (x, y, z, w); its norm is {norm:.6g} '
            f'(tolerance {quaternion_tolerance}). Normalize it (a zero quaternion has no '
            'orientation)')


def check_raw_start(frame_id: str, position: Sequence[float],
                    orientation: Sequence[float]) -> None:
    """Validate the optional start pose (the current base) as received, BEFORE any TF call.

    An empty ``frame_id`` (unknown start) is always accepted. Otherwise x and y
    must be finite (z is unused) and the quaternion finite and non-zero; its norm
    does not matter, only its heading is used.

    Raises:
        InvalidRequest: non-finite values or a zero quaternion.
    """
    if not normalize_frame_id(frame_id):
        return
    p = _numbers(position, 'start position/orientation')
    q = _numbers(orientation, 'start position/orientation')
    if len(p) != 3 or len(q) != 4:
        raise InvalidRequest(f'a start needs 3 position and 4 quaternion values, got {p}, {q}')
    if not (math.isfinite(p[0]) and math.isfinite(p[1])):
        raise InvalidRequest(f'start position has non-finite values: {p[:2]}')
    if not all(math.isfinite(v) for v in q):
        raise InvalidRequest(f'start quaternion has non-finite values: {q}')
    if sum(v * v for v in q) < 1e-12:
        raise InvalidRequest('start quaternion (0, 0, 0, 0) has no orientation; send a unit '
                             'quaternion (w = 1 for no rotation)')


# ---------------------------------------------------------------- TF decisions
#: The topics ``tf2_ros.TransformListener`` subscribes to (absolute names in tf2_ros_py).
TF_TOPICS = ('/tf', '/tf_static')


def tf_remap_arguments(resolve_topic_name: Callable[[str], str]) -> list[str]:
    """Return the node arguments that give the TF node the server's ``/tf`` and ``/tf_static``.

    The TF listener's node takes no global ROS arguments (:mod:`.tf_listener`),
    so a remapping of the TF topics given to the server (``-r /tf:=tf`` in a
    namespace, ``-r /tf:=/robot1/tf``) must be passed on explicitly, as that
    node's ``cli_args``. rclpy hands ``cli_args`` to ``rcl_parse_arguments``
    as they are, which reads rules only after ``--ros-args``, so the flag is
    included (as in rclpy's own tests: ``cli_args=['--ros-args', '-r', ...]``).

    Args:
        resolve_topic_name: the server's ``Node.resolve_topic_name`` (expansion
            and remapping rules applied).

    Returns:
        ``['--ros-args', '-r', '/tf:=<resolved>', ...]`` with a rule for each TF
        topic the server resolves to another name; empty when neither is remapped.
    """
    rules = []
    for topic in TF_TOPICS:
        resolved = str(resolve_topic_name(topic))
        if resolved != topic:
            rules += ['-r', f'{topic}:={resolved}']
    return ['--ros-args', *rules] if rules else []


def is_stamp_zero(sec: int, nanosec: int) -> bool:
    """Tell whether a stamp is ``(0, 0)``, which tf2 reads as "the latest transform"."""
    return int(sec) == 0 and int(nanosec) == 0


def retry_with_latest(exc_is_extrapolation: bool, sec: int, nanosec: int) -> bool:
    """Decide whether a failed stamped TF lookup is retried with the latest transform.

    Only an extrapolation failure (the stamp is older than the TF buffer, ~10 s,
    or newer than its last transform) of a non-zero stamp is retried; a missing
    frame or a broken tree would fail the same way at stamp zero.
    """
    return bool(exc_is_extrapolation) and not is_stamp_zero(sec, nanosec)


def latest_transform_note(what: str, frame: str, target: str, sec: int, nanosec: int,
                          error: str) -> str:
    """Return the report note saying that ``what`` was transformed with the latest transform."""
    return (f"{what} transformed from '{frame}' to '{target}' with the LATEST transform "
            f'(stamp 0), not at its stamp {int(sec)}.{int(nanosec):09d}: '
            f"{' '.join(str(error).split())}")


def transform_failure_reason(frame: str, target: str, timeout_s: float,
                             exc: BaseException) -> str:
    """Return the reason of a request whose goal could not be transformed.

    A ``tf2_ros.TransformException`` and anything else raised by the transform
    (e.g. ``numpy.linalg.LinAlgError`` from ``tf2_geometry_msgs``) are both a bad
    request or a TF problem, never an internal error.
    """
    text = ' '.join(f'{type(exc).__name__}: {exc}'.split())
    return (f"bad request: cannot transform the goal from '{frame}' to '{target}' "
            f'within {timeout_s} s: {text}')


# ---------------------------------------------------------------- answers
@dataclass
class StanceAnswer:
    """What the stance server found for one request, as plain data.

    Attributes:
        ok: at least one verified stance.
        reason: why not (also the WARN line), '' when ok.
        joint_names: ``base_x, base_y, base_yaw`` + arm joints (kept on failures, so
            that the latched ``JointTrajectory`` always has the same layout).
        sampler: the proposer's sampler name.
        request: the grasp as it reached the core (or as received, when it did not).
        result: the core result (None when the request never reached the core).
        start: the current base pose used for the travel terms, or None.
        start_request: that start pose as the report's ``start`` entry
            (:func:`pose_request` of the transformed start), or None.
        notes: remarks for the report (TF fallbacks, an ignored start pose, the world).
        goal_tf_latest: the goal was transformed with the latest transform.
        world_boxes: the obstacle boxes the stances were checked against (drawn in the
            markers), or None.
        footprint: ``(radius_m, polygon, clearance_cap_m)`` of the base footprint the
            stances were checked with (drawn in the markers), or None without a world.
    """

    ok: bool
    reason: str
    joint_names: list = field(default_factory=list)
    sampler: str = ''
    request: dict | None = None
    result: ProposalResult | None = None
    start: BasePose | None = None
    start_request: dict | None = None
    notes: list = field(default_factory=list)
    goal_tf_latest: bool = False
    world_boxes: Any = None
    footprint: tuple | None = None


def pose_request(pose: PoseInput) -> dict:
    """Return a pose as the report's ``request`` entry."""
    return {'position': [float(v) for v in pose.position],
            'orientation': [float(v) for v in pose.orientation],
            'frame_id': pose.frame_id}


def failure_answer(reason: str, joint_names: Sequence[str] = (),
                   request: Mapping[str, Any] | None = None, sampler: str = '',
                   notes: Sequence[str] = ()) -> StanceAnswer:
    """Return a failed answer for a request that never reached (or crashed in) the core."""
    return StanceAnswer(False, ' '.join(str(reason).split()), [str(n) for n in joint_names],
                        str(sampler), dict(request) if request is not None else None,
                        notes=list(notes))


def answer_request(proposer: Any, goal: PoseInput, start: BasePose | None = None,
                   rng: np.random.Generator | None = None,
                   lock: threading.Lock | None = None, symmetric: bool = False,
                   free_roll: bool = False, world: Any = None) -> StanceAnswer:
    """Run the core for a request already expressed in the target frame.

    Never raises for a bad request: a :class:`ReachabilityError` becomes a
    failed answer whose ``reason`` says what is wrong.

    Args:
        proposer: a ``StanceProposer`` (anything with ``propose(grasp, base, rng)``
            returning a :class:`ProposalResult`, ``robot.joint_names`` and ``sampler_name``).
        goal: the grasp, in the target frame.
        start: the current base pose in the target frame, or None.
        rng: random generator for this request.
        lock: held around the call to the proposer (requests may run concurrently).
        symmetric: the grasp's flip about its approach axis is as good (the server's
            ``grasp_symmetric`` parameter).
        free_roll: any turn about its approach axis is as good (``grasp_free_roll``).
        world: the obstacles in the target frame (``core.world.World``), or None.

    Returns:
        The plain answer.
    """
    request = pose_request(goal)
    names = [str(n) for n in getattr(getattr(proposer, 'robot', None), 'joint_names', ())]
    sampler = str(getattr(proposer, 'sampler_name', ''))
    try:
        if len(goal.position) != 3 or len(goal.orientation) != 4:
            raise InvalidRequest('a grasp needs 3 position and 4 quaternion values, got '
                                 f'{goal.position}, {goal.orientation}')
        grasp = Grasp(tuple(float(v) for v in goal.position),
                      tuple(float(v) for v in goal.orientation), goal.frame_id,
                      symmetric=bool(symmetric), free_roll=bool(free_roll))
        extra = {'world': world} if world is not None else {}
        with lock if lock is not None else contextlib.nullcontext():
            result = proposer.propose(grasp, start, rng, **extra)
    except ReachabilityError as exc:
        return failure_answer(f'bad request: {exc}', names, request, sampler)
    return result_answer(proposer, result, request, start, world)


def result_answer(proposer: Any, result: ProposalResult, request: dict | None,
                  start: BasePose | None = None, world: Any = None,
                  notes: Sequence[str] = ()) -> StanceAnswer:
    """Return the answer of a core result (a request's or a grasp set's).

    With a world, the answer also carries what the markers draw: the boxes the stances
    were checked against and the base footprint (``StanceAnswer.footprint``).

    Args:
        proposer: the ``StanceProposer`` that gave ``result`` (its ``scene`` and
            ``config.world`` when there is a world).
        result: the core result.
        request: the report's ``request`` entry.
        start: the current base pose used, or None.
        world: the world the stances were checked against (``core.world.World``), or None.
        notes: remarks for the report.
    """
    ok = bool(result.ok) and bool(result.candidates)
    reason = '' if ok else ' '.join(str(result.reason or 'no feasible stance').split())
    answer = StanceAnswer(ok, reason, [str(n) for n in result.joint_names],
                          str(getattr(proposer, 'sampler_name', '')), request, result, start,
                          notes=list(notes))
    if world is not None:
        scene = proposer.scene
        answer.world_boxes = world.boxes if len(world.boxes) else None
        answer.footprint = (scene.footprint_outer_m, scene.polygon,
                            proposer.config.world.clearance_cap_m)
    return answer


def trajectory_layout(answer: StanceAnswer) -> tuple[list[str], list[list[float]]]:
    """Return joint names and one position list per candidate for ``JointTrajectory``.

    Args:
        answer: the answer (its joint names are kept when it has no result).

    Returns:
        ``(joint_names, positions)``: ``positions[i]`` is candidate i's ``q``
        (same order as :func:`plan_poses`), each of ``len(joint_names)`` floats.

    Raises:
        ValueError: a candidate has a different length than the joint names.
    """
    names = [str(n) for n in answer.joint_names]
    if answer.result is None:
        return names, []
    rows = []
    for c in answer.result.candidates:
        q = [float(v) for v in np.asarray(c.q, dtype=float).reshape(-1)]
        if len(q) != len(names):
            raise ValueError(f'candidate has {len(q)} values for {len(names)} joint names')
        rows.append(q)
    return names, rows


# ---------------------------------------------------------------- reports
def json_safe(obj: Any) -> Any:
    """Recursively convert to strict-JSON data: numpy to Python, NaN/inf to strings."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray, array.array)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)  # 'nan', 'inf', '-inf'
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def failure_report(reason: str, request: Mapping[str, Any] | None = None,
                   sampler: str = '') -> dict:
    """Return the report of a request that never reached the core (bad input, TF failure).

    It has the keys of ``core.report.result_to_dict`` so that clients parse one schema.
    """
    return {'ok': False, 'reason': reason, 'sampler': sampler,
            'request': dict(request) if request is not None else None,
            'candidates': [], 'funnel': {}, 'timing_ms': {}}


@dataclass(frozen=True)
class ReportContext:
    """The request-level fields of a report that the core does not know.

    Attributes:
        target_frame: frame of the response.
        stamp: ``(sec, nanosec)`` of the response header (also on the companion topics).
        goal_frame: the goal's frame as received.
        tolerance: the request's ``tolerance`` (unused; reported back).
        sequence: the server's count of answered requests, from 1 (to match a
            report to its response when stamps repeat, e.g. with a paused sim clock).
    """

    target_frame: str
    stamp: tuple[int, int]
    goal_frame: str
    tolerance: float
    sequence: int


def build_report(answer: StanceAnswer, context: ReportContext,
                 to_dict: Callable[[ProposalResult], dict] | None = None) -> dict:
    """Return the JSON report of ``/propose_stance/report`` for one answer.

    Args:
        answer: the answer.
        context: the request-level fields.
        to_dict: result -> report dict (default ``core.report.result_to_dict``).

    Returns:
        The ``result_to_dict`` schema (or :func:`failure_report`) plus ``header``,
        ``target_frame``, ``goal_frame``, ``tolerance``, ``sequence``, ``notes``,
        ``goal_tf_latest`` and ``start``; strict-JSON ready after :func:`json_safe`.
    """
    if answer.result is None:
        report = failure_report(answer.reason, answer.request, answer.sampler)
    else:
        if to_dict is None:
            from reachability_ros.core.report import result_to_dict as to_dict
        report = to_dict(answer.result)
        if report.get('request') is None:
            report['request'] = answer.request
        report['reason'] = answer.reason
        report['ok'] = answer.ok
    sec, nanosec = context.stamp
    report['header'] = {'frame_id': context.target_frame,
                        'stamp': {'sec': int(sec), 'nanosec': int(nanosec)}}
    report['target_frame'] = context.target_frame
    report['goal_frame'] = context.goal_frame
    report['tolerance'] = float(context.tolerance)
    report['sequence'] = int(context.sequence)
    report['notes'] = list(answer.notes)
    report['goal_tf_latest'] = bool(answer.goal_tf_latest)
    report['start'] = None if answer.start_request is None else dict(answer.start_request)
    return report
