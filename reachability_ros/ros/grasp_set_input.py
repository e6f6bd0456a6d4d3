"""Grasp sets and grasp freedom for the stance server, as plain values (no rclpy here).

Two inputs of the stance server, added to ``/propose_stance`` (whose contract is
unchanged):

- **Freedom parameters** :data:`FREEDOM_PARAMETERS`: the default freedom of every
  request, changeable at run time (``ros2 param set /stance_server
  grasp_free_roll true``): ``grasp_symmetric`` (the grasp flipped by 180 degrees
  about its approach axis, the tool's +z, is as good) and ``grasp_free_roll`` (any
  rotation about it is). They apply to ``/propose_stance`` goals and to grasp sets.
- **Grasp sets** on :data:`GRASP_SET_TOPIC` (``geometry_msgs/PoseArray``): the
  candidate grasps of a detector for one object, any of which will do. ``poses[0]``
  is the main grasp and ``poses[i]`` its ``alternatives[i - 1]`` (``grasp_index``
  ``i``); at most ``MAX_ALTERNATIVES + 1`` poses. The set is ranked in one batch
  by the core and the answer goes out on the latched companion topics
  (``candidates``, ``markers``, ``report``) like a service answer; in the report
  every candidate's ``grasp_index`` says which pose it serves and its
  ``tool_pose`` the pose of the tool frame it reaches (in ``target_frame``). There
  is no response: a set is a topic message. The poses are validated as received
  (before TF), then transformed into ``target_frame`` with the header's stamp (once
  that stamp has left the TF buffer, every pose with the latest transform: one wait).

The node hands each ``PoseArray`` to :func:`answer_grasp_set_message` with a function
that transforms one of its poses into ``target_frame`` (the node's TF): the message is
read into :class:`GraspSetInput` once (:func:`grasp_set_input`, attribute access only,
so tests pass plain objects), checked, transformed and answered
(:func:`answer_grasp_set`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import threading
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from reachability_ros.core.errors import ConfigError, InvalidRequest, ReachabilityError
from reachability_ros.core.freedom import MAX_ALTERNATIVES
from reachability_ros.core.types import BasePose, Grasp

from .conversions import (check_raw_goal, failure_answer, normalize_frame_id, pose_request,
                          PoseInput, result_answer, StanceAnswer, transform_failure_reason)
from .parameters import FREEDOM_PARAMETERS, ParameterSpec

#: The topic of grasp sets (``geometry_msgs/PoseArray``).
GRASP_SET_TOPIC = '/propose_stance/grasp_set'
#: Most poses in one grasp set: the main grasp and ``MAX_ALTERNATIVES`` others.
MAX_POSES = MAX_ALTERNATIVES + 1


@dataclass(frozen=True)
class Freedom:
    """The default freedom of every grasp a request sends."""

    symmetric: bool = False
    free_roll: bool = False


def freedom_parameter_specs(freedom: Freedom = Freedom()) -> list[ParameterSpec]:
    """Return the declarations of :data:`FREEDOM_PARAMETERS`."""
    return [
        ParameterSpec('grasp_symmetric', 'bool', bool(freedom.symmetric),
                      'every grasp (a /propose_stance goal, each pose of a grasp set) may be '
                      'flipped by 180 deg about its approach axis, the tool +z: the better '
                      'flip is answered (a parallel gripper on a box)'),
        ParameterSpec('grasp_free_roll', 'bool', bool(freedom.free_roll),
                      'every grasp may turn by any angle about its approach axis (a top-down '
                      'grasp of a can); each stance reports the tool pose it reaches'),
    ]


def freedom_from_parameters(values: Mapping[str, Any], current: Freedom = Freedom()
                            ) -> Freedom:
    """Return the freedom after parameter changes (other parameter names are ignored).

    Raises:
        ConfigError: a value that is not a boolean.
    """
    out = {'symmetric': current.symmetric, 'free_roll': current.free_roll}
    for name, value in values.items():
        if name not in FREEDOM_PARAMETERS:
            continue
        if not isinstance(value, (bool, np.bool_)):
            raise ConfigError(f'parameter {name!r} must be true or false, got {value!r}')
        out[name[len('grasp_'):]] = bool(value)
    return Freedom(**out)


@dataclass
class GraspSetInput:
    """The fields of a ``geometry_msgs/PoseArray`` as plain values.

    Attributes:
        frame_id: the header's frame.
        stamp: the header's ``(sec, nanosec)``.
        poses: one :class:`PoseInput` per pose (all in ``frame_id``).
    """

    frame_id: str
    stamp: tuple[int, int]
    poses: list


def grasp_set_input(msg: Any) -> GraspSetInput:
    """Read a ``PoseArray`` (anything with its attributes) into plain values, once."""
    frame = str(msg.header.frame_id)
    stamp = (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))
    poses = []
    for pose in msg.poses:
        p, o = pose.position, pose.orientation
        poses.append(PoseInput(frame, (float(p.x), float(p.y), float(p.z)),
                               (float(o.x), float(o.y), float(o.z), float(o.w))))
    return GraspSetInput(frame, stamp, poses)


def pose_name(i: int) -> str:
    """Name pose ``i`` of a grasp set in messages."""
    return f'poses[{i}] (grasp_index {i})'


def check_grasp_set(grasp_set: GraspSetInput, quaternion_tolerance: float) -> None:
    """Validate a grasp set as received, BEFORE any TF call (tf2 normalizes quaternions).

    Raises:
        InvalidRequest: no pose, more than :data:`MAX_POSES`, or a pose with non-finite
            values or a quaternion off unit norm (the reason names the pose:
            ``poses[37] (grasp_index 37): ...``).
    """
    n = len(grasp_set.poses)
    if n == 0:
        raise InvalidRequest('the grasp set has no pose')
    if n > MAX_POSES:
        raise InvalidRequest(f'the grasp set has {n} poses; at most {MAX_POSES} (the main '
                             f'grasp and {MAX_ALTERNATIVES} alternatives): split it')
    for i, pose in enumerate(grasp_set.poses):
        try:
            check_raw_goal(pose.position, pose.orientation, quaternion_tolerance)
        except InvalidRequest as exc:
            raise InvalidRequest(f'{pose_name(i)}: {exc}') from None


def grasp_set_request(poses: Sequence[PoseInput]) -> dict | None:
    """Return a grasp set as the report's ``request`` entry (the ``result_to_dict`` layout)."""
    if not poses:
        return None
    req = pose_request(poses[0])
    req['alternatives'] = [{'position': [float(v) for v in p.position],
                            'orientation': [float(v) for v in p.orientation]}
                           for p in poses[1:]]
    return req


