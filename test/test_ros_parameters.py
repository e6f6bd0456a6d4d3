"""The nodes' parameters as plain data: declarations, values and their checks (no ROS)."""

import array
from pathlib import Path

import numpy as np
import pytest
from reachability_ros.config_io import load_stance_config, parameters_section
from reachability_ros.core.config import StanceConfig
from reachability_ros.core.errors import ConfigError
from reachability_ros.ros import parameters as params
import yaml

REPO = Path(__file__).resolve().parents[1]


def test_parameter_specs_cover_every_config_key_with_ranges():
    describe = StanceConfig.describe()
    specs = params.parameter_specs()
    assert [s.name for s in specs] == list(describe)
    for s in specs:
        info = describe[s.name]
        assert s.description.startswith(info['description'])
        assert s.type_id == params.PARAMETER_TYPES[s.kind]
        assert s.constraints == params.CONFIG_CONSTRAINTS and not s.read_only
        if info['range'] is not None and s.kind in ('integer', 'double'):
            lo, hi = s.bounds
            assert lo <= s.default <= hi
            if info['range'][0] is not None:
                assert lo == pytest.approx(info['range'][0])
            if info['range'][1] is not None:
                assert hi == pytest.approx(info['range'][1])
            assert 'range' in s.description
            assert type(lo) is type(hi) is (int if s.kind == 'integer' else float)
        else:
            assert s.bounds is None
    kinds = {s.name: s.kind for s in specs}
    assert kinds['robot.camera.hfov_deg'] == 'double'
    assert kinds['robot.camera.width'] == 'integer'
    assert kinds['robot.arm_joints'] == 'string_array'
    assert kinds['proposal.top_k'] == 'integer'
    assert kinds['proposal.model_path'] == 'string'
    assert all(s.default == info['default'] for s, info in zip(specs, describe.values()))


def test_parameter_type_ids_are_the_message_constants():
    # rcl_interfaces/msg/ParameterType (docs/ros2-jazzy-reference.md)
    assert params.PARAMETER_TYPES == {
        'bool': 1, 'integer': 2, 'double': 3, 'string': 4, 'byte_array': 5, 'bool_array': 6,
        'integer_array': 7, 'double_array': 8, 'string_array': 9}


def test_parameter_specs_take_defaults_from_a_config_file_and_coerce_ints():
    specs = {s.name: s for s in params.parameter_specs(
        defaults={'robot.camera.hfov_deg': 60, 'proposal.top_k': 3})}
    assert specs['robot.camera.hfov_deg'].default == 60.0
    assert type(specs['robot.camera.hfov_deg'].default) is float
    assert specs['proposal.top_k'].default == 3
    with pytest.raises(ConfigError, match='proposal.top_k'):
        params.parameter_specs(defaults={'proposal.top_k': 2.5})
    with pytest.raises(ConfigError, match='robot.name'):
        params.parameter_specs(defaults={'robot.name': 3})


def test_node_parameter_specs():
    specs = {s.name: s for s in params.node_parameter_specs()}
    assert set(specs) == set(params.NODE_PARAMETERS)
    assert specs['target_frame'].default == 'map'
    assert specs['config_file'].read_only
    assert specs['tf_timeout_s'].kind == 'double'
    assert specs['tf_timeout_s'].bounds == (0.0, 60.0)
    assert specs['tf_timeout_s'].default == 1.0
    assert not any(s.constraints for s in specs.values())


def test_the_parameter_file_types_match_the_declared_types():
    """config/lekiwi.yaml is also the ROS parameter file: rclpy refuses 1 for a double."""
    data = yaml.safe_load((REPO / 'config' / 'lekiwi.yaml').read_text())
    assert 'stance_server' in data and 'ros__parameters' in data['stance_server']
    flat = StanceConfig.from_dict(parameters_section(data)).to_flat()
    raw = {}

    def walk(d, prefix=''):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, prefix + k + '.')
            else:
                raw[prefix + k] = v
    walk(parameters_section(data))
    assert set(raw) <= set(flat)
    for s in params.parameter_specs():
        if s.name not in raw:
            continue
        v = raw[s.name]
        expected = {'double': float, 'integer': int, 'string': str, 'bool': bool}.get(s.kind)
        if expected is not None:
            assert type(v) is expected, f'{s.name}: {v!r} in lekiwi.yaml must be a {s.kind}'
        else:
            assert isinstance(v, list) and v, f'{s.name} must be a non-empty list'


