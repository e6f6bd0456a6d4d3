"""The stance server's grasp sets and grasp freedom: a mixin of ``StanceServer``.

- Parameters ``grasp_symmetric`` and ``grasp_free_roll`` (booleans, default false,
  changeable at run time): the freedom of every grasp the server answers, a
  ``/propose_stance`` goal as well as each pose of a grasp set.
- Topic ``/propose_stance/grasp_set`` (``geometry_msgs/PoseArray``, depth 10): a set
  of candidate grasps, any of which will do; ``poses[0]`` is the main grasp and
  ``poses[i]`` has ``grasp_index`` i. The answer goes out on the latched companion
  topics (candidates, markers, report) like a service answer, with its own header
  and ``sequence``; the report's candidates say which pose each serves
  (``grasp_index``) and the tool pose it reaches (``tool_pose``).

Thin: every decision is a plain function in :mod:`.grasp_set_input`, tested without
ROS. The mixin uses the server's lock, TF helper, world inputs (a set is checked against the
same map and boxes as a ``/propose_stance`` goal) and companion publisher.
"""

from __future__ import annotations

from typing import Any

from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.time import Time

from . import messages as msgs
from .camera_input import camera_entry
from .conversions import PoseInput, ReportContext
from .grasp_set_input import (answer_grasp_set_message, Freedom, freedom_from_parameters,
                              freedom_parameter_specs, FREEDOM_PARAMETERS, GRASP_SET_TOPIC)

__all__ = ['FREEDOM_PARAMETERS', 'GraspSetServer']


class GraspSetServer:
    """The grasp-set subscription and the freedom parameters of the stance server."""

    _freedom = Freedom()

    def _start_grasp_sets(self) -> None:
        """Declare the freedom parameters, read them, and subscribe to the grasp sets."""
        for spec in freedom_parameter_specs():
            self.declare_parameter(spec.name, spec.default, msgs.descriptor_from_spec(spec))
        self._freedom = freedom_from_parameters(
            {n: self.get_parameter(n).value for n in FREEDOM_PARAMETERS})
        self.create_subscription(PoseArray, GRASP_SET_TOPIC, self._on_grasp_set, 10)

    def _freedom_after(self, params: list) -> Freedom:
        """Return the freedom after a parameter change (``ConfigError`` for a bad value)."""
        return freedom_from_parameters({p.name: p.value for p in params}, self._freedom)

    def _grasp_set_answer(self, msg: PoseArray
                          ) -> tuple[Any, Any, ReportContext, Any, dict]:
        """Answer one grasp set: ``(answer, header, context, robot, camera)``; never raises.

        ``camera`` is the report's camera entry, as for a ``/propose_stance`` answer.
        """
        with self._lock:  # one consistent snapshot for the whole set
            target, timeout_s = self._target_frame, self._tf_timeout_s
            proposer, config, freedom = self._proposer, self._config, self._freedom
            self._sequence += 1
            sequence = self._sequence
        header = msgs.header_msg(target, self.get_clock().now().to_msg())
        poses_header = msg.header

        def transform(i: int, notes: list) -> PoseInput:
            nonlocal poses_header
            stamped = PoseStamped(header=poses_header, pose=msg.poses[i])
            pose, latest = self._transform_to_target(stamped, target, timeout_s, 'grasp set',
                                                     notes)
            if latest:  # the set's stamp has left the TF buffer: the other poses use the
                # latest transform at once, not after another tf_timeout_s wait each
                poses_header = msgs.header_msg(msg.header.frame_id, Time().to_msg())
            return pose

        answer, frame = answer_grasp_set_message(
            msg, transform, proposer, config.proposal, freedom, target, timeout_s,
            self._compute_lock, world=lambda: self._world.for_request(target, timeout_s))
        context = ReportContext(target, msgs.stamp_of(header), frame, 0.0, sequence)
        camera = camera_entry(self._camera_input, config.robot.camera)
        return answer, header, context, proposer.robot, camera
