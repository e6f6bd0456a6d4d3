"""Read the world from files: Nav2 map_server maps and obstacle YAML files.

Kept out of ``core`` (which may import only numpy, scipy, Pinocchio, onnxruntime and
the standard library): PyYAML and Pillow are dependencies of the CLI and of ROS.

* :func:`load_map`: a Nav2 ``map_server`` map, a YAML file with ``image`` (a path
  relative to the YAML file, PGM or PNG), ``resolution``, ``origin: [x, y, yaw]``,
  ``negate``, ``occupied_thresh``, ``free_thresh`` and optionally ``mode`` (``trinary``,
  the default, ``scale`` or ``raw``), read into an
  :class:`~reachability_ros.core.world.OccupancyGrid` the way ``map_server`` reads it
  (``nav2_map_server/src/map_io.cpp``): a pixel's shade is the mean of its colour
  channels (with its opacity too in trinary mode), its occupancy ``1 - shade``
  (``shade`` with ``negate``); trinary: above ``occupied_thresh`` 100, below
  ``free_thresh`` 0, else unknown (-1); scale: the same, in between scaled to 1-99 and
  transparent pixels unknown; raw: the shade times 255 when it is 0-100, else unknown.
  The image's top row is the map's last row (``y`` up).
* :func:`load_obstacles`: ``obstacles: [{name, center: [x, y, z], size: [sx, sy, sz],
  yaw}, ...]`` (metres, radians) and an optional ``frame_id``, into
  :class:`~reachability_ros.core.world.Boxes`.

Every way a file can be wrong is one :class:`~reachability_ros.core.errors.ConfigError`
line that names the file and the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from reachability_ros.config_io import load_yaml
from reachability_ros.core.errors import ConfigError
from reachability_ros.core.paths import resolve_data_path
from reachability_ros.core.world import Boxes, OccupancyGrid

MAP_MODES = ("trinary", "scale", "raw")


def _number(doc: dict, key: str, where: str) -> float:
    if key not in doc:
        raise ConfigError(f"{where}: missing {key!r}")
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        raise ConfigError(f"{where}: {key!r} must be a finite number, got {value!r}")
    return float(value)


def _mapping(path: str | Path, what: str) -> dict:
    doc = load_yaml(path, f"{what} file")
    if not isinstance(doc, dict):
        raise ConfigError(f"{what} file {str(path)!r} must hold a mapping, got "
                          f"{type(doc).__name__}")
    return doc


def load_map(path: str | Path) -> OccupancyGrid:
    """Read a map_server map (YAML and image) into an occupancy grid.

    Args:
        path: the map's YAML file; a relative path is looked up like a config file
            (``core/paths.resolve_data_path``), and its image next to where it was found.

    Returns:
        The grid; its ``origin`` is the YAML's, ``frame_id`` empty (the grasps' frame).

    Raises:
        ConfigError: an unreadable or invalid YAML file, a missing or invalid field, an
            image that is missing or cannot be decoded.
    """
    where = f"map {str(path)!r}"
    doc = _mapping(path, "map")
    image = doc.get("image")
    if not isinstance(image, str) or not image.strip():
        raise ConfigError(f"{where}: 'image' must name the map's image file (PGM or PNG)")
    resolution = _number(doc, "resolution", where)
    if resolution <= 0.0:
        raise ConfigError(f"{where}: 'resolution' must be positive (m per cell), got "
                          f"{resolution!r}")
    origin = doc.get("origin")
    if not isinstance(origin, (list, tuple)) or len(origin) != 3 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in origin):
        raise ConfigError(f"{where}: 'origin' must be 3 numbers [x, y, yaw], got {origin!r}")
    free = _number(doc, "free_thresh", where)
    occupied = _number(doc, "occupied_thresh", where)
    for key, value in (("free_thresh", free), ("occupied_thresh", occupied)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{where}: {key!r} must be in [0, 1], got {value!r}")
    negate = doc.get("negate")
    if negate not in (0, 1) or (isinstance(negate, float)):  # True/False compare equal
        raise ConfigError(f"{where}: 'negate' must be 0 or 1 (or true/false), got {negate!r}")
    mode = doc.get("mode", "trinary")
    if mode not in MAP_MODES:
        raise ConfigError(f"{where}: 'mode' must be one of {', '.join(MAP_MODES)}, got "
                          f"{mode!r}")
    image_path = Path(image)
    if not image_path.is_absolute():
        image_path = resolve_data_path(path).resolve().parent / image_path
    values = image_occupancy(image_path, mode, bool(negate), free, occupied)
    return OccupancyGrid(values, resolution, tuple(float(v) for v in origin))


def image_occupancy(path: Path, mode: str = "trinary", negate: bool = False,
                    free_thresh: float = 0.25, occupied_thresh: float = 0.65) -> np.ndarray:
    """Read a map image into grid values ``(height, width)`` int8, as map_server does.

    Raises:
        ConfigError: the file is missing or cannot be decoded as an image.
    """
    from PIL import Image
    try:
        with Image.open(path) as img:
            img.load()
            channels, alpha = _channels(img)
    except FileNotFoundError:
        raise ConfigError(f"map image {str(path)!r} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"map image {str(path)!r} is a directory") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError...
        raise ConfigError(f"cannot read map image {str(path)!r}: "
                          f"{' '.join(f'{type(exc).__name__}: {exc}'.split())}") from None
    if mode == "trinary" and alpha is not None:  # map_server averages the opacity in
        channels = channels + [alpha]
    shade = sum(channels) / len(channels)
    occ = shade if negate else 1.0 - shade
    if mode == "raw":
        percent = np.rint(shade * 255.0)
        values = np.where((percent >= 0) & (percent <= 100), percent, -1)
    else:
        values = np.full(shade.shape, -1.0)
        values[occ > occupied_thresh] = 100
        values[occ < free_thresh] = 0
        if mode == "scale":
            between = (occ <= occupied_thresh) & (occ >= free_thresh)
            if occupied_thresh > free_thresh:
                values[between] = np.rint((occ[between] - free_thresh)
                                          / (occupied_thresh - free_thresh) * 100.0)
            if alpha is not None:
                values[alpha < 1.0] = -1
    return np.flipud(values).astype(np.int8)


def _channels(img) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Colour channels (and alpha) of a Pillow image as floats in [0, 1]."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        return [np.asarray(img, dtype=float) / 65535.0], None
    if mode == "F":
        raise ValueError("floating-point images are not map images")
    has_alpha = mode in ("LA", "RGBA", "PA", "La", "RGBa") or (
        mode == "P" and "transparency" in img.info)
    if mode in ("1", "L", "LA", "La"):
        a = np.asarray(img.convert("LA"), dtype=float) / 255.0
        return [a[..., 0]], (a[..., 1] if has_alpha else None)
    a = np.asarray(img.convert("RGBA"), dtype=float) / 255.0
    return [a[..., 0], a[..., 1], a[..., 2]], (a[..., 3] if has_alpha else None)


def load_obstacles(path: str | Path) -> Boxes:
    """Read ``obstacles: [{name, center, size, yaw}, ...]`` (and ``frame_id``) into boxes.

    Raises:
        ConfigError: an unreadable or invalid file, unknown keys, a box without a valid
            centre or a positive size, non-finite numbers.
    """
    where = f"obstacles file {str(path)!r}"
    doc = _mapping(path, "obstacles")
    unknown = sorted(set(doc) - {"obstacles", "frame_id"})
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; it holds 'obstacles' (a list of "
                          "boxes) and optionally 'frame_id'")
    if "obstacles" not in doc:
        raise ConfigError(f"{where}: missing 'obstacles' (a list of boxes {{name, center, "
                          "size, yaw}})")
    frame = doc.get("frame_id", "")
    if not isinstance(frame, str):
        raise ConfigError(f"{where}: 'frame_id' must be a string, got {frame!r}")
    return boxes_from_data(doc["obstacles"], frame, where)


def boxes_from_data(records: Any, frame_id: str = "", where: str = "obstacles") -> Boxes:
    """Boxes from already loaded records (see :meth:`Boxes.from_records`)."""
    return Boxes.from_records(records, frame_id.strip().lstrip("/"), where)
