"""The ONNX model contract: metadata, session factory, checks against the robot, decoding.

One module for everything that defines an exported stance model, shared by the
trainer's export (``training/export.py``), the trainer CLI's evaluation and the
service (:class:`OnnxStanceModel`). Every model file carries its provenance in the
ONNX ``metadata_props``; all keys start with ``reachability_ros.``:

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
``family``         one of :data:`FAMILIES` (``"flow"``, ``"cvae"``, ``"manifold_flow"``,
                   ``"cfm"``, ``"manifold_cfm"``, ``"manifold_gmm"``)
``output``         ``"stance_features"`` (core.canonical stance features ``x``) or
                   ``"manifold_coords"`` (``y = (pan, lift, branch scores)``)
``metrics``        JSON: training / evaluation metrics
``train_config``   JSON: the training configuration
``seed``           training seed
=================  ============================================================

The graph has inputs ``cond [B, dc]`` and ``z [B, dz]`` (float32; the caller
supplies the noise, so a request is reproducible from its seed) and one output
``[B, dq]``. For every family ``z`` is standard normal noise; what each family makes of
it (a flow's latent, a flow-matching ODE's start, a mixture's component and Gaussian
draw) is inside the graph. :func:`robot_metadata` is what a model must agree with to serve a
robot; a file made for another robot, description, featurization, joint order or
reach scale is refused with :class:`~.errors.ModelMismatch`, a file that is
missing or not ONNX with :class:`~.errors.ConfigError`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnxruntime as ort

from .canonical import COND_DIM, FEATURIZATION_VERSION
from .errors import ConfigError, InvalidRequest, ModelMismatch
from .geometry import clamp

PREFIX = "reachability_ros."
FORMAT_VERSION = "1"
#: output of each model family
FAMILY_OUTPUT = {"flow": "stance_features", "cvae": "stance_features",
                 "manifold_flow": "manifold_coords", "cfm": "stance_features",
                 "manifold_cfm": "manifold_coords", "manifold_gmm": "manifold_coords"}
FAMILIES = tuple(FAMILY_OUTPUT)
OUTPUTS = ("stance_features", "manifold_coords")
#: every metadata key an export writes, in order
METADATA_KEYS = ("format", "robot", "urdf_sha256", "featurization", "joint_names", "reach_m",
                 "dc", "dz", "dq", "family", "output", "metrics", "train_config", "seed")
#: the keys a loader needs (``metrics``, ``train_config`` and ``seed`` are provenance)
REQUIRED_KEYS = METADATA_KEYS[:11]
_FIX = ("retrain and export a model for this robot description (python -m reachability_ros "
        "train config/train_tiny.yaml --out runs/tiny writes runs/tiny/model.onnx), or point "
        "proposal.model_path at a model exported for it")


def robot_metadata(robot) -> dict[str, str]:
    """Return the metadata values a model must carry to serve ``robot`` (strings).

    Args:
        robot: the :class:`~reachability_ros.core.robot.WholeBodyModel`.

    Returns:
        ``robot``, ``urdf_sha256``, ``featurization``, ``joint_names`` (JSON) and
        ``reach_m`` (``repr`` of the float).
    """
    return {"robot": str(robot.config.name), "urdf_sha256": robot.urdf_sha256,
            "featurization": FEATURIZATION_VERSION,
            "joint_names": json.dumps(list(robot.joint_names)),
            "reach_m": repr(float(robot.config.reach_m))}


def make_metadata(robot_md: Mapping[str, str], family: str, dc: int, dz: int, dq: int,
                  metrics: Mapping[str, float], train_config: Mapping[str, Any],
                  seed: int) -> dict[str, str]:
    """Return the full metadata of a model (every key of :data:`METADATA_KEYS`, strings).

    Args:
        robot_md: :func:`robot_metadata` of the robot (or a toy's equivalent).
        family: one of :data:`FAMILIES`; the output follows from it.
        dc, dz, dq: condition, latent and output dimensions.
        metrics: evaluation figures (floats).
        train_config: the training configuration (JSON-serializable).
        seed: the training seed.

    Raises:
        ConfigError: an unknown family or a missing robot key.
    """
    if family not in FAMILY_OUTPUT:
        raise ConfigError(f"model family {family!r} is not one of {list(FAMILIES)}")
    missing = [k for k in ("robot", "urdf_sha256", "featurization", "joint_names", "reach_m")
               if k not in robot_md]
    if missing:
        raise ConfigError(f"robot metadata lacks {missing}")
    md = {"format": FORMAT_VERSION, **{k: str(v) for k, v in robot_md.items()},
          "dc": str(int(dc)), "dz": str(int(dz)), "dq": str(int(dq)), "family": family,
          "output": FAMILY_OUTPUT[family],
          "metrics": json.dumps({k: float(v) for k, v in metrics.items()}, sort_keys=True),
          "train_config": json.dumps(train_config, sort_keys=True, default=str),
          "seed": str(int(seed))}
    return {k: md[k] for k in METADATA_KEYS}


def open_session(path: str | Path, intra_op_threads: int = 1) -> ort.InferenceSession:
    """Open an ONNX file on the CPU with onnxruntime.

    Args:
        path: the ``.onnx`` file.
        intra_op_threads: intra-op threads (1: the service is latency-bound and
            single-threaded per request; 0: onnxruntime's default).

    Raises:
        ConfigError: the file is missing or not a readable ONNX model.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model file {str(path)!r} does not exist; set proposal.model_path "
                          "to an exported .onnx model (or leave it empty for no model)")
    so = ort.SessionOptions()
    so.intra_op_num_threads = intra_op_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=so,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail)
        raise ConfigError(f"{path} is not a readable ONNX model ({type(exc).__name__}: "
                          f"{str(exc)[:200]}); export one with python -m reachability_ros "
                          "export CHECKPOINT --out MODEL.onnx") from None


