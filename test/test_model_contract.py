"""One contract, run against every model family (as zuko runs one test against every flow).

Every family maps a raw condition ``cond (B, 7)`` and standard normal noise ``z (B, dz)`` to
raw outputs ``(B, dx)`` through ``sample``, a pure function; it is saved and loaded as a
checkpoint, exported to ONNX ``(cond, z) -> x`` with the metadata of
``core/onnx_sampler.py``, and refused by the service when that metadata disagrees with
the robot. Checked here for each family: shapes and finiteness, determinism given ``z``,
that both the noise and the condition matter, gradients to every parameter, the
checkpoint round trip, torch-vs-onnxruntime parity on 1,000 inputs, dynamic batch,
metadata, the service's loader and its refusals.
"""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from reachability_ros.core.errors import ModelMismatch  # noqa: E402
from reachability_ros.core.onnx_sampler import (FAMILY_OUTPUT, PREFIX,  # noqa: E402
                                                OnnxStanceModel, read_metadata, robot_metadata)
from reachability_ros.training import models as M  # noqa: E402
from reachability_ros.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from reachability_ros.training.config import FAMILIES, ReverseKLConfig  # noqa: E402
from reachability_ros.training.export import export_onnx, model_metadata, onnx_parity  # noqa: E402


#: family -> (output dimension, latent dimension, constructor parameters)
SPECS = {
    "flow": (9, 9, {"n_blocks": 3, "hidden": 32, "n_layers": 2}),
    "cvae": (9, 4, {"dz": 4, "hidden": 32, "n_layers": 2}),
    "manifold_flow": (6, 6, {"n_blocks": 3, "hidden": 32, "n_layers": 2}),
    "cfm": (9, 9, {"hidden": 32, "n_layers": 2, "n_steps": 3, "integrator": "midpoint"}),
    "manifold_cfm": (6, 6, {"hidden": 32, "n_layers": 2, "n_steps": 4, "integrator": "euler"}),
    "manifold_gmm": (6, 3, {"hidden": 16, "n_layers": 2, "n_components": 2}),
}


def test_every_family_is_covered():
    assert set(SPECS) == set(FAMILIES) == set(FAMILY_OUTPUT)


def build(family, seed=0):
    """A small model of the family with fitted normalizers and random (non-zero) weights."""
    dx, _, params = SPECS[family]
    model = M.build_model(family, dx, 7, params, seed=seed)
    rng = np.random.default_rng(seed)
    model.cond_norm.fit(rng.normal(0.3, 2.0, (500, 7)))
    if hasattr(model, "x_norm"):
        model.x_norm.fit(rng.normal(-0.1, 0.5, (500, dx)))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval(), params


def training_loss(model, family):
    """The family's training objective on a random batch (a scalar)."""
    dx = SPECS[family][0]
    xn, cn = torch.randn(64, dx), torch.randn(64, 7)
    if family in ("flow", "manifold_flow"):
        return model.nll_normalized(xn, cn)[0].mean()
    if family == "cvae":
        return model.loss(xn, cn, beta=1.0)[0].mean()
    if family in ("cfm", "manifold_cfm"):
        return model.loss(xn, cn, torch.Generator().manual_seed(0))[0].mean()
    from reachability_ros.training.mixture import ReverseKL
    cfg = ReverseKLConfig(samples=4, grid_pan=8, grid_lift=8)
    grids = torch.randn(64, model.n_branches, 8, 8)
    return ReverseKL(model, cfg).training_loss(model, grids, cn, step=1)[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, robot):
    d = tmp_path_factory.mktemp("contract")
    out = {}
    for family in SPECS:
        model, _ = build(family, seed=3)
        md = model_metadata(model, robot_metadata(robot), {"frac_good": 0.5},
                            {"model": {"family": family}}, seed=3)
        out[family] = (model, export_onnx(model, d / f"{family}.onnx", md))
    return out


