"""Grasp sets and grasp freedom of the stance server as plain functions, tested without ROS."""

from types import SimpleNamespace

import numpy as np
import pytest
from reachability_ros.core.config import ProposalConfig, StanceConfig
from reachability_ros.core.errors import ConfigError, InvalidRequest
from reachability_ros.core.freedom import MAX_ALTERNATIVES
from reachability_ros.core.pipeline import StanceProposer
from reachability_ros.core.world import Boxes, OccupancyGrid
from reachability_ros.ros import grasp_set_input as gsi
from reachability_ros.ros import world_input as wi
from reachability_ros.ros.conversions import build_report, PoseInput, ReportContext

TOP_DOWN = ((1.0, 0.5, 0.05), (1.0, 0.0, 0.0, 0.0))
SIDE = ((1.0, 0.5, 0.12), (0.0, 0.7071068, 0.0, 0.7071068))
HIGH = ((1.0, 0.5, 0.9), (0.0, 0.0, 0.0, 1.0))


def pose_array(poses, frame='map', stamp=(3, 4)):
    """Return a PoseArray-shaped object (attribute access only, as the node reads one)."""
    def pose(p, o):
        return SimpleNamespace(position=SimpleNamespace(x=p[0], y=p[1], z=p[2]),
                               orientation=SimpleNamespace(x=o[0], y=o[1], z=o[2], w=o[3]))
    when = SimpleNamespace(sec=stamp[0], nanosec=stamp[1])
    header = SimpleNamespace(frame_id=frame, stamp=when)
    return SimpleNamespace(header=header, poses=[pose(p, o) for p, o in poses])


@pytest.fixture(scope='module')
def proposer(robot):
    return StanceProposer(StanceConfig(proposal=ProposalConfig(sampler='grid', model_path='',
                                                               n_samples=256)), robot)


def same_frame(msg, target='map'):
    """Return the node's transform of a set already in the target frame."""
    def transform(i, notes):
        p = msg.poses[i]
        return PoseInput(target, (p.position.x, p.position.y, p.position.z),
                         (p.orientation.x, p.orientation.y, p.orientation.z,
                          p.orientation.w))
    return transform


def test_freedom_parameters_are_two_run_time_booleans():
    specs = gsi.freedom_parameter_specs()
    assert [s.name for s in specs] == list(gsi.FREEDOM_PARAMETERS)
    assert all(s.kind == 'bool' and s.default is False and not s.read_only for s in specs)
    f = gsi.freedom_from_parameters({'grasp_free_roll': True, 'proposal.top_k': 3})
    assert f == gsi.Freedom(symmetric=False, free_roll=True)
    assert gsi.freedom_from_parameters({'grasp_symmetric': True}, f) == gsi.Freedom(True, True)
    with pytest.raises(ConfigError, match='grasp_symmetric'):
        gsi.freedom_from_parameters({'grasp_symmetric': 'yes'})


def test_a_grasp_set_is_ranked_across_its_poses(proposer):
    msg = pose_array([HIGH, SIDE, TOP_DOWN])
    answer, frame = gsi.answer_grasp_set_message(msg, same_frame(msg), proposer,
                                                 proposer.config.proposal, gsi.Freedom(),
                                                 'map', 1.0)
    assert frame == 'map' and answer.ok, answer.reason
    indices = {c.grasp_index for c in answer.result.candidates}
    assert indices and indices <= {1, 2}
    report = build_report(answer, ReportContext('map', (5, 6), 'map', 0.0, 7))
    assert report['request']['position'] == list(HIGH[0])
    assert [a['position'] for a in report['request']['alternatives']] == [list(SIDE[0]),
                                                                          list(TOP_DOWN[0])]
    assert report['notes'][-1].startswith('grasp set of 3 poses from /propose_stance/grasp_set')
    for c in report['candidates']:
        assert c['tool_pose']['position'] == list((HIGH, SIDE, TOP_DOWN)[c['grasp_index']][0])


def test_the_default_freedom_applies_to_every_pose(proposer):
    msg = pose_array([SIDE, TOP_DOWN])
    answer, _ = gsi.answer_grasp_set_message(msg, same_frame(msg), proposer,
                                             proposer.config.proposal,
                                             gsi.Freedom(free_roll=True), 'map', 1.0)
    assert answer.ok
    grasps = (answer.result.grasp, *answer.result.alternatives)
    assert all(g.free_roll for g in grasps)


