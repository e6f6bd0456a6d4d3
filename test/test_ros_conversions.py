"""The stance server's request handling as plain functions, tested without ROS."""

import json
import math
import threading

import numpy as np
import pytest
from reachability_ros.config_io import load_stance_config
from reachability_ros.core.config import ProposalConfig
from reachability_ros.core.errors import InvalidRequest
from reachability_ros.core.geometry import quat_to_matrix
from reachability_ros.core.pipeline import validate_grasp
from reachability_ros.core.report import result_to_dict
from reachability_ros.core.types import BasePose, Candidate, Grasp, ProposalResult
from reachability_ros.ros import conversions as conv

JOINTS = ('base_x', 'base_y', 'base_yaw', 'arm_shoulder_pan', 'arm_shoulder_lift',
          'arm_elbow_flex', 'arm_wrist_flex', 'arm_wrist_roll')
SIDE_GRASP_Q = (0.0, 0.7071068, 0.0, 0.7071068)  # the README's example: tool +z along +x


def make_result(n_candidates=3, ok=True):
    """Return a hand-made ProposalResult: candidates best first, 9 raw samples, 4 outcomes."""
    rng = np.random.default_rng(7)
    cands = []
    for i in range(n_candidates):
        q = np.concatenate([[0.5 + 0.1 * i, -0.2 * i, 0.3 * i - 0.4], rng.normal(size=5)])
        cands.append(Candidate(q, 3.0 - i, {'visibility': 0.1 * i}, {'visible': True}))
    samples = rng.normal(size=(9, 8))
    samples[8, 0] = np.nan  # a non-finite proposal is not drawn
    outcomes = np.array(['kept', 'kept', 'unreachable', 'unreachable', 'unreachable',
                         'not_visible', 'occluded', 'occluded', 'kept'])
    return ProposalResult(ok, '' if ok else 'unreachable: of 9 proposals 3 unreachable',
                          cands if ok else [], JOINTS, {'proposed': 9}, {'total': 1.0},
                          'test', samples, outcomes, Grasp((1.0, 0.5, 0.1), SIDE_GRASP_Q, 'map'))


def context(sequence=1):
    return conv.ReportContext('map', (12, 345), 'odom', 0.25, sequence)


class FakeProposer:
    """Record calls; answer with make_result() or raise what the core would."""

    sampler_name = 'fake'

    class robot:  # noqa: N801
        joint_names = JOINTS

    def __init__(self, result=None):
        self.calls = []
        self.result = result

    def propose(self, grasp, base, rng):
        validate_grasp(grasp, ProposalConfig())
        self.calls.append((grasp, base))
        return self.result if self.result is not None else make_result()


# ------------------------------------------------------------------ poses and frames
def test_the_readme_side_grasp_points_the_tool_along_plus_x():
    R = quat_to_matrix(np.array(SIDE_GRASP_Q))
    assert np.allclose(R[:, 2], [1.0, 0.0, 0.0], atol=1e-6)


def test_normalize_frame_id():
    assert conv.normalize_frame_id('/map') == 'map'
    assert conv.normalize_frame_id(' odom ') == 'odom'
    assert conv.normalize_frame_id('') == ''
    with pytest.raises(InvalidRequest):
        conv.normalize_frame_id(None)


def test_plan_poses_are_the_ranked_bases_as_plain_floats():
    result = make_result()
    poses = conv.plan_poses(result)
    assert len(poses) == len(result.candidates)
    for pose, cand in zip(poses, result.candidates):
        assert (pose.x, pose.y, pose.yaw) == tuple(float(v) for v in cand.q[:3])
        assert all(type(v) is float for v in (pose.x, pose.y, pose.yaw))
    assert conv.plan_poses(None) == []
    assert conv.plan_poses(make_result(ok=False)) == []


# ------------------------------------------------------------------ raw goal and start
@pytest.mark.parametrize('position, orientation, match', [
    ((float('nan'), 0.5, 0.1), SIDE_GRASP_Q, 'position has non-finite'),
    ((1.0, float('inf'), 0.1), SIDE_GRASP_Q, 'position has non-finite'),
    ((1.0, 0.5, 0.1), (float('nan'), 0.0, 0.0, 1.0), 'orientation has non-finite'),
    ((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 0.0), 'unit quaternion'),  # tf2 would make it identity
    ((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 2.0), 'norm is 2'),  # tf2 would normalize it
    ((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 1.01), 'unit quaternion'),
    ((1.0, 0.5), SIDE_GRASP_Q, '3 position and 4 quaternion'),
    ((1.0, 0.5, 0.1), (0.0, 0.0, 1.0), '3 position and 4 quaternion'),
    ((1.0, 'a', 0.1), SIDE_GRASP_Q, 'must be numbers'),
])
def test_check_raw_goal_refuses_what_tf2_would_hide(position, orientation, match):
    with pytest.raises(InvalidRequest, match=match):
        conv.check_raw_goal(position, orientation, 1e-3)


