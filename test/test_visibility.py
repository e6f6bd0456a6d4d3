"""Visibility: frustum margins against closed forms, self-occlusion against brute force."""

from pathlib import Path

import numpy as np
import pytest

from reachability_ros.core.errors import InvalidRequest
from reachability_ros.core.geometry import planar_transform
from reachability_ros.core.clearance import segment_segment_distance
from reachability_ros.core.visibility import Visibility


def camera_point(vis, p_cam):
    """Base-frame point ``(3,)`` of a point given in the camera optical frame."""
    return vis.T_base_cam[:3, :3] @ np.asarray(p_cam, dtype=float) + vis.T_base_cam[:3, 3]


def arm_config(robot, arm=(0.0, 0.0, 0.0, 0.0, 0.0), base=(0.0, 0.0, 0.0)):
    q = np.zeros((1, robot.nq))
    q[0, :3], q[0, 3:] = base, arm
    return q


def check_one(vis, q, target_base, base=(0.0, 0.0, 0.0)):
    """Check a base-frame target for a configuration whose base sits at ``base``."""
    T = planar_transform(*base)
    tw = T[:3, :3] @ target_base + T[:3, 3]
    qq = q.copy()
    qq[:, :3] = base
    return vis.check(qq, tw)


def test_straight_ahead_is_in_frustum(robot, visibility):
    q = arm_config(robot)
    res = check_one(visibility, q, camera_point(visibility, [0.0, 0.0, 0.4]))
    assert res.in_frustum[0]
    assert res.range_margin_m[0] == pytest.approx(min(0.4 - 0.05, 1.5 - 0.4), abs=1e-12)
    # on the optical axis the margin is the smallest half angle (vertical, 55.4 deg FOV)
    assert res.angle_margin_rad[0] == pytest.approx(np.arctan(240.0 / 320.0 * np.tan(
        np.radians(35.0))), abs=1e-12)


def test_behind_the_camera_is_out(robot, visibility):
    q = arm_config(robot)
    res = check_one(visibility, q, camera_point(visibility, [0.0, 0.0, -0.4]))
    assert not res.in_frustum[0] and not res.visible[0]
    assert res.angle_margin_rad[0] < 0.0 and res.range_margin_m[0] < 0.0


@pytest.mark.parametrize("depth, expected", [(2.0, 1.5 - 2.0), (0.02, 0.02 - 0.05),
                                             (1.2, 0.3), (0.06, 0.01)])
def test_range_margin_sign(robot, visibility, depth, expected):
    q = arm_config(robot)
    res = check_one(visibility, q, camera_point(visibility, [0.0, 0.0, depth]))
    assert res.range_margin_m[0] == pytest.approx(expected, abs=1e-12)
    assert res.in_frustum[0] == (expected >= 0.0)
    assert res.angle_margin_rad[0] > 0.0


@pytest.mark.parametrize("base", [(0.0, 0.0, 0.0), (0.7, -1.3, 2.0), (1e4, -1e4, -2.5)])
def test_angle_margin_matches_the_analytic_value(robot, visibility, base):
    q = arm_config(robot)
    half_h = np.radians(35.0)
    half_v = np.arctan(240.0 / 320.0 * np.tan(half_h))
    for theta in np.radians([-40.0, -20.0, 0.0, 12.5, 20.0, 34.0]):
        # horizontal offset: x right in the optical frame
        p = 0.5 * np.array([np.sin(theta), 0.0, np.cos(theta)])
        res = check_one(visibility, q, camera_point(visibility, p), base)
        expected = min(half_h + theta, half_h - theta, half_v)
        assert res.angle_margin_rad[0] == pytest.approx(expected, abs=1e-9)
        assert res.in_frustum[0] == (expected >= 0.0)
    for phi in np.radians([-30.0, -10.0, 20.0, 27.0, 29.0]):
        # vertical offset: y down in the optical frame
        p = 0.5 * np.array([0.0, np.sin(phi), np.cos(phi)])
        res = check_one(visibility, q, camera_point(visibility, p), base)
        expected = min(half_v + phi, half_v - phi, half_h)
        assert res.angle_margin_rad[0] == pytest.approx(expected, abs=1e-9)


