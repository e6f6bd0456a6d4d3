"""ROS parameters of the nodes as plain data: declarations, values and their checks.

Nothing here imports rclpy: the nodes turn each :class:`ParameterSpec` into a
``declare_parameter`` call (``messages.descriptor_from_spec``) and hand the
values they read back to :func:`config_from_parameters`. The stance server's
parameters are the dotted keys of :class:`~reachability_ros.core.config.StanceConfig`
(``proposal.top_k``, ``robot.camera.hfov_deg``, ...) plus its node-level ones
(:data:`SERVER_NODE_PARAMETERS`), which :func:`stance_config_file` skips when it reads the
server's parameter file as a config (both nodes read that file).
"""

from __future__ import annotations

import array
from dataclasses import dataclass, replace
import difflib
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
from reachability_ros.core.config import RobotConfig, StanceConfig
from reachability_ros.core.errors import ConfigError

#: Node-level parameters of the stance server that are not part of :class:`StanceConfig`.
NODE_PARAMETERS = ('config_file', 'target_frame', 'tf_timeout_s', 'camera_info_topic')

#: Parameters every rclpy node declares itself.
RCLPY_PARAMETERS = ('use_sim_time', 'start_type_description_service')

#: The stance server's world inputs (declared by :mod:`.world_input`).
WORLD_PARAMETERS = ('map_topic', 'map_required', 'map_max_age_s', 'obstacles_file',
                    'obstacles_topic')
#: The stance server's grasp freedom (declared by :mod:`.grasp_set_input`).
FREEDOM_PARAMETERS = ('grasp_symmetric', 'grasp_free_roll')
#: The keys of the stance server's parameter file that are not config keys.
SERVER_NODE_PARAMETERS = NODE_PARAMETERS + FREEDOM_PARAMETERS + WORLD_PARAMETERS + \
    RCLPY_PARAMETERS

#: ``rcl_interfaces/msg/ParameterType`` values, by the kind names of :class:`ParameterSpec`.
PARAMETER_TYPES = {
    'bool': 1, 'integer': 2, 'double': 3, 'string': 4, 'byte_array': 5, 'bool_array': 6,
    'integer_array': 7, 'double_array': 8, 'string_array': 9,
}

#: The ``additional_constraints`` of every config parameter.
CONFIG_CONSTRAINTS = 'validated by reachability_ros.core.config.StanceConfig'

_INT64_MAX = 2**63 - 1
_FLOAT_MAX = 1.7976931348623157e308


@dataclass(frozen=True)
class ParameterSpec:
    """A ROS parameter declaration as plain data.

    Attributes:
        name: dotted parameter name (``proposal.top_k``).
        kind: one of the keys of :data:`PARAMETER_TYPES`.
        default: default value, already of the declared kind.
        description: human-readable description (with the range).
        bounds: ``(lo, hi)`` for integer and double parameters (open ends filled with
            the kind's extreme values), else None.
        read_only: the parameter cannot change after start-up.
        constraints: the descriptor's ``additional_constraints`` text.
    """

    name: str
    kind: str
    default: Any
    description: str
    bounds: tuple | None = None
    read_only: bool = False
    constraints: str = ''

    @property
    def type_id(self) -> int:
        """Return the ``rcl_interfaces/msg/ParameterType`` constant."""
        return PARAMETER_TYPES[self.kind]


def _kind_of(value: Any) -> str:
    """Return the parameter kind that holds a config default."""
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, int):
        return 'integer'
    if isinstance(value, float):
        return 'double'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, (list, tuple)):
        items = list(value)
        if items and all(isinstance(v, bool) for v in items):
            return 'bool_array'
        if items and all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            return 'integer_array'
        if items and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                         for v in items):
            return 'double_array'
        return 'string_array'  # also the kind of an empty list
    raise ConfigError(f'config values of type {type(value).__name__} ({value!r}) cannot be '
                      'ROS parameters')


