"""Family-specific tests of the torch models and the trainer (reachability_ros.training).

The contract every family shares is in test_model_contract.py."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reachability_ros.core.errors import ConfigError  # noqa: E402
from reachability_ros.training import models as M  # noqa: E402
from reachability_ros.training.checkpoint import load_checkpoint  # noqa: E402
from reachability_ros.training.diagnostics import fk_loss  # noqa: E402
from reachability_ros.training.train import train_from_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _randomize(model, scale=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model


def _build(family, dx, seed=0):
    params = {"cvae": {"dz": 4, "hidden": 32, "n_layers": 2}}.get(
        family, {"n_blocks": 3, "hidden": 32, "n_layers": 2})
    model = M.build_model(family, dx, 7, params, seed=seed)
    rng = np.random.default_rng(seed)
    model.cond_norm.fit(rng.normal(0.3, 2.0, (500, 7)))
    model.x_norm.fit(rng.normal(-0.1, 0.5, (500, dx)))
    return _randomize(model.eval()), params


def test_flow_invertible():
    model, _ = _build("flow", 9)
    x, c = torch.randn(256, 9) * 0.5 - 0.1, torch.randn(256, 7) * 2 + 0.3
    with torch.no_grad():
        z, _ = model.encode(x, c)
        back = model.sample(c, z)
    assert (back - x).abs().max() < 1e-5


def test_flow_logdet_matches_autograd_jacobian():
    torch.manual_seed(0)
    flow = M.ConditionalFlow(5, 3, n_blocks=2, hidden=16, n_layers=1).double()
    _randomize(flow, 0.3)
    x, c = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    _, ld = flow.forward_normalized(x, c)
    for i in range(4):
        J = torch.autograd.functional.jacobian(
            lambda v: flow.forward_normalized(v[None], c[i:i + 1])[0][0], x[i])
        assert abs(torch.linalg.slogdet(J)[1].item() - ld[i].item()) < 1e-9
    # log_prob integrates the normalization: change of variables in raw space
    flow.x_norm.std.fill_(2.0)
    lp = flow.log_prob(x, c)
    z, ld2 = flow.forward_normalized(flow.x_norm(x), c * 0 + flow.cond_norm(c))
    ref = -0.5 * (z ** 2).sum(1) - 2.5 * np.log(2 * np.pi) + ld2 - 5 * np.log(2.0)
    assert torch.allclose(lp, ref)


def test_soft_clamp_bounds_log_scale():
    block = M.AffineCoupling(4, 2, M.mlp_subnet(8, 1), clamp=1.5)
    with torch.no_grad():
        for p in block.parameters():
            p.fill_(50.0)
    _, ld = block(torch.randn(10, 4), torch.randn(10, 2))
    assert ld.abs().max() <= 1.5 * 4 + 1e-5


def test_subnet_is_injected():
    calls = []

    def ctor(c_in, c_out):
        calls.append((c_in, c_out))
        return torch.nn.Linear(c_in, c_out)

    M.ConditionalFlow(9, 7, n_blocks=2, subnet_constructor=ctor)
    assert calls == [(4 + 7, 10), (5 + 7, 8)] * 2


def test_cvae_loss_and_free_bits():
    model, _ = _build("cvae", 9)
    xn, cn = torch.randn(128, 9), torch.randn(128, 7)
    train, nelbo, st = model.loss(xn, cn, beta=0.5, free_bits=0.0)
    assert train.shape == nelbo.shape == (128,) and torch.isfinite(nelbo).all()
    assert st["kl_dim"].shape == (4,) and (st["kl_dim"] >= 0).all()
    # with a huge free-bits floor the KL term gives no gradient to the encoder
    model.zero_grad()
    torch.manual_seed(0)
    tr, _, _ = model.loss(xn, cn, beta=1.0, free_bits=1e6)
    tr.mean().backward()
    g_fb = sum(float(p.grad.abs().sum()) for p in model.encoder.parameters())
    model.zero_grad()
    torch.manual_seed(0)
    tr, _, st = model.loss(xn, cn, beta=1.0, free_bits=0.0)
    st["kl_dim"].sum().backward()
    g_kl = sum(float(p.grad.abs().sum()) for p in model.encoder.parameters())
    assert g_kl > 0 and g_fb >= 0


def test_normalizer_round_trip_and_groups():
    n = M.Normalizer(3)
    data = np.array([[1.0, 100.0, 0.0], [3.0, 300.0, 0.0], [5.0, 500.0, 0.0]])
    n.fit(data, min_std=1e-3)
    t = torch.tensor(data, dtype=torch.float32)
    assert torch.allclose(n.inverse(n(t)), t, atol=1e-4)
    assert abs(float(n.std[1]) - 200.0) < 1e-3 and float(n.std[2]) == pytest.approx(1e-3)


def test_nearest_neighbour_baseline():
    rng = np.random.default_rng(0)
    cond, x = rng.normal(size=(200, 7)), rng.normal(size=(200, 9))
    nn1 = M.NearestNeighbour(cond, x, k=1)
    out = nn1.sample(cond[:5] + 1e-4, rng.normal(size=(5, 1)))
    assert np.allclose(out, x[:5])
    nn5 = M.NearestNeighbour(cond, x, k=5)
    picks = {tuple(nn5.sample(cond[:1], np.array([[v]]))[0]) for v in np.linspace(-3, 3, 30)}
    assert 2 <= len(picks) <= 5


def test_torch_fk_matches_robot_fk(robot, rng):
    fk = M.TorchFK(robot)
    q = robot.random_configurations(64, rng)
    T = robot.fk(q)[robot.config.tool_frame]
    Tt = fk(torch.tensor(q, dtype=torch.float64).float()).double().numpy()
    assert np.abs(T - Tt).max() < 1e-5


def test_fk_loss_zero_on_exact_stances(robot, rng):
    from reachability_ros.core.canonical import StanceCodec, condition_features
    q = robot.random_configurations(32, rng)
    T = robot.fk(q)[robot.config.tool_frame]
    R = robot.config.reach_m
    x = StanceCodec(R, robot.lower[3:], robot.upper[3:]).encode(q, T)
    c = condition_features(T, R)
    lo = torch.tensor(robot.lower[3:], dtype=torch.float32)
    hi = torch.tensor(robot.upper[3:], dtype=torch.float32)
    fl = fk_loss(M.TorchFK(robot), torch.tensor(x, dtype=torch.float32),
                 torch.tensor(c, dtype=torch.float32), R, lo, hi)
    assert fl.max() < 1e-10
    x2 = x.copy()
    x2[:, 0] += 0.1
    fl2 = fk_loss(M.TorchFK(robot), torch.tensor(x2, dtype=torch.float32),
                  torch.tensor(c, dtype=torch.float32), R, lo, hi)
    assert fl2.min() > 0.005


def test_build_model_rejects_bad_family():
    with pytest.raises(ConfigError, match="family"):
        M.build_model("diffusion", 9, 7, {})
    with pytest.raises(ConfigError, match="bad model parameters"):
        M.build_model("flow", 9, 7, {"n_blockz": 3})


# ------------------------------------------------------------------ trainer
TINY = REPO / "config" / "train_tiny.yaml"


def test_trainer_end_to_end_tiny(tmp_path, robot):
    """Tiny config -> data, checkpoint, metrics, plots, ONNX that the service loads."""
    from reachability_ros.core.onnx_sampler import OnnxStanceModel, read_metadata

    t0 = time.time()
    epochs = []
    r = train_from_config(str(TINY), str(tmp_path), log=lambda s: None, progress=epochs.append)
    assert time.time() - t0 < 60
    for key in ("checkpoint", "metrics_csv", "onnx"):
        assert Path(r[key]).is_file()
    assert (tmp_path / "loss.png").is_file() and (tmp_path / "donut.png").is_file()
    assert (tmp_path / "data" / "manifest.json").is_file()
    assert r["interrupted"] is False and r["epochs"] == 2
    # one progress report per epoch, with the documented keys
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert set(epochs[0]) == {"epoch", "max_epochs", "loss", "val_nll", "elapsed_s"}
    assert epochs[-1]["max_epochs"] == 2 and np.isfinite(epochs[-1]["loss"])
    m = r["metrics"]
    assert m["n_grasps"] == 20 and m["n_samples"] == 32 and np.isfinite(m["pos_err_mm_median"])
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    for col in ("val_nll", "grad_norm_pre_clip", "grad_norm_post_clip", "z_mean", "z_var",
                "logdet_std", "inv_recon_err", "sens_height"):
        assert col in header
    assert r["roundtrip"]["roundtrip_x"] < 1e-5
    assert json.loads((tmp_path / "result.json").read_text())["epochs"] == r["epochs"]
    # the export carries the evaluation and the validated config; the service loads it
    md = read_metadata(r["onnx"])
    assert json.loads(md["metrics"])["pos_err_mm_median"] == pytest.approx(
        m["pos_err_mm_median"])
    assert json.loads(md["train_config"])["train"]["max_epochs"] == 2
    assert OnnxStanceModel(r["onnx"], robot).family == "flow"


NEW_FAMILIES = {  # tiny config -> (family, columns its metrics.csv must hold)
    "train_tiny_cfm.yaml": ("cfm", ("loss_t_early", "scale_ratio_mean", "velocity_at_data")),
    "train_tiny_manifold_cfm.yaml": ("manifold_cfm", ("train_loss_t_late", "scale_ratio_min",
                                                      "sens_height")),
    "train_tiny_manifold_gmm.yaml": ("manifold_gmm", ("train_kl_mean", "train_entropy_w",
                                                      "weight_entropy", "components_used",
                                                      "cond_max")),
}


@pytest.mark.parametrize("name", sorted(NEW_FAMILIES))
def test_new_families_train_from_their_tiny_configs(tmp_path, robot, name):
    """Each tiny config trains in CI in well under a minute, with its family's diagnostics and
    the per-epoch ground-truth comparison; the export serves; a rerun is bit-identical."""
    import torch

    from reachability_ros.core.config import ProposalConfig, StanceConfig
    from reachability_ros.core.onnx_sampler import OnnxStanceModel
    from reachability_ros.core.pipeline import StanceProposer
    from reachability_ros.evaluation.grasps import reachable_grasps

    family, columns = NEW_FAMILIES[name]
    t0 = time.time()
    r = train_from_config(str(REPO / "config" / name), str(tmp_path / "a"), log=lambda s: None)
    assert time.time() - t0 < 60
    assert r["family"] == family and r["epochs"] == 2 and not r["interrupted"]
    header = (tmp_path / "a" / "metrics.csv").read_text().splitlines()[0].split(",")
    for col in columns + ("val_nll", "epoch_gt_kl_mean", "epoch_frac_good_20mm_5deg"):
        assert any(h.endswith(col) for h in header), col
    m = r["metrics"]
    assert m["gt_n_grasps"] > 0 and "gt_kl_mean" in m and m["train_wall_s"] > 0
    if family.endswith("cfm"):
        sweep = r["integrator_sweep"]
        assert {(s["integrator"], s["n_steps"]) for s in sweep} == {
            (i, n) for i in ("euler", "midpoint") for n in (2, 4)}
    else:
        assert "pruned" in r
    model = OnnxStanceModel(r["onnx"], robot)
    assert model.family == family
    proposer = StanceProposer(StanceConfig(proposal=ProposalConfig(
        sampler="model", model_path=r["onnx"], n_samples=64, top_k=3)), robot)
    grasp = reachable_grasps(robot, 1, np.random.default_rng(0)).grasps()[0]
    assert proposer.propose(grasp, rng=np.random.default_rng(1)).funnel["proposed"] == 64
    # reproducible from the committed config and its seed
    r2 = train_from_config(str(REPO / "config" / name), str(tmp_path / "b"), log=lambda s: None)
    a = torch.load(r["checkpoint"], weights_only=True)["state_dict"]
    b = torch.load(r2["checkpoint"], weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stopped_run_keeps_a_checkpoint_that_exports_and_serves(tmp_path, robot):
    from reachability_ros.core.config import ProposalConfig, StanceConfig
    from reachability_ros.core.pipeline import StanceProposer
    from reachability_ros.evaluation.grasps import reachable_grasps
    from reachability_ros.training.export import export_checkpoint

    polls = []

    def stop():  # stop in the middle of the second epoch
        polls.append(1)
        return len(polls) > 14

    r = train_from_config(str(TINY), str(tmp_path), {"train.max_epochs": 5},
                          log=lambda s: None, should_stop=stop)
    assert r["interrupted"] is True and r["epochs"] == 1 and "onnx" not in r
    assert len(polls) >= 11  # polled between batches, not once per epoch
    assert not (tmp_path / "model.onnx").exists()
    path = export_checkpoint(r["checkpoint"], tmp_path / "stopped.onnx")
    cfg = StanceConfig(proposal=ProposalConfig(sampler="model", model_path=str(path),
                                               n_samples=64, top_k=3))
    proposer = StanceProposer(cfg, robot)
    grasp = reachable_grasps(robot, 1, np.random.default_rng(0)).grasps()[0]
    result = proposer.propose(grasp, rng=np.random.default_rng(1))
    assert result.funnel["proposed"] == 64


def test_stop_before_the_first_epoch_still_writes_a_checkpoint(tmp_path):
    from reachability_ros.training.export import export_checkpoint

    r = train_from_config(str(TINY), str(tmp_path), log=lambda s: None,
                          should_stop=lambda: True)
    assert r["interrupted"] and r["epochs"] == 0 and r["val_nll"] is None
    _, ck = load_checkpoint(r["checkpoint"])
    assert ck["extra"]["interrupted"] is True
    assert export_checkpoint(r["checkpoint"], tmp_path / "m.onnx").is_file()


def test_trainer_generates_manifold_data_under_its_output(tmp_path):
    """The shipped manifold config's path: data made by training.data, cached in out/data."""
    sets = {"data.source": "lekiwi_manifold", "data.n_train": 2000, "data.n_val": 200,
            "data.generator": {"manifold": "on", "density": "area"},
            "model.family": "manifold_flow", "train.noise_std": 0.01, "export.onnx": False}
    r = train_from_config(str(TINY), str(tmp_path), sets, log=lambda s: None)
    assert (tmp_path / "data" / "manifest.json").is_file()
    assert Path(r["checkpoint"]).is_file() and "onnx" not in r
    assert 0.0 < r["metrics"]["frac_solved"] <= 1.0


