"""Config dataclasses and the YAML files of config/."""

import pytest

from reachability_ros.config_io import load_stance_config, parameters_section, parse_overrides
from reachability_ros.core.paths import resolve_data_path
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
    with pytest.raises(ConfigError, match="max_height_m = -1.0 must exceed"):
        ProposalConfig(max_height_m=-1.0)
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


@pytest.mark.parametrize("key, value, message", [
    ("n_samples", 256.7, "n_samples must be an integer, got 256.7"),
    ("robustness_samples", 3.5, "robustness_samples must be an integer"),
    ("seed", 1.5, "seed must be an integer"),
    ("top_k", 2.5, "top_k must be an integer"),
    ("top_k", True, "top_k must be a number"),
    ("sampler", 3, "sampler must be a string"),
    ("w_travel", "0.5", "w_travel must be a number"),
])
def test_values_are_checked_against_the_declared_type(key, value, message):
    with pytest.raises(ConfigError, match=message):
        ProposalConfig.from_dict({key: value})


def test_integral_floats_and_ints_are_converted():
    cfg = ProposalConfig.from_dict({"n_samples": 256.0, "w_travel": 1})
    assert cfg.n_samples == 256 and isinstance(cfg.n_samples, int)
    assert cfg.w_travel == 1.0 and isinstance(cfg.w_travel, float)
    with pytest.raises(ConfigError, match="list of strings"):
        RobotConfig.from_dict({"arm_joints": "arm_shoulder_pan"})
    with pytest.raises(ConfigError, match="must be a mapping"):
        StanceConfig.from_dict({"robot": 3})


def test_parse_overrides():
    assert parse_overrides(["train.max_epochs=2", " data.cache_dir=/tmp/d ", "",
                            "model.family=flow", "train.lr=0.002", "x.flag=true"]) == {
        "train.max_epochs": 2, "data.cache_dir": "/tmp/d", "model.family": "flow",
        "train.lr": 0.002, "x.flag": True}
    assert parse_overrides([]) == {}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["train.max_epochs"])
    with pytest.raises(ConfigError):
        parse_overrides(["=3"])


def test_relative_paths_resolve_against_the_working_directory_first(tmp_path, monkeypatch):
    packaged = resolve_data_path("config/lekiwi.yaml")
    assert packaged.is_file() and packaged.is_absolute()
    (tmp_path / "config").mkdir()
    mine = tmp_path / "config" / "lekiwi.yaml"
    mine.write_text("stance_server:\n  ros__parameters:\n    proposal: {top_k: 3}\n")
    monkeypatch.chdir(tmp_path)
    assert resolve_data_path("config/lekiwi.yaml") == mine
    assert load_stance_config("config/lekiwi.yaml").proposal.top_k == 3
    assert resolve_data_path("nothing/here.onnx") == tmp_path / "nothing" / "here.onnx"


def _flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def test_shipped_yaml_holds_exactly_the_dataclass_defaults():
    """One source of defaults: config/lekiwi.yaml lists every key with its default value.

    So ``StanceProposer()`` (dataclass defaults) behaves like the service started with
    the shipped file, and the file documents every key.
    """
    from reachability_ros.config_io import load_yaml
    raw = _flatten(parameters_section(load_yaml("config/lekiwi.yaml")))
    defaults = StanceConfig().to_flat()
    assert sorted(raw) == sorted(defaults)
    for key, value in defaults.items():
        assert raw[key] == value and type(raw[key]) is type(value), (key, raw[key], value)


def test_unread_keys_are_gone():
    """robot.wrist_camera_frame was declared but never read: it is refused now."""
    with pytest.raises(ConfigError, match="unknown RobotConfig key 'wrist_camera_frame'"):
        RobotConfig.from_dict({"wrist_camera_frame": "wrist_camera_optical_frame"})
