"""Validated configs of the dataset generator and the trainer (``config/data_*.yaml``,
``config/train_*.yaml``).

Every option is a field of a frozen dataclass built on
:class:`reachability_ros.core.config.ConfigSection`, the base of the runtime config
too: one place holds each default, description, type and range; an unknown key
(``train.max_epoch``), a value of the wrong type (``train.max_epochs: abc``) or out of
range is a :class:`~reachability_ros.core.errors.ConfigError` whose one-line message
names the key by its dotted path. Overrides (``key=value`` strings parsed by
:func:`reachability_ros.config_io.parse_overrides`) are checked like the file.

* :class:`DataConfig` (``config/data_lekiwi.yaml``): the dataset of
  ``training/dataset.py``; :class:`GeneratorConfig` is the part a training config
  sets under ``data.generator`` (the robot, seed and sizes come from the training
  config there).
* :class:`TrainingConfig` (``config/train_*.yaml``): ``seed``, ``robot``
  (:class:`~reachability_ros.core.config.RobotConfig` fields; default the packaged
  LeKiwi), ``data``, ``model``, ``train``, ``eval``, ``export``.

Why not pydantic or draccus: the robot runs Ubuntu 24.04's ROS Python, whose
``python3-pydantic`` is v1 while PyPI has v2 (code written for one breaks on the
other), and draccus is not packaged for ROS at all; the standard-library base is
small and shared with the runtime config, so the trainer node, the CLI and the
service validate the same way.

(About 570 lines: every section of a training config and the loader that checks them
stay in one module, so that one file lists every training option with its range.)
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..core.config import ConfigSection, RobotConfig, config_field as _f
from ..core.errors import ConfigError
from ..evaluation.grasps import DEFAULT_ELEVATION_EDGES_DEG, DEFAULT_HEIGHT_EDGES_M

QUALITY_RULES = ("none", "hard", "soft", "weight")
DENSITIES = ("forward", "area", "area_weight")
MANIFOLD_MODES = ("auto", "on", "off")
SOURCES = ("lekiwi", "lekiwi_manifold", "toy_v2")
FAMILIES = ("flow", "cvae", "manifold_flow", "cfm", "manifold_cfm", "manifold_gmm")
#: the families whose output is the manifold coordinates (trained on lekiwi_manifold data)
MANIFOLD_FAMILIES = ("manifold_flow", "manifold_cfm", "manifold_gmm")
#: constructor parameters of each family (``ModelConfig`` fields; the others must keep
#: their defaults)
FAMILY_PARAMS = {
    "flow": ("n_blocks", "hidden", "n_layers", "clamp"),
    "manifold_flow": ("n_blocks", "hidden", "n_layers", "clamp"),
    "cvae": ("dz", "hidden", "n_layers"),
    "cfm": ("hidden", "n_layers", "n_steps", "integrator"),
    "manifold_cfm": ("hidden", "n_layers", "n_steps", "integrator"),
    "manifold_gmm": ("hidden", "n_layers", "n_components", "max_condition"),
}
INTEGRATORS = ("euler", "midpoint")
WEIGHT_UPDATES = ("closed_form", "gradient")


def _section(cls: type, description: str):
    return field(default_factory=cls, metadata={"description": description})


def _choice(owner: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{owner}.{name} = {value!r} is not one of {list(choices)}")


def _floats(owner: str, name: str, value: Any, min_len: int = 1) -> tuple[float, ...]:
    """A list of finite numbers as a tuple of floats (for list-valued fields)."""
    ok = isinstance(value, (list, tuple)) and len(value) >= min_len and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in value)
    if not ok:
        raise ConfigError(f"{owner}.{name} must be a list of at least {min_len} numbers, got "
                          f"{value!r}")
    return tuple(float(v) for v in value)


# ------------------------------------------------------------------- data
@dataclass(frozen=True)
class QualityConfig(ConfigSection):
    """Quality-biased acceptance (seed 000 section 5.1(6)); score ``S`` in [0, 1].

    ``S = min(1, manipulability / manipulability_ref) * min(1, limit_margin /
    limit_margin_ref)``.
    """

    rule: str = _f("soft", "none: keep all | hard: keep S >= min_score | soft: keep with "
                   "probability S | weight: keep all, store S as the sample weight")
    manipulability_ref: float = _f(0.006, "manipulability (m^3, Yoshikawa, positional) at "
                                   "which the score saturates", 1e-12, 1e3)
    limit_margin_ref: float = _f(0.03, "normalized joint-limit margin at which the score "
                                 "saturates (0 at a limit, 0.5 mid-range)", 1e-12, 0.5)
    min_score: float = _f(0.1, "threshold of the hard rule", 0.0, 1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice(type(self).__name__, "rule", self.rule, QUALITY_RULES)


@dataclass(frozen=True)
class StrataConfig(ConfigSection):
    """Strata over the condition space (seed 004 section 7.3); values outside go to the edges."""

    height_edges_m: tuple[float, ...] = _f(DEFAULT_HEIGHT_EDGES_M,
                                           "grasp height bin edges (m), increasing")
    elevation_edges_deg: tuple[float, ...] = _f(
        DEFAULT_ELEVATION_EDGES_DEG, "approach elevation bin edges (deg below the horizon, "
        "90 = top-down), increasing")

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        for name in ("height_edges_m", "elevation_edges_deg"):
            edges = _floats(owner, name, getattr(self, name), min_len=2)
            if any(b <= a for a, b in zip(edges, edges[1:])):
                raise ConfigError(f"{owner}.{name} must be increasing, got {list(edges)}")
            object.__setattr__(self, name, edges)

    @property
    def n_bins(self) -> int:
        """Number of (height, elevation) bins."""
        return (len(self.height_edges_m) - 1) * (len(self.elevation_edges_deg) - 1)


@dataclass(frozen=True)
class GeneratorConfig(ConfigSection):
    """How the dataset generator makes (grasp, stance) pairs (``training/data.py``)."""

    shard_size: int = _f(100_000, "pairs per shard file (npz); the manifest is rewritten "
                         "after every shard, so a rerun resumes", 1, 10**9)
    batch_size: int = _f(20_000, "arm configurations per vectorized FK/visibility batch "
                         "(memory ~ 5 kB per candidate)", 1, 10**8)
    workers: int = _f(2, "worker processes (spawned); set to the core count", 1, 1024)
    oversample: float = _f(4.0, "a shard draws oversample * shard_size accepted pairs and "
                           "keeps shard_size by water-filling over the strata", 1.0, 1e3)
    max_batches_per_shard: int = _f(2_000, "safety cap on batches per shard", 1, 10**9)
    base_extent_m: float = _f(2.0, "base position uniform in [-e, e]^2 (m), yaw uniform",
                              0.0, 1e4)
    pilot_candidates: int = _f(200_000, "candidates of the pilot run that finds the arm-joint "
                               "box of visible configurations", 1, 10**9)
    box_margin_rad: float = _f(0.15, "widening of the pilot's box (rad)", 0.0, 2 * math.pi)
    min_visibility_margin_m: float = _f(0.0, "required visibility margin (m); 0 = just visible",
                                        -1.0, 1.0)
    manifold: str = _f("auto", "manifold coordinates y from core/manifold.py: auto (when the "
                       "solver applies), on (required) or off")
    density: str = _f("area", "density of the stances of a grasp: area (uniform in the stance "
                      "manifold's area) | area_weight (keep all, weight by it) | forward "
                      "(joint-space density of forward sampling)")
    density_ref_percentile: float = _f(99.0, "w_ref = this percentile of the area density "
                                       "ratio over the pilot's stances", 1e-6, 100.0)
    quality: QualityConfig = _section(QualityConfig, "quality-biased acceptance")
    strata: StrataConfig = _section(StrataConfig, "strata of grasp height x elevation")

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        _choice(owner, "manifold", self.manifold, MANIFOLD_MODES)
        _choice(owner, "density", self.density, DENSITIES)


@dataclass(frozen=True)
class DataConfig(GeneratorConfig):
    """A dataset: the generator's options, the robot, the seed and the sizes."""

    robot: RobotConfig = _section(RobotConfig, "robot description; default the packaged LeKiwi")
    seed: int = _f(0, "dataset seed: shard k of split s draws from SeedSequence([seed, s, k])",
                   0, 2**32 - 1)
    train_pairs: int = _f(2_000_000, "pairs in the training split", 0, 10**10)
    heldout_pairs: int = _f(20_000, "pairs in the held-out split", 0, 10**10)


