"""The built package: what pip and colcon install (data files, entry points, dependencies).

Builds the wheel of a copy of this tree (setuptools, no network) and checks the artifact
itself rather than the text of setup.py.
"""

import ast
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARE = "reachability_ros-0.1.0.data/data/share/reachability_ros/"
ENTRY_POINTS = {"stance_server": "reachability_ros.ros.entry:stance_server",
                "stance_navigator": "reachability_ros.ros.entry:stance_navigator",
                "trainer": "reachability_ros.ros.entry:trainer",
                "reachability-ros": "reachability_ros.cli:main"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    if any(importlib.util.find_spec(m) is None for m in ("setuptools", "wheel", "pip")):
        pytest.skip("building a wheel needs pip, setuptools and wheel")
    src = tmp_path_factory.mktemp("src") / "reachability_ros"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "*.egg-info", "runs", "__pycache__", ".pytest_cache",
        ".hypothesis", "stances.png"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(src)], check=True, capture_output=True,
                   timeout=300)
    (path,) = out.glob("reachability_ros-*.whl")
    with zipfile.ZipFile(path) as z:
        yield {name: z.read(name) for name in z.namelist()}


def test_launch_config_models_and_description_are_installed_in_the_share(wheel):
    for folder in ("launch", "config", "models", "reachability_ros/description"):
        files = [p for p in (REPO / folder).rglob("*") if p.is_file()
                 and "__pycache__" not in p.parts]
        assert files
        for p in files:
            rel = p.relative_to(REPO / folder).as_posix()
            dest = "description/" + rel if folder.endswith("description") else f"{folder}/{rel}"
            assert wheel.get(SHARE + dest) == p.read_bytes(), dest
    assert SHARE + "package.xml" in wheel
    assert ("reachability_ros-0.1.0.data/data/share/ament_index/resource_index/packages/"
            "reachability_ros") in wheel


def test_entry_points_name_existing_main_functions(wheel):
    text = wheel["reachability_ros-0.1.0.dist-info/entry_points.txt"].decode()
    lines = dict(line.split(" = ") for line in text.splitlines() if " = " in line)
    assert lines == ENTRY_POINTS
    for target in ENTRY_POINTS.values():
        module, func = target.split(":")
        tree = ast.parse(wheel[module.replace(".", "/") + ".py"])
        assert func in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, target


def test_a_plain_install_needs_no_torch(wheel):
    meta = wheel["reachability_ros-0.1.0.dist-info/METADATA"].decode().splitlines()
    core = [line.split(": ", 1)[1] for line in meta
            if line.startswith("Requires-Dist: ") and "extra ==" not in line]
    names = {r.split(";")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
             for r in core}
    assert names == {"setuptools", "numpy", "scipy", "pin", "onnxruntime", "pyyaml", "pillow",
                     "matplotlib"}
    assert any(line.startswith("Requires-Dist: torch==2.13.0; extra == \"test\"")
               for line in meta)
