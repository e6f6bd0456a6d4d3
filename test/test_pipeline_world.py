"""The pipeline with a world: funnel, clearance, failure reasons, fallback, no per-map work."""

from dataclasses import replace

import numpy as np
import pytest

from reachability_ros.core.config import ProposalConfig, StanceConfig, WorldConfig
from reachability_ros.core.outcomes import WORLD_OUTCOMES
from reachability_ros.core.pipeline import StanceProposer
from reachability_ros.core.ranking import clearance_term
from reachability_ros.core.types import Grasp
from reachability_ros.core.world import Boxes, OccupancyGrid, World

SIDE_GRASP = Grasp((1.0, 0.5, 0.1), (0.0, 0.7071068, 0.0, 0.7071068), "map")
TOP_DOWN = Grasp((1.0, 0.5, 0.1), (1.0, 0.0, 0.0, 0.0), "map")


@pytest.fixture(scope="module")
def config():
    return StanceConfig(proposal=ProposalConfig(sampler="grid", model_path="", n_samples=1024,
                                                robustness_samples=4))


@pytest.fixture(scope="module")
def proposer(robot, config):
    return StanceProposer(config, robot)


def wall_grid(x_wall: float) -> OccupancyGrid:
    """A 4 m x 4 m map around the grasp, blocked for x >= x_wall."""
    values = np.zeros((80, 80), np.int8)
    values[:, int(round((x_wall + 1.0) / 0.05)):] = 100
    return OccupancyGrid(values, 0.05, (-1.0, -1.5, 0.0))


def test_without_a_world_nothing_changes(proposer):
    plain = proposer.propose(TOP_DOWN, rng=np.random.default_rng(1))
    assert proposer.set_world(None, None) is None and proposer.world is None
    empty = proposer.propose(TOP_DOWN, rng=np.random.default_rng(1), world=World())
    assert not set(WORLD_OUTCOMES) & set(plain.funnel)
    assert "scene" not in plain.timing_ms and "clearance" not in plain.candidates[0].terms
    assert empty.funnel == plain.funnel
    assert [c.q.tolist() for c in empty.candidates] == [c.q.tolist() for c in plain.candidates]


def test_a_world_adds_its_stages_and_the_clearance(proposer, config):
    world = proposer.scene.prepare(wall_grid(1.3), Boxes.from_records(
        [{"name": "bin", "center": [0.6, 0.9, 0.1], "size": [0.2, 0.2, 0.2]}]))
    r = proposer.propose(TOP_DOWN, rng=np.random.default_rng(1), world=world)
    assert r.ok and list(r.funnel)[:2] == ["proposed", "fallback_proposed"]
    assert all(k in r.funnel for k in WORLD_OUTCOMES) and r.funnel["base_collision"] > 0
    assert {"scene", "fallback"} <= set(r.timing_ms)
    wc = config.world
    for c in r.candidates:
        assert 0.0 <= c.metrics["clearance_m"] <= wc.clearance_cap_m
        assert c.terms["clearance"] == pytest.approx(
            wc.w_clearance * min(c.metrics["clearance_m"] / wc.clearance_cap_m, 1.0))
        assert c.score == pytest.approx(sum(c.terms.values()))
    # labels: every proposal is counted once
    counted = sum(v for k, v in r.funnel.items() if k not in (
        "proposed", "fallback_proposed", "not_in_top_k", "returned"))
    assert counted == r.funnel["proposed"]


def test_the_clearance_term_is_capped_and_monotonic():
    cfg = WorldConfig(clearance_cap_m=0.2, w_clearance=2.0)
    t = clearance_term(np.array([-0.1, 0.0, 0.1, 0.2, 0.5, np.inf]), cfg)
    assert t.tolist() == [0.0, 0.0, 1.0, 2.0, 2.0, 2.0]


def test_a_wall_everywhere_says_so(proposer):
    values = np.full((40, 40), 100, np.int8)
    world = proposer.scene.prepare(OccupancyGrid(values, 0.1, (-1.0, -1.5, 0.0)))
    r = proposer.propose(TOP_DOWN, rng=np.random.default_rng(1), world=world)
    assert not r.ok and r.funnel["returned"] == 0
    assert r.reason.startswith("reachable and visible, but every stance's base overlaps the "
                               "map's obstacles: of ")
    assert "base collision" in r.reason and "exact grid was searched too" in r.reason


def test_boxes_everywhere_say_what_they_did(proposer):
    # a box over the whole neighbourhood, above the base: the arm meets it
    lid = Boxes.from_records([{"center": [1.0, 0.5, 0.28], "size": [3.0, 3.0, 0.02]}])
    r = proposer.propose(TOP_DOWN, rng=np.random.default_rng(1),
                         world=proposer.scene.prepare(None, lid))
    assert not r.ok
    assert r.reason.startswith("reachable and visible, but at every stance the arm comes too "
                               "close to a box")
    # a wall of boxes between the camera and the grasp, and a lid: two kinds
    mixed = proposer.scene.prepare(wall_grid(1.15), lid)
    r = proposer.propose(TOP_DOWN, rng=np.random.default_rng(1), world=mixed)
    assert not r.ok
    assert r.reason.startswith("reachable and visible, but the scene rules out every stance: "
                               "the base overlaps the map's obstacles or a box (")


def test_an_unreachable_grasp_keeps_its_reason(proposer):
    high = Grasp((1.0, 0.5, 0.9), (1.0, 0.0, 0.0, 0.0), "map")
    world = proposer.scene.prepare(wall_grid(1.3))
    r = proposer.propose(high, rng=np.random.default_rng(1), world=world)
    assert r.reason.startswith("unreachable") and r.funnel["fallback_proposed"] == 0


