"""The nodes' ROS glue without ROS: stand-ins for the ROS packages (test/ros_support.py).

Where ROS 2 is installed the nodes run for real (test_ros_node.py, test_ros_navigator.py,
test_launch_*.py) and these tests skip. Without it they check what the glue itself decides:

- every module of ``reachability_ros/ros`` imports (names, import order, no cycle);
- a stamped pose is transformed at its stamp, and with the latest transform only when
  the stamp has left the TF buffer (the stance server's note, the navigator's grasp; a
  grasp set's stamp is tried once, not once per pose);
- the navigator's Nav2 goal: a cancel ends the wait for Nav2 to accept it, the base is
  stopped, and a goal Nav2 accepts after the navigator stopped waiting is canceled.
"""

import threading
import time
from types import SimpleNamespace as Plain

import numpy as np
import pytest
from ros_support import have, REPO, ros_stand_ins

pytestmark = pytest.mark.skipif(have('rclpy'), reason='ROS 2 is installed: the nodes are '
                                                      'tested for real (test_ros_node.py)')

ROS_DIR = REPO / 'reachability_ros' / 'ros'


class Extrapolation(Exception):
    """Stands in for ``tf2_ros.ExtrapolationException``."""


class Header:

    def __init__(self, frame='', sec=0, nanosec=0):
        self.frame_id, self.stamp = frame, Plain(sec=sec, nanosec=nanosec)


class Pose:
    """A ``PoseStamped`` stand-in."""

    def __init__(self, frame='', sec=0, nanosec=0):
        self.header = Header(frame, sec, nanosec)
        self.pose = Plain(position=Plain(x=1.0, y=2.0, z=0.1),
                          orientation=Plain(x=0.0, y=0.0, z=0.0, w=1.0))


class Tf:
    """A TF listener whose buffer holds only the last 10 s: a real stamp extrapolates."""

    def __init__(self):
        self.stamps = []

    def transform(self, stamped, target, timeout_s, should_stop):
        stamp = stamped.header.stamp
        self.stamps.append((stamped.header.frame_id, stamp.sec, stamp.nanosec))
        if stamp.sec or stamp.nanosec:
            raise Extrapolation('Lookup would require extrapolation into the past')
        out = Pose(target)
        out.pose = stamped.pose
        return out


@pytest.fixture
def ros():
    """Import the ROS modules against the stand-ins; return them."""
    with ros_stand_ins():
        from reachability_ros.ros import grasp_set_node, stance_navigator, stance_node, \
            tf_listener
        tf_listener.tf2_ros.ExtrapolationException = Extrapolation
        tf_listener.PoseStamped = Pose
        tf_listener.Time = lambda: Plain(to_msg=lambda: Plain(sec=0, nanosec=0))
        yield Plain(node=stance_node, navigator=stance_navigator, tf=tf_listener,
                    grasp_set=grasp_set_node)


def test_every_ros_module_imports():
    import importlib
    with ros_stand_ins():
        for path in sorted(ROS_DIR.glob('*.py')):
            importlib.import_module('reachability_ros.ros.' + path.stem)


def test_a_pose_is_transformed_at_its_stamp_else_with_the_latest_transform(ros):
    tf = Tf()
    out, fallback = ros.tf.transform_pose(tf, Pose('/odom', 100, 7), 'odom', 'map', 1.0,
                                          lambda: False)
    assert out.header.frame_id == 'map' and isinstance(fallback, Extrapolation)
    assert tf.stamps == [('odom', 100, 7), ('odom', 0, 0)]  # at its stamp, then the latest
    tf = Tf()

    def singular(stamped, *args):  # what tf2_geometry_msgs raises on a NaN pose
        tf.stamps.append(stamped.header.stamp)
        raise np.linalg.LinAlgError('Singular matrix')
    tf.transform = singular
    with pytest.raises(np.linalg.LinAlgError):  # any other failure is raised as it is
        ros.tf.transform_pose(tf, Pose('odom', 100, 7), 'odom', 'map', 1.0, lambda: False)
    assert len(tf.stamps) == 1

    def always(stamped, *args):
        tf.stamps.append(stamped.header.stamp)
        raise Extrapolation('Lookup would require extrapolation into the future')
    tf.stamps, tf.transform = [], always
    with pytest.raises(Extrapolation):  # a zero stamp (the latest) is not retried
        ros.tf.transform_pose(tf, Pose('odom', 0, 0), 'odom', 'map', 1.0, lambda: False)
    assert len(tf.stamps) == 1


def test_the_server_notes_the_latest_transform_and_skips_tf_in_its_frame(ros):
    server = Plain(_tf=Tf(), _stop=Plain(is_set=lambda: False))
    notes = []
    pose, latest = ros.node.StanceServer._transform_to_target(
        server, Pose('/odom', 100, 7), 'map', 1.0, 'goal', notes)
    assert latest and pose.frame_id == 'map' and pose.position == (1.0, 2.0, 0.1)
    (note,) = notes
    assert 'LATEST' in note and '100.000000007' in note and 'extrapolation' in note
    server._tf.stamps.clear()
    pose, latest = ros.node.StanceServer._transform_to_target(
        server, Pose('map', 100, 7), 'map', 1.0, 'goal', notes)
    assert not latest and server._tf.stamps == [] and len(notes) == 1