# -------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainDataConfig(ConfigSection):
    """The ``data`` section of a training config."""

    source: str = _f("lekiwi", "lekiwi (stance features) | lekiwi_manifold (manifold "
                     "coordinates, evaluated by the exact solver) | toy_v2 (seed 000's toy)")
    n_train: int = _f(200_000, "training pairs", 1, 10**10)
    n_val: int = _f(5_000, "held-out pairs (validation NLL and evaluation)", 1, 10**9)
    cond_dim: int = _f(2, "width of the zero condition of toy_v2", 0, 64)
    path: str = _f("", "manifest.json (or its folder) of an existing dataset to train on; "
                   "empty = generate one")
    cache_dir: str = _f("", "folder of the generated dataset; empty = <output dir>/data. A "
                        "folder with a finished dataset of the same options is reused")
    generator: GeneratorConfig = _section(GeneratorConfig, "dataset generator options")

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice(type(self).__name__, "source", self.source, SOURCES)


@dataclass(frozen=True)
class ModelConfig(ConfigSection):
    """The ``model`` section: the family and its constructor parameters."""

    family: str = _f("flow", "flow (cINN, 8-D stance features) | cvae | manifold_flow "
                     "(cINN on manifold coordinates) | cfm (conditional flow matching, 8-D "
                     "stance features) | manifold_cfm (flow matching on manifold coordinates) "
                     "| manifold_gmm (Gaussian mixture on manifold coordinates, trained by "
                     "reverse KL toward good stances)")
    n_blocks: int = _f(6, "coupling blocks (flow families)", 1, 1000)
    hidden: int = _f(192, "hidden width of the subnets / MLPs", 1, 100_000)
    n_layers: int = _f(2, "hidden layers of the subnets / MLPs", 1, 100)
    clamp: float = _f(2.0, "soft clamp of the coupling log-scales (flow families)", 1e-3, 100.0)
    dz: int = _f(4, "latent dimension (cvae; a flow's latent is its output's)", 1, 1000)
    n_steps: int = _f(8, "integration steps unrolled in the exported graph (cfm families)",
                      1, 1000)
    integrator: str = _f("midpoint", "fixed-step ODE integrator of the cfm families: euler "
                         "(one velocity evaluation per step) | midpoint (two, second order)")
    n_components: int = _f(4, "Gaussian components per branch (manifold_gmm)", 1, 256)
    max_condition: float = _f(100.0, "largest condition number of a component's covariance "
                              "(manifold_gmm; bound-based regularization; 0 = off)", 0.0, 1e12)

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        _choice(owner, "family", self.family, FAMILIES)
        _choice(owner, "integrator", self.integrator, INTEGRATORS)
        if 0.0 < self.max_condition <= 1.0:
            raise ConfigError(f"{owner}.max_condition = {self.max_condition} must exceed 1 "
                              "(or be 0: no bound)")
        default = ModelConfig.__dataclass_fields__
        used = FAMILY_PARAMS[self.family]
        for name in default:
            if name != "family" and name not in used and (
                    getattr(self, name) != default[name].default):
                raise ConfigError(f"{owner}.{name} is not a parameter of family "
                                  f"{self.family!r}; remove it")

    def params(self) -> dict[str, Any]:
        """Constructor parameters of the family (``training.models.build_model``)."""
        return {name: getattr(self, name) for name in FAMILY_PARAMS[self.family]}


