"""Read the YAML files of ``config/`` into the core's config dataclasses.

Kept out of ``core`` (which may import only numpy, Pinocchio, onnxruntime and
the standard library): PyYAML is a dependency of the CLI and of ROS.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping

import yaml

from reachability_ros.core.config import PACKAGE_DIR, StanceConfig
from reachability_ros.core.errors import ConfigError

DEFAULT_CONFIG = "config/lekiwi.yaml"


def share_dir() -> Path:
    """The package's data root: the ROS share directory when installed, else the repo."""
    try:  # installed with colcon: share/reachability_ros
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory("reachability_ros"))
    except Exception:
        pass
    if (PACKAGE_DIR.parent / "config").is_dir():  # a source checkout (pip -e)
        return PACKAGE_DIR.parent
    installed = Path(sys.prefix) / "share" / "reachability_ros"  # plain pip: data_files
    return installed if installed.is_dir() else PACKAGE_DIR.parent


def resolve_data_path(path: str | Path) -> Path:
    """Resolve a data file: absolute, else the package share directory, else the working one."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    for root in (share_dir(), PACKAGE_DIR.parent):
        if (root / p).exists():
            return root / p
    return p.resolve() if p.exists() else p


def parameters_section(data: Mapping[str, Any], node: str = "stance_server") -> dict:
    """Return the ``ros__parameters`` mapping of a ROS parameter file (or the file itself)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config file must hold a mapping, got {type(data).__name__}")
    for key in (node, "/**"):
        sec = data.get(key)
        if isinstance(sec, Mapping) and "ros__parameters" in sec:
            return dict(sec["ros__parameters"] or {})
    for sec in data.values():
        if isinstance(sec, Mapping) and "ros__parameters" in sec:
            return dict(sec["ros__parameters"] or {})
    return dict(data)


def load_yaml(path: str | Path) -> dict:
    """Load a YAML file with a clear error when it is missing or broken."""
    p = resolve_data_path(path)
    try:
        with open(p) as fh:
            return yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found (looked at {p})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None


def load_stance_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                       node: str = "stance_server") -> StanceConfig:
    """Read a :class:`StanceConfig` from a YAML file, then apply dotted-key overrides."""
    params = parameters_section(load_yaml(path or DEFAULT_CONFIG), node)
    cfg = StanceConfig.from_dict(params)
    if overrides:
        flat = cfg.to_flat()
        for key, value in overrides.items():
            if key not in flat:
                raise ConfigError(f"unknown parameter {key!r}")
            flat[key] = value
        cfg = StanceConfig.from_flat(flat)
    return cfg