def test_a_grasp_set_waits_for_its_stamp_once_then_uses_the_latest_transform(ros):
    from reachability_ros.core.config import StanceConfig
    from reachability_ros.core.types import ProposalResult
    from reachability_ros.ros.grasp_set_input import Freedom
    from reachability_ros.ros.world_input import WorldAnswer
    ros.grasp_set.PoseStamped = lambda header, pose: Plain(header=header, pose=pose)
    ros.grasp_set.Time = lambda: Plain(to_msg=lambda: Plain(sec=0, nanosec=0))
    ros.grasp_set.msgs.header_msg = lambda frame, stamp: Plain(frame_id=frame, stamp=stamp)
    asked = []

    def propose(grasp, start, rng, alternatives=(), **kw):
        asked.append([grasp, *alternatives])
        return ProposalResult(False, 'none here', [], {}, {}, grasp, ['base_x'])

    server = Plain(_tf=Tf(), _stop=Plain(is_set=lambda: False), _lock=threading.Lock(),
                   _compute_lock=threading.Lock(), _target_frame='map', _tf_timeout_s=1.0,
                   _config=StanceConfig(), _freedom=Freedom(), _sequence=0, _camera_input=None,
                   _proposer=Plain(propose=propose, sampler_name='grid', robot=None),
                   _world=Plain(for_request=lambda *a: WorldAnswer(None, '', ())),
                   get_clock=lambda: Plain(now=lambda: Plain(to_msg=lambda: Plain(
                       sec=5, nanosec=0))))
    server._transform_to_target = (
        lambda *a: ros.node.StanceServer._transform_to_target(server, *a))
    stale = Pose('odom', 100, 7)  # a stamp older than the TF buffer
    msg = Plain(header=stale.header, poses=[stale.pose] * 4)
    answer, header, context, _, camera = ros.node.StanceServer._grasp_set_answer(server, msg)
    # at its stamp once; then the latest transform for that pose and for every other one
    assert server._tf.stamps == [('odom', 100, 7)] + [('odom', 0, 0)] * 4
    assert len(asked) == 1 and len(asked[0]) == 4
    assert all(g.frame_id == 'map' for g in asked[0])
    (note,) = [n for n in answer.notes if 'LATEST' in n]
    assert 'grasp set' in note and '100.000000007' in note
    assert answer.reason == 'none here' and context.goal_frame == 'odom'
    # the report's camera entry, as a /propose_stance answer has it (it was None)
    assert camera['source'] == 'config' and camera['hfov_deg'] == pytest.approx(70.0)


class Future:
    """An rclpy future stand-in, completed by the test."""

    def __init__(self):
        self._done, self._result, self._callbacks = False, None, []

    def done(self):
        return self._done

    def result(self):
        return self._result

    def add_done_callback(self, callback):
        if self._done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def finish(self, value):
        self._done, self._result = True, value
        for callback in self._callbacks:
            callback(self)


class Nav2Goal:
    """A ``ClientGoalHandle`` stand-in that counts its cancels."""

    def __init__(self, accepted=True):
        self.accepted, self.cancels = accepted, 0

    def cancel_goal_async(self):
        self.cancels += 1
        return Future()


def _navigator(ros, sent):
    """Return the navigator's state for ``navigate``: Nav2 ready, its goal answer ``sent``."""
    from reachability_ros.ros.navigator_io import NavigatorConfig
    ros.navigator.msgs.plan_pose_stamped = lambda pose, header: pose
    ros.navigator.NavigateToPose.Goal = Plain
    stopped = []
    return stopped, Plain(
        _config=NavigatorConfig.from_flat({'server_timeout_s': 0.5}),
        _stop=Plain(is_set=lambda: False), _target='map', _relay=lambda *a: None,
        _nav2=Plain(server_is_ready=lambda: True,
                    send_goal_async=lambda goal, feedback_callback: sent),
        get_clock=lambda: Plain(now=lambda: Plain(to_msg=lambda: 0)),
        stop_base=lambda: stopped.append(True))


def test_a_cancel_while_nav2_has_not_accepted_ends_the_goal_and_a_late_goal_is_canceled(ros):
    from reachability_ros.core.types import BasePose
    sent = Future()
    stopped, navigator = _navigator(ros, sent)
    goal = Plain(is_cancel_requested=False, request=Plain(behavior_tree=''))
    threading.Timer(0.1, lambda: setattr(goal, 'is_cancel_requested', True)).start()
    t0 = time.monotonic()
    out = ros.navigator.StanceNavigator.navigate(navigator, BasePose(1.0, 0.0, 0.0), goal)
    assert out.status == 'canceled' and time.monotonic() - t0 < 0.4  # not the 0.5 s timeout
    assert stopped == [True]
    late = Nav2Goal()
    sent.finish(late)  # Nav2 accepts after all: the navigator cancels it
    assert late.cancels == 1


def test_nav2_silent_is_a_failed_navigation_and_a_rejected_late_goal_needs_no_cancel(ros):
    from reachability_ros.core.types import BasePose
    sent = Future()
    stopped, navigator = _navigator(ros, sent)
    goal = Plain(is_cancel_requested=False, request=Plain(behavior_tree=''))
    out = ros.navigator.StanceNavigator.navigate(navigator, BasePose(1.0, 0.0, 0.0), goal)
    assert out.status == 'failed' and 'did not answer' in out.error_msg and stopped == []
    rejected = Nav2Goal(accepted=False)
    sent.finish(rejected)
    assert rejected.cancels == 0


def test_the_stand_ins_are_gone_after_the_block():
    import sys
    with ros_stand_ins():
        from reachability_ros.ros import stance_node  # noqa: F401
        assert 'rclpy' in sys.modules
    assert 'rclpy' not in sys.modules and 'reachability_ros.ros.stance_node' not in sys.modules
    import reachability_ros.ros as package
    assert not hasattr(package, 'stance_node')
