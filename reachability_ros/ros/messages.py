"""Messages <-> plain values, once, at the boundary (imported only by the nodes).

The quaternion and Euler conversions of messages use ``tf_transformations``
(quaternions ordered x, y, z, w, as in ``geometry_msgs/Quaternion``); the plain
modules use :mod:`reachability_ros.core.geometry` instead, so that they run
without ROS.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from geometry_msgs.msg import Point, PoseStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from reachability_ros.core.types import BasePose
from std_msgs.msg import ColorRGBA, Header, String
from tf_transformations import euler_from_quaternion, quaternion_from_euler
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker

from .conversions import json_safe, PlanPose, PoseInput
from .parameters import ParameterSpec


def pose_input(msg: PoseStamped) -> PoseInput:
    """Read a ``PoseStamped`` into plain values."""
    p, o = msg.pose.position, msg.pose.orientation
    return PoseInput(msg.header.frame_id, (float(p.x), float(p.y), float(p.z)),
                     (float(o.x), float(o.y), float(o.z), float(o.w)))


def yaw_of(pose: PoseInput) -> float:
    """Return the heading (rad) of a pose: the yaw of its x axis, from ``tf_transformations``.

    The quaternion need not be normalized; it must be finite and non-zero
    (``conversions.check_raw_start`` checks that first).
    """
    return float(euler_from_quaternion(list(pose.orientation), axes='sxyz')[2])


def base_pose(pose: PoseInput) -> BasePose:
    """Return the planar base pose (x, y, heading) of a pose."""
    return BasePose(float(pose.position[0]), float(pose.position[1]), yaw_of(pose))


def plan_pose_stamped(pose: PlanPose, header: Header) -> PoseStamped:
    """Return one pose of the response path: ``base_footprint`` on the floor, yaw quaternion."""
    msg = PoseStamped()
    msg.header = header
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = pose.x, pose.y, 0.0
    x, y, z, w = (float(v) for v in quaternion_from_euler(0.0, 0.0, pose.yaw, axes='sxyz'))
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = x, y, z, w
    return msg


def trajectory_msg(joint_names: Sequence[str], rows: Iterable[Sequence[float]],
                   header: Header) -> JointTrajectory:
    """Return the ``JointTrajectory`` of the ranked stances: one point per stance."""
    msg = JointTrajectory()
    msg.header = header
    msg.joint_names = [str(n) for n in joint_names]
    for q in rows:
        point = JointTrajectoryPoint()
        point.positions = [float(v) for v in q]
        msg.points.append(point)
    return msg


def _colour(rgba: Sequence[float]) -> ColorRGBA:
    return ColorRGBA(r=float(rgba[0]), g=float(rgba[1]), b=float(rgba[2]), a=float(rgba[3]))


def marker_msg(spec: dict, header: Header) -> Marker:
    """Copy a plain marker spec (:mod:`.markers`) into a ``visualization_msgs/Marker``."""
    m = Marker()
    m.header = header
    m.ns = spec['ns']
    m.id = int(spec['id'])
    m.type = int(spec['type'])
    m.action = int(spec['action'])
    m.pose.position.x, m.pose.position.y, m.pose.position.z = (
        float(v) for v in spec['position'])
    o = m.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in spec['orientation'])
    m.scale.x, m.scale.y, m.scale.z = (float(v) for v in spec['scale'])
    m.color = _colour(spec['color'])
    m.points = point_msgs(spec['points'])
    m.colors = [_colour(c) for c in spec['colors']]
    m.text = spec['text']
    return m


def point_msgs(points: Iterable[Sequence[float]]) -> list[Point]:
    """Return ``geometry_msgs/Point`` messages of ``(x, y, z)`` triples."""
    return [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in points]


def report_msg(report: dict) -> String:
    """Return the strict-JSON ``std_msgs/String`` of a report."""
    return String(data=json.dumps(json_safe(report), allow_nan=False))


def descriptor_from_spec(spec: ParameterSpec) -> ParameterDescriptor:
    """Build the ``ParameterDescriptor`` of a plain :class:`ParameterSpec`."""
    d = ParameterDescriptor(description=spec.description, type=spec.type_id,
                            read_only=spec.read_only)
    if spec.bounds is not None and spec.kind == 'double':
        d.floating_point_range = [FloatingPointRange(
            from_value=float(spec.bounds[0]), to_value=float(spec.bounds[1]), step=0.0)]
    elif spec.bounds is not None and spec.kind == 'integer':
        d.integer_range = [IntegerRange(
            from_value=int(spec.bounds[0]), to_value=int(spec.bounds[1]), step=0)]
    if spec.constraints:
        d.additional_constraints = spec.constraints
    return d


def stamp_of(header: Header) -> tuple[int, int]:
    """Return ``(sec, nanosec)`` of a header."""
    return int(header.stamp.sec), int(header.stamp.nanosec)


def header_msg(frame_id: str, stamp: Any) -> Header:
    """Return a header with a frame and a ``builtin_interfaces/Time`` stamp."""
    return Header(frame_id=frame_id, stamp=stamp)
