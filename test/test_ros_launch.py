"""The launch file, the RViz config and the installed files, checked by what they do.

The launch file's decisions are plain functions (``ros.launch_args``), tested
here without ROS; the launch file itself is loaded twice: with stand-ins for
``launch`` and ``launch_ros`` (always), and with the real packages where ROS is
installed (skipped otherwise, with the reason).
"""

import ast
import importlib.util
import json
from pathlib import Path
import subprocess
import sys
import types

import pytest
from reachability_ros.ros import launch_args as la
from reachability_ros.ros import markers as mk
from ros_support import have
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / 'launch' / 'lekiwi.launch.py'


# ------------------------------------------------------------------ decisions
def test_the_defaults_keep_the_configs_model_and_sampler():
    params = la.stance_server_parameters('/c/lekiwi.yaml')
    assert params == {'config_file': '/c/lekiwi.yaml', 'target_frame': 'map',
                      'use_sim_time': False}


@pytest.mark.parametrize('model, expected', [
    ('none', ''), ('NONE', ''), (' none ', ''),  # no model: the exact grid with sampler auto
    ('runs/tiny/model.onnx', 'runs/tiny/model.onnx'), ('/abs/m.onnx', '/abs/m.onnx')])
def test_the_model_argument(model, expected):
    params = la.stance_server_parameters('/c.yaml', model=model)
    assert params['proposal.model_path'] == expected
    assert 'proposal.model_path' not in la.stance_server_parameters('/c.yaml', model='  ')


@pytest.mark.parametrize('sampler', la.SAMPLERS)
def test_the_sampler_argument(sampler):
    assert la.stance_server_parameters('/c.yaml', sampler=sampler)['proposal.sampler'] == sampler


def test_bad_sampler_and_boolean_values_are_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="sampler:='gird'"):
        la.stance_server_parameters('/c.yaml', sampler='gird')
    with pytest.raises(ValueError, match='use_sim_time'):
        la.stance_server_parameters('/c.yaml', use_sim_time='maybe')
    assert la.parse_bool('x', 'True') and la.parse_bool('x', '1')
    assert not la.parse_bool('x', 'false') and not la.parse_bool('x', '0')


@pytest.mark.parametrize('frame, expected', [('odom', 'odom'), (' /odom ', 'odom'),
                                             ('', 'map'), ('map', 'map')])
def test_rviz_gets_the_target_frame_as_its_fixed_frame(frame, expected):
    assert la.rviz_arguments('/s/lekiwi.rviz', frame) == ['-d', '/s/lekiwi.rviz', '-f',
                                                          expected]
    assert la.stance_server_parameters('/c.yaml', frame=frame)['target_frame'] == expected


