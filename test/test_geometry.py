"""The one rotation/pose module: round trips, near-pi logarithms, batch shapes, and
agreement with Pinocchio's own SO(3) functions."""

import math

import numpy as np
import pinocchio as pin
import pytest
from hypothesis import given, settings, strategies as st

from reachability_ros.core.geometry import (
    compose_planar, grasp_in_base_frames, log_so3, make_transform, matrix_to_quat,
    planar_transform, points_in_base_frames, pose_error, quat_to_matrix, rotation_angle,
    rpy_to_matrix, wrap_angle)

finite = dict(allow_nan=False, allow_infinity=False)
unit_quats = st.lists(st.floats(-1.0, 1.0, **finite), min_size=4, max_size=4).filter(
    lambda v: np.linalg.norm(v) > 1e-3)


def pin_matrix(q_xyzw):
    x, y, z, w = np.asarray(q_xyzw, dtype=float) / np.linalg.norm(q_xyzw)
    return pin.Quaternion(w, x, y, z).matrix()


def random_rotations(rng, n):
    return quat_to_matrix(rng.normal(size=(n, 4)))


def rotation_about(axis, angle):
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    return pin.exp3(axis * angle)


# ------------------------------------------------------------ quaternions
@settings(max_examples=150, deadline=None)
@given(q=unit_quats)
def test_quaternion_to_matrix_matches_pinocchio(q):
    R = quat_to_matrix(np.array(q))
    np.testing.assert_allclose(R, pin_matrix(q), atol=1e-14)
    # the plain-float path (one quaternion) and the batch path agree
    np.testing.assert_allclose(R, quat_to_matrix(np.array([q]))[0], rtol=0, atol=4e-15)


@settings(max_examples=150, deadline=None)
@given(q=unit_quats)
def test_matrix_to_quaternion_round_trip(q):
    R = pin_matrix(q)
    back = matrix_to_quat(R)
    assert back[3] >= 0.0 and abs(np.linalg.norm(back) - 1.0) < 1e-15
    np.testing.assert_allclose(quat_to_matrix(back), R, atol=1e-14)
    c = pin.Quaternion(R).coeffs()  # (x, y, z, w)
    np.testing.assert_allclose(back, c * np.sign(c[3] if c[3] != 0 else 1.0), atol=1e-14)


def test_zero_quaternion_gives_nan():
    assert np.isnan(quat_to_matrix(np.zeros(4))).all()
    assert np.isnan(quat_to_matrix(np.zeros((2, 4)))).all()


def test_batch_shapes():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, 3, 4))
    R = quat_to_matrix(q)
    assert R.shape == (2, 3, 3, 3)
    assert matrix_to_quat(R).shape == (2, 3, 4)
    assert log_so3(R).shape == (2, 3, 3)
    assert rotation_angle(R).shape == (2, 3)
    assert rpy_to_matrix(np.zeros((2, 3)), 0.1, np.ones(3)).shape == (2, 3, 3, 3)
    assert make_transform(R, np.zeros(3)).shape == (2, 3, 4, 4)
    assert planar_transform(np.zeros(5), 1.0, 2.0).shape == (5, 4, 4)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(log_so3(R[i, j]), pin.log3(R[i, j]), atol=1e-12)


# ---------------------------------------------------------------- rpy
@settings(max_examples=100, deadline=None)
@given(r=st.floats(-4, 4, **finite), p=st.floats(-4, 4, **finite), y=st.floats(-4, 4, **finite))
def test_rpy_is_z_then_y_then_x(r, p, y):
    Rx = rotation_about([1, 0, 0], r)
    Ry = rotation_about([0, 1, 0], p)
    Rz = rotation_about([0, 0, 1], y)
    np.testing.assert_allclose(rpy_to_matrix(r, p, y), Rz @ Ry @ Rx, atol=1e-14)


# ------------------------------------------------------------ logarithm
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), angle=st.one_of(
    st.floats(0.0, math.pi, **finite),
    st.floats(0.0, 1e-6, **finite),                       # tiny
    st.floats(math.pi - 1e-3, math.pi, **finite),         # near a half turn
    st.sampled_from([0.0, math.pi, math.pi - 1e-12, 1e-300])))
