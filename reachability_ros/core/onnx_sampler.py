"""Load an exported stance model (ONNX) and check that it belongs to this robot.

Every model file carries its provenance in the ONNX ``metadata_props``
(written by ``training/export.py``); all keys start with ``reachability_ros.``:

=================  ============================================================
key                value
=================  ============================================================
``format``         ``"1"``
``robot``          robot name (``RobotConfig.name``)
``urdf_sha256``    SHA-256 of the robot description the model was trained on
``featurization``  ``core.canonical.FEATURIZATION_VERSION``
``joint_names``    JSON list, the whole-body configuration order
``reach_m``        reach scale R (m) of the features
``dc``, ``dz``,    condition, latent and output dimensions
``dq``
``family``         ``"flow"``, ``"cvae"`` or ``"manifold_flow"``
``output``         ``"stance_features"`` (core.canonical stance features ``x``) or
                   ``"manifold_coords"`` (``y = (pan, lift, branch scores)``)
``metrics``        JSON: training / evaluation metrics
``train_config``   JSON: the training configuration
``seed``           training seed
=================  ============================================================

The graph has inputs ``cond [B, dc]`` and ``z [B, dz]`` (float32; the caller
supplies the noise, so a request is reproducible from its seed) and one output
``[B, dq]``. A file made for another robot, description, featurization, joint
order or reach scale is refused with :class:`~.errors.ModelMismatch`; a file
that is missing or not ONNX with :class:`~.errors.ConfigError`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .canonical import COND_DIM, FEATURIZATION_VERSION
from .errors import ConfigError, InvalidRequest, ModelMismatch
from .geometry import clamp

PREFIX = "reachability_ros."
FORMAT_VERSION = "1"
FAMILIES = ("flow", "cvae", "manifold_flow")
OUTPUTS = ("stance_features", "manifold_coords")
REQUIRED_KEYS = ("format", "robot", "urdf_sha256", "featurization", "joint_names", "reach_m",
                 "dc", "dz", "dq", "family", "output")
_FIX = ("retrain and export the model for this robot description "
        "(python -m reachability_ros.training.train ...), or point proposal.model_path at "
        "a model exported for it")


def decode_manifold_output(y: np.ndarray, lower: np.ndarray,
                           upper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Manifold coordinates from a ``manifold_coords`` model output.

    Inverse of the training encoding (``training/data.py``, ``manifold_targets``):
    ``y[:, 0:2]`` are pan and shoulder-lift mapped linearly from their joint
    limits to [-1, 1] (clipped to [-1, 1] here, so decoded angles stay inside the
    limits), ``y[:, 2:]`` one score per branch (+1 for the sample's branch, -1
    for the others in the data); the branch is the argmax.

    Args:
        y: ``(B, 2 + nb)`` model outputs.
        lower: ``(2,)`` lower limits of (pan, lift) (rad).
        upper: ``(2,)`` upper limits of (pan, lift) (rad).

    Returns:
        ``pan (B,)``, ``lift (B,)`` (rad, float64) and ``branch (B,)`` (int64).

    Raises:
        InvalidRequest: ``y`` is not ``(B, >= 3)``.
    """
    y = np.asarray(y, dtype=float)
    if y.ndim != 2 or y.shape[1] < 3:
        raise InvalidRequest(f"manifold outputs must have shape (B, 2 + n_branches >= 3), "
                             f"got {y.shape}")
    lo = np.asarray(lower, dtype=float).reshape(2)
    hi = np.asarray(upper, dtype=float).reshape(2)
    u = clamp(y[:, :2], -1.0, 1.0)
    angles = 0.5 * (u * (hi - lo) + (lo + hi))
    return angles[:, 0], angles[:, 1], np.argmax(y[:, 2:], axis=1).astype(np.int64)


def read_metadata(path: str | Path) -> dict[str, str]:
    """Return the ``reachability_ros.*`` metadata of an ONNX file (prefix stripped)."""
    return OnnxStanceModel._load(Path(path), 1)[1]


