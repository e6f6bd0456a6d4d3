"""Validated training and dataset configs (training/config.py): no torch needed."""

from pathlib import Path

import pytest

from reachability_ros.config_io import parse_overrides
from reachability_ros.core.config import RobotConfig
from reachability_ros.core.errors import ConfigError
from reachability_ros.training.config import (FAMILIES, DataConfig, GeneratorConfig, ModelConfig,
                                              TrainingConfig, build_config,
                                              load_data_config, load_train_config)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "config").glob("train_*.yaml"))


def _cfg(data, overrides=None):
    return build_config(TrainingConfig, data, overrides)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_training_configs_are_valid(path):
    cfg = load_train_config(path)
    assert cfg.model.family in FAMILIES
    assert cfg.robot == RobotConfig()  # every shipped model is for the packaged LeKiwi
    # the ONNX metadata stores to_dict(): it rebuilds the same config
    assert build_config(TrainingConfig, cfg.to_dict()) == cfg


def test_shipped_configs_pin_what_the_models_were_trained_with():
    flow = load_train_config(REPO / "config" / "train_lekiwi_flow.yaml")
    assert (flow.model.n_blocks, flow.model.hidden, flow.train.max_epochs) == (6, 96, 14)
    man = load_train_config(REPO / "config" / "train_lekiwi_manifold.yaml")
    assert man.train.noise_std == (0.002, 0.002, 0.15, 0.15, 0.15, 0.15)
    assert man.data.generator.density == "area" and man.data.generator.manifold == "on"
    cvae = load_train_config(REPO / "config" / "train_lekiwi_cvae.yaml")
    assert cvae.model.params() == {"dz": 4, "hidden": 256, "n_layers": 3}


def test_defaults_are_one_source():
    d = TrainingConfig.describe()
    assert d["train.max_epochs"]["default"] == 20 and d["train.max_epochs"]["description"]
    assert d["data.generator.quality.rule"]["default"] == "soft"
    assert all(v["description"] for v in d.values())
    assert load_data_config(REPO / "config" / "data_lekiwi.yaml") == DataConfig()
    # the generator options of a training run are the dataset config's, robot and sizes added
    cfg = _cfg({"seed": 4, "data": {"n_train": 10, "n_val": 3, "generator": {"workers": 1}}})
    dc = cfg.generator_data_config()
    assert (dc.seed, dc.train_pairs, dc.heldout_pairs, dc.workers) == (4, 10, 3, 1)
    assert dc.oversample == GeneratorConfig().oversample


@pytest.mark.parametrize("data,match", [
    ({"train": {"max_epoch": 3}}, r"^unknown key 'train\.max_epoch'; known keys of train: "),
    ({"trian": {}}, r"^unknown key 'trian'"),
    ({"data": {"generator": {"wrokers": 2}}}, r"unknown key 'data\.generator\.wrokers'"),
    ({"train": {"max_epochs": "abc"}}, r"^train\.max_epochs must be a number, got 'abc'"),
    ({"train": {"max_epochs": 2.5}}, r"^train\.max_epochs must be an integer, got 2\.5"),
    ({"train": {"batch_size": 0}}, r"^train\.batch_size = 0 is outside"),
    ({"train": {"progress": "yes"}}, r"^train\.progress must be true or false"),
    ({"train": {"device": "gpu"}}, r"^train\.device = 'gpu'"),
    ({"train": {"noise_std": -0.1}}, r"^train\.noise_std must be >= 0"),
    ({"train": {"noise_std": [0.1, "a"]}}, r"^train\.noise_std must be a list of"),
    ({"data": {"source": "kiwi"}}, r"^data\.source = 'kiwi' is not one of"),
    ({"data": {"generator": {"quality": {"rule": "x"}}}},
     r"^data\.generator\.quality\.rule = 'x'"),
    ({"data": {"generator": {"strata": {"height_edges_m": [1.0]}}}},
     r"^data\.generator\.strata\.height_edges_m must be a list of at least 2"),
    ({"model": {"family": "cvae", "n_blocks": 3}}, r"^model\.n_blocks is not a parameter of "
                                                   r"family 'cvae'"),
    ({"model": {"dz": 3}}, r"^model\.dz is not a parameter of family 'flow'"),
    ({"export": {"name": "../m.onnx"}}, r"^export\.name = '\.\./m\.onnx' must be a file name"),
    ({"robot": "lekiwi"}, r"^robot must be a mapping"),
    ({"robot": {"reach_m": 0.0}}, r"^robot\.reach_m = 0\.0 is outside"),
    ({"data": {"source": "lekiwi_manifold", "generator": {"manifold": "off"}},
      "model": {"family": "manifold_flow"}}, "needs data.generator.manifold on"),
    (["a"], "must be a mapping"),
    ({"model": {"family": "cfm", "integrator": "rk4"}}, r"^model\.integrator = 'rk4'"),
    ({"model": {"family": "cfm", "n_components": 3}},
     r"^model\.n_components is not a parameter of family 'cfm'"),
    ({"model": {"family": "manifold_gmm", "max_condition": 0.5},
      "data": {"source": "lekiwi_manifold"}}, r"^model\.max_condition = 0\.5 must exceed 1"),
    ({"rkl": {"beta": 3.0}}, r"^the rkl section applies to model\.family manifold_gmm only"),
    ({"model": {"family": "manifold_gmm"}, "data": {"source": "lekiwi_manifold"},
      "rkl": {"pan_range": [0.5, 0.2]}}, r"^rkl\.pan_range must be \[lo, hi\]"),
    ({"eval": {"integrator_steps": [0, 4]}}, r"^eval\.integrator_steps must be a list"),
    ({"model": {"family": "manifold_cfm"}}, "does not go with data.source"),
])
def test_bad_values_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        _cfg(data)


