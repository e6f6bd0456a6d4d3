"""The world's fallback with grasp freedom and grasp sets (core/stages.py merging two rounds).

A request whose first round leaves too few stances in the world gets a second round from
the exact grid (``StanceProposer.fallback``); ``stages.merge_sampled`` and
``merge_verified`` append it to the first. These tests hold every returned row to its own
round: its grasp, its target (Pinocchio FK of the URDF), its clearance, its ranking group,
and the dense grid's rows of a target to the grid of that target alone.
"""

import numpy as np
import pinocchio as pin
import pytest

from reachability_ros.core.config import ProposalConfig, StanceConfig, WorldConfig
from reachability_ros.core.freedom import expand_targets, flip_quaternion
from reachability_ros.core.outcomes import CODE, LABELS
from reachability_ros.core.pipeline import StanceProposer
from reachability_ros.core.requests import validate_grasp
from reachability_ros.core.samplers import DenseGridSampler, GridSampler
from reachability_ros.core.types import Grasp
from reachability_ros.core.world import Boxes, OccupancyGrid
from reachability_ros.evaluation.scene_truth import box_clearance, shape_points

SIDE = (0.0, 0.7071068, 0.0, 0.7071068)  # approach along +x
TOP = (1.0, 0.0, 0.0, 0.0)  # approach straight down: the wrist roll is free
TILTED_TOP = (0.2, 0.9797959, 0.0, 0.0)  # a turn by pi about a horizontal axis: vertical too


def wall_grid(x_wall: float) -> OccupancyGrid:
    """A 4 m x 4 m map, blocked for x >= x_wall."""
    values = np.zeros((80, 80), np.int8)
    values[:, int(round((x_wall + 1.0) / 0.05)):] = 100
    return OccupancyGrid(values, 0.05, (-1.0, -1.5, 0.0))


@pytest.fixture(scope="module")
def proposer(robot):
    # a coarse first round (64 grid stances per target) and a fallback that always runs
    # once the scene removed a stance (min_feasible above anything the first round finds)
    cfg = StanceConfig(proposal=ProposalConfig(sampler="grid", model_path="", n_samples=64,
                                               robustness_samples=4, top_k=12),
                       world=WorldConfig(min_feasible=1000, fallback_samples=1024))
    return StanceProposer(cfg, robot)


@pytest.fixture(scope="module")
def room(proposer):
    boxes = Boxes.from_records([{"center": [1.0, 0.2, 0.15], "size": [0.3, 0.2, 0.3]}])
    return proposer.scene.prepare(wall_grid(1.15), boxes), boxes


def grasp_set():
    main = Grasp((1.0, 0.5, 0.1), SIDE, "map", free_roll=True)
    alternatives = [Grasp((1.0, 0.6, 0.1), TOP, "map", symmetric=True),
                    Grasp((0.9, 0.5, 0.12), SIDE, "map", symmetric=True),
                    Grasp((0.95, 0.45, 0.1), TILTED_TOP, "map")]
    return main, alternatives


def pin_rotation(quat) -> np.ndarray:
    x, y, z, w = (float(v) for v in quat)
    return pin.Quaternion(w, x, y, z).normalized().matrix()


