"""The stance navigator's decisions (ros/navigation.py) on a simulated LeKiwi, without ROS:
stance order and fallback, when to correct, the arm solved from the landed base, result
codes, cancel, the report. Every arm command is re-checked with Pinocchio FK from the
simulated base's true pose."""

from dataclasses import replace
import json
import math

import numpy as np
import pytest
import yaml

from reachability_ros.core.arrival import ArrivalConfig, ArrivalPlanner
from reachability_ros.core.config import ProposalConfig, RobotConfig, StanceConfig
from reachability_ros.core.errors import ConfigError
from reachability_ros.core.geometry import pose_error
from reachability_ros.core.pipeline import StanceProposer
from reachability_ros.core.types import Grasp
from reachability_ros.evaluation.sim_base import SimulatedRobot
from reachability_ros.ros import navigation as nav
from reachability_ros.ros.navigator_io import (arms_from_candidates, NAVIGATOR_START_UP_PARAMETERS,
                                               navigator_config_update,
                                               navigator_launch_parameters,
                                               navigator_parameter_specs, NavigatorConfig,
                                               ProposeAnswer, report_reason, robot_config)

SIDE_GRASP = Grasp((1.0, 0.5, 0.1), (0.0, 0.7071068, 0.0, 0.7071068), 'map')
HIGH_GRASP = Grasp((1.0, 0.5, 0.8), (0.0, 0.0, 0.0, 1.0), 'map')  # beyond the arm


@pytest.fixture(scope='module')
def proposer(robot):
    return StanceProposer(StanceConfig(proposal=ProposalConfig(sampler='grid', model_path='')),
                          robot=robot)


def navigator(proposer, **arrival):
    cfg = NavigatorConfig.from_dict({'arrival': arrival} if arrival else {})
    planner = ArrivalPlanner(proposer.robot, proposer.visibility, proposer.manifold,
                             cfg.arrival)
    return nav.GraspNavigator(planner, cfg, proposer.robot.config.arm_joints)


def sim(proposer, seed=0, **kw):
    return SimulatedRobot(proposer, np.random.default_rng(seed), **kw)


def true_tool_error(proposer, robot_sim, arm, grasp):
    """Pinocchio FK of the commanded arm from the simulated base's TRUE pose: (mm, deg)."""
    p = robot_sim.pose
    q = np.array([[p.x, p.y, p.yaw, *arm]])
    T = proposer.robot.fk_pinocchio(q, proposer.robot.config.tool_frame)
    dp, dr = pose_error(T, grasp.matrix()[None])
    visible = proposer.visibility.check(q).visible[0]
    return dp[0] * 1e3, math.degrees(dr[0]), visible and proposer.robot.within_limits(q)[0]


def test_success_commands_the_arm_from_the_landed_base(proposer):
    n = navigator(proposer)
    reached = 0
    for seed in range(8):
        s = sim(proposer, seed)
        r = n.run(s, SIDE_GRASP)
        assert r.code == nav.SUCCEEDED, r.message
        assert len(s.goals) == 1 and len(s.arm_commands) == 1
        names, arm = s.arm_commands[0]
        assert names == list(proposer.robot.config.arm_joints) and arm == r.arm
        mm, deg, ok = true_tool_error(proposer, s, arm, SIDE_GRASP)
        assert mm <= 2.0 and deg <= 1.0 and ok
        assert s.twists == [] or s.twists[-1] == (0.0, 0.0, 0.0)  # the base is left stopped
        rep = r.report
        assert rep['ok'] and rep['error_code'] == 0 and rep['result'] == 'SUCCEEDED'
        assert rep['stance_used']['rank'] == 1
        used = rep['attempts'][0]
        assert rep['landing_error'] == used['landing_error']
        assert rep['final_tool_error']['position_m'] <= 0.002
        assert rep['correction_distance_m'] == used['correction_distance_m']
        assert rep['landing_errors']['count'] == seed + 1
        reached += bool(used['corrections'])
    assert reached >= 4  # a side grasp needs the correction most of the time


def test_the_base_is_corrected_only_when_the_arm_cannot_reach(proposer):
    n = navigator(proposer)
    s = sim(proposer, 3, sigma_xy_m=0.0, sigma_yaw_rad=0.0)  # Nav2 lands exactly
    r = n.run(s, SIDE_GRASP)
    assert r.code == nav.SUCCEEDED
    assert r.report['attempts'][0]['corrections'] == [] and s.twists == []


def test_no_stance_fails_at_once_with_the_servers_reason(proposer):
    s = sim(proposer)
    r = navigator(proposer).run(s, HIGH_GRASP)
    assert r.code == nav.NO_STANCE
    assert '0.80 m above the floor' in r.message
    assert s.goals == [] and s.arm_commands == [] and s.twists == []
    assert r.report['error_msg'] == r.message and not r.report['ok']


def test_a_failed_navigation_tries_the_next_stance(proposer):
    s = sim(proposer, nav_script=['failed'])
    r = navigator(proposer).run(s, SIDE_GRASP)
    assert r.code == nav.SUCCEEDED
    assert len(s.goals) == 2 and s.goals[0] != s.goals[1]
    assert [a['outcome'] for a in r.report['attempts']] == ['nav2_failed', 'reached']
    assert r.report['stance_used']['rank'] == 2
    stances = [(st['x'], st['y'], st['yaw']) for st in r.report['stances']]
    assert stances[:2] == [(g.x, g.y, g.yaw) for g in s.goals]  # in rank order


def test_nav2_failing_everywhere_stops_after_max_attempts(proposer):
    s = sim(proposer, nav_script=['failed'] * 10)
    r = navigator(proposer).run(s, SIDE_GRASP)
    n_stances = len(proposer.propose(SIDE_GRASP).candidates)
    assert len(s.goals) == min(3, n_stances)
    assert r.code == nav.NAV2_FAILED and 'Nav2 failed for every stance' in r.message
    assert 'code 104' in r.message and s.arm_commands == []


def test_nav2_missing_is_its_own_failure(proposer):
    s = sim(proposer, nav_script=['unavailable'])
    r = navigator(proposer).run(s, SIDE_GRASP)
    assert r.code == nav.NAV2_UNAVAILABLE and len(s.goals) == 1


def test_tf_missing_before_anything(proposer):
    s = sim(proposer, tf_available=False)
    r = navigator(proposer).run(s, SIDE_GRASP)
    assert r.code == nav.TF_MISSING and s.proposals == 0 and s.goals == []


def test_tf_lost_after_arrival(proposer):
    s = sim(proposer)

    def lose(robot):
        if robot.goals:
            robot.tf_available = False
    s.on_sleep = lose
    r = navigator(proposer).run(s, SIDE_GRASP)
    assert r.code == nav.TF_MISSING and 'missing from TF' in r.message
    assert s.arm_commands == []


def test_a_cancel_during_the_correction_stops_the_base(proposer):
    s = sim(proposer, 1, sigma_xy_m=0.05)

    def cancel(robot):
        if len(robot.twists) >= 3:
            robot.cancel = True
    s.on_sleep = cancel
    r = navigator(proposer).run(s, SIDE_GRASP)
    assert r.code == nav.CANCELED
    assert s.twists[-1] == (0.0, 0.0, 0.0) and s.arm_commands == []
    assert nav.goal_status(r.code, True) == nav.STATUS_CANCELED


def test_out_of_reach_without_correction_tries_the_next_stance(proposer):
    s = sim(proposer, 2, sigma_xy_m=0.05, sigma_yaw_rad=math.radians(5))
    r = navigator(proposer, max_corrections=0).run(s, SIDE_GRASP)
    outcomes = [a['outcome'] for a in r.report['attempts']]
    if r.code == nav.SUCCEEDED:  # a later stance happened to land within reach
        assert outcomes[-1] == 'reached' and set(outcomes[:-1]) <= {'out_of_reach'}
    else:
        assert r.code == nav.OUT_OF_REACH and set(outcomes) == {'out_of_reach'}
        assert 'out of reach' in r.message and 'mm' in r.message
    assert s.twists == []
    assert 'out_of_reach' in outcomes