def test_log_matches_pinocchio_and_inverts_exp(seed, angle):
    axis = np.random.default_rng(seed).normal(size=3)
    R = rotation_about(axis, angle)
    v = log_so3(R)
    assert np.linalg.norm(v) <= math.pi + 1e-12
    np.testing.assert_allclose(pin.exp3(v), R, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(v), rotation_angle(R), atol=1e-12)
    ref = pin.log3(R)
    if angle < math.pi - 1e-6:  # at a half turn v and -v are the same rotation
        np.testing.assert_allclose(v, ref, atol=1e-12)
    else:
        assert min(np.abs(v - ref).max(), np.abs(v + ref).max()) < 1e-6


def test_log_near_pi_is_accurate():
    """Half turns and near-half turns: the axis comes out exact, not only the angle."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        eps = 10.0 ** rng.uniform(-12, -2)
        R = rotation_about(axis, math.pi - eps)
        v = log_so3(R[None])[0]
        np.testing.assert_allclose(v, (math.pi - eps) * axis, atol=1e-9)


def test_pose_error_of_known_offsets():
    T = make_transform(rotation_about([0, 0, 1], 0.3)[None], np.array([[1.0, 2.0, 3.0]]))
    U = T.copy()
    U[0, :3, 3] += [0.3, 0.4, 0.0]
    U[0, :3, :3] = U[0, :3, :3] @ rotation_about([1, 0, 0], 0.25)
    dp, dr = pose_error(T, U)
    assert dp[0] == pytest.approx(0.5) and dr[0] == pytest.approx(0.25)


# ------------------------------------------------------------------ SE(2)
@settings(max_examples=150, deadline=None)
@given(a=st.floats(-1e4, 1e4, **finite))
def test_wrap_angle(a):
    w = float(wrap_angle(a))
    assert -math.pi <= w < math.pi
    k = (a - w) / (2 * math.pi)
    assert abs(k - round(k)) < 1e-9
    assert float(wrap_angle(w)) == w  # in range: unchanged, bit for bit


def test_wrap_angle_keeps_in_range_angles_exact():
    a = np.array([-math.pi, -1.0, -1e-300, 0.0, 1e-20, 3.0, math.pi - 1e-15])
    assert np.array_equal(wrap_angle(a), a)
    assert wrap_angle(math.pi) == -math.pi


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), far=st.sampled_from([0.0, 1e4]))
def test_planar_helpers_agree_with_transforms(seed, far):
    rng = np.random.default_rng(seed)
    q = np.c_[rng.uniform(-1, 1, (6, 2)) + far, rng.uniform(-4, 4, 6), rng.normal(size=(6, 5))]
    T_wb = planar_transform(q[:, 0], q[:, 1], q[:, 2])
    T_bw = np.linalg.inv(T_wb)
    # a grasp and points seen from each base
    T_g = make_transform(random_rotations(rng, 1)[0], rng.uniform(-1, 1, 3) + [far, far, 0])
    p, R = grasp_in_base_frames(T_g, q)
    ref = T_bw @ T_g
    np.testing.assert_allclose(p.T, ref[:, :3, 3], atol=1e-9 * max(1.0, far))
    np.testing.assert_allclose(R.transpose(2, 0, 1), ref[:, :3, :3], atol=1e-12)
    pts = rng.uniform(-1, 1, (6, 3)) + [far, far, 0]
    np.testing.assert_allclose(points_in_base_frames(pts, q).T,
                               np.einsum("nij,nj->ni", T_bw[:, :3, :3], pts) + T_bw[:, :3, 3],
                               atol=1e-9 * max(1.0, far))
    # offsets in the base frame compose on the right
    delta = np.c_[rng.normal(size=(4, 2)), rng.normal(size=4)]
    moved = compose_planar(q, delta)
    assert moved.shape == (6, 4, q.shape[1])
    for i in range(6):
        for s in range(4):
            want = T_wb[i] @ planar_transform(*delta[s])
            got = planar_transform(*moved[i, s, :3])
            np.testing.assert_allclose(got, want, atol=1e-9 * max(1.0, far))
            assert np.array_equal(moved[i, s, 3:], q[i, 3:])