@dataclass(frozen=True)
class OptimConfig(ConfigSection):
    """The ``train`` section: optimization, stopping, hardware."""

    batch_size: int = _f(1024, "pairs per step", 1, 10**7)
    lr: float = _f(1e-3, "AdamW learning rate (cosine schedule, warm-up)", 1e-12, 10.0)
    weight_decay: float = _f(1e-5, "AdamW weight decay", 0.0, 10.0)
    max_epochs: int = _f(20, "epochs at most", 1, 10**6)
    steps_per_epoch: int = _f(0, "steps per epoch; 0 = one pass over the training data",
                              0, 10**9)
    patience: int = _f(5, "epochs without a better validation loss before stopping", 1, 10**6)
    grad_clip: float = _f(10.0, "gradient norm clip", 1e-9, 1e9)
    noise_std: Any = _f(0.0, "dequantization noise on the raw outputs: one std or one per "
                        "output column (>= 0)")
    fk_weight: float = _f(0.0, "weight of the FK regularizer (8-D families)", 0.0, 1e6)
    beta_max: float = _f(1.0, "final KL weight (cvae)", 0.0, 1e6)
    beta_warmup_steps: int = _f(2000, "KL annealing steps (cvae)", 0, 10**9)
    free_bits: float = _f(0.0, "free bits per latent dimension (cvae, nats)", 0.0, 1e3)
    time_budget_s: float = _f(0.0, "stop after the epoch that passes this wall time (s); "
                              "0 = no budget", 0.0, 1e9)
    threads: int = _f(0, "torch CPU threads; 0 = torch's default", 0, 4096)
    device: str = _f("auto", "auto (CUDA when available) | cpu | cuda | cuda:N")
    progress: bool = _f(True, "progress bars on the terminal")

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        v = self.noise_std
        if isinstance(v, (list, tuple)):
            v = _floats(owner, "noise_std", v)
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{owner}.noise_std must be a number or a list of numbers, got "
                              f"{v!r}")
        else:
            v = float(v)
        if min((v,) if isinstance(v, float) else v) < 0.0:
            raise ConfigError(f"{owner}.noise_std must be >= 0, got {self.noise_std!r}")
        object.__setattr__(self, "noise_std", v)
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"{owner}.device = {self.device!r}: use auto, cpu, cuda or "
                              "cuda:N")