def test_a_target_beyond_the_distance_bound_is_not_attempted(proposer):
    n = navigator(proposer, max_distance_m=0.0)
    refused = 0
    for seed in range(4):
        s = sim(proposer, seed, sigma_xy_m=0.05)
        r = n.run(s, SIDE_GRASP)
        assert s.twists == [] and r.code in (nav.SUCCEEDED, nav.OUT_OF_REACH)
        for a in r.report['attempts']:
            for corr in a['corrections']:
                assert corr['motion'].startswith('not attempted') and corr['distance_m'] > 0
                refused += 1
    assert refused


def test_a_base_that_does_not_move_times_out_and_is_not_commanded(proposer):
    s = sim(proposer, 5, sigma_xy_m=0.05, scale_sigma=0.0, velocity_noise=(0.0, 0.0, 0.0))
    s.nav_script = []
    original = s.navigate

    def navigate_and_jam(stance):
        out = original(stance)
        s._scale = np.zeros(3)  # wheels jammed: the twist does nothing
        return out
    s.navigate = navigate_and_jam
    r = navigator(proposer, max_time_s=1.0).run(s, SIDE_GRASP)
    motions = [c['motion'] for a in r.report['attempts'] for c in a.get('corrections', [])]
    assert motions and set(motions) == {'timeout'}
    if r.code == nav.SUCCEEDED:  # a stance that needed no correction
        mm, deg, ok = true_tool_error(proposer, s, r.arm, SIDE_GRASP)
        assert mm <= 2.0 and deg <= 1.0 and ok
    else:
        assert r.code == nav.OUT_OF_REACH and s.arm_commands == []


def test_stances_without_their_joints_are_solved_by_the_navigator(proposer):
    s = sim(proposer)
    original = s.propose

    def bases_only(grasp, start):
        answer = original(grasp, start)
        answer.arms = []  # the candidates topic was not matched
        return answer
    s.propose = bases_only
    r = navigator(proposer).run(s, SIDE_GRASP)
    assert r.code == nav.SUCCEEDED
    mm, deg, ok = true_tool_error(proposer, s, r.arm, SIDE_GRASP)
    assert mm <= 2.0 and deg <= 1.0 and ok


@pytest.mark.parametrize('freedom', ['symmetric', 'free_roll'])
def test_a_stance_for_a_turned_grasp_is_reached_as_the_server_chose_it(proposer, robot,
                                                                       freedom):
    """With the server's grasp freedom (grasp_symmetric / grasp_free_roll) a stance may
    serve the grasp turned about its approach axis; the navigator solves the arm for that
    tool pose (it solved for the request's roll: out of reach from the exact stance
    itself, corrections towards another stance). Pinocchio FK from the true base."""
    from reachability_ros.core.geometry import quat_to_matrix
    from reachability_ros.evaluation.grasps import reachable_grasps

    class FreedomServer:  # the stance server with its freedom parameter set
        def propose(self, grasp, start, rng):
            return proposer.propose(Grasp(grasp.position, grasp.orientation, grasp.frame_id,
                                          **{freedom: True}), start, rng)

    n = navigator(proposer)
    turned = 0
    for i, g in enumerate(reachable_grasps(robot, 12, np.random.default_rng(4)).grasps()):
        grasp = Grasp(g.position, g.orientation, 'map')
        for sigma in (0.0, 0.03):  # Nav2 lands exactly, then with error
            s = SimulatedRobot(FreedomServer(), np.random.default_rng(i), sigma_xy_m=sigma,
                               sigma_yaw_rad=math.radians(100 * sigma))
            r = n.run(s, grasp)
            assert r.code == nav.SUCCEEDED, r.message
            used = r.report['attempts'][r.report['stance_used']['rank'] - 1]
            turn = math.radians(used.get('grasp_turn_deg', 0.0))
            if sigma == 0.0:
                assert used['corrections'] == []
                turned += abs(turn) > 1e-6
            if freedom == 'symmetric':
                assert min(abs(turn), abs(abs(turn) - math.pi)) <= 1e-6
            c, si = math.cos(turn), math.sin(turn)
            T = grasp.matrix()
            T[:3, :3] = quat_to_matrix(np.array(g.orientation)) @ np.array(
                [[c, -si, 0.0], [si, c, 0.0], [0.0, 0.0, 1.0]])
            q = np.array([[s.pose.x, s.pose.y, s.pose.yaw, *r.arm]])
            dp, dr = pose_error(robot.fk_pinocchio(q, robot.config.tool_frame), T[None])
            assert dp[0] <= 0.002 and math.degrees(dr[0]) <= 1.0
            assert proposer.visibility.check(q).visible[0] and robot.within_limits(q)[0]
    assert turned >= 3  # stances for the turned grasp were among those used


