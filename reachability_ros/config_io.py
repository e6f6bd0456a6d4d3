"""Read the YAML files of ``config/`` into the core's config dataclasses.

Kept out of ``core`` (which may import only numpy, Pinocchio, onnxruntime and
the standard library): PyYAML is a dependency of the CLI and of ROS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from reachability_ros.core.config import StanceConfig
from reachability_ros.core.errors import ConfigError
from reachability_ros.core.paths import resolve_data_path  # noqa: F401  (re-exported)

DEFAULT_CONFIG = "config/lekiwi.yaml"


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


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: what is wrong and where (line, column)."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def load_yaml(path: str | Path, what: str = "config file") -> dict:
    """Load a YAML file; every way it can fail is a one-line :class:`ConfigError`.

    Args:
        path: the file; a relative path is looked up with :func:`resolve_data_path`.
        what: what the file is, in the error messages (``"map file"``, ...).

    Raises:
        ConfigError: the file is missing, unreadable, not UTF-8 text or not valid YAML.
    """
    p = resolve_data_path(path)
    try:
        with open(p, encoding="utf-8") as fh:
            return yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r} not found (looked at {p})") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {str(path)!r} is a directory ({p})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {p} is not UTF-8 text") from None
    except RecursionError:
        raise ConfigError(f"{what} {p} is nested too deeply to be read") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {p} is not valid YAML: {_yaml_problem(exc)}") from None


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


def parse_overrides(items: Sequence[str] | None) -> dict:
    """Parse ``key=value`` strings (values read as YAML scalars) into a dotted-key dict.

    The one override parser of the CLI, the trainer and the ROS nodes.

    Args:
        items: e.g. ``["train.max_epochs=2", "data.cache_dir=/tmp/data"]``; blank
            entries are ignored.

    Returns:
        ``{"train.max_epochs": 2, "data.cache_dir": "/tmp/data"}``.

    Raises:
        ConfigError: an entry without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items or ():
        item = str(item).strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must read key=value (e.g. train.max_epochs=2)")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out