def test_overrides_are_parsed_and_validated_like_the_file():
    cfg = _cfg({"train": {"lr": 0.5}}, parse_overrides(
        ["train.max_epochs=2", "data.generator.workers=3", "robot.reach_m=0.6",
         "train.noise_std=[0.1, 0.2]"]))
    assert cfg.train.max_epochs == 2 and cfg.train.lr == 0.5
    assert cfg.data.generator.workers == 3 and cfg.robot.reach_m == 0.6
    assert cfg.generator_data_config().robot.reach_m == 0.6  # the robot key is read
    assert cfg.train.noise_std == (0.1, 0.2)
    # a mapping for a section merges key by key
    cfg = _cfg({"data": {"generator": {"workers": 2, "density": "forward"}}},
               {"data.generator": {"density": "area"}})
    assert (cfg.data.generator.workers, cfg.data.generator.density) == (2, "area")
    for key, match in (("train.max_epoch", r"unknown override key 'train\.max_epoch': train "
                                           r"has the keys"),
                       ("trian.lr", r"unknown override key 'trian\.lr': the top level has "),
                       ("train.lr.x", r"train\.lr is a value, not a section"),
                       ("data.generator.quality.rulez", "rulez")):
        with pytest.raises(ConfigError, match=match):
            _cfg({}, {key: 1})
    with pytest.raises(ConfigError, match="names a section"):
        _cfg({}, {"train": 3})
    with pytest.raises(ConfigError, match=r"^train\.max_epochs must be a number, got 'x'"):
        _cfg({}, parse_overrides(["train.max_epochs=x"]))


def test_load_names_the_file_and_refuses_a_broken_one(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("train:\n  max_epochs: 0\n")
    with pytest.raises(ConfigError, match=rf"train\.max_epochs = 0 is outside .*\({p}\)"):
        load_train_config(p)
    p.write_text("train: {max_epochs: 1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_train_config(p)
    p.write_text("")
    assert load_train_config(p) == TrainingConfig()  # an empty file: every default
    with pytest.raises(ConfigError, match="not found"):
        load_train_config(tmp_path / "none.yaml")
    d = tmp_path / "d.yaml"
    d.write_text("data:\n  shard_size: 10\n")
    assert load_data_config(d).shard_size == 10
    assert load_data_config(d, {"strata.height_edges_m": [0.0, 1.0]}).strata.n_bins == 8


def test_model_params_follow_the_family():
    assert ModelConfig(family="manifold_flow", n_blocks=3, hidden=32).params() == {
        "n_blocks": 3, "hidden": 32, "n_layers": 2, "clamp": 2.0}
    assert ModelConfig(family="cvae", dz=6).params() == {"dz": 6, "hidden": 192, "n_layers": 2}
    assert ModelConfig(family="manifold_cfm", n_steps=4).params() == {
        "hidden": 192, "n_layers": 2, "n_steps": 4, "integrator": "midpoint"}
    assert ModelConfig(family="manifold_gmm", n_components=3).params() == {
        "hidden": 192, "n_layers": 2, "n_components": 3, "max_condition": 100.0}