def test_candidates_that_do_not_match_the_answer_are_not_used(proposer):
    n = navigator(proposer)
    result = proposer.propose(SIDE_GRASP)
    stances = [c.base for c in result.candidates]
    wrong = [np.asarray(c.q) + np.r_[0.1, 0, 0, 0, 0, 0, 0, 0] for c in result.candidates]
    plan = n.attempt_plan(SIDE_GRASP.matrix(), ProposeAnswer(stances, wrong))
    for (stance, q), c in zip(plan, result.candidates):
        assert q[0] == stance.x  # the base is the answer's, the arm solved for it
        np.testing.assert_allclose(q, c.q, atol=1e-6)


def test_a_cancel_while_the_stances_are_asked_for_ends_the_goal_at_once(proposer):
    s = sim(proposer)

    def propose(grasp, start):  # the node's wait ends early on the cancel
        s.cancel = True
        return ProposeAnswer([], failure='interrupted')
    s.propose = propose
    r = navigator(proposer).run(s, SIDE_GRASP)
    assert r.code == nav.CANCELED and 'while the stances were asked for' in r.message
    assert s.goals == [] and s.arm_commands == []


def test_the_stance_server_not_answering(proposer):
    s = sim(proposer)
    s.propose = lambda grasp, start: ProposeAnswer([], failure='timeout')
    r = navigator(proposer).run(s, SIDE_GRASP)
    assert r.code == nav.PROPOSE_FAILED and 'timeout' in r.message


@pytest.mark.parametrize('code,cancel,status', [
    (nav.SUCCEEDED, False, nav.STATUS_SUCCEEDED), (nav.CANCELED, True, nav.STATUS_CANCELED),
    (nav.CANCELED, False, nav.STATUS_ABORTED), (nav.NO_STANCE, True, nav.STATUS_ABORTED),
])
def test_goal_status_is_canceled_only_after_a_cancel_request(code, cancel, status):
    assert nav.goal_status(code, cancel) == status


def test_landing_stats_give_the_error_model():
    stats = nav.LandingStats()
    assert stats.summary() == {'count': 0}
    for dx, dy, dyaw in ((0.03, -0.03, 0.05), (-0.03, 0.03, -0.05)):
        stats.add(dx, dy, dyaw)
    s = stats.summary()
    assert s['count'] == 2 and s['suggested_base_sigma_xy_m'] == pytest.approx(0.03)
    assert s['suggested_base_sigma_yaw_deg'] == pytest.approx(math.degrees(0.05))


def test_the_node_parameters_derive_from_the_config():
    specs = {s.name: s for s in navigator_parameter_specs()}
    assert specs['config_file'].read_only and specs['config_file'].kind == 'string'
    assert specs['max_attempts'].default == 3 and specs['max_attempts'].kind == 'integer'
    assert specs['arrival.max_linear_speed_mps'].default == 0.05
    assert specs['arrival.max_angular_speed_radps'].default == 0.2
    assert specs['arrival.max_distance_m'].default == 0.2
    assert specs['arrival.max_time_s'].default == 10.0
    assert specs['arrival.tolerance_m'].bounds == (1e-6, 1.0)
    cfg = NavigatorConfig.from_flat({'max_attempts': 5, 'arrival.tolerance_deg': 0.5})
    assert cfg.max_attempts == 5 and cfg.arrival == ArrivalConfig(tolerance_deg=0.5)
    assert cfg.report_topic == '/navigate_to_grasp/report'


