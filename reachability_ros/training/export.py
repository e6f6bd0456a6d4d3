"""ONNX export of a trained sampler: one graph ``(cond [B, dc], z [B, dz]) -> x [B, dq]``.

The graph takes RAW condition features and returns RAW output features: the
feature-group normalizers are buffers of the model and are traced into it.
Opset 17, dynamic batch. Metadata (``metadata_props``, all strings, JSON where
structured) under the keys of :data:`METADATA_KEYS`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..core.errors import ConfigError

OPSET = 17
PREFIX = "reachability_ros."
METADATA_KEYS = ("format", "robot", "urdf_sha256", "featurization", "joint_names", "reach_m",
                 "dc", "dz", "dq", "family", "output", "metrics", "train_config", "seed")


class _SampleGraph(torch.nn.Module):
    """``forward(cond, z) = model.sample(cond, z)``: the exported function."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.model.sample(cond, z)


def metadata_for(model, meta: Mapping[str, Any], metrics: Mapping[str, Any],
                 train_config: Mapping[str, Any], seed: int) -> dict[str, str]:
    """Build the metadata dict (keys without the prefix, string values) for a model.

    Args:
        model: trained model (``dx``, ``dc``, ``dz``, ``family``).
        meta: data meta from the trainer (``robot``: a WholeBodyModel, or ``toy``).
        metrics: evaluation metrics.
        train_config: the full training config.
        seed: training seed.
    """
    from ..core.canonical import FEATURIZATION_VERSION

    robot = meta.get("robot")
    if robot is not None:
        name = robot.config.name if hasattr(robot.config, "name") else "lekiwi"
        sha, joints, reach = robot.urdf_sha256, list(robot.joint_names), robot.config.reach_m
        feat = FEATURIZATION_VERSION
    else:
        name, sha, joints, reach, feat = "toy_v2", "", [], 1.0, "toy-v2"
    family = getattr(model, "family", "flow")
    return {
        "format": "1", "robot": str(name), "urdf_sha256": sha, "featurization": feat,
        "joint_names": json.dumps(joints), "reach_m": repr(float(reach)),
        "dc": str(model.dc), "dz": str(model.dz), "dq": str(model.dx), "family": family,
        "output": "manifold_coords" if family == "manifold_flow" else "stance_features",
        "metrics": json.dumps({k: float(v) for k, v in metrics.items()}, sort_keys=True),
        "train_config": json.dumps(train_config, sort_keys=True, default=str),
        "seed": str(int(seed)),
    }


def export_onnx(model: torch.nn.Module, path: str | Path, metadata: Mapping[str, str]) -> Path:
    """Export ``model.sample`` to ONNX with metadata.

    Args:
        model: a model with ``sample(cond, z)``, ``dc``, ``dz``, ``dx``.
        path: output ``.onnx`` path.
        metadata: values for every key of :data:`METADATA_KEYS` (prefix added here).

    Returns:
        The path written.

    Raises:
        ConfigError: a metadata key is missing or not a string.
    """
    import onnx

    missing = [k for k in METADATA_KEYS if k not in metadata]
    bad = [k for k, v in metadata.items() if not isinstance(v, str)]
    if missing or bad:
        raise ConfigError(f"ONNX metadata: missing keys {missing}, non-string values {bad}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    graph = _SampleGraph(model).eval()
    cond = torch.zeros(2, model.dc)
    z = torch.zeros(2, model.dz)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(graph, (cond, z), str(path), input_names=["cond", "z"],
                          output_names=["x"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"cond": {0: "B"}, "z": {0: "B"}, "x": {0: "B"}},
                          do_constant_folding=True)
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for k in METADATA_KEYS:
        e = proto.metadata_props.add()
        e.key, e.value = PREFIX + k, metadata[k]
    proto.producer_name = "reachability_ros"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """Metadata of an exported model, keys without the prefix."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key[len(PREFIX):]: p.value for p in proto.metadata_props
            if p.key.startswith(PREFIX)}


def onnx_parity(model: torch.nn.Module, path: str | Path, n: int = 1000, seed: int = 0,
                cond: np.ndarray | None = None) -> float:
    """Max |torch - onnxruntime| over ``n`` random inputs (conditions drawn around the
    model's condition statistics unless given)."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    if cond is None:
        m = model.cond_norm.mean.numpy()
        s = model.cond_norm.std.numpy()
        cond = (m + s * rng.standard_normal((n, model.dc))).astype(np.float32)
    z = rng.standard_normal((len(cond), model.dz)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(["x"], {"cond": cond.astype(np.float32), "z": z})
    with torch.no_grad():
        t = model.cpu().eval().sample(torch.as_tensor(cond), torch.as_tensor(z)).numpy()
    return float(np.abs(y - t).max())
