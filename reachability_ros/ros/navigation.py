"""The stance navigator's decisions as plain code: a grasp in, the base at a stance, the arm out.

:class:`GraspNavigator` runs one ``/navigate_to_grasp`` goal against a :class:`NavigatorRobot`,
the few operations the ROS node provides (ask ``/propose_stance``, send a Nav2 goal and wait,
read the base pose from TF, send ``cmd_vel``, publish the arm command, relay feedback,
notice a cancel). The tests and ``bench/bench_arrival.py`` drive it with a simulated robot,
so every decision below runs without ROS:

1. read the base pose (TF ``target_frame`` -> ``base_footprint``): missing -> ``TF_MISSING``;
2. ask ``/propose_stance`` with it as ``start``: no stance -> ``NO_STANCE`` at once (no Nav2
   goal, no arm command), the server's reason in the message;
3. for the stances in rank order (at most ``max_attempts``): send it to Nav2; a failed
   navigation -> the next stance; Nav2 not there -> ``NAV2_UNAVAILABLE``;
4. on arrival (:meth:`GraspNavigator.arrive`): read the landed base from TF, solve the arm
   from it for the grasp as the stance serves it (turned about its approach axis when the
   server's grasp freedom turned it: ``ArrivalPlanner.served_target``; the attempt's
   ``grasp_turn_deg``) and check by FK (``core/arrival.py``); outside the tolerance, correct
   the base (the nearest exact stance, a bounded closed-loop motion on ``cmd_vel``) and
   solve again, at most ``arrival.max_corrections`` times; still outside -> the next stance;
5. success: one arm command (the five arm joints), ``SUCCEEDED``; else ``NAV2_FAILED``
   when Nav2 failed for every stance tried, ``OUT_OF_REACH`` when a stance was reached
   but the grasp was not. A cancel at any moment stops the base -> ``CANCELED``.

The result's ``error_code`` (``nav2_msgs/action/NavigateToPose`` defines only ``NONE = 0``;
Nav2's own servers number their failures 100-299) uses :data:`RESULT_CODES`, 901 and up.
Every goal ends with a report (:meth:`GraspNavigator.run` returns it; the node publishes it
as JSON on ``/navigate_to_grasp/report``): the stances, each attempt (Nav2's outcome, the
landed base and its error from the stance, each correction, the arm check), the stance
used, the final tool error, and the landing errors measured so far
(:class:`LandingStats`: the figures to set ``proposal.base_sigma_xy_m`` and
``proposal.base_sigma_yaw_deg`` from).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any, Protocol, Sequence

import numpy as np
from reachability_ros.core.arrival import (ArmCheck, ArrivalPlanner, base_error,
                                           correction_command, CorrectionTarget, LandingStats)
from reachability_ros.core.types import BasePose, Grasp

from .navigator_io import NavigatorConfig, NavOutcome, ProposeAnswer

# ------------------------------------------------------------------ result codes
SUCCEEDED = 0
NO_STANCE = 901
PROPOSE_FAILED = 902
NAV2_UNAVAILABLE = 903
NAV2_FAILED = 904
OUT_OF_REACH = 905
TF_MISSING = 906
CANCELED = 907
INVALID_GOAL = 908
SHUTDOWN = 909
INTERNAL_ERROR = 910

#: ``error_code`` -> its name (``README``, "Navigate to a grasp").
RESULT_CODES = {
    SUCCEEDED: 'SUCCEEDED', NO_STANCE: 'NO_STANCE', PROPOSE_FAILED: 'PROPOSE_FAILED',
    NAV2_UNAVAILABLE: 'NAV2_UNAVAILABLE', NAV2_FAILED: 'NAV2_FAILED',
    OUT_OF_REACH: 'OUT_OF_REACH', TF_MISSING: 'TF_MISSING', CANCELED: 'CANCELED',
    INVALID_GOAL: 'INVALID_GOAL', SHUTDOWN: 'SHUTDOWN', INTERNAL_ERROR: 'INTERNAL_ERROR',
}

#: ``action_msgs/msg/GoalStatus`` values (the navigator's goal ends in one of these).
STATUS_SUCCEEDED, STATUS_CANCELED, STATUS_ABORTED = 4, 5, 6

#: Outcomes of a navigation or an arrival that end the goal, and their codes.
_ENDS_GOAL = {'canceled': CANCELED, 'shutdown': SHUTDOWN, 'unavailable': NAV2_UNAVAILABLE,
              'tf_missing': TF_MISSING}


def goal_status(code: int, cancel_requested: bool) -> int:
    """Return how the goal ends: succeeded, canceled (only after a cancel request) or aborted.

    ``canceled()`` is legal only after a cancel request was accepted (rcl's goal state
    machine), so a ``CANCELED`` code without one (e.g. Nav2's goal canceled by someone
    else) ends as aborted.
    """
    if code == SUCCEEDED:
        return STATUS_SUCCEEDED
    if code == CANCELED and cancel_requested:
        return STATUS_CANCELED
    return STATUS_ABORTED


# ------------------------------------------------------------------ what the node provides
class NavigatorRobot(Protocol):
    """The operations :class:`GraspNavigator` needs; the node implements them with ROS."""

    def base_pose(self) -> BasePose | None:
        """Return the base pose in the target frame from TF (None: missing)."""

    def propose(self, grasp: Grasp, start: BasePose | None) -> ProposeAnswer:
        """Ask the stance server for ranked stances (the wait ends early on a cancel)."""

    def navigate(self, stance: BasePose) -> NavOutcome:
        """Send the stance to Nav2 and wait for the end (relaying feedback, honouring cancel)."""

    def send_twist(self, vx: float, vy: float, wz: float) -> None:
        """Publish a body-frame twist on ``cmd_vel``."""

    def command_arm(self, joint_names: Sequence[str], positions: Sequence[float]) -> None:
        """Publish the arm command."""

    def feedback(self, base: BasePose, distance_remaining_m: float) -> None:
        """Publish the goal's feedback during a correction."""

    def cancel_requested(self) -> bool:
        """Tell whether the goal's cancel was requested."""

    def sleep(self, seconds: float) -> bool:
        """Wait; return False when the node is shutting down."""

    def now(self) -> float:
        """Return a monotonic time (s)."""


