"""The core imports with rclpy and torch blocked (it must never need them)."""

import subprocess
import sys

CODE = r"""
import builtins, sys
real_import = builtins.__import__
BLOCKED = ("rclpy", "torch", "launch", "launch_ros", "tf2_ros", "tf_transformations", "yaml",
           "geometry_msgs", "nav_msgs", "matplotlib")
def guarded(name, *args, **kwargs):
    if name.split(".")[0] in BLOCKED:
        raise ImportError("blocked in this test: " + name)
    return real_import(name, *args, **kwargs)
builtins.__import__ = guarded
import importlib, pkgutil
import reachability_ros.core as core
mods = [m.name for m in pkgutil.iter_modules(core.__path__)]
for m in mods:
    importlib.import_module("reachability_ros.core." + m)
leaked = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
assert not leaked, leaked
print("imported", len(mods), "core modules")
"""


def test_core_imports_without_ros_and_torch():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "imported" in out.stdout
