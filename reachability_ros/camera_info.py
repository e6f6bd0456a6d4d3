"""The camera the robot really has: calibrated intrinsics -> the visibility check's camera config.

Two sources, one rule (:func:`camera_from_intrinsics`):

- a ``sensor_msgs/CameraInfo`` (the stance server's and the navigator's ``camera_info_topic``;
  the ROS glue reads ``k``, ``width``, ``height`` and ``header.frame_id`` and passes them here);
- the YAML file that ``camera_calibration`` writes (``image_width``, ``image_height``,
  ``camera_matrix: {rows: 3, cols: 3, data: [...]}``), given to the CLI as ``--camera-info``
  (:func:`load_camera_calibration`).

The visibility check is a pinhole frustum (``core/visibility.py``): it uses ``fx, fy, cx, cy``
of the raw image (``k``) and the calibrated resolution; distortion, binning and a region of
interest are not used (binning scales ``k`` and the size alike and leaves the frustum as it
is). A camera is refused, with the reason, when its frame is not the configured camera
frame, when it is uncalibrated (``k[0] == 0``, the agreed sign) or when its numbers make no
pinhole camera (non-positive focal lengths, a principal point outside the image).

Nothing here imports ROS.
"""

from __future__ import annotations

from dataclasses import replace
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from reachability_ros.core.config import CameraConfig, StanceConfig
from reachability_ros.core.errors import ConfigError

#: The camera keys of the stance configuration that live intrinsics set.
CAMERA_KEYS = ('width', 'height', 'fx', 'fy', 'cx', 'cy')


