"""ONNX export of a trained sampler: one graph ``(cond [B, dc], z [B, dz]) -> x [B, dq]``.

The graph takes RAW condition features and returns RAW output features: the
feature-group normalizers are buffers of the model and are traced into it.
Opset 17, dynamic batch. The metadata (keys, values, checks) is the contract of
``core/onnx_sampler.py``, which the service loads the file with.

* :func:`export_checkpoint`: a checkpoint (also one of an interrupted run) to ONNX
  with its full metadata; what the trainer, the CLI and the ROS trainer node call.
* :func:`export_onnx`: a model and a metadata dict to ONNX.
* :func:`onnx_parity`: max |torch - onnxruntime| on random inputs.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..atomic import AtomicFile
from ..core.errors import ConfigError
from ..core.onnx_sampler import METADATA_KEYS, PREFIX, make_metadata, open_session
from .checkpoint import load_checkpoint

OPSET = 17


class _SampleGraph(torch.nn.Module):
    """``forward(cond, z) = model.sample(cond, z)``: the exported function."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.model.sample(cond, z)


def toy_robot_metadata(toy) -> dict[str, str]:
    """Robot part of the metadata for a model of a toy robot (no URDF, no joints)."""
    from ..evaluation.toys import TOY_FEATURIZATION_VERSION

    return {"robot": "toy_v2", "urdf_sha256": "", "featurization": TOY_FEATURIZATION_VERSION,
            "joint_names": "[]", "reach_m": repr(float(toy.reach_m))}


def model_metadata(model, robot_md: Mapping[str, str], metrics: Mapping[str, float],
                   train_config: Mapping[str, Any], seed: int) -> dict[str, str]:
    """Return the full metadata of ``model`` (``core.onnx_sampler.make_metadata``)."""
    return make_metadata(robot_md, getattr(model, "family", "flow"), model.dc, model.dz,
                         model.dx, metrics, train_config, seed)


def export_onnx(model: torch.nn.Module, path: str | Path, metadata: Mapping[str, str]) -> Path:
    """Export ``model.sample`` to ONNX with metadata; the file appears complete or not at all.

    Args:
        model: a model with ``sample(cond, z)``, ``dc``, ``dz``, ``dx``.
        path: output ``.onnx`` path (its folder is created).
        metadata: values for every key of ``core.onnx_sampler.METADATA_KEYS``
            (prefix added here).

    Returns:
        The path written.

    Raises:
        ConfigError: a metadata key is missing or not a string, or the folder cannot
            be created.
    """
    import onnx

    missing = [k for k in METADATA_KEYS if k not in metadata]
    bad = [k for k, v in metadata.items() if not isinstance(v, str)]
    if missing or bad:
        raise ConfigError(f"ONNX metadata: missing keys {missing}, non-string values {bad}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {str(path.parent)!r}: {exc.strerror or exc}") from None
    model = model.cpu().eval()
    graph = _SampleGraph(model).eval()
    cond = torch.zeros(2, model.dc)
    z = torch.zeros(2, model.dz)
    with AtomicFile(path) as f:
        tmp = str(f.tmp_path)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(graph, (cond, z), tmp, input_names=["cond", "z"],
                              output_names=["x"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={"cond": {0: "B"}, "z": {0: "B"}, "x": {0: "B"}},
                              do_constant_folding=True)
        proto = onnx.load(tmp)
        del proto.metadata_props[:]
        for k in METADATA_KEYS:
            e = proto.metadata_props.add()
            e.key, e.value = PREFIX + k, metadata[k]
        proto.producer_name = "reachability_ros"
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
    return path


def export_checkpoint(checkpoint_path: str | Path, onnx_path: str | Path) -> Path:
    """Export a training checkpoint to ONNX with its full metadata.

    The metadata comes from the checkpoint (robot, URDF hash, featurization, joint
    names, reach, training config, metrics, seed), so neither the robot description
    nor the data are needed; a checkpoint of an interrupted run exports too (its
    ``metrics`` are then empty).

    Args:
        checkpoint_path: ``checkpoint.pt`` of a training run.
        onnx_path: the ``.onnx`` file to write (replaced if it exists).

    Returns:
        The path written.

    Raises:
        ConfigError: the checkpoint is missing, unreadable or lacks the export
            metadata (written by an older trainer: retrain).
    """
    model, ck = load_checkpoint(checkpoint_path)
    extra = ck.get("extra") or {}
    if "robot_metadata" not in extra or "train_config" not in extra:
        raise ConfigError(f"checkpoint {checkpoint_path} lacks the export metadata (robot, "
                          "training config); it was written by an older trainer: retrain")
    md = model_metadata(model, extra["robot_metadata"], extra.get("metrics") or {},
                        extra["train_config"], ck["spec"]["seed"])
    return export_onnx(model, onnx_path, md)


def onnx_parity(model: torch.nn.Module, path: str | Path, n: int = 1000, seed: int = 0,
                cond: np.ndarray | None = None) -> float:
    """Return max |torch - onnxruntime| over ``n`` random inputs.

    The conditions are drawn around the model's condition statistics unless given.
    """
    rng = np.random.default_rng(seed)
    if cond is None:
        m = model.cond_norm.mean.numpy()
        s = model.cond_norm.std.numpy()
        cond = (m + s * rng.standard_normal((n, model.dc))).astype(np.float32)
    z = rng.standard_normal((len(cond), model.dz)).astype(np.float32)
    sess = open_session(path, intra_op_threads=0)
    (y,) = sess.run(["x"], {"cond": cond.astype(np.float32), "z": z})
    with torch.no_grad():
        t = model.cpu().eval().sample(torch.as_tensor(cond), torch.as_tensor(z)).numpy()
    return float(np.abs(y - t).max())