# ------------------------------------------------------------------ the file, with stand-ins
def _load_launch_with_stand_ins(monkeypatch):
    """Import launch/lekiwi.launch.py against minimal stand-ins of launch and launch_ros."""
    class Arg:

        def __init__(self, name, **kw):
            self.name, self.kw = name, kw

        def perform(self, context):
            return context[self.name]

    class Node:

        def __init__(self, **kw):
            self.kw = kw

    class Typed:

        def __init__(self, value, value_type=None):
            self.value, self.value_type = value, value_type

        def __eq__(self, other):
            return (self.value, self.value_type) == (other.value, other.value_type)

    class Join:

        def __init__(self, parts):
            self.parts = parts

        def perform(self, context):
            return '/'.join(str(p) for p in self.parts)

    mods = {
        'launch': {'LaunchDescription': lambda items: list(items)},
        'launch.actions': {'DeclareLaunchArgument': Arg,
                           'OpaqueFunction': lambda function: function},
        'launch.substitutions': {'LaunchConfiguration': Arg, 'PathJoinSubstitution': Join},
        'launch_ros': {}, 'launch_ros.actions': {'Node': Node},
        'launch_ros.parameter_descriptions': {'ParameterValue': Typed},
        'launch_ros.substitutions': {'FindPackageShare': lambda pkg: f'<share {pkg}>'},
    }
    for name, attrs in mods.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))
    spec = importlib.util.spec_from_file_location('lekiwi_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_launch_file_declares_its_arguments_with_defaults_and_choices(monkeypatch):
    launch = _load_launch_with_stand_ins(monkeypatch)
    items = launch.generate_launch_description()
    args = {a.name: a.kw for a in items if hasattr(a, 'kw')}
    assert tuple(args) == launch.ARGUMENTS
    assert args['model']['default_value'] == '' and args['sampler']['default_value'] == ''
    assert args['sampler']['choices'] == ['', *la.SAMPLERS]
    assert args['use_rviz']['default_value'] == 'false'
    assert args['use_sim_time']['choices'] == ['true', 'false']
    assert args['config']['default_value'].perform({}).endswith('config/lekiwi.yaml')
    assert launch._stance_server in items and launch._rviz in items
    assert launch._navigator in items
    assert args['navigate']['default_value'] == 'false' and args['camera_info'][
        'default_value'] == ''


def _context(**arguments):
    """Return launch arguments as the launch context holds them (defaults, then these)."""
    return {'config': '/c.yaml', 'model': '', 'sampler': '', 'target_frame': 'map',
            'use_sim_time': 'false', 'use_rviz': 'false', 'navigate': 'false',
            'camera_info': '', **arguments}


def test_the_launch_file_starts_the_server_with_the_chosen_parameters(monkeypatch):
    launch = _load_launch_with_stand_ins(monkeypatch)
    context = _context(model='none', sampler='grid', target_frame=' /odom ',
                       use_sim_time='true')
    (server,) = launch._stance_server(context)
    assert server.kw['package'] == 'reachability_ros'
    assert server.kw['executable'] == 'stance_server' and server.kw['name'] == 'stance_server'
    config, overrides = server.kw['parameters']
    assert config == '/c.yaml'
    plain = la.stance_server_parameters('/c.yaml', 'none', 'grid', ' /odom ', 'true')
    assert set(overrides) == set(plain) | {'camera_info_topic'}
    assert overrides['camera_info_topic'] == launch.ParameterValue('', value_type=str)
    for key, value in plain.items():  # strings are typed as strings: '' is not YAML null
        if isinstance(value, str):
            assert (overrides[key].value, overrides[key].value_type) == (value, str), key
        else:
            assert overrides[key] == value, key
    assert overrides['proposal.model_path'].value == '' and overrides['use_sim_time'] is True
    assert launch._rviz(context) == []  # use_rviz false: no RViz
    assert launch._navigator(context) == []  # navigate false: no navigator


def test_with_navigate_the_launch_file_starts_the_navigator(monkeypatch):
    launch = _load_launch_with_stand_ins(monkeypatch)
    context = _context(target_frame='/odom', navigate='true', camera_info='/front/camera_info')
    (nav,) = launch._navigator(context)
    assert nav.kw['executable'] == 'stance_navigator' and nav.kw['name'] == 'stance_navigator'
    (params,) = nav.kw['parameters']

    def typed(text):
        return launch.ParameterValue(text, value_type=str)
    assert params == {'config_file': typed('/c.yaml'), 'target_frame': typed('odom'),
                      'use_sim_time': False, 'camera_info_topic': typed('/front/camera_info')}
    (server,) = launch._stance_server(context)
    assert server.kw['parameters'][1]['camera_info_topic'] == typed('/front/camera_info')
    with pytest.raises(ValueError, match='navigate'):
        launch._navigator(dict(context, navigate='maybe'))


def test_with_use_rviz_the_launch_file_starts_rviz_on_the_target_frame(monkeypatch):
    launch = _load_launch_with_stand_ins(monkeypatch)
    context = _context(target_frame='odom', use_rviz='true')
    (rviz,) = launch._rviz(context)
    assert rviz.kw['package'] == 'rviz2' and rviz.kw['executable'] == 'rviz2'
    assert rviz.kw['arguments'] == ['-d', '<share reachability_ros>/config/lekiwi.rviz',
                                    '-f', 'odom']
    assert rviz.kw['parameters'] == [{'use_sim_time': False}]


# ------------------------------------------------------------------ the file, with ROS
@pytest.mark.skipif(not have('launch', 'launch_ros'),
                    reason='launch and launch_ros are not installed (ROS 2 only)')
def test_the_launch_file_with_the_real_launch_packages():
    import launch
    from launch.actions import OpaqueFunction
    import launch_ros.actions
    spec = importlib.util.spec_from_file_location('lekiwi_launch_real', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ld = module.generate_launch_description()
    args = {a.name: a for a in ld.get_launch_arguments()}
    assert tuple(args) == module.ARGUMENTS
    assert args['sampler'].choices == ['', *la.SAMPLERS]

    def context(**values):
        ctx = launch.LaunchContext()
        ctx.launch_configurations.update({'config': '/c.yaml', **values})
        for arg in args.values():
            arg.execute(ctx)  # fills the defaults, checks the choices
        return ctx
    ctx = context(sampler='grid', model='none', use_sim_time='true')
    assert ctx.launch_configurations['use_rviz'] == 'false'
    actions = [a for e in ld.entities if isinstance(e, OpaqueFunction)
               for a in (e.execute(ctx) or [])]
    assert len(actions) == 1 and isinstance(actions[0], launch_ros.actions.Node)
    with pytest.raises(RuntimeError, match='sampler'):
        context(sampler='gird')
    with pytest.raises(RuntimeError, match='use_sim_time'):
        context(use_sim_time='maybe')


# ------------------------------------------------------------------ RViz config
def test_the_rviz_config_shows_the_latched_markers_and_the_robot():
    rviz = yaml.safe_load((REPO / 'config' / 'lekiwi.rviz').read_text())
    displays = rviz['Visualization Manager']['Displays']
    arrays = [d for d in displays if d['Class'] == 'rviz_default_plugins/MarkerArray']
    assert len(arrays) == 1
    topic = arrays[0]['Topic']
    assert topic['Value'] == '/propose_stance/markers'
    assert topic['Durability Policy'] == 'Transient Local'
    assert topic['Reliability Policy'] == 'Reliable'
    assert rviz['Visualization Manager']['Global Options']['Fixed Frame'] == 'map'
    namespaces = arrays[0]['Namespaces']
    for outcome in mk.OUTCOME_COLOURS:
        assert namespaces[f'samples/{outcome}'] is True
    for ns in ('robot', 'stances', 'stance_labels', 'grasp', 'frustum'):
        assert namespaces[ns] is True


# ------------------------------------------------------------------ installed files
SETUP_QUERY = r"""
import json, setuptools
from distutils.core import run_setup
dist = run_setup('setup.py', stop_after='init')
print(json.dumps({'data_files': dist.data_files, 'entry_points': dist.entry_points,
                  'package_data': dist.package_data}))
"""


@pytest.fixture(scope='module')
def setup_dist():
    out = subprocess.run([sys.executable, '-c', SETUP_QUERY], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_setup_installs_the_launch_config_rviz_and_ament_files(setup_dist):
    installed = {}
    for folder, files in setup_dist['data_files']:
        for f in files:
            assert (REPO / f).is_file(), f
            installed[f'{folder}/{Path(f).name}'] = f
    share = 'share/reachability_ros'
    for dst, src in {f'{share}/launch/lekiwi.launch.py': 'launch/lekiwi.launch.py',
                     f'{share}/config/lekiwi.rviz': 'config/lekiwi.rviz',
                     f'{share}/config/lekiwi.yaml': 'config/lekiwi.yaml',
                     f'{share}/config/train_tiny.yaml': 'config/train_tiny.yaml',
                     f'{share}/package.xml': 'package.xml',
                     'share/ament_index/resource_index/packages/reachability_ros':
                         'resource/reachability_ros'}.items():
        assert installed.get(dst) == src, dst


def test_the_console_scripts_point_at_main_functions(setup_dist):
    scripts = dict(line.replace(' ', '').split('=')
                   for line in setup_dist['entry_points']['console_scripts'])
    assert scripts['stance_server'] == 'reachability_ros.ros.entry:stance_server'
    assert scripts['trainer'] == 'reachability_ros.ros.entry:trainer'
    for target in scripts.values():
        module, func = target.split(':')
        spec = importlib.util.find_spec(module)  # imports the parents only: no rclpy
        assert spec is not None and spec.origin, module
        tree = ast.parse(Path(spec.origin).read_text())
        mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == func]
        assert mains and len(mains[0].args.args) <= 1, target  # main() or main(args=None)