def camera_from_intrinsics(k: Sequence[float], width: int, height: int,
                           frame_id: str | None, camera: CameraConfig) -> CameraConfig:
    """Return ``camera`` with the calibrated intrinsics and resolution, or refuse them.

    Args:
        k: the 3x3 camera matrix, row-major (9 numbers: fx, 0, cx, 0, fy, cy, 0, 0, 1).
        width: image width the calibration was made at (px).
        height: image height (px).
        frame_id: the optical frame the intrinsics belong to (a leading ``/`` is ignored);
            None when the source does not say (a calibration file).
        camera: the configured camera (frame, near and far distances are kept).

    Returns:
        A validated :class:`CameraConfig` (``fx, fy, cx, cy`` set, so ``hfov_deg`` no
        longer applies).

    Raises:
        ConfigError: why the intrinsics cannot be used (one line).
    """
    if frame_id is not None:
        frame = str(frame_id).strip().lstrip('/')
        if frame != camera.frame:
            raise ConfigError(f"camera info is for frame '{frame}', not the configured camera "
                              f"frame '{camera.frame}' (robot.camera.frame)")
    try:
        values = [float(v) for v in k]
    except (TypeError, ValueError):
        raise ConfigError(f'camera matrix must hold 9 numbers, got {k!r}') from None
    if len(values) != 9:
        raise ConfigError(f'camera matrix must hold 9 numbers (3x3), got {len(values)}')
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f'camera matrix has non-finite values: {values}')
    fx, cx, fy, cy = values[0], values[2], values[4], values[5]
    if fx == 0.0 or fy == 0.0:
        raise ConfigError(f'camera is not calibrated: focal lengths fx = {fx:g}, fy = {fy:g}')
    if fx < 0.0 or fy < 0.0:
        raise ConfigError(f'camera focal lengths must be positive, got fx = {fx:g}, '
                          f'fy = {fy:g}')
    if abs(values[8] - 1.0) > 1e-9 or values[6] != 0.0 or values[7] != 0.0:
        raise ConfigError(f'camera matrix must end with the row (0, 0, 1), got {values[6:]}')
    for name, value in (('width', width), ('height', height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f'camera image {name} must be a positive integer, got {value!r}')
    if not (0.0 < cx < width and 0.0 < cy < height):
        raise ConfigError(f'camera principal point ({cx:g}, {cy:g}) px is outside the '
                          f'{width}x{height} image')
    return replace(camera, width=int(width), height=int(height), fx=fx, fy=fy, cx=cx, cy=cy)


def camera_overrides(camera: CameraConfig) -> dict[str, Any]:
    """Return the dotted config keys (``robot.camera.fx``, ...) that set these intrinsics."""
    return {f'robot.camera.{key}': getattr(camera, key) for key in CAMERA_KEYS}


def same_intrinsics(a: CameraConfig, b: CameraConfig) -> bool:
    """Tell whether two cameras have the same frustum: resolution and (fx, fy, cx, cy)."""
    return (a.width, a.height) == (b.width, b.height) and a.intrinsics() == b.intrinsics()


def camera_report(camera: CameraConfig, source: str, topic: str = '',
                  since: Mapping[str, Any] | None = None) -> dict:
    """Return the report's ``camera`` entry: which intrinsics the visibility check used.

    Args:
        camera: the camera in use.
        source: ``'config'`` (the configured field of view or intrinsics),
            ``'camera_info'`` (a CameraInfo topic) or ``'file'`` (a calibration file).
        topic: the CameraInfo topic (or the file), '' when none.
        since: when these intrinsics took effect (e.g. ``{'sec': .., 'nanosec': ..}``
            of the CameraInfo that brought them), None for the configuration.
    """
    fx, fy, cx, cy = camera.intrinsics()
    return {'source': source, 'topic': topic, 'frame': camera.frame,
            'width': int(camera.width), 'height': int(camera.height),
            'fx': fx, 'fy': fy, 'cx': cx, 'cy': cy,
            'hfov_deg': math.degrees(math.atan(cx / fx) + math.atan((camera.width - cx) / fx)),
            'since': None if since is None else dict(since)}


def calibration_intrinsics(data: Any, where: str = 'camera info') -> tuple[list, int, int]:
    """Read ``camera_calibration``'s YAML mapping: ``(k, width, height)``.

    Raises:
        ConfigError: a missing or malformed ``image_width``, ``image_height`` or
            ``camera_matrix`` (``rows: 3, cols: 3, data: [9 numbers]``).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f'{where} must be a mapping with image_width, image_height and '
                          'camera_matrix (the YAML camera_calibration writes)')
    missing = [k for k in ('image_width', 'image_height', 'camera_matrix') if k not in data]
    if missing:
        raise ConfigError(f'{where} lacks {", ".join(missing)} (the YAML camera_calibration '
                          'writes has image_width, image_height and camera_matrix)')
    matrix = data['camera_matrix']
    if not isinstance(matrix, Mapping) or 'data' not in matrix:
        raise ConfigError(f'{where}: camera_matrix must be a mapping with rows, cols and data')
    if (matrix.get('rows', 3), matrix.get('cols', 3)) != (3, 3):
        raise ConfigError(f"{where}: camera_matrix must be 3x3, got rows {matrix.get('rows')}, "
                          f"cols {matrix.get('cols')}")
    k = matrix['data']
    if not isinstance(k, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in k):
        raise ConfigError(f'{where}: camera_matrix.data must be a list of 9 numbers, got {k!r}')
    return list(k), data['image_width'], data['image_height']


def load_camera_calibration(path: str | Path, camera: CameraConfig) -> CameraConfig:
    """Read a ``camera_calibration`` YAML file and return the camera with its intrinsics.

    Args:
        path: the file (a relative path: the working directory, then the package share).
        camera: the configured camera (its frame, near and far are kept).

    Raises:
        ConfigError: the file cannot be read or its intrinsics are refused (one line,
            naming the file).
    """
    from reachability_ros.config_io import load_yaml, resolve_data_path
    found = resolve_data_path(path)
    if not found.is_file():
        raise ConfigError(f'camera info file {str(path)!r} not found (looked at {found})')
    data = load_yaml(found)
    k, width, height = calibration_intrinsics(data, f'camera info file {str(path)!r}')
    try:
        return camera_from_intrinsics(k, width, height, None, camera)
    except ConfigError as exc:
        raise ConfigError(f'camera info file {str(path)!r}: {exc}') from None


def with_camera_file(config: StanceConfig, path: str | Path) -> StanceConfig:
    """Return ``config`` whose camera has the intrinsics of a calibration file (CLI).

    Raises:
        ConfigError: as :func:`load_camera_calibration`.
    """
    camera = load_camera_calibration(path, config.robot.camera)
    return replace(config, robot=replace(config.robot, camera=camera))