def test_the_fallback_searches_the_exact_grid_when_the_scene_leaves_few(robot, config):
    # the model sampler (256 proposals); the map is free only within 19 cm of one stance,
    # which leaves about 50 of them: fewer than 200 wanted
    cfg = replace(config, proposal=replace(config.proposal, sampler="auto",
                                           model_path="models/lekiwi_manifold.onnx",
                                           n_samples=256))
    proposer = StanceProposer(cfg, robot)
    best = proposer.propose(SIDE_GRASP, rng=np.random.default_rng(3)).candidates[0].q
    xs = (np.arange(80) + 0.5) * 0.05 - 1.0
    ys = (np.arange(80) + 0.5) * 0.05 - 1.5
    X, Y = np.meshgrid(xs, ys)
    values = np.where(np.hypot(X - best[0], Y - best[1]) < 0.19, 0, 100).astype(np.int8)
    grid = OccupancyGrid(values, 0.05, (-1.0, -1.5, 0.0))
    few = {}
    for min_feasible in (0, 200):
        p = StanceProposer(replace(cfg, world=replace(cfg.world, min_feasible=min_feasible)),
                           robot)
        few[min_feasible] = p.propose(SIDE_GRASP, rng=np.random.default_rng(3),
                                      world=p.scene.prepare(grid))
    off, on = few[0], few[200]
    assert off.funnel["fallback_proposed"] == 0 and off.funnel["proposed"] == 256
    assert 0 < off.funnel["feasible"] < 200 and off.funnel["base_collision"] > 50
    assert on.funnel["fallback_proposed"] > 1000
    assert on.funnel["proposed"] == 256 + on.funnel["fallback_proposed"]
    assert on.funnel["feasible"] > off.funnel["feasible"]
    assert len(on.samples_q) == on.funnel["proposed"] == len(on.samples_outcome)
    assert on.feasible_q.shape[0] == on.funnel["feasible"]


def test_requests_do_no_per_map_work(proposer, monkeypatch):
    import scipy.ndimage
    from reachability_ros.core import world as world_module
    proposer.set_world(wall_grid(1.3), None)
    try:
        def refuse(*args, **kwargs):
            raise AssertionError("per-map work during a request")
        monkeypatch.setattr(scipy.ndimage, "distance_transform_edt", refuse)
        monkeypatch.setattr(world_module.GridField, "__init__", refuse)
        r = proposer.propose(TOP_DOWN, rng=np.random.default_rng(1))
        assert r.ok and "base_collision" in r.funnel
        moved = proposer.world.moved(grid_pose=(0.0, -1.5, 0.0))
        r2 = proposer.propose(TOP_DOWN, rng=np.random.default_rng(1), world=moved)
        assert r2.funnel["base_collision"] != r.funnel["base_collision"]
    finally:
        monkeypatch.undo()
        proposer.set_world(None, None)


def test_grasp_freedom_and_sets_in_a_world_with_the_fallback(robot):
    """A grasp set (symmetric and free-roll grasps) in a room: the fallback searches every
    grasp's targets, and each returned stance reaches its tool pose (Pinocchio FK), serves
    a grasp of the request and clears the world (independent brute-force check)."""
    from reachability_ros.core.geometry import quat_to_matrix
    from reachability_ros.evaluation.scene_truth import box_clearance, shape_points
    config = StanceConfig(proposal=ProposalConfig(sampler="grid", model_path="",
                                                  n_samples=256, robustness_samples=4),
                          world=WorldConfig(min_feasible=1000, fallback_samples=1024))
    proposer = StanceProposer(config, robot)
    boxes = Boxes.from_records([{"center": [1.0, 0.2, 0.15], "size": [0.3, 0.2, 0.3]}])
    world = proposer.scene.prepare(wall_grid(1.3), boxes)
    main = Grasp(TOP_DOWN.position, TOP_DOWN.orientation, "map", free_roll=True)
    alternatives = [Grasp((1.0, 0.6, 0.1), SIDE_GRASP.orientation, "map", symmetric=True),
                    Grasp((0.9, 0.5, 0.12), TOP_DOWN.orientation, "map")]
    r = proposer.propose(main, rng=np.random.default_rng(3), world=world,
                         alternatives=alternatives)
    assert r.ok and r.funnel["fallback_proposed"] > 0
    assert r.funnel["proposed"] == len(r.samples_q) == len(r.samples_grasp_index)
    requested = [main, *alternatives]
    for c in r.candidates:
        assert 0 <= c.grasp_index < len(requested)
        T_tool = robot.fk_pinocchio(c.q[None], robot.config.tool_frame)[0]
        assert np.linalg.norm(T_tool[:3, 3] - np.array(c.tool_pose.position)) <= 1e-6
        R_pose = quat_to_matrix(np.array(c.tool_pose.orientation))
        assert np.abs(T_tool[:3, :3] - R_pose).max() <= 1e-6
        R_req = quat_to_matrix(np.array(requested[c.grasp_index].orientation))
        # only a turn about the approach axis (+z) separates the two
        assert np.linalg.norm(R_req[:, 2] - R_pose[:, 2]) <= 1e-9
        shapes = shape_points(robot, c.q, 60, np.random.default_rng(0))
        assert min(box_clearance(p, boxes).min() for _, _, p in shapes) >= \
            config.world.box_padding_m
