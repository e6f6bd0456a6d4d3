"""Shared fixtures: the LeKiwi model is built once per session."""

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE_URDF = SHARED / "robots" / "lekiwi" / "lekiwi_so101.urdf"


@pytest.fixture(scope="session")
def robot():
    from reachability_ros.core.robot import WholeBodyModel
    return WholeBodyModel()


@pytest.fixture(scope="session")
def visibility(robot):
    from reachability_ros.core.visibility import Visibility
    return Visibility(robot)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
