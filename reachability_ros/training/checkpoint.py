"""Checkpoints of a training run: the model's weights and everything its export needs.

A checkpoint (``checkpoint.pt``, written by the trainer at every better epoch and when
a run is interrupted) holds:

* ``format``: :data:`CHECKPOINT_FORMAT`;
* ``spec``: how to rebuild the model (``family``, ``dx``, ``dc``, ``params``, ``seed``);
* ``state_dict``: the weights, normalization statistics included (buffers);
* ``extra``: ``epoch``, ``val_nll``, ``robot_metadata`` (what the ONNX metadata says
  about the robot, :func:`reachability_ros.core.onnx_sampler.robot_metadata`),
  ``train_config``, ``metrics`` (empty until the run's evaluation) and ``interrupted``.

So ``training/export.py`` turns any checkpoint, also one from an interrupted run,
into an ONNX graph with full metadata, without the robot description or the data.
Only plain data and tensors are stored: the file is read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..atomic import AtomicFile
from ..core.errors import ConfigError
from .models import build_model

CHECKPOINT_FORMAT = "reachability_ros.checkpoint/1"


def save_checkpoint(path: str | Path, model: torch.nn.Module, spec: dict[str, Any],
                    extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (``atomic.AtomicFile``) and return its path.

    Args:
        path: the ``.pt`` file.
        model: the model (its ``state_dict`` is stored).
        spec: ``family``, ``dx``, ``dc``, ``params``, ``seed`` (see :func:`load_checkpoint`).
        extra: plain data stored beside (see the module docstring).
    """
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with AtomicFile(path) as f:
        torch.save({"format": CHECKPOINT_FORMAT, "spec": spec, "state_dict": state,
                    "extra": extra or {}}, f.tmp_path)
    return path


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint.

    Returns:
        ``(model, checkpoint)``: the model in eval mode on the CPU and the checkpoint dict.

    Raises:
        ConfigError: the file is missing or is not a checkpoint of this trainer.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint {str(p)!r} does not exist (a training run writes "
                          "<out>/checkpoint.pt)")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike
        raise ConfigError(f"{p} is not a readable checkpoint ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:160]})") from None
    if not isinstance(ck, dict) or "spec" not in ck or "state_dict" not in ck:
        raise ConfigError(f"{p} is not a checkpoint of reachability_ros.training")
    s = ck["spec"]
    model = build_model(s["family"], s["dx"], s["dc"], s["params"], seed=s["seed"])
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck
