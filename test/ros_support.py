"""Helpers of the ROS tests: which ROS modules are importable, the skip that says why, and
what several ROS test files do the same way (nothing here imports ROS at import time).

- :func:`have`, :func:`requires_ros`, :func:`missing_ros_test`: skips with the reason;
- :func:`ros_stand_ins`: the node modules imported without ROS (their glue, tested here);
- :func:`rclpy_context`, :func:`spinning`, :func:`spun_node`, :func:`stance_server`,
  :func:`wait_future`: in-process nodes;
- :func:`start_node_process`, :class:`Lines`, :func:`interrupt`,
  :func:`kill_if_running`, :func:`assert_exited_within`: nodes as processes;
- :func:`package_share`, :func:`lekiwi_launch_description`, :class:`RclpyContext`: the
  launch tests.
"""

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
from pathlib import Path
import subprocess
import sys
import threading
import time
import types

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = 'reachability_ros'
#: Every node exits this soon after SIGINT or SIGTERM (s).
EXIT_WITHIN_S = 1.0
NOT_BUILT = ('reachability_ros is not built: colcon build --packages-select reachability_ros '
             '&& source install/setup.bash')


def have(*modules: str) -> bool:
    """Tell whether every module can be imported (without importing it)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except (ImportError, ValueError):
        return False


def requires_ros(*modules: str):
    """A skip marker for tests that need these ROS modules, with the reason."""
    return pytest.mark.skipif(
        not have(*modules),
        reason='ROS 2 is not installed (needs ' + ', '.join(modules) + '): '
               'source /opt/ros/jazzy/setup.bash')


def missing_ros_test(needed, also: str = 'build the package'):
    """Return the one test a launch test file has without ROS: skipped, with the reason."""
    @pytest.mark.skip(reason='needs ROS 2 (' + ', '.join(needed) + '): source '
                             f'/opt/ros/jazzy/setup.bash and {also}')
    def test_needs_ros():
        """Run only where ROS 2 is installed."""
    return test_needs_ros


# ------------------------------------------------------------------ stand-ins for ROS
#: The ROS packages the nodes import (top-level module names).
ROS_PACKAGES = ('rclpy', 'launch', 'launch_ros', 'launch_testing', 'tf2_ros',
                'tf2_geometry_msgs', 'tf_transformations', 'geometry_msgs', 'nav_msgs',
                'std_msgs', 'visualization_msgs', 'trajectory_msgs', 'rcl_interfaces',
                'builtin_interfaces', 'nav2_msgs', 'sensor_msgs', 'action_msgs',
                'ament_index_python')


class _StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Modules of the ROS packages whose every name is a stand-in: a class when capitalized
    (so that nodes can subclass ``Node``), else a ``MagicMock``."""

    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ROS_PACKAGES:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        from unittest import mock
        module = types.ModuleType(spec.name)
        module.__path__ = []
        made = {}

        def stand_in(attr):
            if attr.startswith('__'):
                raise AttributeError(attr)
            if attr not in made:
                made[attr] = (type(attr, (), {'__init__': lambda self, *a, **k: None})
                              if attr[:1].isupper() else mock.MagicMock(name=attr))
            return made[attr]
        module.__getattr__ = stand_in
        return module

    def exec_module(self, module):
        pass


@contextlib.contextmanager
def ros_stand_ins():
    """Import the ROS layer's nodes without ROS, for the block (where ROS is absent).

    The stand-ins, and the modules of ``reachability_ros.ros`` first imported inside the
    block (bound to them), are forgotten after it, so that nothing else sees them.
    """
    before = set(sys.modules)
    finder = _StandIns()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in set(sys.modules) - before:
            if name.split('.')[0] in ROS_PACKAGES or name.startswith(PACKAGE + '.ros.'):
                module = sys.modules.pop(name)
                parent, _, leaf = name.rpartition('.')
                if getattr(sys.modules.get(parent), leaf, None) is module:
                    delattr(sys.modules[parent], leaf)


# ------------------------------------------------------------------ in-process nodes
@contextlib.contextmanager
def spinning(executor, period_s: float = 0.05):
    """Spin ``executor`` on a background thread while the ``with`` block runs."""
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            executor.spin_once(timeout_sec=period_s)
    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(5.0)


@contextlib.contextmanager
def rclpy_context():
    """rclpy initialized for the block (unless it already is), shut down after it."""
    import rclpy
    owns = not rclpy.ok()
    if owns:
        rclpy.init()
    try:
        yield
    finally:
        if owns:
            rclpy.try_shutdown()


