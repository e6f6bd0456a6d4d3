"""evaluation/ imports without torch or ROS; the runtime core never imports evaluation/ or
training/; training's config and data modules need no torch either."""

import subprocess
import sys

GUARD = r"""
import builtins, importlib, pkgutil, sys
real_import = builtins.__import__
BLOCKED = ("rclpy", "torch", "launch", "launch_ros", "tf2_ros", "tf_transformations",
           "geometry_msgs", "nav_msgs", "matplotlib", "tqdm")
def guarded(name, *args, **kwargs):
    if name.split(".")[0] in BLOCKED:
        raise ImportError("blocked in this test: " + name)
    return real_import(name, *args, **kwargs)
builtins.__import__ = guarded
"""

EVALUATION = GUARD + r"""
import reachability_ros.evaluation as ev
mods = [m.name for m in pkgutil.iter_modules(ev.__path__)]
for m in mods:
    importlib.import_module("reachability_ros.evaluation." + m)
for m in ("config", "data", "dataset", "target"):
    importlib.import_module("reachability_ros.training." + m)
leaked = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
assert not leaked, leaked
print("imported", len(mods), "evaluation modules")
"""

RUNTIME = r"""
import importlib, pkgutil, sys
import reachability_ros.core as core
for m in pkgutil.iter_modules(core.__path__):
    importlib.import_module("reachability_ros.core." + m.name)
from reachability_ros.core.pipeline import StanceProposer
StanceProposer()
bad = [m for m in sys.modules if m.startswith(("reachability_ros.evaluation",
                                               "reachability_ros.training"))]
assert not bad, bad
print("runtime clean")
"""


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_evaluation_imports_without_torch_or_ros():
    out = _run(EVALUATION)
    assert out.returncode == 0, out.stderr
    assert "evaluation modules" in out.stdout


def test_runtime_never_imports_evaluation_or_training():
    out = _run(RUNTIME)
    assert out.returncode == 0, out.stderr
    assert "runtime clean" in out.stdout
