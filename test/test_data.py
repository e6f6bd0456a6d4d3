"""Training data: exact pairs, visibility, quality rule, strata, shards, determinism, resume."""

import json

import numpy as np
import pytest

from reachability_ros.core.canonical import StanceCodec, condition_features
from reachability_ros.core.errors import ConfigError
from reachability_ros.training.data import (data_config, generate_dataset, grasp_descriptors,
                                            load_dataset, load_manifest, sample_task_grasps,
                                            sample_unreachable_grasps, strata_index, water_fill)

SMALL = {"train_pairs": 4000, "heldout_pairs": 1000, "shard_size": 2000, "batch_size": 5000,
         "workers": 1, "pilot_candidates": 20000, "manifold": "off"}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    path = generate_dataset(SMALL, out, seed=7, log=lambda s: None, progress=False)
    return path


def test_config_validation():
    assert data_config({"data": {"seed": 3}})["seed"] == 3
    with pytest.raises(ConfigError, match="trian_pairs"):
        data_config({"trian_pairs": 5})
    with pytest.raises(ConfigError, match="rule"):
        data_config({"quality": {"rule": "sometimes"}})
    with pytest.raises(ConfigError, match="height_edges_m"):
        data_config({"strata": {"height_edges_m": [0.3, 0.1]}})
    with pytest.raises(ConfigError, match="shard_size"):
        data_config({"shard_size": 0})


def test_config_file_documents_the_defaults():
    from reachability_ros.config_io import load_yaml
    from reachability_ros.training.data import DEFAULT_CONFIG
    assert data_config(load_yaml("config/data_lekiwi.yaml")) == DEFAULT_CONFIG


def test_pairs_are_exact_visible_and_within_limits(small, robot, visibility):
    d = load_dataset(small, verify=True)
    n = len(d["q"])
    assert n == SMALL["train_pairs"]
    assert d["cond"].shape == (n, 7) and d["cond"].dtype == np.float32
    assert d["x"].shape == (n, 9) and d["x"].dtype == np.float32
    assert d["weight"].shape == (n,) and d["weight"].dtype == np.float32
    assert d["T_grasp"].shape == (n, 4, 4) and d["q"].shape == (n, 8)
    assert "y" not in d
    T_fk = robot.fk(d["q"])[robot.config.tool_frame]
    np.testing.assert_allclose(T_fk, d["T_grasp"], atol=1e-9)
    assert robot.within_limits(d["q"]).all()
    assert visibility.check(d["q"]).visible.all()
    np.testing.assert_allclose(d["cond"], condition_features(d["T_grasp"], 0.5), atol=1e-6)
    codec = StanceCodec(robot.config.reach_m, robot.lower[3:], robot.upper[3:])
    np.testing.assert_allclose(d["x"], codec.encode(d["q"], d["T_grasp"]), atol=1e-6)
    # the base pose is spread out, yet the features do not depend on it
    assert np.ptp(d["q"][:, 0]) > 2.0
    # soft rule: every kept stance has a positive quality score
    assert (d["manipulability"] > 0).all() and (d["limit_margin"] > 0).all()


def test_strata_are_balanced(small):
    man = load_manifest(small)
    counts = np.asarray(man["stats"]["train"]["bin_counts"]).ravel()
    natural = np.asarray(man["stats"]["train"]["natural_bin_counts"]).ravel()
    assert natural.sum() >= 2 * counts.sum() and np.all(counts <= natural)
    # stratification flattens: the spread of the populated bins shrinks
    pop = natural > 0
    assert np.std(counts[pop] / counts.sum()) < 0.7 * np.std(natural[pop] / natural.sum())
    full = counts[counts > 0]
    # water-filling: the well-populated bins share one level; none exceeds it
    # (per shard; summed over shards the levels differ by a pair or two)
    level = full.max()
    assert np.sum(full >= 0.95 * level) >= 0.4 * len(full)
    assert level <= 1.1 * SMALL["train_pairs"] / len(full) * 2
    assert len(full) >= 25
    d = load_dataset(small)
    h, e = grasp_descriptors(d["T_grasp"])
    np.testing.assert_array_equal(strata_index(h, e, man["config"]["strata"]), d["bin"])
    # floor pick-ups (top-down) and side grasps are there
    assert np.sum((h < 0.05) & (e > 60)) > 100 and np.sum((np.abs(e) < 15)) > 200


