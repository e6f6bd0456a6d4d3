"""The quality of exact stances (evaluation/quality.py) is the ranking's score, and the
mixture's tabulated target (training/target.py) is that quality on the feasible stances."""

import numpy as np
import pytest

from reachability_ros.core.config import ProposalConfig, StanceConfig
from reachability_ros.core.pipeline import StanceProposer
from reachability_ros.evaluation.grasps import reachable_grasps
from reachability_ros.evaluation.ground_truth import ground_truth
from reachability_ros.evaluation.quality import QUALITY_TERMS, StanceQuality, quality_reference
from reachability_ros.training.config import ReverseKLConfig
from reachability_ros.training.target import _distance_to, grid_nodes, target_table


@pytest.fixture(scope="module")
def grasps(robot, visibility):
    return reachable_grasps(robot, 6, np.random.default_rng(41), visibility=visibility).grasps()


@pytest.fixture(scope="module")
def quality(robot, visibility):
    return StanceQuality(robot, visibility, n_perturbations=32)


def test_quality_terms_are_the_pipelines(robot, quality, grasps):
    """Visibility, manipulability and limit terms equal the pipeline's own for the stances
    it returns (same weights); the robustness term is the linearized fraction in [0, w]."""
    proposer = StanceProposer(StanceConfig(proposal=ProposalConfig(sampler="grid", top_k=5)),
                              robot)
    checked = 0
    for g in grasps:
        r = proposer.propose(g, rng=np.random.default_rng(0))
        assert r.ok
        q = np.array([c.q for c in r.candidates])
        res = quality.evaluate(q)
        assert res["feasible"].all()
        for name in ("visibility", "manipulability", "limits"):
            ref = np.array([c.terms[name] for c in r.candidates])
            assert np.allclose(res["terms"][name], ref, atol=1e-9), name
        w = ProposalConfig().w_robustness
        assert np.all((res["terms"]["robustness"] >= 0) & (res["terms"]["robustness"] <= w))
        assert np.allclose(res["quality"], sum(res["terms"][k] for k in QUALITY_TERMS))
        checked += len(q)
    assert checked >= 10


def test_feasibility_is_the_ground_truths(manifold, visibility, quality, grasps):
    """Ground-truth stances are feasible; solved grid points it leaves out are not."""
    for g in grasps[:3]:
        T = g.matrix()
        gt = ground_truth(manifold, T, visibility, n_pan=24, n_lift=24)
        assert quality.evaluate(gt["q"])["feasible"].all()
        q, valid, _ = manifold.grid(T, 24, 24)
        res = quality.evaluate(q)
        assert res["feasible"].sum() == len(gt["q"])
        assert not res["feasible"][~valid].any()
        assert np.isnan(res["quality"][~np.all(np.isfinite(q), axis=1)]).all()


def test_quality_reference_is_the_best_and_the_top_fraction(manifold, visibility, quality,
                                                            grasps):
    gt = ground_truth(manifold, grasps[0].matrix(), visibility, n_pan=32, n_lift=32)
    ref = quality_reference(gt, quality, top_fraction=0.1)
    qv = quality.evaluate(gt["q"])["quality"]
    assert ref["best"] == qv.max() and ref["n"] == len(qv)
    share_at_or_above = gt["weight"][qv >= ref["threshold"]].sum()
    share_above = gt["weight"][qv > ref["threshold"]].sum()
    assert share_above < 0.1 <= share_at_or_above + 1e-12


def test_distance_to_the_feasible_set_matches_brute_force():
    rng = np.random.default_rng(0)
    pan, lift = np.linspace(-0.4, 0.4, 13), np.linspace(-1, 1, 17)
    mask = rng.random((13, 17)) < 0.15
    d = _distance_to(mask, pan, lift)
    P, L = np.meshgrid(pan, lift, indexing="ij")
    fp, fl = P[mask], L[mask]
    ref = np.sqrt((P[..., None] - fp) ** 2 + (L[..., None] - fl) ** 2).min(-1)
    assert np.allclose(d, ref)


def test_target_table_is_the_quality_on_feasible_nodes(manifold, visibility, quality, grasps):
    cfg = ReverseKLConfig(grid_pan=16, grid_lift=20, robustness_samples=32)
    T = grasps[1].matrix()
    table = target_table(manifold, quality, T, cfg)
    assert table.shape == (4, 16, 20) and table.dtype == np.float32
    pan_n, lift_n = grid_nodes(cfg)
    robot = manifold.robot
    lo, hi = robot.lower[3:5], robot.upper[3:5]
    B, P, L = np.meshgrid(np.arange(4), pan_n, lift_n, indexing="ij")
    q, _ = manifold.solve(T, 0.5 * (P.ravel() * (hi[0] - lo[0]) + lo[0] + hi[0]),
                          0.5 * (L.ravel() * (hi[1] - lo[1]) + lo[1] + hi[1]), B.ravel())
    res = quality.evaluate(q)
    feas = res["feasible"]
    assert feas.any() and not feas.all()
    assert np.allclose(table.ravel()[feas], res["quality"][feas], atol=1e-5)
    out = table.ravel()[~feas]
    assert np.all(out <= -cfg.infeasible_gap + 1e-6)
    # outside the set the value falls with the distance to it (per branch)
    for b in range(4):
        m = feas.reshape(4, 16, 20)[b]
        if m.any():
            d = _distance_to(m, pan_n, lift_n)
            v = table[b][~m]
            assert np.allclose(v, -cfg.infeasible_gap - cfg.infeasible_slope * d[~m], atol=1e-4)
        else:
            assert np.allclose(table[b], table[b].flat[0])