def _coerce(value: Any, kind: str, name: str) -> Any:
    """Convert a config value to the declared parameter kind (ints are accepted as doubles)."""
    try:
        if kind == 'double':
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if kind == 'integer':
            if isinstance(value, bool) or int(value) != value:
                raise TypeError
            return int(value)
        if kind in ('bool', 'string'):
            if not isinstance(value, bool if kind == 'bool' else str):
                raise TypeError
            return value
        items = list(value)
        if kind == 'double_array':
            return [float(v) for v in items]
        if kind == 'integer_array':
            return [int(v) for v in items]
        if kind == 'bool_array':
            return [bool(v) for v in items]
        return [str(v) for v in items]
    except (TypeError, ValueError):
        raise ConfigError(f'parameter {name!r}: {value!r} is not a {kind}') from None


def parameter_specs(describe: Mapping[str, Mapping[str, Any]] | None = None,
                    defaults: Mapping[str, Any] | None = None) -> list[ParameterSpec]:
    """Derive one parameter declaration per config key.

    Args:
        describe: ``StanceConfig.describe()`` (default: computed here): per dotted
            key its dataclass default (which fixes the parameter kind),
            description and range.
        defaults: dotted-key values to use as defaults instead of the dataclass
            ones (e.g. ``load_stance_config(file).to_flat()``).

    Returns:
        Specs in ``describe`` order.

    Raises:
        ConfigError: a default does not fit the key's kind.
    """
    describe = StanceConfig.describe() if describe is None else describe
    defaults = defaults or {}
    specs = []
    for name, info in describe.items():
        kind = _kind_of(info['default'])
        default = _coerce(defaults.get(name, info['default']), kind, name)
        rng = info.get('range')
        desc = str(info.get('description', ''))
        bounds = None
        if rng is not None and kind in ('integer', 'double'):
            lo, hi = rng
            if kind == 'integer':
                lo = -_INT64_MAX if lo is None else int(math.ceil(lo))
                hi = _INT64_MAX if hi is None else int(math.floor(hi))
            else:
                lo = -_FLOAT_MAX if lo is None else float(lo)
                hi = _FLOAT_MAX if hi is None else float(hi)
            bounds = (lo, hi)
            shown_lo = '-inf' if rng[0] is None else rng[0]
            shown_hi = 'inf' if rng[1] is None else rng[1]
            desc += f' [range {shown_lo}, {shown_hi}]'
        specs.append(ParameterSpec(name, kind, default, desc, bounds,
                                   constraints=CONFIG_CONSTRAINTS))
    return specs


def node_parameter_specs(target_frame: str = 'map', tf_timeout_s: float = 1.0,
                         config_file: str = '') -> list[ParameterSpec]:
    """Return the declarations of the stance server's own parameters (not part of the config)."""
    return [
        ParameterSpec('config_file', 'string', config_file,
                      'YAML file (config/lekiwi.yaml layout) read at start-up as the defaults '
                      'of every other parameter; empty = the built-in defaults. Relative paths '
                      'resolve against the working directory, then the package share',
                      None, True),
        ParameterSpec('target_frame', 'string', target_frame,
                      'frame of the response: the goal is transformed into it with TF, and the '
                      'ranked base poses are expressed in it (its z = 0 plane is the floor)'),
        ParameterSpec('tf_timeout_s', 'double', float(tf_timeout_s),
                      "how long a request waits for the goal's transform into target_frame "
                      '(s); the wait ends early on shutdown [range 0, 60]', (0.0, 60.0)),
        ParameterSpec('camera_info_topic', 'string', '',
                      'sensor_msgs/CameraInfo topic of the front camera: its intrinsics (k, '
                      'width, height) replace robot.camera.* in the visibility check when they '
                      'arrive (ros/camera_input.py); empty = none', None, True),
    ]