@dataclass(frozen=True)
class ReverseKLConfig(ConfigSection):
    """The ``rkl`` section: reverse-KL training of ``manifold_gmm`` toward good stances.

    The target of a grasp is ``log p(pan, lift, branch) = beta * quality`` on its feasible
    stances (``evaluation.quality``: the ranking's terms), tabulated on a grid of the
    normalized (pan, lift) coordinates per branch and interpolated bilinearly; outside
    the feasible set it falls by ``infeasible_gap`` at the edge and ``infeasible_slope``
    per unit of distance, so samples that land outside are pulled back.
    """

    beta: float = _f(10.0, "inverse temperature of the target (per unit of quality)",
                     1e-6, 1e6)
    samples: int = _f(16, "reparameterized samples per component and grasp", 1, 100_000)
    grid_pan: int = _f(48, "target grid nodes along the normalized pan", 2, 4096)
    grid_lift: int = _f(64, "target grid nodes along the normalized lift", 2, 4096)
    pan_range: tuple[float, ...] = _f((-0.4, 0.4), "normalized pan range of the grid (the "
                                      "LeKiwi's visible stances lie within +-0.30)")
    lift_range: tuple[float, ...] = _f((-1.0, 1.0), "normalized lift range of the grid")
    infeasible_gap: float = _f(1.0, "target drop (quality units) just outside the feasible "
                               "set", 0.0, 1e6)
    infeasible_slope: float = _f(10.0, "further drop per unit of normalized distance from "
                                 "the feasible set (quality units)", 0.0, 1e6)
    robustness_samples: int = _f(64, "base perturbations of the linearized robustness term "
                                 "(fixed set)", 0, 100_000)
    weight_update: str = _f(
        "closed_form", "how the gate learns the mixture weights: closed_form (cross-entropy "
        "toward the trust-region weight update w* ~ w_ref^(eta/(1+eta)) exp(R/(1+eta)) of "
        "the component rewards R; its gradient does not vanish for a weight near 0) | "
        "gradient (the bound's own gradient, with the eps_weights trust region)")
    weight_eta: float = _f(1.0, "closed_form: the trust region's multiplier eta (larger = "
                           "smaller steps toward softmax(R))", 0.0, 1e6)
    component_normalization: bool = _f(
        False, "average each component's objective over the grasps with its own weights "
        "w_k(c) / mean_c w_k(c) (the expectation form of context resampling), so that a "
        "component the gate rarely picks still learns where it is picked")
    e_step_interval: int = _f(10, "gradient steps per M-step: the reference model of the "
                              "trust regions and the responsibilities is refreshed this "
                              "often", 1, 10**6)
    eps_mean: float = _f(0.0, "trust region of each component's mean (expected KL part, "
                         "nats; 0.05 is a starting point); 0 = off", 0.0, 1e6)
    eps_cov: float = _f(0.0, "trust region of each component's covariance (nats; 0.005 is a "
                        "starting point); 0 = off", 0.0, 1e6)
    eps_weights: float = _f(0.01, "trust region of the mixture weights (nats; weight_update "
                            "gradient only); 0 = off", 0.0, 1e6)
    dual_lr: float = _f(0.5, "step of the Lagrange multipliers, per unit of relative "
                        "violation (KL / eps - 1)", 0.0, 1e6)
    prune_weight: float = _f(0.05, "components whose largest weight over the training grasps "
                             "is below this are removed before the export; 0 = keep all",
                             0.0, 1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        _choice(owner, "weight_update", self.weight_update, WEIGHT_UPDATES)
        for name in ("pan_range", "lift_range"):
            r = _floats(owner, name, getattr(self, name), min_len=2)
            if len(r) != 2 or not -1.0 <= r[0] < r[1] <= 1.0:
                raise ConfigError(f"{owner}.{name} must be [lo, hi] with -1 <= lo < hi <= 1, "
                                  f"got {list(r)}")
            object.__setattr__(self, name, r)


@dataclass(frozen=True)
class EvalConfig(ConfigSection):
    """The ``eval`` section: the evaluation after training (held-out grasps)."""

    n_grasps: int = _f(200, "held-out grasps (toy: test targets)", 1, 10**7)
    n_samples: int = _f(256, "samples per grasp", 2, 10**7)
    n_ground_truth: int = _f(0, "of the n_grasps, how many are also compared with the exact "
                             "ground truth (gt_* metrics: coverage gap, KL, mode recall)",
                             0, 10**7)
    epoch_gt_grasps: int = _f(0, "held-out grasps whose samples are compared with the exact "
                              "ground truth after every epoch (coverage gap, KL, modes, "
                              "fraction good; LeKiwi only); 0 = off", 0, 10**5)
    integrator_steps: tuple[int, ...] = _f((), "cfm families: step counts at which the "
                                           "trained model is also evaluated with both "
                                           "integrators (result.json, integrator_sweep); "
                                           "empty = none")

    def __post_init__(self) -> None:
        super().__post_init__()
        v = self.integrator_steps
        ok = isinstance(v, (list, tuple)) and all(
            isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 1000 for n in v)
        if not ok:
            raise ConfigError(f"{type(self).__name__}.integrator_steps must be a list of "
                              f"integers in [1, 1000], got {v!r}")
        object.__setattr__(self, "integrator_steps", tuple(v))


@dataclass(frozen=True)
class ExportConfig(ConfigSection):
    """The ``export`` section."""

    onnx: bool = _f(True, "export the best checkpoint to ONNX with its metadata")
    name: str = _f("model.onnx", "file name of the ONNX graph in the output directory")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.name.endswith(".onnx") or Path(self.name).name != self.name:
            raise ConfigError(f"{type(self).__name__}.name = {self.name!r} must be a file name "
                              "ending in .onnx (no folder)")


@dataclass(frozen=True)
class TrainingConfig(ConfigSection):
    """A training run (``config/train_*.yaml``)."""

    seed: int = _f(0, "seed of the data, the initialization, the batches and the noise",
                   0, 2**31 - 1)
    robot: RobotConfig = _section(RobotConfig, "robot description; default the packaged "
                                  "LeKiwi (ignored by toy_v2)")
    data: TrainDataConfig = _section(TrainDataConfig, "training data")
    model: ModelConfig = _section(ModelConfig, "model family and size")
    train: OptimConfig = _section(OptimConfig, "optimization")
    rkl: ReverseKLConfig = _section(ReverseKLConfig, "reverse-KL training (manifold_gmm)")
    eval: EvalConfig = _section(EvalConfig, "evaluation on held-out grasps")
    export: ExportConfig = _section(ExportConfig, "ONNX export")

    def __post_init__(self) -> None:
        super().__post_init__()
        fam, src = self.model.family, self.data.source
        if (fam in MANIFOLD_FAMILIES) != (src == "lekiwi_manifold"):
            raise ConfigError(f"model.family {fam!r} does not go with data.source {src!r}: "
                              f"{', '.join(MANIFOLD_FAMILIES)} train on lekiwi_manifold data, "
                              "the other families on lekiwi or toy_v2")
        if fam != "manifold_gmm" and self.rkl != ReverseKLConfig():
            raise ConfigError(f"the rkl section applies to model.family manifold_gmm only, "
                              f"not {fam!r}; remove it")
        if src == "lekiwi_manifold" and self.data.generator.manifold == "off":
            raise ConfigError("data.source lekiwi_manifold needs data.generator.manifold on "
                              "or auto (the manifold coordinates are its training targets)")

    def generator_data_config(self) -> DataConfig:
        """The :class:`DataConfig` of this run's dataset (robot, seed, sizes from here)."""
        gen = {f.name: getattr(self.data.generator, f.name)
               for f in dataclasses.fields(GeneratorConfig)}
        return DataConfig(**gen, robot=self.robot, seed=self.seed,
                          train_pairs=self.data.n_train, heldout_pairs=self.data.n_val)


# ---------------------------------------------------------------- loading
def _subsection(f: dataclasses.Field) -> type | None:
    """The ConfigSection class of a field that holds a section, else None."""
    sub = f.default_factory if isinstance(f.default_factory, type) else None
    return sub if sub is not None and issubclass(sub, ConfigSection) else None


def _section_paths(cls: type, prefix: str = "") -> dict[str, str]:
    """Class name -> dotted path of each section below ``cls`` (for error messages)."""
    out = {cls.__name__: prefix}
    for f in dataclasses.fields(cls):
        sub = _subsection(f)
        if sub is not None:
            out.update({k: v for k, v in _section_paths(sub, f"{prefix}{f.name}.").items()
                        if k not in out})
    return out


def _check_keys(cls: type, data: Mapping[str, Any], prefix: str, where: str) -> None:
    """Refuse unknown keys anywhere in ``data``, naming them by their dotted path."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        f = fields.get(key)
        if f is None:
            of = f" of {prefix[:-1]}" if prefix else ""
            raise ConfigError(f"unknown key '{prefix}{key}'{where}; known keys{of}: "
                              f"{sorted(fields)}")
        sub = _subsection(f)
        if sub is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{prefix}{key} must be a mapping of its keys{where}, got "
                                  f"{value!r}")
            _check_keys(sub, value, f"{prefix}{key}.", where)


def _merge_override(cls: type, data: dict, key: str, value: Any) -> None:
    """Set a dotted ``key`` in the nested ``data``; a mapping value merges into a section."""
    parts = key.split(".")
    node, sec = data, cls
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(sec)}
        f = fields.get(part)
        if f is None:
            owner = ".".join(parts[:i]) or "the top level"
            raise ConfigError(f"unknown override key {key!r}: {owner} has the keys "
                              f"{sorted(fields)}")
        sub = _subsection(f)
        is_section = sub is not None
        if i == len(parts) - 1:
            if is_section:
                if not isinstance(value, Mapping):
                    keys = sorted(f.name for f in dataclasses.fields(sub))
                    raise ConfigError(f"override {key!r} names a section: set one of its keys "
                                      f"({key}.KEY=VALUE, KEY one of {keys})")
                cur = node.get(part)
                node[part] = dict(cur) if isinstance(cur, Mapping) else {}
                for k, v in value.items():
                    _merge_override(sub, node[part], str(k), v)
            else:
                node[part] = value
            return
        if not is_section:
            raise ConfigError(f"unknown override key {key!r}: {'.'.join(parts[:i + 1])} is a "
                              "value, not a section")
        cur = node.get(part)
        node[part] = dict(cur) if isinstance(cur, Mapping) else {}
        node, sec = node[part], sub


def build_config(cls: type, data: Mapping[str, Any] | None,
                 overrides: Mapping[str, Any] | None = None, where: str = ""):
    """Validate a nested mapping (and dotted overrides) into the config dataclass ``cls``.

    Args:
        cls: :class:`TrainingConfig` or :class:`DataConfig`.
        data: the file's mapping.
        overrides: dotted keys (``train.max_epochs``) to values; a mapping value for a
            section merges key by key.
        where: text naming the source in messages, e.g. ``" (config/x.yaml)"``.

    Raises:
        ConfigError: an unknown key, a value of the wrong type or out of range (one
            line, the key by its dotted path).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a mapping of keys{where}, got "
                          f"{type(data).__name__}")
    _check_keys(cls, data, "", where)
    merged = _deep_copy(data)
    for key, value in (overrides or {}).items():
        _merge_override(cls, merged, str(key), value)
    try:
        return cls.from_dict(merged)
    except ConfigError as exc:
        raise ConfigError(_dotted(str(exc), cls) + (where if where not in str(exc) else "")
                          ) from None


