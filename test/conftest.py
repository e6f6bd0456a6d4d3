"""Shared fixtures: the LeKiwi model is built once per session."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE_URDF = SHARED / "robots" / "lekiwi" / "lekiwi_so101.urdf"

# Test files that need optional modules are not collected without them. A
# module-level pytest.importorskip is not enough: launch_testing's pytest
# plugin imports every test module during collection and lets the Skipped
# escape, which skips the whole directory (seen with pytest 7.4 and 9). The ROS
# test files are not listed: they import without ROS and each of their tests
# skips with the reason (pytest -rs lists them).
OPTIONAL = {
    "test_export.py": ("torch", "onnx"),
    "test_training.py": ("torch", "onnx"),
    "test_training_cli.py": ("torch", "onnx"),
    "test_model_contract.py": ("torch", "onnx"),
    "test_onnx_sampler.py": ("onnx",),
}


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


collect_ignore = [f for f, mods in OPTIONAL.items() if any(_missing(m) for m in mods)]


@pytest.fixture(scope="session")
def robot():
    from reachability_ros.core.robot import WholeBodyModel
    return WholeBodyModel()


@pytest.fixture(scope="session")
def visibility(robot):
    from reachability_ros.core.visibility import Visibility
    return Visibility(robot)


@pytest.fixture(scope="session")
def manifold(robot):
    from reachability_ros.core.manifold import StanceManifold
    return StanceManifold(robot)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work on one thread (``pytestmark = usefixtures(...)``): on a
    shared 2-core machine torch's own thread pool is many times slower under load."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def reference_robot():
    """The reference LeKiwi + SO-101 description (meshes), built once; skipped without it."""
    if not REFERENCE_URDF.exists():
        pytest.skip("../shared reference LeKiwi absent")
    from reachability_ros.core.config import RobotConfig
    from reachability_ros.core.robot import WholeBodyModel
    return WholeBodyModel(RobotConfig(urdf=str(REFERENCE_URDF)))
