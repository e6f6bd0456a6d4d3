"""Canonical frame and features: invariance to planar motions, exact round trip."""

import numpy as np
from hypothesis import given, settings, strategies as st

from reachability_ros.core.canonical import (
    StanceCodec, canonical_frame, condition_features, canonical_yaw_conditioning)
from reachability_ros.core.geometry import make_transform, planar_transform, quat_to_matrix

REACH = 0.5
finite = dict(allow_nan=False, allow_infinity=False)


def random_grasps(rng, n, spread=1.0):
    q = rng.normal(size=(n, 4))
    return make_transform(quat_to_matrix(q), rng.uniform(-spread, spread, (n, 3)))


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tx=st.floats(-1e4, 1e4, **finite),
       ty=st.floats(-1e4, 1e4, **finite), th=st.floats(-np.pi, np.pi, **finite))
def test_features_invariant_under_planar_motion(robot, seed, tx, ty, th):
    rng = np.random.default_rng(seed)
    T = random_grasps(rng, 8)
    q = robot.random_configurations(8, rng)
    codec = StanceCodec(REACH, robot.lower[3:], robot.upper[3:])
    M = planar_transform(tx, ty, th)
    T2 = M @ T
    q2 = q.copy()
    c, s = np.cos(th), np.sin(th)
    q2[:, 0] = c * q[:, 0] - s * q[:, 1] + tx
    q2[:, 1] = s * q[:, 0] + c * q[:, 1] + ty
    q2[:, 2] = q[:, 2] + th
    ok = canonical_yaw_conditioning(T[:, :3, :3]) > 1e-6
    c1, c2 = condition_features(T, REACH), condition_features(T2, REACH)
    x1, x2 = codec.encode(q, T), codec.encode(q2, T2)
    np.testing.assert_allclose(c1[ok], c2[ok], atol=1e-9)
    np.testing.assert_allclose(x1[ok], x2[ok], atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), far=st.sampled_from([0.0, 1e4]))
def test_decode_encode_roundtrip(robot, seed, far):
    rng = np.random.default_rng(seed)
    T = random_grasps(rng, 16)
    T[:, :2, 3] += far
    q = robot.random_configurations(16, rng)
    q[:, :2] += T[:, :2, 3]
    codec = StanceCodec(REACH, robot.lower[3:], robot.upper[3:])
    back = codec.decode(codec.encode(q, T), T)
    np.testing.assert_allclose(back[:, :2], q[:, :2], atol=1e-9 * max(1.0, far))
    np.testing.assert_allclose(np.angle(np.exp(1j * (back[:, 2] - q[:, 2]))), 0, atol=1e-12)
    np.testing.assert_allclose(back[:, 3:], q[:, 3:], atol=1e-12)


def test_yaw_continuous_through_vertical_approach():
    """Tilting a top-down grasp a little moves the canonical yaw a little."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        jaw = rng.uniform(-np.pi, np.pi)
        # approach straight down (tool z = -world z), jaw axis (tool x) at angle `jaw`
        R0 = np.array([[np.cos(jaw), np.sin(jaw), 0], [np.sin(jaw), -np.cos(jaw), 0],
                       [0, 0, -1.0]])
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        yaws = []
        for eps in (0.0, 1e-6, 1e-3):
            K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
            R = (np.eye(3) + np.sin(eps) * K + (1 - np.cos(eps)) * K @ K) @ R0
            yaws.append(canonical_frame(make_transform(R[None], np.zeros((1, 3))))[1][0])
        d = np.abs(np.angle(np.exp(1j * (np.array(yaws[1:]) - yaws[0]))))
        assert d[0] < 1e-4 and d[1] < 0.05, d
