"""A client of ``/propose_stance`` for a node that waits inside a callback (the navigator).

:meth:`StanceClient.propose` calls ``nav_msgs/srv/GetPlan`` with the grasp already in the
target frame and the base's pose as ``start``, and waits for the answer without spinning
(:func:`wait_for`: ``add_done_callback`` and an event), so the node's executor must run
the client's callbacks on other threads (a ``MultiThreadedExecutor`` and a
``ReentrantCallbackGroup``; ros2-nav-reference.md). The response holds only base poses;
the stance server publishes each answer's whole-body stances on ``<service>/candidates``
and its reason on ``<service>/report`` just after it, with the response's header stamp,
which matches them to the call (:func:`.navigator_io.arms_from_candidates`,
:func:`.navigator_io.report_reason`).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable

from nav_msgs.srv import GetPlan
from rclpy.node import Node
from rclpy.time import Time
from reachability_ros.core.types import BasePose, Grasp
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from . import messages as msgs
from .conversions import PlanPose
from .lifecycle import poll_until
from .navigator_io import arms_from_candidates, ProposeAnswer, report_reason
from .qos import latched_qos

#: The longest a wait inside a callback goes without checking its interruption (s).
WAIT_STEP_S = 0.05
#: How long the companion topics (candidates, report) of an answer are awaited (s).
COMPANION_WAIT_S = 2.0
#: Companion messages kept to match an answer (several clients may ask at once).
COMPANION_HISTORY = 16


def wait_for(future: Any, timeout_s: float, interrupt: Callable[[], bool]) -> bool:
    """Wait for an rclpy future from inside a callback (no spinning); return whether it is done.

    The wait ends early when ``interrupt()`` is true (checked every :data:`WAIT_STEP_S`).
    """
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    deadline = time.monotonic() + max(0.0, float(timeout_s))
    while not future.done():
        if interrupt() or time.monotonic() >= deadline:
            return future.done()
        done.wait(WAIT_STEP_S)
    return True


class StanceClient:
    """Ask the stance server for ranked stances and their joints.

    Args:
        node: the node (its executor must be multi-threaded).
        service: the stance server's service (``/propose_stance``).
        target_frame: the frame of the grasp and of the answer.
        callback_group: a reentrant group for the client and the subscriptions.
        should_stop: true when the node shuts down (waits end early).
    """

    def __init__(self, node: Node, service: str, target_frame: str, callback_group,
                 should_stop: Callable[[], bool]) -> None:
        self.service, self._target, self._stop = service, target_frame, should_stop
        self._client = node.create_client(GetPlan, service, callback_group=callback_group)
        self._candidates: collections.deque = collections.deque(maxlen=COMPANION_HISTORY)
        self._reports: collections.deque = collections.deque(maxlen=COMPANION_HISTORY)
        base, qos = service.rstrip('/'), latched_qos(COMPANION_HISTORY)
        node.create_subscription(JointTrajectory, base + '/candidates',
                                 lambda msg: self._candidates.append(msg), qos,
                                 callback_group=callback_group)
        node.create_subscription(String, base + '/report', lambda msg: self._reports.append(msg),
                                 qos, callback_group=callback_group)

    def propose(self, grasp: Grasp, start: BasePose | None, joint_names: list,
                server_timeout_s: float, answer_timeout_s: float,
                interrupt: Callable[[], bool] = lambda: False) -> ProposeAnswer:
        """Call the service; return the stances with their ``q`` (``joint_names`` order).

        ``ProposeAnswer.failure`` says why there is no answer (no server, no reply in
        time, the wait interrupted); a reply without stances carries the server's reason.
        The waits end early on shutdown or when ``interrupt()`` is true (a cancel).
        """
        def stop() -> bool:
            return self._stop() or interrupt()
        if not poll_until(self._client.service_is_ready, server_timeout_s, stop, WAIT_STEP_S):
            return ProposeAnswer([], failure='interrupted' if stop() else
                                 f'{self.service} is not available')
        request = GetPlan.Request()
        request.goal.header.frame_id = self._target
        p, o = request.goal.pose.position, request.goal.pose.orientation
        p.x, p.y, p.z = (float(v) for v in grasp.position)
        o.x, o.y, o.z, o.w = (float(v) for v in grasp.orientation)
        if start is not None:
            request.start = msgs.plan_pose_stamped(PlanPose(start.x, start.y, start.yaw),
                                                   msgs.header_msg(self._target, Time().to_msg()))
        future = self._client.call_async(request)
        if not wait_for(future, answer_timeout_s, stop):
            self._client.remove_pending_request(future)  # a late answer is dropped
            return ProposeAnswer([], failure='interrupted' if stop() else
                                 f'no answer within {answer_timeout_s} s')
        plan = future.result().plan
        stamp = msgs.stamp_of(plan.header)
        stances = [msgs.base_pose(msgs.pose_input(ps)) for ps in plan.poses]
        if not stances:
            reason = self._companion(self._reports, lambda m: report_reason(m.data, stamp))
            return ProposeAnswer([], [], reason or f'(the reason is in {self.service}/report, '
                                 'which did not arrive)')
        match = self._companion(self._candidates,
                                lambda m: m if msgs.stamp_of(m.header) == stamp else None)
        arms = None if match is None else arms_from_candidates(
            match.joint_names, [pt.positions for pt in match.points], joint_names)
        return ProposeAnswer(stances, arms or [])

    def _companion(self, messages: collections.deque, pick: Callable[[Any], Any]) -> Any:
        """Wait for the companion message ``pick`` accepts (not None); None after the timeout."""
        found: list = []

        def seen() -> bool:
            for m in reversed(list(messages)):  # the newest first (a paused clock repeats)
                value = pick(m)
                if value is not None:
                    found.append(value)
                    return True
            return False
        poll_until(seen, COMPANION_WAIT_S, self._stop, 0.02)
        return found[0] if found else None