def test_check_raw_goal_uses_the_cores_norm_rule_and_leaves_the_height_to_the_core():
    conv.check_raw_goal((1.0, 0.5, 0.1), SIDE_GRASP_Q, 1e-3)
    conv.check_raw_goal((1.0, 0.5, 25.0), (0.0, 0.0, 0.0, 1.0), 1e-3)  # height: not here
    conv.check_raw_goal((1.0, 0.5, -3.0), (0.0, 0.0, 0.0, 1.0005), 1e-3)
    with pytest.raises(InvalidRequest):
        conv.check_raw_goal((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 1.0005), 1e-4)
    conv.check_raw_goal((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 1.2), 0.5)
    cfg = ProposalConfig()
    rng = np.random.default_rng(11)
    for _ in range(200):
        q = rng.normal(size=4)
        q *= rng.uniform(0.998, 1.002) / np.linalg.norm(q)
        try:
            validate_grasp(Grasp((1.0, 0.5, 0.1), tuple(q), 'map'), cfg)
            core_ok = True
        except InvalidRequest:
            core_ok = False
        try:
            conv.check_raw_goal((1.0, 0.5, 0.1), q, cfg.quaternion_tolerance)
            raw_ok = True
        except InvalidRequest:
            raw_ok = False
        assert raw_ok == core_ok


