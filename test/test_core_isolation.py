"""The core imports with rclpy and torch blocked (it must never need them), and imports only
what it is allowed to."""

import ast
from pathlib import Path
import subprocess
import sys

CORE = Path(__file__).resolve().parents[1] / "reachability_ros" / "core"
#: The third-party modules the runtime core may import (coal: Pinocchio's collision library).
ALLOWED = {"numpy", "scipy", "pinocchio", "onnxruntime", "coal", "hppfcl"}

CODE = r"""
import builtins, sys
real_import = builtins.__import__
BLOCKED = ("rclpy", "torch", "launch", "launch_ros", "tf2_ros", "tf_transformations", "yaml",
           "geometry_msgs", "nav_msgs", "matplotlib", "PIL")
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


def test_the_core_imports_only_the_allowed_modules():
    found = {}
    for path in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, []).append(path.name)
    assert set(found) <= ALLOWED, {k: v for k, v in found.items() if k not in ALLOWED}
    assert found["scipy"] == ["world.py"]  # the grid's distance transform, once per map