# ------------------------------------------------------------------ the dense grid
def test_a_dense_grid_target_gets_the_grid_of_that_target_alone(manifold):
    """``DenseGridSampler.sample_targets`` lays each target out as ``sample`` does for it
    alone: about ``n`` stances, a vertical approach's rolls included (they came on top,
    8 times the budget, when the targets went through the grid sampler's layout)."""
    cfg = ProposalConfig()
    grasps = [Grasp((1.0, 0.5, 0.1), TOP, symmetric=True),
              Grasp((0.8, 0.2, 0.15), SIDE, symmetric=True),
              Grasp((0.9, 0.5, 0.12), TILTED_TOP),
              Grasp((0.9, 0.4, 0.12), SIDE, free_roll=True)]
    T = [validate_grasp(g, cfg) for g in grasps]
    dense, grid = DenseGridSampler(manifold), GridSampler(manifold)
    targets = expand_targets(grasps, T, 1000, np.random.default_rng(0), dense.roll_grid)
    props = dense.sample_targets(targets, np.random.default_rng(0))
    vertical = manifold.is_vertical(targets.T)
    assert vertical.any() and not vertical.all()
    for t in range(targets.T.shape[0]):
        alone = dense.sample(targets.T[t], int(np.count_nonzero(targets.rows == t)), None)
        rows = props.target == t
        assert np.array_equal(props.q[rows], alone.q, equal_nan=True)
        assert np.array_equal(props.valid[rows], alone.valid)
        assert 0.8 * 1000 <= alone.q.shape[0] <= 1.2 * 1000  # the budget, rolls included
        # the grid sampler gives a vertical approach its rolls on top of the budget
        assert grid.sample(targets.T[t], 1000, None).q.shape[0] == (
            8 * 1024 if vertical[t] else 1024)


def test_the_fallback_of_a_vertical_symmetric_grasp_is_each_flips_own(proposer, room):
    """Each flip of a symmetric grasp gets in the fallback the proposals a request for that
    flip alone gets: 2 x, not 16 x, a fixed grasp's."""
    world, _ = room
    g = Grasp((1.0, 0.5, 0.1), TOP, "map")
    flipped = Grasp(g.position, flip_quaternion(g.orientation), "map")
    sym = Grasp(g.position, g.orientation, "map", symmetric=True)
    runs = [proposer.propose(x, rng=np.random.default_rng(1), world=world)
            for x in (g, flipped, sym)]
    fixed, flip, both = (r.funnel["fallback_proposed"] for r in runs)
    assert fixed > 0 and flip == fixed
    assert both == fixed + flip
    # and the symmetric answer is never worse than the better flip's, fallback included
    best = max(r.candidates[0].score for r in runs[:2] if r.ok)
    assert runs[2].ok and runs[2].candidates[0].score >= best


# ------------------------------------------------------------------ merged rows
def test_fallback_rows_keep_their_own_target_grasp_and_group(proposer, room):
    """Run the stages by hand: after the merge, every row of each round keeps that round's
    target pose, grasp, freedom and ranking group."""
    world, _ = room
    main, alternatives = grasp_set()
    rng = np.random.default_rng(3)
    T, _ = proposer.validate(main, None, None)
    alternatives, T_alt = proposer.validate_alternatives(main, alternatives)
    grasps, T_grasps = (main, *alternatives), [T, *T_alt]
    s = proposer.sample(T, rng, proposer.expand(grasps, T_grasps, rng))
    v = proposer.verify(s.T, s)
    proposer.scene_filter(world, s, v)
    first = (s.T.copy(), s.grasp_index.copy(), s.group.copy(), s.free_roll.copy(),
             s.outcome.copy())
    merged, mv, extra = proposer.fallback(T, rng, world, s, v, grasps, T_grasps)
    n1 = first[0].shape[0]
    assert extra > 0 and merged.n == n1 + extra
    # the first round is untouched
    for before, after in zip(first, (merged.T, merged.grasp_index, merged.group,
                                     merged.free_roll, merged.outcome)):
        assert np.array_equal(before, after[:n1])
    # the second round: each row's target is a target of its own grasp, with its flags
    second = slice(n1, None)
    tg = merged.targets
    rows = merged.target[second]
    assert rows.min() >= s.targets.T.shape[0]  # the fallback's own targets
    assert np.array_equal(merged.T[second], tg.T[rows])
    assert np.array_equal(merged.grasp_index[second], tg.grasp_index[rows])
    for r in np.unique(rows):
        gi = tg.grasp_index[r]
        g = grasps[gi]
        assert np.array_equal(tg.T[r][:3, 3], T_grasps[gi][:3, 3])
        # only a turn about the approach separates a target from its grasp
        assert np.allclose(tg.T[r][:3, 2], T_grasps[gi][:3, 2], atol=1e-12)
        assert tg.free[r] == g.free_roll
        # the flip of a symmetric grasp is group 1, everything else group 0
        flipped = g.symmetric and not g.free_roll and not np.allclose(
            tg.T[r][:3, :3], T_grasps[gi][:3, :3])
        assert tg.group[r] == int(flipped)
    assert np.array_equal(merged.group[second], tg.group[rows])
    assert set(np.unique(merged.group[second])) == {0, 1}
    # the verified rows: the second round's rows are offset past the first round's
    assert np.array_equal(mv.idx[:v.idx.size], v.idx) and mv.idx[v.idx.size:].min() >= n1
    assert mv.good.sum() == np.count_nonzero(merged.outcome == CODE["kept"])
    assert np.all(merged.outcome[mv.idx[mv.good]] == CODE["kept"])
    assert np.isfinite(mv.clearance_m[mv.good]).all()