def test_manifest_and_heldout_split(small, robot):
    man = load_manifest(small)
    assert man["robot"] == "lekiwi" and man["urdf_sha256"] == robot.urdf_sha256
    assert man["seed"] == 7 and man["complete"] and man["featurization"]
    assert {e["split"] for e in man["shards"]} == {"train", "heldout"}
    assert all(len(e["sha256"]) == 64 for e in man["shards"])
    tr, ho = load_dataset(small), load_dataset(small, "heldout")
    assert len(ho["q"]) == 1000
    assert not np.isin(ho["q"][:, 3], tr["q"][:, 3]).any()  # distinct draws
    with pytest.raises(ConfigError, match="split"):
        load_dataset(small, "test")


def test_deterministic_and_resumes(small, tmp_path):
    man = load_manifest(small)
    out = tmp_path / "again"
    generate_dataset(SMALL, out, seed=7, log=lambda s: None, progress=False)
    again = json.loads((out / "manifest.json").read_text())
    assert [e["sha256"] for e in again["shards"]] == [e["sha256"] for e in man["shards"]]
    # crash simulation: one shard lost, one corrupted; the rerun restores the same bytes
    (out / "train_00001.npz").unlink()
    (out / "heldout_00000.npz").write_bytes(b"garbage")
    logs = []
    generate_dataset(SMALL, out, seed=7, log=logs.append, progress=False)
    assert any("2 to make" in s for s in logs)
    resumed = json.loads((out / "manifest.json").read_text())
    assert [e["sha256"] for e in resumed["shards"]] == [e["sha256"] for e in man["shards"]]
    # another worker count resumes (nothing to make); another seed is refused
    logs = []
    generate_dataset(dict(SMALL, workers=3), out, seed=7, log=logs.append, progress=False)
    assert any("0 to make" in s for s in logs)
    with pytest.raises(ConfigError, match="seed"):
        generate_dataset(SMALL, out, seed=8, log=lambda s: None, progress=False)


def test_other_seed_differs_and_worker_count_does_not_matter(small, tmp_path):
    man = load_manifest(small)
    cfg = dict(SMALL, heldout_pairs=0, train_pairs=2000)
    a = generate_dataset(cfg, tmp_path / "a", seed=8, log=lambda s: None, progress=False)
    assert load_manifest(a)["shards"][0]["sha256"] != man["shards"][0]["sha256"]
    cfg2 = dict(SMALL, workers=2)
    b = generate_dataset(cfg2, tmp_path / "b", seed=7, log=lambda s: None, progress=False)
    assert ([e["sha256"] for e in load_manifest(b)["shards"]]
            == [e["sha256"] for e in man["shards"]])


@pytest.mark.parametrize("rule", ["hard", "weight", "none"])
def test_quality_rules(tmp_path, rule):
    cfg = dict(SMALL, train_pairs=1000, heldout_pairs=0, shard_size=1000, oversample=1.0,
               quality={"rule": rule, "min_score": 0.5})
    d = load_dataset(generate_dataset(cfg, tmp_path, seed=1, log=lambda s: None,
                                      progress=False))
    s = (np.clip(d["manipulability"] / 0.006, 0, 1) * np.clip(d["limit_margin"] / 0.03, 0, 1))
    if rule == "hard":
        assert s.min() >= 0.5 - 1e-5 and np.all(d["weight"] == 1)
    elif rule == "weight":
        np.testing.assert_allclose(d["weight"], s, atol=1e-5)
        assert d["weight"].min() < 0.2
    else:
        assert s.min() < 0.1 and np.all(d["weight"] == 1)


def test_water_fill():
    rng = np.random.default_rng(0)
    bins = np.concatenate([np.zeros(1000, int), np.ones(10, int), np.full(300, 3)])
    sel = water_fill(bins, 500, 5, rng)
    c = np.bincount(bins[sel], minlength=5)
    assert c.tolist() == [245, 10, 0, 245, 0] and len(np.unique(sel)) == 500
    assert len(water_fill(bins, 5000, 5, rng)) == len(bins)


def test_task_and_unreachable_grasps(robot):
    rng = np.random.default_rng(2)
    T = sample_task_grasps(300, rng, robot)
    assert T.shape == (300, 4, 4)
    np.testing.assert_allclose(T[:, :3, :3] @ np.swapaxes(T[:, :3, :3], 1, 2),
                               np.broadcast_to(np.eye(3), (300, 3, 3)), atol=1e-9)
    h, e = grasp_descriptors(T)
    assert h.min() > -0.06 and h.max() < 0.36
    assert np.sum(e > 75) > 20 and np.sum(np.abs(e) < 15) > 20 and np.sum(h < 0.05) > 20
    U = sample_unreachable_grasps(200, rng)
    # above anything the arm reaches at any configuration (within limits)
    q = robot.random_configurations(100000, np.random.default_rng(0))
    top = robot.fk(q, [robot.config.tool_frame])[robot.config.tool_frame][:, 2, 3].max()
    assert U[:, 2, 3].min() >= 0.7 > top + 0.05
    np.testing.assert_allclose(np.linalg.det(U[:, :3, :3]), 1.0, atol=1e-9)
    B = sample_unreachable_grasps(200, rng, kind="from_below")
    np.testing.assert_allclose(B[:, :3, :3] @ np.swapaxes(B[:, :3, :3], 1, 2),
                               np.broadcast_to(np.eye(3), (200, 3, 3)), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(B[:, :3, :3]), 1.0, atol=1e-9)
    hb, eb = grasp_descriptors(B)
    # well below the lowest elevation any visible stance reaches (-29 deg over 10^6)
    assert eb.max() <= -55.0 + 1e-9 and e.min() > -35.0 and hb.min() >= 0.0
    M = sample_unreachable_grasps(100, rng, kind="mixed")
    assert M.shape == (100, 4, 4) and np.sum(M[:, 2, 3] >= 0.7) == 50
    with pytest.raises(ConfigError, match="kind"):
        sample_unreachable_grasps(3, rng, kind="far")


def _ks(a, b):
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return np.max(np.abs(np.searchsorted(a, grid, "right") / len(a)
                         - np.searchsorted(b, grid, "right") / len(b)))


def test_missing_dataset(tmp_path):
    with pytest.raises(ConfigError, match="no dataset manifest"):
        load_dataset(tmp_path)


def test_manifold_targets_and_area_density(tmp_path, robot, visibility):
    """y decodes to the stance's own coordinates; the area density matches the ground truth."""
    manifold_mod = pytest.importorskip("reachability_ros.core.manifold")
    from reachability_ros.core.onnx_sampler import decode_manifold_output
    from reachability_ros.training.data import ForwardSampler, pilot_box

    sm = manifold_mod.StanceManifold(robot)
    cfg = dict(SMALL, train_pairs=1000, heldout_pairs=0, shard_size=1000, manifold="on")
    d = load_dataset(generate_dataset(cfg, tmp_path, seed=3, log=lambda s: None,
                                      progress=False))
    assert d["y"].shape == (1000, 2 + sm.n_branches) and d["y"].dtype == np.float32
    pan, lift, branch = decode_manifold_output(d["y"], robot.lower[3:5], robot.upper[3:5])
    q, valid = sm.solve(d["T_grasp"], pan, lift, branch)
    assert valid.mean() > 0.99
    err = np.abs(q - d["q"])[valid]
    assert np.median(err) < 1e-5 and np.percentile(err, 99) < 1e-3  # float32 y

    # Per grasp, where does the data stance's density ratio w fall among 200 exact
    # ground-truth draws of the same grasp? Uniform ranks (probability integral
    # transform) <=> the data's stances follow the ground truth's (area) density.
    rng = np.random.default_rng(0)
    D = {}
    for density in ("area", "forward"):
        c = data_config({"density": density, "quality": {"rule": "none"},
                         "pilot_candidates": 40000})
        box, pilot = pilot_box(robot, c, np.random.default_rng(1), sm)
        s = ForwardSampler(robot, c, box=box, visibility=visibility, manifold=sm,
                           density_ref=pilot["density_ref"])
        d = s.draw(40000, rng)
        u = []
        for i in range(120):
            T = d["T_grasp"][i]
            g = sm.sample_ground_truth(
                sm.ground_truth(T, visibility=visibility, n_pan=48, n_lift=48), 200, rng)
            if len(g) < 50:
                continue
            w_gt = s.density_ratio(g, np.repeat(T[None], len(g), axis=0))
            u.append(np.mean(w_gt < s.density_ratio(d["q"][i:i + 1], T[None])[0]))
        assert len(u) > 100
        D[density] = _ks(np.asarray(u), np.random.default_rng(9).uniform(size=100000))
        crit = 1.628 / np.sqrt(len(u))  # one-sample KS, alpha = 0.01
    assert D["area"] < crit
    assert D["forward"] > crit  # the test has power: forward sampling is not the truth