@pytest.mark.parametrize("overrides,match", [
    ({"model.family": "gan"}, r"^model\.family = 'gan' is not one of"),
    ({"train.max_epoch": 3}, "unknown override key 'train.max_epoch'"),
    ({"train.max_epochs": "abc"}, r"^train\.max_epochs must be a number, got 'abc'"),
    ({"train.lr": -1.0}, r"^train\.lr = -1\.0 is outside"),
    ({"train.noise_std": [0.1, 0.2]}, r"train\.noise_std has 2 values for 9 output columns"),
    ({"data.path": "/nonexistent/manifest.json"}, "no dataset manifest"),
    ({"model.family": "manifold_flow"}, "does not go with data.source"),
    ({"model.family": "manifold_gmm", "model.n_blocks": 2, "model.clamp": 2.0},
     "model.n_blocks is not a parameter of family 'manifold_gmm'"),
])
def test_trainer_user_errors_are_config_errors(tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        train_from_config(str(TINY), str(tmp_path / "out"), overrides, log=lambda s: None)


def test_trainer_file_errors_are_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        train_from_config(str(bad), str(tmp_path / "o"), log=lambda s: None)
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  max_epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.max_epoch' \(.*typo.yaml\)"):
        train_from_config(str(typo), str(tmp_path / "o"), log=lambda s: None)
    with pytest.raises(ConfigError, match="not found"):
        train_from_config(str(tmp_path / "none.yaml"), str(tmp_path / "o"), log=lambda s: None)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="cannot create the output directory"):
        train_from_config(str(TINY), str(tmp_path / "afile" / "out"), log=lambda s: None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch build has CUDA")
def test_cuda_on_a_cpu_build_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no usable CUDA"):
        train_from_config(str(TINY), str(tmp_path), {"train.device": "cuda"},
                          log=lambda s: None)
    assert not (tmp_path / "data").exists()  # refused before any work