def test_a_grasp_set_with_the_fallback_returns_rows_that_belong_together(proposer, room,
                                                                          robot):
    """A grasp set (free roll, symmetric top-down, symmetric side, fixed) in a room whose
    fallback runs: the funnel adds up, and each returned stance's grasp_index, tool_pose,
    errors and clearance are its own row's (Pinocchio FK of the URDF; the clearance
    recomputed for its q; an independent brute-force check against the boxes)."""
    world, boxes = room
    main, alternatives = grasp_set()
    requested = [main, *alternatives]
    r = proposer.propose(main, rng=np.random.default_rng(3), world=world,
                         alternatives=alternatives)
    f = r.funnel
    assert r.ok and f["fallback_proposed"] > 0
    counted = sum(f[k] for k in LABELS if k != "kept") + f["feasible"]
    assert counted == f["proposed"] == len(r.samples_q) == len(r.samples_outcome)
    assert f["proposed"] == len(r.samples_grasp_index)
    assert f["returned"] + f["not_in_top_k"] == f["feasible"] == len(r.feasible_q)
    first_round = f["proposed"] - f["fallback_proposed"]
    seen_rounds, seen_grasps = set(), set()
    model, data = robot.model, robot.model.createData()
    fid = model.getFrameId(robot.config.tool_frame)
    wc = proposer.config.world
    for c in r.candidates:
        row = c.metrics["sample_index"]
        seen_rounds.add(row >= first_round)
        seen_grasps.add(c.grasp_index)
        assert r.samples_grasp_index[row] == c.grasp_index
        assert r.samples_outcome[row] == "kept"
        assert np.array_equal(r.samples_q[row], c.q)  # exact grid rows are not refined
        g = requested[c.grasp_index]
        pin.framesForwardKinematics(model, data, c.q)
        M = data.oMf[fid]
        R_pose = pin_rotation(c.tool_pose.orientation)
        assert np.array_equal(np.array(c.tool_pose.position), np.array(g.position))
        assert np.linalg.norm(M.translation - np.array(c.tool_pose.position)) <= 1e-9
        assert np.linalg.norm(pin.log3(R_pose.T @ M.rotation)) <= 1e-9
        assert c.metrics["position_error_m"] == pytest.approx(
            np.linalg.norm(M.translation - np.array(c.tool_pose.position)), abs=1e-12)
        w = pin.log3(pin_rotation(g.orientation).T @ R_pose)
        assert np.hypot(w[0], w[1]) <= 1e-9  # a turn about the approach axis only
        if not (g.symmetric or g.free_roll):
            assert abs(w[2]) <= 1e-9
        elif not g.free_roll:  # a symmetric grasp: the grasp or its flip
            assert min(abs(w[2]), np.pi - abs(w[2])) <= 1e-9
        # the clearance is this stance's
        assert c.metrics["clearance_m"] == pytest.approx(
            float(proposer.scene.base_collision(world, c.q[None]).clearance_m[0]), abs=1e-12)
        shapes = shape_points(robot, c.q, 60, np.random.default_rng(0))
        assert min(box_clearance(p, boxes).min() for _, _, p in shapes) >= wc.box_padding_m
    assert seen_rounds == {False, True}  # both rounds among the answers
    assert len(seen_grasps) >= 2