def set_note(n_poses: int, topic: str = GRASP_SET_TOPIC) -> str:
    """Return the report note that says what a grasp set's ``grasp_index`` refers to."""
    return (f'grasp set of {n_poses} poses from {topic}: grasp_index i is poses[i] '
            '(0 the main grasp)')


def answer_grasp_set(proposer: Any, poses: Sequence[PoseInput], freedom: Freedom = Freedom(),
                     start: BasePose | None = None, rng: np.random.Generator | None = None,
                     lock: threading.Lock | None = None,
                     notes: Sequence[str] = (), world: Any = None) -> StanceAnswer:
    """Run the core for a grasp set already expressed in the target frame.

    Never raises for a bad request: a :class:`ReachabilityError` becomes a failed
    answer whose ``reason`` says what is wrong.

    Args:
        proposer: a ``StanceProposer`` (``propose(grasp, base, rng, alternatives=...)``).
        poses: the grasps in the target frame, main first.
        freedom: the freedom of every grasp.
        start: the current base pose in the target frame, or None.
        rng: random generator for this request.
        lock: held around the call to the proposer.
        notes: remarks for the report (TF fallbacks, the world); the set's own note is
            appended.
        world: the map and boxes in the target frame (``core.world.World``), or None.

    Returns:
        The plain answer; its notes say what ``grasp_index`` refers to.
    """
    request = grasp_set_request(poses)
    names = [str(n) for n in getattr(getattr(proposer, 'robot', None), 'joint_names', ())]
    sampler = str(getattr(proposer, 'sampler_name', ''))
    notes = list(dict.fromkeys(notes)) + [set_note(len(poses))]  # one TF note for all poses
    try:
        if not poses:
            raise InvalidRequest('the grasp set has no pose')
        grasps = [Grasp(tuple(float(v) for v in p.position),
                        tuple(float(v) for v in p.orientation), p.frame_id,
                        symmetric=freedom.symmetric, free_roll=freedom.free_roll)
                  for p in poses]
        extra = {'world': world} if world is not None else {}
        with lock if lock is not None else contextlib.nullcontext():
            result = proposer.propose(grasps[0], start, rng, alternatives=grasps[1:], **extra)
    except ReachabilityError as exc:
        return failure_answer(f'bad request: {exc}', names, request, sampler, notes)
    return result_answer(proposer, result, request, start, world, notes)