def session_metadata(session: ort.InferenceSession) -> dict[str, str]:
    """Return the ``reachability_ros.*`` metadata of an open session (prefix stripped)."""
    props = session.get_modelmeta().custom_metadata_map
    return {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}


def read_metadata(path: str | Path) -> dict[str, str]:
    """Return the ``reachability_ros.*`` metadata of an ONNX file (prefix stripped).

    Raises:
        ConfigError: the file is missing or not a readable ONNX model.
    """
    return session_metadata(open_session(path))


def check_metadata(metadata: Mapping[str, str], robot, name: str = "model") -> None:
    """Refuse a model whose metadata does not fit ``robot`` or the contract.

    Args:
        metadata: the model's metadata (prefix stripped).
        robot: the :class:`~reachability_ros.core.robot.WholeBodyModel` it will serve.
        name: the model's name in messages (its file name).

    Raises:
        ModelMismatch: a required key is missing, or a value disagrees (the message
            names the key, the file's value and the expected one, and the fix).
    """
    md = metadata

    def mismatch(key: str, found: Any, expected: Any) -> ModelMismatch:
        return ModelMismatch(f"model {name}: metadata {PREFIX}{key} is {found!r}, expected "
                             f"{expected!r} for this robot; {_FIX}")

    missing = [k for k in REQUIRED_KEYS if k not in md]
    if missing:
        raise ModelMismatch(
            f"model {name} lacks metadata {[PREFIX + k for k in missing]} (found keys: "
            f"{sorted(PREFIX + k for k in md)}); it was not exported by reachability_ros: {_FIX}")
    want = robot_metadata(robot)
    if md["format"] != FORMAT_VERSION:
        raise mismatch("format", md["format"], FORMAT_VERSION)
    for key in ("robot", "urdf_sha256", "featurization"):
        if md[key] != want[key]:
            raise mismatch(key, md[key], want[key])
    names = json_value(md, "joint_names", None, name)
    if names != list(robot.joint_names):
        raise mismatch("joint_names", names, list(robot.joint_names))
    try:
        reach = float(md["reach_m"])
    except ValueError:
        reach = float("nan")
    if not math.isclose(reach, float(robot.config.reach_m), rel_tol=1e-9, abs_tol=1e-12):
        raise mismatch("reach_m", md["reach_m"], float(robot.config.reach_m))
    if md["family"] not in FAMILIES:
        raise mismatch("family", md["family"], " | ".join(FAMILIES))
    if md["output"] not in OUTPUTS:
        raise mismatch("output", md["output"], " | ".join(OUTPUTS))


