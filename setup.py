"""reachability_ros: an ament_python package that also installs with plain pip."""

from glob import glob
import os

from setuptools import find_packages, setup

package_name = "reachability_ros"


def tree(src: str, dst_root: str):
    """data_files entries for every file under ``src``, keeping sub-folders."""
    out = {}
    for path in glob(os.path.join(src, "**", "*"), recursive=True):
        if os.path.isfile(path):
            rel = os.path.relpath(os.path.dirname(path), src)
            out.setdefault(os.path.normpath(os.path.join(dst_root, rel)), []).append(path)
    return sorted(out.items())


share = os.path.join("share", package_name)
setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    package_data={package_name: ["description/*.urdf", "py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        (share, ["package.xml", "README.md"]),
        *tree("launch", os.path.join(share, "launch")),
        *tree("config", os.path.join(share, "config")),
        *tree("models", os.path.join(share, "models")),
        *tree(os.path.join(package_name, "description"), os.path.join(share, "description")),
    ],
    python_requires=">=3.10",
    # Bounds are what the tests cover (test/README: "Tested versions"): the newest set in
    # .venv (bash scripts/test.sh) and the oldest set with numpy 1.x, as on a ROS 2 robot
    # (bash scripts/test_oldest.sh, run by CI). On the robot, colcon and rosdep provide
    # numpy and Pinocchio from the distribution; these pip bounds do not apply there.
    install_requires=[
        "setuptools",
        "numpy>=1.26,<3",
        "scipy>=1.11,<2",
        "pillow>=10.2,<14",
        "pin>=3.3,<5",
        "onnxruntime>=1.20,<2",
        "pyyaml>=6.0,<7",
        "matplotlib>=3.6,<4",
    ],
    extras_require={
        "train": ["torch==2.13.0", "onnx", "tqdm"],
        "test": ["torch==2.13.0", "onnx", "tqdm", "pytest<9", "hypothesis"],
    },
    zip_safe=True,
    maintainer="reachability_ros developers",
    maintainer_email="dev@reachability-ros.invalid",
    description="Ranked whole-body stances for a mobile manipulator to grasp a pose.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "stance_server = reachability_ros.ros.entry:stance_server",
            "stance_navigator = reachability_ros.ros.entry:stance_navigator",
            "trainer = reachability_ros.ros.entry:trainer",
            "reachability-ros = reachability_ros.cli:main",
        ],
    },
)