def plain_parameter_value(value: Any) -> Any:
    """Turn rclpy parameter values (``array.array``, numpy) into plain Python values."""
    if isinstance(value, (array.array, np.ndarray, list, tuple)):
        return [plain_parameter_value(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def config_from_parameters(values: Mapping[str, Any]) -> StanceConfig:
    """Build and validate the config from dotted parameter values.

    Args:
        values: dotted key -> value (parameters of the node); node-level
            parameters (:data:`NODE_PARAMETERS`) are ignored.

    Returns:
        The validated config.

    Raises:
        ConfigError: an unknown key or an invalid value (the message names it).
    """
    flat = {k: plain_parameter_value(v) for k, v in values.items() if k not in NODE_PARAMETERS}
    return StanceConfig.from_flat(flat)


def stance_config_file(path: str, node: str = 'stance_server') -> StanceConfig:
    """Read the config of the stance server's parameter file, its node-level keys skipped.

    The file is a ROS parameter file (``config/lekiwi.yaml`` layout), so its section may
    also hold :data:`SERVER_NODE_PARAMETERS` (``target_frame``, ``map_topic``,
    ``use_sim_time``, ...), which are parameters of the node, not config keys. Any other
    unknown key is refused.

    Args:
        path: the file (relative: the working directory, then the package share).
        node: the node whose ``ros__parameters`` section is read.

    Raises:
        ConfigError: the file cannot be read, or its section is not a valid config.
    """
    from reachability_ros.config_io import load_yaml, parameters_section
    params = parameters_section(load_yaml(path), node)
    return StanceConfig.from_dict({k: v for k, v in params.items()
                                   if k not in SERVER_NODE_PARAMETERS})


def resolve_urdf(robot: RobotConfig, resolve: Callable[[str], Path]) -> RobotConfig:
    """Return ``robot`` with a non-empty ``urdf`` made absolute when the file is found."""
    if robot.urdf:
        p = Path(resolve(robot.urdf))
        if p.is_file():
            return replace(robot, urdf=str(p.resolve()))
    return robot


def resolve_config_paths(config: StanceConfig,
                         resolve: Callable[[str], Path]) -> StanceConfig:
    """Resolve the model and URDF paths of a config (working directory, then package share).

    Args:
        config: the validated config.
        resolve: maps a relative path to an existing absolute one
            (``core.paths.resolve_data_path``); it may return the path unchanged.

    Returns:
        The config with ``proposal.model_path`` (and a non-empty ``robot.urdf``)
        made absolute when the file was found.

    Raises:
        ConfigError: a configured model file does not exist.
    """
    flat = config.to_flat()
    model = flat.get('proposal.model_path', '')
    if model:
        p = Path(resolve(model))
        if not p.is_file():
            raise ConfigError(f'proposal.model_path {model!r} not found (looked at {p}); '
                              'train one, or clear it (launch argument model:=none) to use the '
                              'model-free sampler')
        flat['proposal.model_path'] = str(p.resolve())
    config = StanceConfig.from_flat(flat)
    return replace(config, robot=resolve_urdf(config.robot, resolve))


def unknown_parameters(given: Iterable[str], declared: Iterable[str]) -> list[str]:
    """Return the given parameter names that the node did not declare, sorted.

    rclpy keeps overrides of undeclared parameters without a word; the nodes
    refuse them instead, so that a typo (``proposal.n_sample``) cannot pass.

    Args:
        given: names of the parameters set on the command line or in parameter files.
        declared: names the node declared (its own and rclpy's, e.g. ``use_sim_time``).

    Returns:
        The unknown names (empty when all are known).
    """
    known = set(declared) | set(RCLPY_PARAMETERS)
    return sorted({str(n) for n in given} - known)


def unknown_parameters_message(node_name: str, unknown: Iterable[str],
                               declared: Iterable[str]) -> str:
    """Return the one-line refusal of unknown parameters, with a close match for each."""
    declared = sorted(set(declared))
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, declared, n=1, cutoff=0.75)
        parts.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ''))
    return (f'unknown parameter(s) for {node_name}: {", ".join(parts)}; '
            f'`ros2 param list /{node_name}` lists the declared ones')


def startup_message(exc: BaseException) -> str:
    """Return one line for a start-up failure, with a hint for the usual cause of a type error."""
    text = f'{type(exc).__name__}: {exc}'
    if "of type 'INTEGER', expecting type 'DOUBLE'" in text:
        text += ' (write a double with a decimal point: 70.0, not 70)'
    return ' '.join(text.split())