def _primitive_center(robot, q, name):
    """Base-frame centre ``(N, 3)`` of a primitive for configurations with base zero."""
    p = next(p for p in robot.primitives if p.name == name)
    q0 = np.array(q)
    q0[:, :3] = 0.0
    return (robot.joint_transforms(q0)[:, p.joint] @ p.T_joint_prim)[:, :3, 3], p


def _configs_seeing_through(robot, visibility, name, rng, n=4000):
    """Configurations (base zero) where the ray camera -> primitive centre is in view."""
    q = robot.random_configurations(n, rng)
    q[:, :3] = 0.0
    centre, prim = _primitive_center(robot, q, name)
    cam = visibility.p_base_cam
    target = cam + 1.5 * (centre - cam)
    res = visibility.check(q, target)
    keep = res.in_frustum & (res.angle_margin_rad > 0.05)
    return q[keep], target[keep], prim


def test_lower_arm_between_camera_and_target_occludes(robot, visibility):
    q, target, prim = _configs_seeing_through(robot, visibility, "lower_arm_link_0",
                                              np.random.default_rng(0))
    assert len(q) >= 5
    res = visibility.check(q, target)
    assert res.in_frustum.all()
    assert res.occluded.all() and not res.visible.any()
    # the segment crosses the capsule's axis: clearance = -radius (nothing is thicker)
    assert np.all(res.occlusion_margin_m <= -prim.radius + 1e-9)
    assert np.all(res.margin < 0.0)


def test_gripper_links_never_occlude(robot, visibility):
    q, target, prim = _configs_seeing_through(robot, visibility, "gripper_link_0",
                                              np.random.default_rng(1))
    assert prim.link in robot.config.occlusion_exclude_links
    everything = Visibility(robot, exclude_links=())
    blocked_by_gripper = everything.check(q, target).occluded
    assert blocked_by_gripper.all()  # the segment does cross the gripper
    # without the gripper: exactly what the brute force says about the other links
    brute = brute_force_margin(robot, visibility, q, target)
    res = visibility.check(q, target)
    clear = brute > 2e-3
    assert clear.sum() >= 5
    assert not res.occluded[clear].any() and res.visible[clear].all()


def test_margins_are_consistent_with_booleans(robot, visibility, rng):
    q = robot.random_configurations(3000, rng)
    res = visibility.check(q)
    ok = (res.angle_margin_rad >= 0) & (res.range_margin_m >= 0)
    assert np.array_equal(res.in_frustum, ok)
    assert np.array_equal(res.visible, ok & (res.occlusion_margin_m >= 0))
    assert np.array_equal(res.occluded, res.occlusion_margin_m < 0)
    assert 0 < res.in_frustum.sum() < len(q) and 0 < res.occluded.sum()
    # in view, the base deck 2 cm behind the lens bounds the clearance from above
    assert np.all(res.occlusion_margin_m[ok] <= 0.0200)
    # outside the frustum the occlusion is not evaluated: +inf, never "occluded"
    assert np.all(np.isinf(res.occlusion_margin_m[~ok]))
    every = visibility.check(q, occlusion_outside_frustum=True)
    assert np.all(np.isfinite(every.occlusion_margin_m))
    assert np.array_equal(every.visible, res.visible)
    np.testing.assert_array_equal(every.occlusion_margin_m[ok], res.occlusion_margin_m[ok])
    # the other entry points agree with check
    q0 = q.copy()
    q0[:, :3] = 0.0
    oMi = robot.joint_transforms(q0)
    via_oMi = visibility.check(q, oMi_base=oMi)
    np.testing.assert_allclose(via_oMi.occlusion_margin_m[ok], res.occlusion_margin_m[ok],
                               atol=1e-12)
    tool = visibility.tool_in_base(q)
    T_tool = robot.fk(q0, [robot.config.tool_frame])[robot.config.tool_frame]
    np.testing.assert_allclose(tool, T_tool[:, :3, 3], atol=1e-12)
    np.testing.assert_allclose(visibility.occlusion_margin(tool, oMi),
                               every.occlusion_margin_m, atol=1e-12)