@pytest.mark.parametrize('poses, words', [
    ([], 'the grasp set has no pose'),
    ([SIDE] * (MAX_ALTERNATIVES + 2), f'at most {MAX_ALTERNATIVES + 1}'),
    ([SIDE] * 37 + [((1.0, 0.5, 0.1), (0.0, 0.0, 0.0, 0.0))],
     'poses[37] (grasp_index 37): goal orientation must be a unit quaternion'),
    ([SIDE, ((float('nan'), 0.5, 0.1), (0.0, 0.0, 0.0, 1.0))],
     'poses[1] (grasp_index 1): goal position has non-finite values'),
])
def test_bad_sets_are_refused_before_tf_naming_the_pose(proposer, poses, words):
    msg = pose_array(poses)
    calls = []
    answer, _ = gsi.answer_grasp_set_message(msg, lambda i, n: calls.append(i), proposer,
                                             proposer.config.proposal, gsi.Freedom(), 'map',
                                             1.0)
    assert not answer.ok and answer.reason.startswith('bad request') and words in answer.reason
    assert calls == []  # refused before any transform
    assert answer.joint_names == list(proposer.robot.joint_names)


def test_an_empty_frame_and_a_tf_failure_are_bad_requests(proposer):
    msg = pose_array([SIDE, TOP_DOWN], frame='')
    answer, _ = gsi.answer_grasp_set_message(msg, same_frame(msg), proposer,
                                             proposer.config.proposal, gsi.Freedom(), 'map',
                                             1.0)
    assert not answer.ok and 'header.frame_id is empty' in answer.reason

    def broken(i, notes):
        if i == 1:
            raise RuntimeError('no transform from odom')
        notes.append('goal transformed with the LATEST transform')
        return same_frame(msg)(i, notes)
    msg = pose_array([SIDE, TOP_DOWN], frame='odom')
    answer, frame = gsi.answer_grasp_set_message(msg, broken, proposer,
                                                 proposer.config.proposal, gsi.Freedom(),
                                                 'map', 0.5)
    assert frame == 'odom' and not answer.ok
    assert "cannot transform grasp set poses[1] (grasp_index 1) from 'odom'" in answer.reason
    assert answer.notes == ['goal transformed with the LATEST transform']


def test_a_bug_is_an_internal_error_not_an_exception(proposer):
    class Broken:
        sampler_name = 'broken'
        robot = proposer.robot

        def propose(self, *a, **k):
            raise ZeroDivisionError('oops')
    msg = pose_array([SIDE])
    answer, _ = gsi.answer_grasp_set_message(msg, same_frame(msg), Broken(),
                                             proposer.config.proposal, gsi.Freedom(), 'map',
                                             1.0)
    assert not answer.ok and answer.reason.startswith('internal error: ZeroDivisionError')


def test_notes_of_a_set_keep_one_tf_note_for_all_poses(proposer):
    poses = [PoseInput('map', p, o) for p, o in (SIDE, TOP_DOWN)]
    answer = gsi.answer_grasp_set(proposer, poses, notes=['latest', 'latest'],
                                  rng=np.random.default_rng(0))
    assert answer.notes == ['latest', gsi.set_note(2)]
    with pytest.raises(InvalidRequest):
        gsi.check_grasp_set(gsi.GraspSetInput('map', (0, 0), []), 1e-3)


def test_a_grasp_set_keeps_off_the_map_and_the_boxes(proposer):
    """A set is checked against the same world as a /propose_stance goal."""
    wall_x = 1.25  # the map is blocked for x >= wall_x
    values = np.zeros((80, 80), np.int8)
    values[:, int(round((wall_x + 1.0) / 0.05)):] = 100
    grid = OccupancyGrid(values, 0.05, (-1.0, -1.5, 0.0), 'map', 1.0)
    boxes = Boxes.from_records([{'center': [0.6, 0.9, 0.1], 'size': [0.2, 0.2, 0.2]}])
    scene = wi.WorldAnswer(proposer.scene.prepare(grid, boxes), '', ('map: a test wall',))
    msg = pose_array([TOP_DOWN, SIDE])
    limit = wall_x - proposer.scene.footprint_outer_m - proposer.config.world.footprint_padding_m
    free, _ = gsi.answer_grasp_set_message(msg, same_frame(msg), proposer,
                                           proposer.config.proposal, gsi.Freedom(), 'map', 1.0)
    assert max(c.q[0] for c in free.result.candidates) > limit  # the wall matters here
    answer, _ = gsi.answer_grasp_set_message(msg, same_frame(msg), proposer,
                                             proposer.config.proposal, gsi.Freedom(), 'map',
                                             1.0, world=lambda: scene)
    assert answer.ok, answer.reason
    assert all(c.q[0] <= limit + 1e-9 for c in answer.result.candidates)
    assert all(np.isfinite(c.metrics['clearance_m']) for c in answer.result.candidates)
    assert answer.world_boxes is boxes and answer.footprint is not None  # drawn in RViz
    assert answer.notes == ['map: a test wall', gsi.set_note(2)]
    refused = wi.WorldAnswer(None, 'no map: no map received yet on /map (map_required is '
                                   'true)', ())
    answer, _ = gsi.answer_grasp_set_message(msg, same_frame(msg), proposer,
                                             proposer.config.proposal, gsi.Freedom(), 'map',
                                             1.0, world=lambda: refused)
    assert not answer.ok and answer.reason == refused.failure and answer.result is None