def test_config_from_parameters_round_trip_and_validation():
    cfg = load_stance_config()
    values = {s.name: s.default for s in params.parameter_specs(defaults=cfg.to_flat())}
    values.update({'target_frame': 'map', 'tf_timeout_s': 1.0, 'config_file': ''})
    assert params.config_from_parameters(values) == cfg
    values['robot.arm_joints'] = list(cfg.robot.arm_joints)
    values['proposal.top_k'] = np.int64(4)
    assert params.config_from_parameters(values).proposal.top_k == 4
    assert params.plain_parameter_value(array.array('d', [1.0, 2.0])) == [1.0, 2.0]
    assert params.plain_parameter_value(np.array([1, 2])) == [1, 2]
    with pytest.raises(ConfigError, match='n_samples'):
        params.config_from_parameters(dict(values, **{'proposal.n_samples': 0}))
    with pytest.raises(ConfigError, match='typo'):
        params.config_from_parameters(dict(values, **{'proposal.typo': 1}))


def test_resolve_config_paths(tmp_path):
    cfg = StanceConfig.from_flat({'proposal.model_path': 'models/nope.onnx'})
    with pytest.raises(ConfigError, match='nope.onnx.*model:=none'):
        params.resolve_config_paths(cfg, lambda p: tmp_path / p)
    (tmp_path / 'models').mkdir()
    (tmp_path / 'models' / 'm.onnx').write_bytes(b'x')
    cfg = StanceConfig.from_flat({'proposal.model_path': 'models/m.onnx'})
    out = params.resolve_config_paths(cfg, lambda p: tmp_path / p)
    assert out.proposal.model_path == str((tmp_path / 'models' / 'm.onnx').resolve())
    no_model = StanceConfig.from_flat({'proposal.model_path': ''})  # nothing to resolve
    assert params.resolve_config_paths(no_model, lambda p: tmp_path / p) == no_model


def _server_file(tmp_path, section):
    path = tmp_path / 'server.yaml'
    path.write_text(yaml.safe_dump({'stance_server': {'ros__parameters': section}}))
    return str(path)


def test_the_servers_parameter_file_is_a_config_with_its_node_parameters_skipped(tmp_path):
    """The server's own parameters may sit in its file; both nodes read it as a config."""
    node_level = {'target_frame': 'odom', 'tf_timeout_s': 2.0, 'camera_info_topic': '/c',
                  'map_topic': '/map', 'map_required': True, 'map_max_age_s': 5.0,
                  'obstacles_file': 'o.yaml', 'obstacles_topic': '/o',
                  'grasp_symmetric': True, 'grasp_free_roll': False, 'use_sim_time': True,
                  'config_file': ''}
    assert set(node_level) <= set(params.SERVER_NODE_PARAMETERS)
    section = dict(node_level, robot={'camera': {'hfov_deg': 100.0}},
                   proposal={'top_k': 4})
    cfg = params.stance_config_file(_server_file(tmp_path, section))
    assert cfg.robot.camera.hfov_deg == 100.0 and cfg.proposal.top_k == 4
    with pytest.raises(ConfigError, match='map_topik'):  # a typo is still refused
        params.stance_config_file(_server_file(tmp_path, dict(section, map_topik='/m')))
    with pytest.raises(ConfigError, match='not found'):
        params.stance_config_file(str(tmp_path / 'nope.yaml'))


def test_resolve_urdf(tmp_path):
    (tmp_path / 'r.urdf').write_text('<robot name="r"/>')
    robot = StanceConfig.from_flat({'robot.urdf': 'r.urdf'}).robot
    assert params.resolve_urdf(robot, lambda p: tmp_path / p).urdf == str(tmp_path / 'r.urdf')
    assert params.resolve_urdf(robot, lambda p: tmp_path / 'x' / p) == robot  # not found
    default = StanceConfig().robot  # empty: the package's description
    assert params.resolve_urdf(default, lambda p: tmp_path / p) == default


def test_unknown_parameters_are_found_and_named_with_a_close_match():
    declared = ['proposal.n_samples', 'proposal.top_k', 'config_file']
    given = ['proposal.n_sample', 'proposal.top_k', 'use_sim_time', 'bogus']
    assert params.unknown_parameters(given, declared) == ['bogus', 'proposal.n_sample']
    assert params.unknown_parameters(['use_sim_time'], []) == []
    assert params.unknown_parameters([], declared) == []
    text = params.unknown_parameters_message('stance_server', ['proposal.n_sample', 'bogus'],
                                             declared)
    assert "'proposal.n_sample' (did you mean 'proposal.n_samples'?)" in text
    assert "'bogus'" in text and "'bogus' (did you mean" not in text
    assert 'ros2 param list /stance_server' in text and '\n' not in text


def test_startup_message_is_one_line_with_a_hint_for_ints_given_to_doubles():
    exc = ValueError("Trying to set parameter 'x' of type 'INTEGER', expecting type 'DOUBLE'")
    text = params.startup_message(exc)
    assert text.startswith('ValueError: ') and 'decimal point' in text
    assert params.startup_message(ConfigError('a\nb')) == 'ConfigError: a b'
