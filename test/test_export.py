"""ONNX export: metadata, checkpoints, shipped models (parity and dynamic batch of every family:
test_model_contract.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from reachability_ros.core.canonical import FEATURIZATION_VERSION  # noqa: E402
from reachability_ros.core.errors import ConfigError  # noqa: E402
from reachability_ros.core.onnx_sampler import (METADATA_KEYS, PREFIX,  # noqa: E402
                                                read_metadata, robot_metadata)
from reachability_ros.training import models as M  # noqa: E402
from reachability_ros.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from reachability_ros.training.export import (export_checkpoint, export_onnx,  # noqa: E402
                                              model_metadata, onnx_parity)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = {"lekiwi_flow.onnx": ("flow", "stance_features", 9),
           "lekiwi_cvae.onnx": ("cvae", "stance_features", 9),
           "lekiwi_manifold.onnx": ("manifold_flow", "manifold_coords", 6),
           "lekiwi_cfm.onnx": ("cfm", "stance_features", 9),
           "lekiwi_manifold_cfm.onnx": ("manifold_cfm", "manifold_coords", 6),
           "lekiwi_manifold_gmm.onnx": ("manifold_gmm", "manifold_coords", 6)}
EXPECTED_KEYS = {"format", "robot", "urdf_sha256", "featurization", "joint_names", "reach_m",
                 "dc", "dz", "dq", "family", "output", "metrics", "train_config", "seed"}


def _model(family, dx):
    params = {"cvae": {"dz": 4, "hidden": 64, "n_layers": 2}}.get(
        family, {"n_blocks": 4, "hidden": 64, "n_layers": 2})
    model = M.build_model(family, dx, 7, params, seed=3)
    rng = np.random.default_rng(1)
    model.cond_norm.fit(rng.normal(0.2, 0.6, (1000, 7)))
    model.x_norm.fit(rng.normal(0.0, 0.4, (1000, dx)))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.15 * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, robot):
    out = {}
    d = tmp_path_factory.mktemp("onnx")
    for family, dx in (("flow", 9), ("cvae", 9), ("manifold_flow", 6)):
        model = _model(family, dx)
        md = model_metadata(model, robot_metadata(robot), {"pos_err_mm_median": 1.5},
                            {"model": {"family": family}}, seed=3)
        path = export_onnx(model, d / f"{family}.onnx", md)
        out[family] = (model, path)
    return out


def test_metadata_keys_and_values(exported, robot):
    model, path = exported["manifold_flow"]
    md = read_metadata(path)
    assert set(md) == EXPECTED_KEYS == set(METADATA_KEYS)
    assert md["format"] == "1" and md["robot"] == robot.config.name
    assert md["urdf_sha256"] == robot.urdf_sha256
    assert md["featurization"] == FEATURIZATION_VERSION
    assert json.loads(md["joint_names"]) == list(robot.joint_names)
    assert float(md["reach_m"]) == robot.config.reach_m
    assert (md["dc"], md["dz"], md["dq"]) == ("7", "6", "6")
    assert md["family"] == "manifold_flow" and md["output"] == "manifold_coords"
    assert json.loads(md["metrics"]) == {"pos_err_mm_median": 1.5}
    assert json.loads(md["train_config"])["model"]["family"] == "manifold_flow"
    assert md["seed"] == "3"
    assert read_metadata(exported["flow"][1])["output"] == "stance_features"


def test_export_refuses_incomplete_metadata(tmp_path):
    model = _model("flow", 9)
    with pytest.raises(ConfigError, match="missing"):
        export_onnx(model, tmp_path / "m.onnx", {"format": "1"})


def test_failed_export_keeps_the_old_model(tmp_path, robot, monkeypatch):
    """An export that fails half-way leaves the file it would replace as it was, and no
    temporary file."""
    import onnx

    model = _model("flow", 9)
    md = model_metadata(model, robot_metadata(robot), {}, {}, seed=3)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"the previous model")

    def broken(proto):
        raise onnx.checker.ValidationError("broken graph")

    monkeypatch.setattr(onnx.checker, "check_model", broken)
    with pytest.raises(onnx.checker.ValidationError):
        export_onnx(model, path, md)
    assert path.read_bytes() == b"the previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_export_checkpoint_carries_the_metadata(tmp_path, robot):
    """A checkpoint holds what its export needs: the export equals a direct one."""
    model = _model("cvae", 9)
    spec = {"family": "cvae", "dx": 9, "dc": 7, "seed": 5,
            "params": {"dz": 4, "hidden": 64, "n_layers": 2}}
    extra = {"robot_metadata": robot_metadata(robot), "train_config": {"seed": 5},
             "metrics": {"frac_valid": 0.9}}
    ck = save_checkpoint(tmp_path / "ck.pt", model, spec, extra)
    path = export_checkpoint(ck, tmp_path / "out" / "m.onnx")
    md = read_metadata(path)
    assert md["family"] == "cvae" and md["dz"] == "4" and md["seed"] == "5"
    assert json.loads(md["metrics"]) == {"frac_valid": 0.9}
    assert json.loads(md["train_config"]) == {"seed": 5}
    loaded, _ = load_checkpoint(ck)
    assert onnx_parity(loaded, path, n=200) < 1e-4
    assert not list((tmp_path / "out").glob("*.tmp"))  # written atomically
    # an old checkpoint without the metadata, or no checkpoint at all: one clear error
    save_checkpoint(tmp_path / "old.pt", model, spec)
    with pytest.raises(ConfigError, match="lacks the export metadata"):
        export_checkpoint(tmp_path / "old.pt", tmp_path / "o.onnx")
    with pytest.raises(ConfigError, match="does not exist"):
        export_checkpoint(tmp_path / "none.pt", tmp_path / "o.onnx")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="not a readable checkpoint"):
        export_checkpoint(tmp_path / "junk.pt", tmp_path / "o.onnx")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_models(name, robot):
    path = REPO / "models" / name
    if not path.exists():
        pytest.skip(f"{path} not shipped")
    family, output, dq = SHIPPED[name]
    assert path.stat().st_size <= 2 * 1024 * 1024
    md = read_metadata(path)
    assert set(md) == EXPECTED_KEYS
    assert (md["family"], md["output"], int(md["dq"])) == (family, output, dq)
    assert md["urdf_sha256"] == robot.urdf_sha256
    assert json.loads(md["metrics"])  # evaluation figures travel with the file
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    y = sess.run(None, {"cond": rng.normal(size=(64, 7)).astype(np.float32),
                        "z": rng.normal(size=(64, int(md["dz"]))).astype(np.float32)})[0]
    assert y.shape == (64, dq) and np.isfinite(y).all()
    assert PREFIX == "reachability_ros."