def test_bad_shape_is_a_clear_error(visibility):
    with pytest.raises(InvalidRequest, match="shape"):
        visibility.check(np.zeros((4, 5)))


# ------------------------------------------------------------ brute force
def _signed_distance(points, prim, T_base_prim):
    """Signed distance of points ``(N, S, 3)`` to one primitive placed at ``(N, 4, 4)``."""
    R, o = T_base_prim[:, None, :3, :3], T_base_prim[:, None, :3, 3]
    local = np.einsum("nsji,nsj->nsi", np.broadcast_to(R, points.shape[:2] + (3, 3)),
                      points - o)
    if prim.kind == "sphere":
        return np.linalg.norm(local, axis=-1) - prim.radius
    dr = np.hypot(local[..., 0], local[..., 1]) - prim.radius
    dz = np.abs(local[..., 2]) - prim.half_length
    outside = np.hypot(np.maximum(dr, 0.0), np.maximum(dz, 0.0))
    return np.minimum(np.maximum(dr, dz), 0.0) + outside


def brute_force_margin(robot, visibility, q, target_base, samples=200):
    """Min signed distance over 200 points of each segment camera -> target, ``(N,)``.

    Independent of the fast path: only ``robot.primitives`` and
    ``robot.joint_transforms`` (base at zero) are used.
    """
    q0 = np.array(q)
    q0[:, :3] = 0.0
    oMi = robot.joint_transforms(q0)
    s = np.linspace(0.0, 1.0, samples)
    cam = visibility.p_base_cam
    pts = cam + s[None, :, None] * (target_base - cam)[:, None, :]
    skip = set(robot.config.occlusion_exclude_links)
    best = np.full(len(q), np.inf)
    for prim in robot.primitives:
        if prim.link in skip:
            continue
        sd = _signed_distance(pts, prim, oMi[:, prim.joint] @ prim.T_joint_prim)
        best = np.minimum(best, sd.min(axis=1))
    return best


def test_occlusion_agrees_with_brute_force(robot, visibility):
    rng = np.random.default_rng(2024)
    n = 300
    q = robot.random_configurations(n, rng)
    q[:, :3] = 0.0
    # targets: a third the tool itself, a third random points in front of the camera,
    # a third just beyond a random arm primitive (many of those are occluded)
    tool = visibility.tool_in_base(q)
    ahead = np.array([camera_point(visibility, p) for p in
                      np.c_[rng.uniform(-0.4, 0.4, (n, 2)), rng.uniform(0.1, 1.2, n)]])
    arm = [p.name for p in robot.primitives
           if p.joint >= 2 and p.link not in robot.config.occlusion_exclude_links]
    names = rng.choice(arm, size=n)
    behind = np.empty((n, 3))
    for name in set(names):
        sel = names == name
        centre, _ = _primitive_center(robot, q[sel], name)
        jitter = rng.normal(scale=0.02, size=centre.shape)
        cam = visibility.p_base_cam
        behind[sel] = cam + rng.uniform(1.1, 2.0, (sel.sum(), 1)) * (centre + jitter - cam)
    k = n // 3
    target = np.concatenate([tool[:k], ahead[k:2 * k], behind[2 * k:]])
    res = visibility.check(q, target + 0.0, occlusion_outside_frustum=True)  # base is zero
    fast = res.occlusion_margin_m
    brute = brute_force_margin(robot, visibility, q, target)
    # sampling can only overestimate the clearance; the fast path is exact or a lower bound
    assert np.all(fast <= brute + 1e-9)
    decided = (np.abs(brute) > 1e-3) & (np.abs(fast) > 1e-3)
    assert decided.mean() > 0.9
    np.testing.assert_array_equal((fast < 0)[decided], (brute < 0)[decided])
    assert (brute[decided] < 0).sum() >= 30 and (brute[decided] > 0).sum() >= 30
    # where it is exact (every capsule, and base cylinders crossed in their slab) it matches
    # the sampled value to the sampling resolution
    close = decided & (fast > 0)
    assert np.median(brute[close] - fast[close]) < 1e-3


