"""OnnxStanceModel: runs a tiny graph, refuses files made for another robot or featurization."""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from reachability_ros.core.canonical import FEATURIZATION_VERSION  # noqa: E402
from reachability_ros.core.errors import (ConfigError, InvalidRequest,  # noqa: E402
                                          ModelMismatch)
from reachability_ros.core.onnx_sampler import (OnnxStanceModel,  # noqa: E402
                                                decode_manifold_output)

DC, DZ, DQ = 7, 4, 9
_W = np.random.default_rng(0).standard_normal((DC, DQ)).astype(np.float32)
_V = np.random.default_rng(1).standard_normal((DZ, DQ)).astype(np.float32)


def _metadata(robot_model, /, **overrides):
    robot = robot_model
    md = {"format": "1", "robot": robot.config.name, "urdf_sha256": robot.urdf_sha256,
          "featurization": FEATURIZATION_VERSION,
          "joint_names": json.dumps(list(robot.joint_names)),
          "reach_m": repr(float(robot.config.reach_m)), "dc": str(DC), "dz": str(DZ),
          "dq": str(DQ), "family": "flow", "output": "stance_features",
          "metrics": json.dumps({"fk_err_mm": 3.0}), "train_config": json.dumps({"lr": 1e-3}),
          "seed": "0"}
    md.update(overrides)
    return {k: v for k, v in md.items() if v is not None}


def _write(path, metadata, dq=DQ, input_names=("cond", "z")):
    """y = cond @ W + z @ V, dynamic batch."""
    cond = helper.make_tensor_value_info(input_names[0], TensorProto.FLOAT, ["B", DC])
    z = helper.make_tensor_value_info(input_names[1], TensorProto.FLOAT, ["B", DZ])
    y = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", dq])
    nodes = [helper.make_node("MatMul", [input_names[0], "W"], ["a"]),
             helper.make_node("MatMul", [input_names[1], "V"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["x"])]
    inits = [numpy_helper.from_array(_W[:, :dq], "W"), numpy_helper.from_array(_V[:, :dq], "V")]
    graph = helper.make_graph(nodes, "tiny", [cond, z], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"reachability_ros." + k: v for k, v in metadata.items()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_run_matches_the_graph(tmp_path, robot):
    m = OnnxStanceModel(_write(tmp_path / "m.onnx", _metadata(robot)), robot)
    assert (m.family, m.output, m.dc, m.dz, m.dq) == ("flow", "stance_features", DC, DZ, DQ)
    assert m.metadata["robot"] == robot.config.name
    assert m.metrics == {"fk_err_mm": 3.0} and m.train_config == {"lr": 1e-3}
    rng = np.random.default_rng(3)
    cond, z = rng.standard_normal((33, DC)), rng.standard_normal((33, DZ))
    y = m.run(cond, z)
    assert y.dtype == np.float64 and y.shape == (33, DQ)
    ref = cond.astype(np.float32) @ _W + z.astype(np.float32) @ _V
    np.testing.assert_allclose(y, ref, atol=1e-5)
    assert m.run(cond[:1], z[:1]).shape == (1, DQ)  # dynamic batch
    with pytest.raises(InvalidRequest, match="z must have shape"):
        m.run(cond, z[:, :2])
    with pytest.raises(InvalidRequest, match="finite"):
        m.run(np.full((1, DC), np.nan), z[:1])


@pytest.mark.parametrize("key,value", [
    ("robot", "so100_on_wheels"),
    ("urdf_sha256", "0" * 64),
    ("featurization", "lekiwi-canon-v0"),
    ("joint_names", json.dumps(["base_x", "base_y", "base_yaw", "a", "b", "c", "d", "e"])),
    ("reach_m", "0.75"),
    ("format", "2"),
    ("family", "gan"),
    ("output", "joint_angles"),
])
def test_mismatch_names_key_found_and_expected(tmp_path, robot, key, value):
    path = _write(tmp_path / "m.onnx", _metadata(robot, **{key: value}))
    with pytest.raises(ModelMismatch) as err:
        OnnxStanceModel(path, robot)
    msg = str(err.value)
    assert "reachability_ros." + key in msg
    assert repr(json.loads(value)) in msg if key == "joint_names" else value in msg
    assert "retrain" in msg


def test_expected_value_is_in_message(tmp_path, robot):
    path = _write(tmp_path / "m.onnx", _metadata(robot, urdf_sha256="f" * 64))
    with pytest.raises(ModelMismatch, match=robot.urdf_sha256):
        OnnxStanceModel(path, robot)


@pytest.mark.parametrize("key", ["robot", "urdf_sha256", "featurization", "joint_names", "dz"])
def test_missing_metadata(tmp_path, robot, key):
    path = _write(tmp_path / "m.onnx", _metadata(robot, **{key: None}))
    with pytest.raises(ModelMismatch, match=rf"reachability_ros\.{key}"):
        OnnxStanceModel(path, robot)


def test_no_metadata_at_all(tmp_path, robot):
    path = _write(tmp_path / "m.onnx", {})
    with pytest.raises(ModelMismatch, match="lacks metadata"):
        OnnxStanceModel(path, robot)


def test_graph_disagreeing_with_metadata(tmp_path, robot):
    path = _write(tmp_path / "m.onnx", _metadata(robot), dq=5)
    with pytest.raises(ModelMismatch, match=r"\[B, 9\]"):
        OnnxStanceModel(path, robot)
    path = _write(tmp_path / "n.onnx", _metadata(robot), input_names=("c", "noise"))
    with pytest.raises(ModelMismatch, match="inputs"):
        OnnxStanceModel(path, robot)


def test_missing_and_non_onnx_files(tmp_path, robot):
    with pytest.raises(ConfigError, match="does not exist"):
        OnnxStanceModel(tmp_path / "nope.onnx", robot)
    bad = tmp_path / "bad.onnx"
    bad.write_text("this is not a protobuf\n")
    with pytest.raises(ConfigError, match="not a readable ONNX model"):
        OnnxStanceModel(bad, robot)
    with pytest.raises(ConfigError):
        OnnxStanceModel(tmp_path, robot)  # a directory


def test_decode_manifold_output_inverts_the_encoding(robot):
    from reachability_ros.training.data import manifold_targets

    class _Fake:
        n_branches = 4

        def coordinates(self, q, T_world_grasp=None):
            return q[:, 3], q[:, 4], (np.arange(len(q)) % 4)

    rng = np.random.default_rng(5)
    q = robot.random_configurations(200, rng)
    lo, hi = robot.lower[3:5], robot.upper[3:5]
    y = manifold_targets(_Fake(), q, lo, hi)
    assert y.shape == (200, 6) and np.all(np.abs(y[:, :2]) <= 1.0)
    assert np.all(np.sort(y[:, 2:], axis=1)[:, :-1] == -1.0) and np.all(y[:, 2:].max(1) == 1.0)
    pan, lift, branch = decode_manifold_output(y, lo, hi)
    np.testing.assert_allclose(pan, q[:, 3], atol=1e-12)
    np.testing.assert_allclose(lift, q[:, 4], atol=1e-12)
    np.testing.assert_array_equal(branch, np.arange(200) % 4)
    # outputs outside [-1, 1] decode to the limits, not beyond
    pan, lift, _ = decode_manifold_output(np.array([[3.0, -3.0, 0.1, 0.2, -1.0]]), lo, hi)
    assert pan[0] == hi[0] and lift[0] == lo[1]
    with pytest.raises(InvalidRequest):
        decode_manifold_output(np.zeros((3, 2)), lo, hi)