def int_value(metadata: Mapping[str, str], key: str, name: str = "model") -> int:
    """Return metadata ``key`` as an integer >= 0.

    Raises:
        ModelMismatch: missing, not an integer, or negative.
    """
    try:
        v = int(metadata[key])
    except (KeyError, ValueError):
        raise ModelMismatch(f"model {name}: metadata {PREFIX}{key} = "
                            f"{metadata.get(key)!r} is not an integer; {_FIX}") from None
    if v < 0:
        raise ModelMismatch(f"model {name}: metadata {PREFIX}{key} = {v} < 0; {_FIX}")
    return v


def json_value(metadata: Mapping[str, str], key: str, default: Any, name: str = "model") -> Any:
    """Return metadata ``key`` parsed as JSON (``default`` when absent).

    Raises:
        ModelMismatch: the value is not valid JSON.
    """
    if key not in metadata:
        return default
    try:
        return json.loads(metadata[key])
    except json.JSONDecodeError:
        raise ModelMismatch(f"model {name}: metadata {PREFIX}{key} is not valid JSON: "
                            f"{metadata[key][:80]!r}; {_FIX}") from None


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


class OnnxStanceModel:
    """An exported stance sampler, checked against the robot it will serve.

    Args:
        path: the ``.onnx`` file.
        robot: the whole-body model (``core.robot.WholeBodyModel``) of the service.
        intra_op_threads: onnxruntime intra-op threads (1: the service is
            single-threaded per request and latency-bound).

    Attributes:
        metadata: every ``reachability_ros.*`` key, prefix stripped (str values).
        family: one of :data:`FAMILIES`.
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
        if isinstance(intra_op_threads, bool) or not isinstance(intra_op_threads, int) or (
                intra_op_threads < 0):
            raise ConfigError(f"intra_op_threads must be an integer >= 0, got "
                              f"{intra_op_threads!r}")
        self.session = open_session(self.path, intra_op_threads)
        self.metadata = md = session_metadata(self.session)
        name = self.path.name
        check_metadata(md, robot, name)
        self.family: str = md["family"]
        self.output: str = md["output"]
        self.dc, self.dz, self.dq = (int_value(md, k, name) for k in ("dc", "dz", "dq"))
        self.metrics: dict[str, Any] = json_value(md, "metrics", {}, name)
        self.train_config: dict[str, Any] = json_value(md, "train_config", {}, name)
        self._output_name = self._check_graph()

    def _check_graph(self) -> str:
        """Check the graph's tensors against the metadata; return the output's name."""
        ins = {i.name: i for i in self.session.get_inputs()}
        if set(ins) != {"cond", "z"}:
            raise ModelMismatch(f"model {self.path.name}: graph inputs are {sorted(ins)}, "
                                "expected ['cond', 'z']; " + _FIX)
        if self.dc != COND_DIM:
            raise ModelMismatch(f"model {self.path.name}: metadata {PREFIX}dc is {self.dc}, "
                                f"expected {COND_DIM} for this robot; {_FIX}")
        outs = self.session.get_outputs()
        for name, want, shape in (("cond", self.dc, ins["cond"].shape),
                                  ("z", self.dz, ins["z"].shape),
                                  (outs[0].name, self.dq, outs[0].shape)):
            if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != want):
                raise ModelMismatch(f"model {self.path.name}: graph tensor {name!r} has shape "
                                    f"{shape}, metadata says [B, {want}]; " + _FIX)
        return outs[0].name

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