# ------------------------------------------------------------------ records
def pose_dict(p: BasePose | None) -> dict | None:
    """Return a base pose for the report (yaw in degrees too)."""
    if p is None:
        return None
    return {'x': float(p.x), 'y': float(p.y), 'yaw': float(p.yaw),
            'yaw_deg': math.degrees(p.yaw)}


@dataclass
class Arrival:
    """The outcome of :meth:`GraspNavigator.arrive`.

    Attributes:
        status: ``'reached'`` (the arm can be commanded), ``'out_of_reach'``,
            ``'canceled'``, ``'tf_missing'`` or ``'shutdown'``.
        check: the last arm check (None when none was made).
        base: the last base pose read.
        corrections: one dict per correction (target, motion, outcome).
        travelled_m: path length of the corrections (m).
    """

    status: str
    check: ArmCheck | None
    base: BasePose | None
    corrections: list = field(default_factory=list)
    travelled_m: float = 0.0


@dataclass
class Motion:
    """The outcome of one correction motion: how it ended, where, after how long."""

    status: str
    base: BasePose | None
    travelled_m: float
    duration_s: float


@dataclass
class NavigationResult:
    """The goal's result: ``error_code``, ``error_msg`` and the report."""

    code: int
    message: str
    report: dict
    arm: list | None = None


def goal_failure(code: int, message: str, landing: LandingStats | None = None
                 ) -> NavigationResult:
    """Return the result of a goal refused before :meth:`GraspNavigator.run` (same report keys).

    For a goal the node cannot hand to the navigator: a malformed grasp
    (``INVALID_GOAL``), a grasp that cannot be transformed (``TF_MISSING``), a bug
    (``INTERNAL_ERROR``).
    """
    return _goal_result({'grasp': None, 'stances': [], 'attempts': []}, code, message,
                        landing or LandingStats())


def _goal_result(report: dict, code: int, message: str, landing: LandingStats,
                 arm: list | None = None) -> NavigationResult:
    """Return the goal's result; ``report`` gets the result keys (ok, code, message, landing)."""
    message = ' '.join(str(message).split())
    report.update(ok=code == SUCCEEDED, error_code=code,
                  result=RESULT_CODES.get(code, str(code)), error_msg=message,
                  landing_errors=landing.summary())
    return NavigationResult(code, message, report, arm)