def test_segment_segment_distance_closed_forms():
    p0 = np.zeros((3, 1))
    d1 = np.array([[1.0], [0.0], [0.0]])
    cases = [  # (a, d2, distance)
        ([0.5, 1.0, -1.0], [0.0, 0.0, 2.0], 1.0),   # crossing at right angles, 1 apart
        ([2.0, 0.0, 0.0], [1.0, 0.0, 0.0], 1.0),    # collinear, gap 1
        ([0.2, 0.3, 0.0], [0.5, 0.0, 0.0], 0.3),    # parallel, overlapping
        ([1.5, 0.0, 0.4], [0.0, 0.0, 0.0], np.hypot(0.5, 0.4)),  # a point past the end
        ([-1.0, -1.0, 0.0], [0.0, 2.0, 0.0], 1.0),  # before the start
    ]
    for a, d2, want in cases:
        got = segment_segment_distance(p0, d1, np.array(a)[:, None], np.array(d2)[:, None])
        assert got[0] == pytest.approx(want, abs=1e-12), (a, d2)


def test_other_joint_axes(tmp_path, rng):
    """The fast chain handles x, y and unaligned revolute axes like Pinocchio does."""
    from reachability_ros.core.config import RobotConfig
    from reachability_ros.core.robot import WholeBodyModel
    text = (Path(__file__).resolve().parents[1] / "reachability_ros" / "description"
            / "lekiwi.urdf").read_text()
    lines = text.splitlines()
    arm_axes = [i for i, line in enumerate(lines) if '<axis xyz="0 0 1"/>' in line]
    for i, axis in zip(arm_axes, ("1 0 0", "0 1 0", "0.6 0 0.8", "0 0 1", "0 -1 0")):
        lines[i] = lines[i].replace("0 0 1", axis)
    urdf = tmp_path / "axes.urdf"
    urdf.write_text("\n".join(lines))
    robot = WholeBodyModel(RobotConfig(urdf=str(urdf)))
    kinds = [robot.model.joints[j].shortname() for j in range(2, robot.model.njoints)]
    assert "JointModelRX" in kinds and "JointModelRY" in kinds
    assert "JointModelRevoluteUnaligned" in kinds
    q = robot.random_configurations(200, rng, base_extent_m=100.0)
    frames = ("gripper_frame_link", "front_camera_optical_frame")
    fk = robot.fk(q, frames)
    for f in frames:
        assert np.abs(fk[f] - robot.fk_pinocchio(q, f)).max() < 1e-9
    oMi = robot.joint_transforms(q)
    for j in range(2, robot.model.njoints):
        ref = robot.fk_pinocchio(q, robot.model.names[j])
        assert np.abs(oMi[:, j] - ref).max() < 1e-9
    vis = Visibility(robot)
    q0 = q.copy()
    q0[:, :3] = 0.0
    np.testing.assert_allclose(vis.tool_in_base(q), robot.fk_pinocchio(
        q0, "gripper_frame_link")[:, :3, 3], atol=1e-12)
    res = vis.check(q, occlusion_outside_frustum=True)
    tool = vis.tool_in_base(q)
    assert np.all(res.occlusion_margin_m <= brute_force_margin(robot, vis, q, tool) + 1e-9)
