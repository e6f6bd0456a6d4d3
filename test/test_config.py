"""Config dataclasses and the YAML files of config/."""

import pytest

from reachability_ros.config_io import load_stance_config, parameters_section
from reachability_ros.core.config import CameraConfig, ProposalConfig, RobotConfig, StanceConfig
from reachability_ros.core.errors import ConfigError


def test_lekiwi_yaml_loads_and_validates():
    cfg = load_stance_config("config/lekiwi.yaml")
    assert cfg.robot.camera.hfov_deg == 70.0 and cfg.robot.camera.width == 640
    assert cfg.robot.arm_joints[0] == "arm_shoulder_pan"
    assert cfg.proposal.n_samples >= 1


def test_flat_round_trip_and_descriptions():
    cfg = StanceConfig()
    flat = cfg.to_flat()
    assert StanceConfig.from_flat(flat) == cfg
    desc = StanceConfig.describe()
    assert set(desc) == set(flat)
    assert all(d["description"] for d in desc.values())
    assert desc["proposal.n_samples"]["range"] == (1, 1_000_000)


def test_errors_name_the_bad_value():
    with pytest.raises(ConfigError, match="hfov_deg = 400"):
        CameraConfig(hfov_deg=400)
    with pytest.raises(ConfigError, match="unknown ProposalConfig key 'n_sampels'"):
        ProposalConfig.from_dict({"n_sampels": 3})
    with pytest.raises(ConfigError, match="must be a number"):
        ProposalConfig(n_samples="many")
    with pytest.raises(ConfigError, match="far_m"):
        CameraConfig(near_m=2.0, far_m=1.0)
    with pytest.raises(ConfigError, match="unknown parameter"):
        load_stance_config("config/lekiwi.yaml", {"proposal.nope": 1})
    with pytest.raises(ConfigError, match="not found"):
        load_stance_config("config/does_not_exist.yaml")


def test_parameter_file_layout():
    data = {"stance_server": {"ros__parameters": {"proposal": {"top_k": 3}}}}
    assert parameters_section(data) == {"proposal": {"top_k": 3}}
    assert StanceConfig.from_dict(parameters_section(data)).proposal.top_k == 3


def test_intrinsics_from_fov():
    fx, fy, cx, cy = CameraConfig().intrinsics()
    assert cx == 320 and cy == 240 and fx == fy
    tl, tr, tu, td = CameraConfig().frustum_tangents()
    assert tl == pytest.approx(0.7002, abs=1e-4) and tu == pytest.approx(0.5252, abs=1e-4)
    assert RobotConfig().urdf_path().name == "lekiwi.urdf"