def test_parameters_change_at_run_time_except_what_the_node_creates_at_start_up():
    specs = {s.name: s for s in navigator_parameter_specs()}
    assert {n for n, s in specs.items() if s.read_only} == set(NAVIGATOR_START_UP_PARAMETERS)
    cfg = NavigatorConfig()
    new = navigator_config_update(cfg, {'max_attempts': 5, 'arrival.tolerance_m': 0.003,
                                        'navigation_timeout_s': 30.0, 'use_sim_time': True})
    assert new.max_attempts == 5 and new.navigation_timeout_s == 30.0
    assert new.arrival == replace(cfg.arrival, tolerance_m=0.003)
    assert navigator_config_update(cfg, {}) == cfg
    for name, value, words in (('target_frame', 'odom', 'start-up only'),
                               ('cmd_vel_topic', '/x', 'start-up only'),
                               ('max_attempts', 0, 'max_attempts'),
                               ('arrival.tolerance_m', 'a', 'tolerance_m'),
                               ('max_attempt', 2, 'unknown parameter')):
        with pytest.raises(ConfigError, match=words):
            navigator_config_update(cfg, {name: value})


# ------------------------------------------------------------------ the node's plain data
def test_candidates_are_read_in_the_robots_joint_order(robot):
    names = list(robot.joint_names)
    rows = [list(range(8)), list(range(10, 18))]
    shuffled = names[::-1]
    got = arms_from_candidates(shuffled, [r[::-1] for r in rows], names)
    np.testing.assert_array_equal(got[1], np.arange(10, 18))
    assert arms_from_candidates(names[:-1], [r[:-1] for r in rows], names) is None
    assert arms_from_candidates(names, [rows[0][:5]], names) is None


def test_the_report_reason_is_taken_only_from_the_matching_answer():
    text = json.dumps({'header': {'stamp': {'sec': 3, 'nanosec': 5}}, 'reason': 'too high'})
    assert report_reason(text, (3, 5)) == 'too high'
    assert report_reason(text, (3, 6)) is None
    assert report_reason('not json', (3, 5)) is None
    assert report_reason(json.dumps({'reason': 'x'}), (3, 5)) is None


def test_the_navigators_robot_is_the_robot_section_of_the_servers_file(tmp_path):
    """A server file with node-level keys (``map_topic``, ``use_sim_time``) starts both."""
    path = tmp_path / 'server.yaml'
    section = {'target_frame': 'odom', 'map_topic': '/map', 'use_sim_time': True,
               'grasp_free_roll': True, 'robot': {'camera': {'hfov_deg': 100.0}}}
    path.write_text(yaml.safe_dump({'stance_server': {'ros__parameters': section}}))
    robot = robot_config(str(path))
    assert robot.camera.hfov_deg == 100.0
    assert robot == RobotConfig(camera=replace(RobotConfig().camera, hfov_deg=100.0))
    assert robot_config('') == RobotConfig()
    section['robot']['camera']['hfov'] = 1.0
    path.write_text(yaml.safe_dump({'stance_server': {'ros__parameters': section}}))
    with pytest.raises(ConfigError, match='hfov'):
        robot_config(str(path))


def test_the_launch_parameters_of_the_navigator():
    assert navigator_launch_parameters('/c.yaml', ' /odom ', 'true', ' /cam/info ') == {
        'config_file': '/c.yaml', 'target_frame': 'odom', 'use_sim_time': True,
        'camera_info_topic': '/cam/info'}
    with pytest.raises(ValueError, match='use_sim_time'):
        navigator_launch_parameters('/c.yaml', use_sim_time='maybe')


def test_a_goal_refused_before_the_navigator_has_the_report_keys(proposer):
    ok = navigator(proposer).run(sim(proposer), SIDE_GRASP).report
    refused = nav.goal_failure(nav.INVALID_GOAL, 'bad  goal:\n  NaN').report
    assert refused['error_msg'] == 'bad goal: NaN' and refused['result'] == 'INVALID_GOAL'
    assert {'ok', 'error_code', 'result', 'error_msg', 'landing_errors', 'attempts',
            'stances', 'grasp'} <= set(refused) <= set(ok)
    assert set(nav.RESULT_CODES) == {0, *range(901, 911)}