# ------------------------------------------------------------------ the navigator
class GraspNavigator:
    """Run ``/navigate_to_grasp`` goals: stances, Nav2, arrival check, correction, arm.

    Args:
        planner: the arrival planner (robot model, visibility, manifold, tolerances).
        config: the node's settings (attempts, rates, timeouts; ``config.arrival`` is the
            planner's).
        arm_joints: the arm joint names, in the order of ``q[3:]``.
    """

    def __init__(self, planner: ArrivalPlanner, config: NavigatorConfig,
                 arm_joints: Sequence[str]) -> None:
        self.planner = planner
        self.config = config
        self.arm_joints = [str(n) for n in arm_joints]
        self.landing = LandingStats()

    # ---------------------------------------------------------------- one goal
    def run(self, robot: NavigatorRobot, grasp: Grasp) -> NavigationResult:
        """Take the base to a stance for ``grasp`` and command the arm from where it landed.

        Args:
            robot: the ROS glue (or a simulation).
            grasp: the tool pose, already in the target frame (validated by the caller).

        Returns:
            The result code, message and report; ``arm`` is the commanded arm joints.
        """
        T = grasp.matrix()
        report: dict[str, Any] = {'grasp': {'position': [float(v) for v in grasp.position],
                                            'orientation': [float(v) for v in
                                                            grasp.orientation],
                                            'frame_id': grasp.frame_id},
                                  'stances': [], 'attempts': []}

        def finish(code: int, message: str, arm: list | None = None) -> NavigationResult:
            return _goal_result(report, code, message, self.landing, arm)

        start = robot.base_pose()
        report['start'] = pose_dict(start)
        if start is None:
            return finish(TF_MISSING, 'no transform from the target frame to the base frame: '
                          'is localization running?')
        if robot.cancel_requested():
            return finish(CANCELED, 'canceled before the stances were asked for')
        answer = robot.propose(grasp, start)  # the wait ends early on a cancel
        if robot.cancel_requested():
            return finish(CANCELED, 'canceled while the stances were asked for')
        if answer.failure:
            return finish(PROPOSE_FAILED, f'the stance server did not answer ({answer.failure})')
        if not answer.stances:
            return finish(NO_STANCE, 'no stance for this grasp: '
                          + (answer.reason or '(no reason given)'))
        plan = self.attempt_plan(T, answer)
        report['stances'] = [dict(pose_dict(s), rank=i + 1) for i, (s, _) in enumerate(plan)]
        for rank, (stance, q) in enumerate(plan, start=1):
            record: dict[str, Any] = {'rank': rank, 'stance': pose_dict(stance)}
            report['attempts'].append(record)
            stop = self.attempt(robot, T, stance, q, record)
            if stop is not None:
                code, message = stop
                if code != SUCCEEDED:
                    return finish(code, f'stance #{rank}: {message}')
                arm, check = record['arm_command'], record['final_check']
                report.update(stance_used=dict(pose_dict(stance), rank=rank),
                              landing_error=record['landing_error'],
                              correction_distance_m=record['correction_distance_m'],
                              final_base=record['final_base'],
                              final_tool_error={'position_m': check.position_error_m,
                                                'orientation_deg': math.degrees(
                                                    check.orientation_error_rad)},
                              arm_command=dict(zip(self.arm_joints, arm)))
                del record['final_check']
                return finish(SUCCEEDED, f'stance #{rank} reached; {message}', arm)
        return finish(*self.failure(report['attempts']))

    def attempt(self, robot: NavigatorRobot, T: np.ndarray, stance: BasePose,
                q: np.ndarray | None, record: dict) -> tuple[int, str] | None:
        """Try one stance: Nav2, the landed base, the arrival; fill its report ``record``.

        Returns:
            None to go on with the next stance; else ``(code, message)``: ``SUCCEEDED``
            (the arm was commanded) or a failure that ends the goal (cancel, shutdown, Nav2
            missing, TF missing).
        """
        if q is None:
            record.update(outcome='skipped', reason='no exact stance of the grasp at this '
                          "base pose in the navigator's robot model (is it the server's?)")
            return None
        if robot.cancel_requested():
            return CANCELED, 'canceled before Nav2 was asked'
        out = robot.navigate(stance)
        record['nav2'] = {'status': out.status, 'error_code': out.error_code,
                          'error_msg': out.error_msg}
        if out.status in _ENDS_GOAL:
            record['outcome'] = out.status
            return _ENDS_GOAL[out.status], out.error_msg or out.status
        if out.status != 'succeeded':
            record['outcome'] = 'nav2_failed'
            return None
        if not robot.sleep(self.config.settle_s):
            return SHUTDOWN, 'the navigator is shutting down'
        landed = robot.base_pose()
        record['landed'] = pose_dict(landed)
        if landed is None:
            record['outcome'] = 'tf_missing'
            return TF_MISSING, 'arrived, but the base pose is missing from TF'
        dx, dy, dyaw = base_error(stance, landed)
        self.landing.add(dx, dy, dyaw)
        record['landing_error'] = {'dx_m': dx, 'dy_m': dy, 'dyaw_deg': math.degrees(dyaw),
                                   'distance_m': math.hypot(dx, dy)}
        # the grasp as this stance serves it (the server's grasp freedom may have turned
        # it about its approach axis: the flip, a free roll)
        T_served, turn = self.planner.served_target(T, q)
        if turn:
            record['grasp_turn_deg'] = math.degrees(turn)
        arrival = self.arrive(robot, T_served, q, landed)
        check = arrival.check
        record.update(outcome=arrival.status, corrections=arrival.corrections,
                      correction_distance_m=arrival.travelled_m,
                      arm_check=None if check is None else check.as_dict())
        if arrival.status in _ENDS_GOAL:
            return _ENDS_GOAL[arrival.status], (arrival.status.replace('_', ' ')
                                                + ' during the correction')
        if arrival.status != 'reached':
            return None
        arm = [float(v) for v in check.arm]
        robot.command_arm(self.arm_joints, arm)
        record.update(arm_command=arm, final_check=check, final_base=pose_dict(arrival.base))
        return SUCCEEDED, (f'arm commanded (tool within {1e3 * check.position_error_m:.2f} mm'
                           f' / {math.degrees(check.orientation_error_rad):.2f} deg)')

    def attempt_plan(self, T: np.ndarray, answer: ProposeAnswer
                     ) -> list[tuple[BasePose, np.ndarray | None]]:
        """Return the stances to try, in rank order (at most ``max_attempts``), with their ``q``.

        A stance's whole-body ``q`` comes from ``/propose_stance/candidates`` when its
        base matches the answer's pose (1 mm, 0.01 rad); otherwise the navigator finds the
        exact stance at that base pose itself (:meth:`ArrivalPlanner.arm_of_stance`;
        None when there is none).
        """
        out = []
        for i, stance in enumerate(answer.stances[:self.config.max_attempts]):
            q = answer.arms[i] if i < len(answer.arms) else None
            if q is not None:
                q = np.asarray(q, dtype=float)
                same = (q.shape == (3 + len(self.arm_joints),)
                        and math.hypot(q[0] - stance.x, q[1] - stance.y) <= 1e-3
                        and abs(math.remainder(q[2] - stance.yaw, 2 * math.pi)) <= 1e-2)
                q = q if same else None
            if q is None:
                q = self.planner.arm_of_stance(T, stance)
            if q is not None:
                q = np.concatenate([[stance.x, stance.y, stance.yaw], q[3:]])
            out.append((stance, q))
        return out

    @staticmethod
    def failure(attempts: list[dict]) -> tuple[int, str]:
        """Return the code and message after every stance failed.

        ``NAV2_FAILED`` when Nav2 failed for every stance it was given, else
        ``OUT_OF_REACH`` (a stance was reached but the arm could not reach the grasp, or
        no stance could be tried); the message lists each attempt.
        """
        parts = []
        for a in attempts:
            out = a.get('outcome', '')
            if out == 'nav2_failed':
                nav = a['nav2']
                detail = f"Nav2 {nav['status']}"
                if nav['error_code'] or nav['error_msg']:
                    detail += f" (code {nav['error_code']}: {nav['error_msg']})"
            elif out == 'out_of_reach':
                check = a.get('arm_check') or {}
                detail = (f"reached, out of reach after {len(a.get('corrections', []))} "
                          f"correction(s): {check.get('reason', '')}")
            else:
                detail = a.get('reason', out)
            parts.append(f"#{a['rank']} {detail}")
        tried = [a for a in attempts if a.get('outcome') != 'skipped']
        if tried and all(a.get('outcome') == 'nav2_failed' for a in tried):
            return NAV2_FAILED, f'Nav2 failed for every stance ({len(tried)}): ' + '; '.join(
                parts)
        return OUT_OF_REACH, 'arrived but out of reach: ' + '; '.join(parts)

    # ---------------------------------------------------------------- arrival
    def arrive(self, robot: NavigatorRobot, T: np.ndarray, stance_q: np.ndarray,
               landed: BasePose) -> Arrival:
        """Solve the arm from the landed base; correct the base while that fails (bounded).

        Args:
            robot: the ROS glue (or a simulation).
            T: ``(4, 4)`` the grasp in the target frame, as the stance serves it
                (:meth:`ArrivalPlanner.served_target`).
            stance_q: ``(nq,)`` the stance Nav2 was sent to (exact).
            landed: the base as read from TF after Nav2 stopped.

        Returns:
            An :class:`Arrival`.
        """
        cfg = self.config.arrival
        check = self.planner.check(T, landed, stance_q[3:])
        arrival = Arrival('reached' if check.ok else 'out_of_reach', check, landed)
        base, seed = landed, np.asarray(stance_q, dtype=float)
        while not check.ok and len(arrival.corrections) < cfg.max_corrections:
            target = self.planner.correction_target(T, base, seed)
            entry = self.correction_entry(target, check)
            arrival.corrections.append(entry)
            if target.distance_m > cfg.max_distance_m:
                entry['motion'] = 'not attempted: farther than arrival.max_distance_m'
                break
            motion = self.drive(robot, target.base)
            arrival.travelled_m += motion.travelled_m
            entry.update(motion=motion.status, travelled_m=motion.travelled_m,
                         duration_s=motion.duration_s, stopped_at=pose_dict(motion.base))
            if motion.status in ('canceled', 'shutdown', 'tf_missing'):
                arrival.status, arrival.base = motion.status, motion.base
                return arrival
            base, seed = motion.base, target.q
            check = self.planner.check(T, base, seed[3:])
            entry['arm_check'] = check.as_dict()
            arrival.check, arrival.base = check, base
            arrival.status = 'reached' if check.ok else 'out_of_reach'
        return arrival

    @staticmethod
    def correction_entry(target: CorrectionTarget, before: ArmCheck) -> dict:
        """Return the report entry of a correction, before the motion."""
        return {'target': pose_dict(target.base), 'target_source': target.source,
                'distance_m': target.distance_m, 'yaw_deg': math.degrees(target.yaw_rad),
                'before': {'position_error_m': before.position_error_m,
                           'orientation_error_deg': math.degrees(
                               before.orientation_error_rad)}}

    def drive(self, robot: NavigatorRobot, target: BasePose) -> Motion:
        """Move the base to ``target`` in closed loop on TF (:func:`correction_command`).

        Every period: read the base, compute the bounded twist, send it, relay feedback.
        The base is stopped (a zero twist) whenever the motion ends: arrived, timed out,
        too far, canceled, TF lost or shutting down; then, after ``settle_s``, the pose is
        read once more. ``Motion.travelled_m`` is the displacement from the start.
        """
        cfg = self.config
        period = 1.0 / cfg.correction_rate_hz
        t0 = robot.now()
        start = last = None
        status = 'moving'
        while status == 'moving':
            if robot.cancel_requested():
                status = 'canceled'
                break
            pose = robot.base_pose()
            if pose is None:
                status = 'tf_missing'
                break
            start = start or pose
            last = pose
            moved = math.hypot(pose.x - start.x, pose.y - start.y)
            step = correction_command(pose, target, robot.now() - t0, moved, cfg.arrival)
            robot.send_twist(step.vx, step.vy, step.wz)
            robot.feedback(pose, step.error_xy_m)
            if step.finished:
                status = step.status
            elif not robot.sleep(period):
                status = 'shutdown'
        robot.send_twist(0.0, 0.0, 0.0)
        duration = robot.now() - t0
        if status in ('arrived', 'timeout', 'too_far'):  # read where the base stopped
            final = robot.base_pose() if robot.sleep(cfg.settle_s) else False
            if final is None or final is False:
                status = 'tf_missing' if final is None else 'shutdown'
            else:
                last = final
        moved = 0.0 if start is None else math.hypot(last.x - start.x, last.y - start.y)
        return Motion(status, last, moved, duration)