def _deep_copy(data: Mapping[str, Any]) -> dict:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _dotted(message: str, cls: type) -> str:
    """Replace a leading ``SectionClass.`` in a message by the section's dotted path."""
    paths = _section_paths(cls)
    m = re.match(r"(\w+)\.", message)
    if m and m.group(1) in paths:
        message = paths[m.group(1)] + message[len(m.group(1)) + 1:]
    return " ".join(message.split())


def _read(path: str | Path, overrides: Mapping[str, Any] | None) -> tuple[Any, str]:
    from ..config_io import load_yaml
    return load_yaml(path), f" ({path}{' with overrides' if overrides else ''})"


def load_train_config(path: str | Path, overrides: Mapping[str, Any] | None = None
                      ) -> TrainingConfig:
    """Read and validate a training config file (``config/train_*.yaml``).

    Args:
        path: the YAML file (relative: the working directory, then the package's).
        overrides: dotted keys to values, e.g. ``{"train.max_epochs": 2}``
            (``config_io.parse_overrides`` of ``key=value`` strings).

    Returns:
        The validated :class:`TrainingConfig`.

    Raises:
        ConfigError: a missing file, bad YAML, an unknown key or override, a bad value.
    """
    data, where = _read(path, overrides)
    return build_config(TrainingConfig, data, overrides, where)


def load_data_config(path: str | Path, overrides: Mapping[str, Any] | None = None
                     ) -> DataConfig:
    """Read and validate a dataset config file (``config/data_lekiwi.yaml``, under ``data:``).

    Raises:
        ConfigError: a missing file, bad YAML, an unknown key or override, a bad value.
    """
    data, where = _read(path, overrides)
    if isinstance(data, Mapping) and set(data) == {"data"}:
        data = data["data"] or {}
    return build_config(DataConfig, data, overrides, where)