def answer_grasp_set_message(msg: Any, transform: Callable[[int, list], PoseInput],
                             proposer: Any, config: Any, freedom: Freedom, target: str,
                             timeout_s: float, lock: threading.Lock | None = None,
                             world: Callable[[], Any] | None = None
                             ) -> tuple[StanceAnswer, str]:
    """Answer one ``PoseArray``: check it as received, transform its poses, run the core.

    Never raises: a bad set, a TF failure, a world that cannot be had (no map when one is
    required, a frame TF cannot place) or a bug becomes a failed answer with the reason
    (``bad request: ...``, ``bad request: cannot transform ...``, the world's reason,
    ``internal error: ...``).

    Args:
        msg: the ``geometry_msgs/PoseArray`` (or anything with its attributes).
        transform: ``(i, notes) -> PoseInput``: pose ``i`` in ``target`` (the node's
            TF, waiting up to ``timeout_s``; it appends a note when it falls back to
            the latest transform and raises what TF raises).
        proposer: the ``StanceProposer``.
        config: the proposal settings (``quaternion_tolerance``, ``seed``).
        freedom: the freedom of every pose.
        target: the target frame (for the reasons).
        timeout_s: the TF wait (for the reasons).
        lock: held around the call to the proposer.
        world: returns the request's world in ``target`` as the node's world inputs
            give it (``world``, ``failure``, ``notes``: :class:`.world_input.WorldAnswer`),
            or None for none; the same world as a ``/propose_stance`` request's.

    Returns:
        The answer and the set's frame as received ('' when unreadable).
    """
    names = [str(n) for n in getattr(getattr(proposer, 'robot', None), 'joint_names', ())]
    sampler = str(getattr(proposer, 'sampler_name', ''))
    frame = ''
    try:
        raw = grasp_set_input(msg)
        frame = raw.frame_id
        request = grasp_set_request(raw.poses)
        if not normalize_frame_id(raw.frame_id):
            return failure_answer('bad request: the grasp set header.frame_id is empty; set '
                                  f"it to the frame of the poses (e.g. '{target}')", names,
                                  request, sampler), frame
        try:  # before any TF call: tf2 normalizes quaternions and chokes on NaN
            check_grasp_set(raw, config.quaternion_tolerance)
        except ReachabilityError as exc:
            return failure_answer(f'bad request: {exc}', names, request, sampler), frame
        notes: list[str] = []
        poses = []
        for i in range(len(raw.poses)):
            try:
                poses.append(transform(i, notes))
            except Exception as exc:  # TransformException, or e.g. LinAlgError inside tf2
                reason = transform_failure_reason(raw.frame_id, target, timeout_s, exc)
                return failure_answer(reason.replace('the goal', f'grasp set {pose_name(i)}'),
                                      names, request, sampler, notes), frame
        scene = world() if world is not None else None
        if scene is not None and scene.failure:
            return failure_answer(scene.failure, names, request, sampler, notes), frame
        notes += list(scene.notes) if scene is not None else []
        return answer_grasp_set(proposer, poses, freedom, rng=np.random.default_rng(
            config.seed), lock=lock, notes=notes,
            world=scene.world if scene is not None else None), frame
    except Exception as exc:  # a bug, not a bad request: still answer
        return failure_answer(f'internal error: {type(exc).__name__}: {exc}', names,
                              sampler=sampler), frame