@contextlib.contextmanager
def spun_node(name: str, make_executor=None):
    """A node spun on a background thread by ``make_executor()`` (default single-threaded).

    The executor is made once rclpy is initialized (it needs the context).
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    with rclpy_context():
        node = rclpy.create_node(name)
        executor = (make_executor or SingleThreadedExecutor)()
        executor.add_node(node)
        try:
            with spinning(executor):
                yield node
        finally:
            executor.shutdown(timeout_sec=1.0)
            node.destroy_node()


@contextlib.contextmanager
def stance_server(overrides: dict, client_name: str):
    """Yield a started ``StanceServer`` and a client node, spun as ``main()`` spins the server.

    Args:
        overrides: parameter name -> value, the server's ``parameter_overrides``.
        client_name: the client node's name.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from reachability_ros.ros.stance_node import StanceServer
    with rclpy_context():
        server = StanceServer(parameter_overrides=[Parameter(name, value=value)
                                                   for name, value in overrides.items()])
        server.start()
        node = rclpy.create_node(client_name)
        executor = SingleThreadedExecutor()
        executor.add_node(server)
        executor.add_node(node)
        try:
            with spinning(executor):
                yield server, node
        finally:
            executor.shutdown(timeout_sec=1.0)
            assert server.close(1.0)
            node.destroy_node()
            server.destroy_node()


def wait_future(future, timeout_s: float, period_s: float = 0.005):
    """Wait for a future that another thread's executor completes; its result or None."""
    deadline = time.monotonic() + timeout_s
    while not future.done() and time.monotonic() < deadline:
        time.sleep(period_s)
    return future.result() if future.done() else None


# ------------------------------------------------------------------ nodes as processes
def process_env() -> dict:
    """Return the environment of a node process: one math thread, unbuffered output."""
    return dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1',
                RCUTILS_LOGGING_BUFFERED_STREAM='0')


def start_node_process(code: str, ros_args, cwd=REPO) -> subprocess.Popen:
    """Start ``python -c code --ros-args ...``, its output (stdout and stderr) in a pipe."""
    return subprocess.Popen([sys.executable, '-c', code, '--ros-args', *ros_args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=process_env())


class Lines:
    """Read a process's output on a thread; wait for a line containing a word."""

    def __init__(self, proc):
        self.proc, self.lines, self._cond, self._eof = proc, [], threading.Condition(), False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(self, word, timeout_s=120.0, count=1):
        """Wait until ``count`` lines contain ``word``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while sum(word in ln for ln in self.lines) < count:
                if self._eof or time.monotonic() >= deadline:
                    raise AssertionError(f'no {word!r} line:\n' + ''.join(self.lines))
                self._cond.wait(0.2)

    @property
    def text(self):
        with self._cond:
            return ''.join(self.lines)


def interrupt(proc, lines, signum) -> float:
    """Send ``signum``; return the seconds until the process ended."""
    t0 = time.monotonic()
    proc.send_signal(signum)
    try:
        proc.wait(timeout=10.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError('still running 10 s after the signal:\n' + lines.text)
    return time.monotonic() - t0


def kill_if_running(proc) -> None:
    """Kill a node process a test leaves behind (after a failed check)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def assert_exited_within(proc, lines, elapsed_s: float, code: int,
                         within_s: float = EXIT_WITHIN_S) -> None:
    """Check that a node ended within ``within_s`` of a signal, with ``code``, no traceback."""
    assert elapsed_s < within_s, f'{elapsed_s:.2f} s\n' + lines.text
    assert proc.returncode == code, lines.text
    assert 'Traceback' not in lines.text


# ------------------------------------------------------------------ launch tests
def package_share(package: str = PACKAGE):
    """Return the package's installed share directory, or None when it is not built."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return get_package_share_directory(package)
    except Exception:  # PackageNotFoundError: not built / not sourced
        return None


def lekiwi_launch_description(arguments: dict):
    """Return a launch description: the package's ``lekiwi.launch.py``, then ReadyToTest."""
    import launch
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    import launch_testing.actions
    share = package_share()
    actions = []
    if share is not None:
        actions.append(IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'lekiwi.launch.py')),
            launch_arguments=arguments.items()))
    actions.append(launch_testing.actions.ReadyToTest())
    return launch.LaunchDescription(actions)


class RclpyContext:
    """A mixin of the launch tests' ``unittest.TestCase``: rclpy for the class, skip unbuilt."""

    @classmethod
    def setUpClass(cls):
        import rclpy
        cls.owns_context = not rclpy.ok()
        if cls.owns_context:
            rclpy.init()

    @classmethod
    def tearDownClass(cls):
        import rclpy
        if cls.owns_context:
            rclpy.try_shutdown()

    def skip_unless_built(self):
        """Skip the test when the package is not built (the launch had nothing to start)."""
        if package_share() is None:
            self.skipTest(NOT_BUILT)