@pytest.mark.parametrize("family", sorted(SPECS))
def test_sample_shapes_finite_and_pure(family):
    dx, dz, _ = SPECS[family]
    model, _ = build(family)
    assert (model.dx, model.dz, model.dc, model.family) == (dx, dz, 7, family)
    cond, z = torch.randn(64, 7), torch.randn(64, dz)
    with torch.no_grad():
        x1, x2 = model.sample(cond, z), model.sample(cond, z)
        x3 = model.sample(cond, z + 1.0)
        x4 = model.sample(cond + 1.0, z)
    assert x1.shape == (64, dx) and x1.dtype == torch.float32
    assert torch.isfinite(x1).all()
    assert torch.equal(x1, x2)  # a pure function of (cond, z): nothing random inside
    assert (x3 - x1).abs().max() > 1e-3  # the noise matters
    assert (x4 - x1).abs().max() > 1e-3  # the condition matters (seed 004 section 4.3)


@pytest.mark.parametrize("family", sorted(SPECS))
def test_gradients_reach_every_parameter(family):
    model, _ = build(family)
    model.train()
    training_loss(model, family).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("family", sorted(SPECS))
def test_save_load_round_trip(tmp_path, family):
    dx, dz, params = SPECS[family]
    model, _ = build(family)
    spec = {"family": family, "dx": dx, "dc": 7, "params": params, "seed": 0}
    save_checkpoint(tmp_path / "ck.pt", model, spec)
    loaded, ck = load_checkpoint(tmp_path / "ck.pt")
    cond, z = torch.randn(32, 7), torch.randn(32, dz)
    with torch.no_grad():
        assert torch.equal(model.sample(cond, z), loaded.sample(cond, z))
    # the normalization statistics travel in the checkpoint as buffers
    assert "cond_norm.mean" in ck["state_dict"] and "cond_norm.std" in ck["state_dict"]


@pytest.mark.parametrize("family", sorted(SPECS))
def test_onnx_parity_and_dynamic_batch(exported, family):
    model, path = exported[family]
    assert onnx_parity(model, path, n=1000, seed=0) < 1e-4
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["cond", "z"]
    assert [o.name for o in sess.get_outputs()] == ["x"]
    for B in (1, 37, 1000):
        y = sess.run(None, {"cond": np.zeros((B, 7), np.float32),
                            "z": np.zeros((B, model.dz), np.float32)})[0]
        assert y.shape == (B, model.dx) and y.dtype == np.float32


@pytest.mark.parametrize("family", sorted(SPECS))
def test_metadata_and_the_service_loader(exported, robot, family):
    model, path = exported[family]
    md = read_metadata(path)
    assert md["family"] == family and md["output"] == FAMILY_OUTPUT[family]
    assert (int(md["dc"]), int(md["dz"]), int(md["dq"])) == (7, model.dz, model.dx)
    assert json.loads(md["train_config"])["model"]["family"] == family
    loaded = OnnxStanceModel(path, robot)
    rng = np.random.default_rng(0)
    cond = rng.normal(size=(5, 7)).astype(np.float32)
    z = rng.normal(size=(5, model.dz)).astype(np.float32)
    with torch.no_grad():
        ref = model.sample(torch.as_tensor(cond), torch.as_tensor(z)).numpy()
    assert np.abs(loaded.run(cond, z) - ref).max() < 1e-4


def _with_metadata(src, dst, key, value):
    proto = onnx.load(str(src))
    for e in proto.metadata_props:
        if e.key == PREFIX + key:
            e.value = value
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize("family", sorted(SPECS))
@pytest.mark.parametrize("key,value,match", [
    ("urdf_sha256", "0" * 64, "urdf_sha256"),
    ("family", "diffusion", "family"),
    ("joint_names", '["a", "b"]', "joint_names"),
    ("dz", "99", "graph tensor 'z' has shape"),
])
def test_the_service_refuses_disagreeing_metadata(exported, robot, tmp_path, family, key,
                                                  value, match):
    _, path = exported[family]
    bad = _with_metadata(path, tmp_path / "bad.onnx", key, value)
    with pytest.raises(ModelMismatch, match=match):
        OnnxStanceModel(bad, robot)