class OnnxStanceModel:
    """An exported stance sampler, checked against the robot it will serve.

    Args:
        path: the ``.onnx`` file.
        robot: the whole-body model (``core.robot.WholeBodyModel``) of the service.
        intra_op_threads: onnxruntime intra-op threads (1: the service is
            single-threaded per request and latency-bound).

    Attributes:
        metadata: every ``reachability_ros.*`` key, prefix stripped (str values).
        family: ``"flow"``, ``"cvae"`` or ``"manifold_flow"``.
        output: ``"stance_features"`` or ``"manifold_coords"``.
        dc, dz, dq: condition, latent and output dimensions.
        metrics, train_config: parsed JSON (empty dict when absent).

    Raises:
        ConfigError: the file is missing or not a readable ONNX model.
        ModelMismatch: a metadata key is missing or disagrees with ``robot``
            (the message names the key, the file's value and the expected one).

    Example:
        >>> model = OnnxStanceModel("models/lekiwi_flow.onnx", WholeBodyModel())
        >>> x = model.run(cond, rng.standard_normal((len(cond), model.dz)))
    """

    def __init__(self, path: str | Path, robot, intra_op_threads: int = 1) -> None:
        self.path = Path(path)
        if not isinstance(intra_op_threads, int) or intra_op_threads < 0:
            raise ConfigError(f"intra_op_threads must be an integer >= 0, got "
                              f"{intra_op_threads!r}")
        self.session, self.metadata = self._load(self.path, intra_op_threads)
        self._check(robot)
        md = self.metadata
        self.family: str = md["family"]
        self.output: str = md["output"]
        self.dc, self.dz, self.dq = (self._int_key(k) for k in ("dc", "dz", "dq"))
        self.metrics: dict[str, Any] = self._json_key("metrics", {})
        self.train_config: dict[str, Any] = self._json_key("train_config", {})
        self._check_graph()

    # ------------------------------------------------------------------ loading
    @staticmethod
    def _load(path: Path, threads: int) -> tuple[ort.InferenceSession, dict[str, str]]:
        if not path.is_file():
            raise ConfigError(f"model file {str(path)!r} does not exist; set proposal.model_path "
                              "to an exported .onnx model (or leave it empty for no model)")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            sess = ort.InferenceSession(str(path), sess_options=so,
                                        providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail)
            raise ConfigError(f"{path} is not a readable ONNX model ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); export one with training/export.py") from None
        props = sess.get_modelmeta().custom_metadata_map
        md = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
        return sess, md

    def _mismatch(self, key: str, found: Any, expected: Any) -> ModelMismatch:
        return ModelMismatch(
            f"model {self.path.name}: metadata {PREFIX}{key} is {found!r}, expected "
            f"{expected!r} for this robot; {_FIX}")

    def _int_key(self, key: str) -> int:
        try:
            v = int(self.metadata[key])
        except ValueError:
            raise ModelMismatch(f"model {self.path.name}: metadata {PREFIX}{key} = "
                                f"{self.metadata[key]!r} is not an integer; {_FIX}") from None
        if v < 0:
            raise ModelMismatch(f"model {self.path.name}: metadata {PREFIX}{key} = {v} < 0")
        return v

    def _json_key(self, key: str, default: Any) -> Any:
        if key not in self.metadata:
            return default
        try:
            return json.loads(self.metadata[key])
        except json.JSONDecodeError:
            raise ModelMismatch(f"model {self.path.name}: metadata {PREFIX}{key} is not valid "
                                f"JSON: {self.metadata[key][:80]!r}; {_FIX}") from None

    def _check(self, robot) -> None:
        md = self.metadata
        missing = [k for k in REQUIRED_KEYS if k not in md]
        if missing:
            raise ModelMismatch(
                f"model {self.path.name} lacks metadata {[PREFIX + k for k in missing]} "
                f"(found keys: {sorted(PREFIX + k for k in md)}); it was not exported by "
                f"reachability_ros.training.export: {_FIX}")
        if md["format"] != FORMAT_VERSION:
            raise self._mismatch("format", md["format"], FORMAT_VERSION)
        if md["robot"] != robot.config.name:
            raise self._mismatch("robot", md["robot"], robot.config.name)
        if md["urdf_sha256"] != robot.urdf_sha256:
            raise self._mismatch("urdf_sha256", md["urdf_sha256"], robot.urdf_sha256)
        if md["featurization"] != FEATURIZATION_VERSION:
            raise self._mismatch("featurization", md["featurization"], FEATURIZATION_VERSION)
        names = self._json_key("joint_names", None)
        if names != list(robot.joint_names):
            raise self._mismatch("joint_names", names, list(robot.joint_names))
        try:
            reach = float(md["reach_m"])
        except ValueError:
            reach = float("nan")
        if not math.isclose(reach, float(robot.config.reach_m), rel_tol=1e-9, abs_tol=1e-12):
            raise self._mismatch("reach_m", md["reach_m"], float(robot.config.reach_m))
        if md["family"] not in FAMILIES:
            raise self._mismatch("family", md["family"], " | ".join(FAMILIES))
        if md["output"] not in OUTPUTS:
            raise self._mismatch("output", md["output"], " | ".join(OUTPUTS))

    def _check_graph(self) -> None:
        ins = {i.name: i for i in self.session.get_inputs()}
        if set(ins) != {"cond", "z"}:
            raise ModelMismatch(f"model {self.path.name}: graph inputs are {sorted(ins)}, "
                                "expected ['cond', 'z']; " + _FIX)
        if self.dc != COND_DIM:
            raise self._mismatch("dc", self.dc, COND_DIM)
        outs = self.session.get_outputs()
        for name, want, shape in (("cond", self.dc, ins["cond"].shape),
                                  ("z", self.dz, ins["z"].shape),
                                  (outs[0].name, self.dq, outs[0].shape)):
            if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != want):
                raise ModelMismatch(f"model {self.path.name}: graph tensor {name!r} has shape "
                                    f"{shape}, metadata says [B, {want}]; " + _FIX)
        self._output_name = outs[0].name

    # -------------------------------------------------------------------- running
    def run(self, cond: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Run the graph on a batch.

        Args:
            cond: ``(B, dc)`` condition features (core.canonical.condition_features).
            z: ``(B, dz)`` latent noise (standard normal for the trained families).

        Returns:
            ``(B, dq)`` float64 outputs (stance features or manifold coordinates).

        Raises:
            InvalidRequest: wrong shapes or non-finite inputs.
        """
        c = np.asarray(cond, dtype=np.float32)
        zz = np.asarray(z, dtype=np.float32)
        if c.ndim != 2 or c.shape[1] != self.dc:
            raise InvalidRequest(f"cond must have shape (B, {self.dc}), got {c.shape}")
        if zz.ndim != 2 or zz.shape != (c.shape[0], self.dz):
            raise InvalidRequest(f"z must have shape ({c.shape[0]}, {self.dz}), got {zz.shape}")
        if not (np.all(np.isfinite(c)) and np.all(np.isfinite(zz))):
            raise InvalidRequest("cond and z must be finite")
        if c.shape[0] == 0:
            return np.zeros((0, self.dq))
        (y,) = self.session.run([self._output_name], {"cond": c, "z": zz})
        return np.asarray(y, dtype=np.float64)

    def __repr__(self) -> str:
        return (f"OnnxStanceModel({str(self.path)!r}, family={self.family!r}, "
                f"output={self.output!r}, dc={self.dc}, dz={self.dz}, dq={self.dq})")
