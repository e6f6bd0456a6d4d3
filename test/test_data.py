"""Training data: exact pairs, visibility, quality rule, strata, shards, determinism, resume."""

import json

import numpy as np
import pytest

from reachability_ros.core.canonical import StanceCodec, condition_features
from reachability_ros.core.errors import ConfigError
from reachability_ros.evaluation.grasps import grasp_descriptors, strata_index, water_fill
from reachability_ros.training.config import DataConfig, load_data_config
from reachability_ros.training.dataset import (data_config, generate_dataset, load_dataset,
                                               load_manifest)

SMALL = {"train_pairs": 4000, "heldout_pairs": 1000, "shard_size": 2000, "batch_size": 5000,
         "workers": 1, "pilot_candidates": 20000, "manifold": "off"}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    path = generate_dataset(SMALL, out, seed=7, log=lambda s: None, progress=False)
    return path


def test_config_validation():
    assert data_config({"data": {"seed": 3}}).seed == 3
    with pytest.raises(ConfigError, match="unknown key 'trian_pairs'"):
        data_config({"trian_pairs": 5})
    with pytest.raises(ConfigError, match="unknown key 'quality.rulez'"):
        data_config({"quality": {"rulez": "soft"}})
    with pytest.raises(ConfigError, match=r"^quality\.rule = 'sometimes' is not one of"):
        data_config({"quality": {"rule": "sometimes"}})
    with pytest.raises(ConfigError, match=r"^strata\.height_edges_m must be increasing"):
        data_config({"strata": {"height_edges_m": [0.3, 0.1]}})
    with pytest.raises(ConfigError, match=r"^shard_size = 0 is outside"):
        data_config({"shard_size": 0})
    with pytest.raises(ConfigError, match=r"^workers must be an integer, got 2\.5"):
        data_config({"workers": 2.5})
    with pytest.raises(ConfigError, match="robot.urdf"):
        data_config({"robot": {"urdf": "/nonexistent.urdf"}}).robot.urdf_path()


def test_config_file_documents_the_defaults():
    assert load_data_config("config/data_lekiwi.yaml") == DataConfig()
    cfg = load_data_config("config/data_lekiwi.yaml", {"workers": 1, "quality.rule": "hard"})
    assert cfg.workers == 1 and cfg.quality.rule == "hard"
    with pytest.raises(ConfigError, match="unknown override key 'quality.rul'"):
        load_data_config("config/data_lekiwi.yaml", {"quality.rul": "hard"})


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
    strata = man["config"]["strata"]
    np.testing.assert_array_equal(
        strata_index(h, e, strata["height_edges_m"], strata["elevation_edges_deg"]), d["bin"])
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


def _ks(a, b):
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return np.max(np.abs(np.searchsorted(a, grid, "right") / len(a)
                         - np.searchsorted(b, grid, "right") / len(b)))


def test_missing_or_broken_dataset(tmp_path):
    with pytest.raises(ConfigError, match="no dataset manifest"):
        load_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a dataset manifest"):
        load_manifest(tmp_path)
    # a folder whose manifest.json is not ours is left alone
    with pytest.raises(ConfigError, match="not a dataset manifest"):
        generate_dataset(SMALL, tmp_path, seed=7, log=lambda s: None, progress=False)
    assert (tmp_path / "manifest.json").read_text() == "{not json"


def test_output_dir_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot create the output directory"):
        generate_dataset(SMALL, tmp_path / "file" / "ds", seed=7, log=lambda s: None,
                         progress=False)


def test_lost_shard_is_named(small, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(small.parent, copy)
    (copy / "train_00000.npz").unlink()
    with pytest.raises(ConfigError, match="train_00000.npz of the dataset is missing"):
        load_dataset(copy)


def test_manifold_targets_and_area_density(tmp_path, robot, visibility):
    """y decodes to the stance's own coordinates; the area density matches the ground truth."""
    from reachability_ros.core.manifold import StanceManifold
    from reachability_ros.core.onnx_sampler import decode_manifold_output
    from reachability_ros.evaluation.ground_truth import ground_truth, sample_ground_truth
    from reachability_ros.training.data import ForwardSampler, pilot_box

    sm = StanceManifold(robot)
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
            g = sample_ground_truth(
                sm, ground_truth(sm, T, visibility=visibility, n_pan=48, n_lift=48), 200, rng)
            if len(g) < 50:
                continue
            w_gt = s.density_ratio(g)
            u.append(np.mean(w_gt < s.density_ratio(d["q"][i:i + 1])[0]))
        assert len(u) > 100
        D[density] = _ks(np.asarray(u), np.random.default_rng(9).uniform(size=100000))
        crit = 1.628 / np.sqrt(len(u))  # one-sample KS, alpha = 0.01
    assert D["area"] < crit
    assert D["forward"] > crit  # the test has power: forward sampling is not the truth