def test_check_raw_start():
    conv.check_raw_start('', (float('nan'),) * 3, (0.0, 0.0, 0.0, 0.0))  # unknown start
    conv.check_raw_start('odom', (1.0, 2.0, float('nan')), (0.0, 0.0, 0.0, 3.0))  # z unused
    with pytest.raises(InvalidRequest, match='non-finite'):
        conv.check_raw_start('odom', (float('nan'), 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
    with pytest.raises(InvalidRequest, match='no orientation'):
        conv.check_raw_start('odom', (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0))
    with pytest.raises(InvalidRequest, match='non-finite'):
        conv.check_raw_start('odom', (0.0, 0.0, 0.0), (0.0, 0.0, float('nan'), 1.0))
    with pytest.raises(InvalidRequest, match='must be numbers'):
        conv.check_raw_start('odom', (0.0, None, 0.0), (0.0, 0.0, 0.0, 1.0))


# ------------------------------------------------------------------ TF decisions
def test_retry_with_latest_only_for_extrapolation_of_a_real_stamp():
    assert conv.retry_with_latest(True, 1700000000, 5)
    assert conv.retry_with_latest(True, 0, 1)
    assert not conv.retry_with_latest(True, 0, 0)  # already the latest: nothing to retry
    assert not conv.retry_with_latest(False, 1700000000, 0)  # unknown frame: same at stamp 0
    assert conv.is_stamp_zero(0, 0) and not conv.is_stamp_zero(1, 0)
    note = conv.latest_transform_note('goal', 'odom', 'map', 12, 5,
                                      'Lookup would require\nextrapolation into the past')
    assert 'LATEST' in note and '12.000000005' in note and "'odom'" in note
    assert '\n' not in note and note.startswith('goal ')


def _resolver(namespace, remaps):
    """Mimic rcl's name resolution: expand against the namespace, then apply remapping rules."""
    def expand(name):
        return name if name.startswith('/') else f"{namespace.rstrip('/')}/{name}"

    def resolve(topic):
        rules = {expand(src): expand(dst) for src, dst in remaps}
        return rules.get(expand(topic), expand(topic))
    return resolve


@pytest.mark.parametrize('namespace, remaps, expected', [
    ('/', [], []),
    ('/robot1', [], []),  # a namespace alone does not move tf2's absolute topics
    ('/robot1', [('/tf', 'tf'), ('/tf_static', 'tf_static')],  # Nav2's multi-robot remapping
     ['--ros-args', '-r', '/tf:=/robot1/tf', '-r', '/tf_static:=/robot1/tf_static']),
    ('/', [('/tf', '/sim/tf'), ('/scan', '/front/scan')], ['--ros-args', '-r', '/tf:=/sim/tf']),
])
def test_the_tf_node_gets_the_servers_resolution_of_the_tf_topics(namespace, remaps, expected):
    assert conv.tf_remap_arguments(_resolver(namespace, remaps)) == expected


def test_transform_failure_reason_names_frames_and_the_exception():
    class LookupException(Exception):
        pass
    r = conv.transform_failure_reason('odom', 'map', 0.3, LookupException('no\nframe'))
    assert r.startswith("bad request: cannot transform the goal from 'odom' to 'map'")
    assert '0.3 s' in r and 'LookupException: no frame' in r and '\n' not in r
    r = conv.transform_failure_reason('odom', 'map', 1.0, np.linalg.LinAlgError('Singular'))
    assert 'LinAlgError: Singular' in r and 'internal' not in r


# ------------------------------------------------------------------ answers
def test_answer_request_passes_the_grasp_and_start_and_keeps_the_result():
    p = FakeProposer()
    goal = conv.PoseInput('map', (1.0, 0.5, 0.1), SIDE_GRASP_Q)
    a = conv.answer_request(p, goal, BasePose(0.2, 0.1, 0.5), lock=threading.Lock())
    assert a.ok and a.reason == '' and a.sampler == 'fake'
    grasp, base = p.calls[0]
    assert grasp == Grasp((1.0, 0.5, 0.1), SIDE_GRASP_Q, 'map')
    assert base == BasePose(0.2, 0.1, 0.5)
    assert a.joint_names == list(JOINTS) and a.start == BasePose(0.2, 0.1, 0.5)
    assert a.request == {'position': [1.0, 0.5, 0.1], 'orientation': list(SIDE_GRASP_Q),
                         'frame_id': 'map'}
    assert [pose.x for pose in conv.plan_poses(a.result)] == [0.5, 0.6, 0.7]
    a = conv.answer_request(p, goal)
    assert a.ok and p.calls[-1][1] is None


def test_a_result_without_stances_is_a_failed_answer_with_the_cores_reason():
    a = conv.answer_request(FakeProposer(make_result(ok=False)),
                            conv.PoseInput('map', (1.0, 0.5, 0.1), SIDE_GRASP_Q))
    assert not a.ok and a.reason.startswith('unreachable: of 9 proposals')
    assert a.result is not None and conv.plan_poses(a.result) == []


@pytest.mark.parametrize('position, orientation, match', [
    ((float('nan'), 0.5, 0.1), SIDE_GRASP_Q, 'non-finite'),
    ((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 0.0), 'unit quaternion'),
    ((1.0, 0.5, 50.0), SIDE_GRASP_Q, 'height'),
    ((1.0, 0.5), SIDE_GRASP_Q, '3 position and 4 quaternion'),
])
def test_bad_requests_become_failed_answers(position, orientation, match):
    p = FakeProposer()
    a = conv.answer_request(p, conv.PoseInput('map', position, orientation))
    assert not a.ok and a.result is None and a.reason.startswith('bad request:')
    assert match in a.reason and '\n' not in a.reason
    assert a.joint_names == list(JOINTS)
    assert conv.trajectory_layout(a) == (list(JOINTS), [])


def test_trajectory_layout_matches_the_plan_poses():
    a = conv.answer_request(FakeProposer(), conv.PoseInput('map', (1.0, 0.5, 0.1),
                                                           SIDE_GRASP_Q))
    names, rows = conv.trajectory_layout(a)
    assert names == list(JOINTS) and len(rows) == 3 and all(len(r) == 8 for r in rows)
    for row, pose, cand in zip(rows, conv.plan_poses(a.result), a.result.candidates):
        assert row == [float(v) for v in cand.q]
        assert all(type(v) is float for v in row)
        assert row[:3] == [pose.x, pose.y, pose.yaw]
    a.result.candidates[0].q = a.result.candidates[0].q[:5]
    with pytest.raises(ValueError, match='5 values for 8 joint names'):
        conv.trajectory_layout(a)


def test_failure_answer_keeps_the_joint_layout_and_one_line():
    a = conv.failure_answer('bad request:\n x', JOINTS, {'frame_id': 'odom'}, 'flow', ['n'])
    assert not a.ok and a.result is None and a.reason == 'bad request: x'
    assert a.joint_names == list(JOINTS) and a.notes == ['n'] and a.sampler == 'flow'
    assert conv.trajectory_layout(a) == (list(JOINTS), [])


# ------------------------------------------------------------------ reports
def test_json_safe_gives_strict_json():
    obj = {'a': float('nan'), 'b': [np.float32(1.5), np.int64(2), float('inf')],
           'c': np.array([1.0, -np.inf]), 'd': (True, None, 'x'), 3: BasePose(0, 0, 0)}
    back = json.loads(json.dumps(conv.json_safe(obj), allow_nan=False))
    assert back['a'] == 'nan' and back['b'] == [1.5, 2, 'inf'] and back['c'] == [1.0, '-inf']
    assert back['d'] == [True, None, 'x'] and isinstance(back['3'], str)


def test_the_report_of_an_answer_is_the_core_schema_plus_the_request_fields():
    a = conv.answer_request(FakeProposer(), conv.PoseInput('map', (1.0, 0.5, 0.1),
                                                           SIDE_GRASP_Q))
    a.notes = ['a note']
    a.start_request = {'position': [0.2, 0.1, 0.0], 'orientation': [0.0, 0.0, 0.0, 1.0],
                       'frame_id': 'map'}
    report = conv.build_report(a, context(7))
    core = result_to_dict(a.result)
    for key in ('ok', 'reason', 'sampler', 'request', 'candidates', 'funnel', 'timing_ms'):
        assert report[key] == core[key]
    assert report['header'] == {'frame_id': 'map', 'stamp': {'sec': 12, 'nanosec': 345}}
    assert report['target_frame'] == 'map' and report['goal_frame'] == 'odom'
    assert report['tolerance'] == 0.25 and report['sequence'] == 7
    assert report['notes'] == ['a note'] and report['goal_tf_latest'] is False
    assert report['start'] == a.start_request
    bases = [c['base'] for c in report['candidates']]
    assert bases == [[p.x, p.y, p.yaw] for p in conv.plan_poses(a.result)]
    json.dumps(conv.json_safe(report), allow_nan=False)


def test_the_report_of_a_failure_has_the_same_keys():
    ok = conv.build_report(conv.answer_request(
        FakeProposer(), conv.PoseInput('map', (1.0, 0.5, 0.1), SIDE_GRASP_Q)), context())
    bad = conv.build_report(conv.failure_answer('bad request: x', JOINTS, {'frame_id': 'o'},
                                                'fake'), context())
    assert set(bad) == set(ok)
    assert bad['ok'] is False and bad['reason'] == 'bad request: x'
    assert bad['candidates'] == [] and bad['request'] == {'frame_id': 'o'}
    assert bad['start'] is None
    unreachable = conv.build_report(conv.answer_request(
        FakeProposer(make_result(ok=False)),
        conv.PoseInput('map', (1.0, 0.5, 0.1), SIDE_GRASP_Q)), context())
    assert unreachable['ok'] is False and unreachable['reason'].startswith('unreachable')
    assert unreachable['funnel'] == {'proposed': 9}


# ------------------------------------------------------------------ the real core
@pytest.fixture(scope='module')
def proposer():
    from reachability_ros.core.pipeline import StanceProposer
    return StanceProposer(load_stance_config())


def test_answer_request_with_the_real_core(proposer):
    goal = conv.PoseInput('map', (1.0, 0.5, 0.1), SIDE_GRASP_Q)
    a = conv.answer_request(proposer, goal, None, np.random.default_rng(0),
                            lock=threading.Lock())
    assert a.ok, a.reason
    names, rows = conv.trajectory_layout(a)
    T = proposer.robot.fk_pinocchio(np.array(rows), proposer.robot.config.tool_frame)
    assert np.allclose(T[:, :3, 3], [1.0, 0.5, 0.1], atol=1e-3)  # Pinocchio FK reaches it
    for pose, q in zip(conv.plan_poses(a.result), rows):
        assert (pose.x, pose.y, pose.yaw) == tuple(q[:3])
        assert math.hypot(pose.x - 1.0, pose.y - 0.5) < 0.8
    report = conv.build_report(a, context())
    assert json.loads(json.dumps(conv.json_safe(report)))['request']['frame_id'] == 'map'
    again = conv.answer_request(proposer, goal, None, np.random.default_rng(0))
    assert np.allclose(np.array(rows), np.array(conv.trajectory_layout(again)[1]))


def test_answer_request_is_safe_under_concurrent_requests(proposer):
    lock = threading.Lock()
    goals = [conv.PoseInput('map', (1.0 + 0.1 * i, 0.5, 0.1), SIDE_GRASP_Q) for i in range(4)]
    out = [None] * 4

    def run(i):
        out[i] = conv.answer_request(proposer, goals[i], None, np.random.default_rng(0),
                                     lock=lock)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        ref = conv.answer_request(proposer, goals[i], None, np.random.default_rng(0))
        assert out[i].ok
        assert np.allclose(np.array(conv.trajectory_layout(out[i])[1]),
                           np.array(conv.trajectory_layout(ref)[1]))
