"""Live camera intrinsics (camera_info.py): a CameraInfo's k, width, height and frame, or a
camera_calibration file, become the visibility check's camera, or are refused with a reason."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reachability_ros.camera_info import (calibration_intrinsics, camera_from_intrinsics,
                                          camera_overrides, camera_report,
                                          load_camera_calibration, same_intrinsics,
                                          with_camera_file)
from reachability_ros.core.config import CameraConfig, StanceConfig
from reachability_ros.core.errors import ConfigError
from reachability_ros.core.visibility import Visibility

REPO = Path(__file__).resolve().parents[1]
WIDE_K = [200.0, 0.0, 320.0, 0.0, 200.0, 240.0, 0.0, 0.0, 1.0]  # 116 deg horizontal
#: a grasp above what the default 70 deg camera watches, within a 116 deg camera's view
HIGH_GRASP = (['0.277', '-0.027', '0.36'], ['-0.1528', '0.4725', '-0.3502', '0.7942'])

CALIBRATION = """\
image_width: 640
image_height: 480
camera_name: front
camera_matrix:
  rows: 3
  cols: 3
  data: [{k}]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.0, 0.0, 0.0, 0.0, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
"""


def calibration_file(tmp_path, k=WIDE_K, name='front.yaml'):
    path = tmp_path / name
    path.write_text(CALIBRATION.format(k=', '.join(str(v) for v in k)))
    return path


def test_intrinsics_replace_the_assumed_field_of_view():
    cam = camera_from_intrinsics(WIDE_K, 640, 480, '/front_camera_optical_frame',
                                 CameraConfig())
    assert cam.intrinsics() == (200.0, 200.0, 320.0, 240.0)
    assert (cam.width, cam.height) == (640, 480)
    assert cam.near_m == CameraConfig().near_m and cam.frame == CameraConfig().frame
    rep = camera_report(cam, 'camera_info', '/front/camera_info', {'sec': 5, 'nanosec': 0})
    assert rep['hfov_deg'] == pytest.approx(2 * math.degrees(math.atan(320 / 200)))
    assert rep['source'] == 'camera_info' and rep['since'] == {'sec': 5, 'nanosec': 0}
    assert camera_report(CameraConfig(), 'config')['hfov_deg'] == pytest.approx(70.0)
    assert camera_overrides(cam)['robot.camera.fx'] == 200.0
    assert StanceConfig.from_flat(camera_overrides(cam)).robot.camera == cam
    assert same_intrinsics(cam, camera_from_intrinsics(WIDE_K, 640, 480, None, cam))
    assert not same_intrinsics(cam, CameraConfig())


@pytest.mark.parametrize('k,size,frame,words', [
    (WIDE_K, (640, 480), 'wrist_camera', "frame 'wrist_camera', not the configured"),
    ([0.0] * 9, (640, 480), None, 'not calibrated'),
    ([-200.0] + WIDE_K[1:], (640, 480), None, 'must be positive'),
    (WIDE_K[:8], (640, 480), None, '9 numbers'),
    ([float('nan')] + WIDE_K[1:], (640, 480), None, 'non-finite'),
    (WIDE_K[:8] + [2.0], (640, 480), None, '(0, 0, 1)'),
    (WIDE_K, (0, 480), None, 'positive integer'),
    (WIDE_K, (320, 480), None, 'outside the 320x480 image'),
])
def test_unusable_intrinsics_are_refused_with_the_reason(k, size, frame, words):
    with pytest.raises(ConfigError, match=None) as exc:
        camera_from_intrinsics(k, *size, frame, CameraConfig())
    assert words in str(exc.value)


def test_a_wider_camera_sees_what_the_assumed_one_does_not(robot):
    narrow = Visibility(robot)
    wide = Visibility(robot, camera_from_intrinsics(WIDE_K, 640, 480, None, CameraConfig()))
    q = robot.random_configurations(3000, np.random.default_rng(0), base_extent_m=0.0)
    v_n, v_w = narrow.check(q).in_frustum, wide.check(q).in_frustum
    assert v_w.sum() > 1.5 * v_n.sum() and not (v_n & ~v_w).any()


def test_the_calibration_file_is_read(tmp_path):
    cam = load_camera_calibration(calibration_file(tmp_path), CameraConfig())
    assert cam.intrinsics() == (200.0, 200.0, 320.0, 240.0)
    cfg = with_camera_file(StanceConfig(), calibration_file(tmp_path))
    assert cfg.robot.camera == cam and cfg.proposal == StanceConfig().proposal


@pytest.mark.parametrize('data,words', [
    ({'image_width': 640, 'image_height': 480}, 'lacks camera_matrix'),
    ({'image_width': 640, 'image_height': 480, 'camera_matrix': [1, 2]}, 'mapping with rows'),
    ({'image_width': 640, 'image_height': 480,
      'camera_matrix': {'rows': 3, 'cols': 4, 'data': WIDE_K}}, 'must be 3x3'),
    ({'image_width': 640, 'image_height': 480,
      'camera_matrix': {'rows': 3, 'cols': 3, 'data': 'x'}}, 'list of 9 numbers'),
    ([1, 2, 3], 'must be a mapping'),
])
def test_malformed_calibrations_are_refused(data, words):
    with pytest.raises(ConfigError) as exc:
        calibration_intrinsics(data)
    assert words in str(exc.value)


def run(args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, '-m', 'reachability_ros'] + args,
                          capture_output=True, text=True, timeout=300, cwd=REPO, env=env)


def test_cli_camera_info_changes_the_answer(tmp_path):
    pos, quat = HIGH_GRASP
    base = ['propose', '--position', *pos, '--quat', *quat, '--model', '', '--json']
    assumed = run(base)
    assert assumed.returncode == 1, assumed.stderr
    assert 'camera:' not in assumed.stderr
    real = run(base + ['--camera-info', str(calibration_file(tmp_path))])
    assert real.returncode == 0, real.stderr
    assert json.loads(real.stdout)['ok']
    assert 'fx 200' in real.stderr and 'front.yaml' in real.stderr


@pytest.mark.parametrize('content,words', [
    (None, 'not found'),
    (CALIBRATION.format(k=', '.join(['0.0'] * 9)), 'not calibrated'),
    ('image_width: [\n', 'not valid YAML'),
])
def test_cli_bad_camera_info_is_one_line_exit_2(tmp_path, content, words):
    path = tmp_path / 'cam.yaml'
    if content is not None:
        path.write_text(content)
    out = run(['propose', '--position', '0.5', '0', '0.1', '--rpy', '0', '0', '0',
               '--camera-info', str(path)])
    assert out.returncode == 2 and words in out.stderr
    assert 'Traceback' not in out.stderr and len(out.stderr.strip().splitlines()) == 1
