"""Whole-body model: vectorized FK/Jacobian against Pinocchio, and against the reference URDF."""

import numpy as np
import pytest

from reachability_ros.core.config import ARM_JOINTS
from reachability_ros.core.errors import UnknownFrame
from reachability_ros.core.geometry import pose_error

FRAMES = ("gripper_frame_link", "front_camera_optical_frame", "wrist_camera_optical_frame")


def test_model_structure(robot):
    assert robot.nq == 8
    assert robot.joint_names == ("base_x", "base_y", "base_yaw") + ARM_JOINTS
    assert np.all(np.isinf(robot.lower[:3])) and np.all(np.isfinite(robot.lower[3:]))
    # same limits as the SO-101
    np.testing.assert_allclose(robot.upper[3:], [1.91986, 1.74533, 1.69, 1.65806, 2.84121])
    np.testing.assert_allclose(robot.lower[3:], [-1.91986, -1.74533, -1.69, -1.65806, -2.74385])
    assert len(robot.urdf_sha256) == 64


def test_vectorized_fk_matches_pinocchio(robot, rng):
    q = robot.random_configurations(500, rng, base_extent_m=1e4)
    fk = robot.fk(q, FRAMES)
    for f in FRAMES:
        ref = robot.fk_pinocchio(q, f)
        assert np.abs(fk[f] - ref).max() < 1e-9, f


def test_vectorized_jacobian_matches_pinocchio(robot, rng):
    q = robot.random_configurations(300, rng)
    ref = robot.jacobian_pinocchio(q)
    assert np.abs(robot.jacobian(q) - ref).max() < 1e-9
    # the per-joint loop (descriptions whose axes are not coordinate axes) agrees too
    j_tool = robot.frame_placement(robot.config.tool_frame)[0]
    X = robot.chain.poses(*robot.chain.sincos(q), q=q)
    p = robot.fk(q, [robot.config.tool_frame])[robot.config.tool_frame][:, :3, 3].T
    J = np.zeros((6, robot.nq - 3, len(q)))
    robot.chain.jacobian_columns(X, p, j_tool, J, vectorized=False)
    assert np.abs(J.transpose(2, 0, 1) - ref[:, :, 3:]).max() < 1e-9


def test_jacobian_rank_six(robot, rng):
    q = robot.random_configurations(200, rng)
    J = robot.jacobian(q)
    assert np.all(np.linalg.matrix_rank(J, tol=1e-8) == 6)
    # the 6x6 block without pan and shoulder-lift is also full rank: a 2-D manifold
    block = J[:, :, [0, 1, 2, 5, 6, 7]]
    assert np.all(np.linalg.matrix_rank(block, tol=1e-8) == 6)


def test_limits_and_margin(robot):
    q = np.zeros((3, robot.nq))
    q[1, 3] = robot.upper[3]
    q[2, 3] = robot.upper[3] + 0.1
    assert robot.within_limits(q).tolist() == [True, True, False]
    m = robot.limit_margin(q)
    assert m[1] == pytest.approx(0.0) and m[2] < 0 < m[0]


def test_unknown_frame_is_a_clear_error(robot):
    with pytest.raises(UnknownFrame, match="no_such_frame"):
        robot.frame_id("no_such_frame")


def test_matches_reference_description(robot, reference_robot):
    """Tool and both cameras within 4 um and 0.001 deg of the reference (the README's claim).

    Measured over 10,000 configurations: 3.94 um / 0.00093 deg at the tool, 3.5 um /
    0.00078 deg at the wrist camera (the reference's rounded ``1.5708``-style angles),
    1.3e-11 m at the front camera.
    """
    q = robot.random_configurations(10_000, np.random.default_rng(7), base_extent_m=5.0)
    ours, theirs = robot.fk(q, FRAMES), reference_robot.fk(q, FRAMES)
    for f in FRAMES:
        dp, dr = pose_error(ours[f], theirs[f])
        assert dp.max() < 4e-6, (f, dp.max())
        assert np.degrees(dr.max()) < 1e-3, (f, np.degrees(dr.max()))
    # the base-fixed front camera agrees to rounding
    dp, dr = pose_error(ours[FRAMES[1]], theirs[FRAMES[1]])
    assert dp.max() < 1e-9 and dr.max() < 1e-8


def test_frame_in_chain_matches_fk_in_the_base_frame(robot, rng):
    q = robot.random_configurations(50, rng)
    q0 = q.copy()
    q0[:, :3] = 0.0
    chain = robot.base_chain(q)
    for name in (robot.config.tool_frame, robot.config.camera.frame, "universe"):
        p, R = robot.frame_in_chain(chain, name)
        ref = robot.fk_pinocchio(q0, name)
        assert np.abs(p.T - ref[:, :3, 3]).max() < 1e-12, name
        assert np.abs(R.transpose(2, 0, 1) - ref[:, :3, :3]).max() < 1e-12, name
