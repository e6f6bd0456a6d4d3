"""Collision shapes: meshes and boxes become bounding capsules, broken geometry is refused,
and the reference description (meshes only) gives the occluders our own description does."""

from pathlib import Path

import numpy as np
import pinocchio as pin
import pytest

from reachability_ros.core.collision import (MAX_CAPSULE_RADIUS_M, bounding_capsules,
                                             primitives_from_geometry)
from reachability_ros.core.config import RobotConfig
from reachability_ros.core.errors import DescriptionError
from reachability_ros.core.robot import WholeBodyModel
from reachability_ros.core.visibility import Visibility

from test_visibility import brute_force_margin

OWN_URDF = Path(__file__).resolve().parents[1] / "reachability_ros" / "description" / "lekiwi.urdf"
ELECTRONICS = '<geometry><cylinder radius="0.047" length="0.03"/></geometry>'
UPPER_ARM = ('<origin xyz="-0.0591 -0.0131 0.0202" rpy="0 1.5707963267948966 0"/>\n'
             '      <geometry><cylinder radius="0.03" length="0.0822"/></geometry>')


def box_triangles(size, centre=(0.0, 0.0, 0.0)):
    """The 12 triangles ``(12, 3, 3)`` of an axis-aligned box."""
    h = 0.5 * np.asarray(size, dtype=float)
    c = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * h
    c += centre
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return np.array([c[[a, b, d]] for a, b, d, _ in quads] + [c[[a, d, e]] for a, _, d, e in
                                                             quads])


def surface_points(tris, rng, per_triangle=200):
    """Random points ``(T * k, 3)`` on the triangles (uniform barycentric)."""
    u = rng.random((len(tris), per_triangle, 2))
    flip = u.sum(axis=2) > 1.0
    u[flip] = 1.0 - u[flip]
    a, b, c = tris[:, None, 0], tris[:, None, 1], tris[:, None, 2]
    return (a + u[..., :1] * (b - a) + u[..., 1:] * (c - a)).reshape(-1, 3)


def capsule_distance(points, T, r, h):
    """Signed distance ``(N,)`` of points to a capsule (axis z of ``T``, half axis ``h``)."""
    loc = (points - T[:3, 3]) @ T[:3, :3]
    z = np.clip(loc[:, 2], -h, h)
    return np.sqrt(loc[:, 0] ** 2 + loc[:, 1] ** 2 + (loc[:, 2] - z) ** 2) - r


def inside_union(points, capsules, tol=1e-12):
    d = np.min([capsule_distance(points, T, r, h) for T, r, h in capsules], axis=0)
    return d <= tol


# ------------------------------------------------------------- the fitting
def test_a_rod_is_one_tight_capsule():
    tris = box_triangles((0.2, 0.02, 0.02))
    caps = bounding_capsules(tris)
    assert len(caps) == 1
    T, r, h = caps[0]
    assert r == pytest.approx(np.hypot(0.01, 0.01), rel=1e-9)
    assert abs(T[:3, 2] @ [1.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert inside_union(surface_points(tris, np.random.default_rng(0)), caps).all()


def test_a_plate_becomes_strips_that_cover_every_point():
    """A 20 x 20 x 0.6 cm plate: one capsule would be a 14 cm ball; strips stay close."""
    tris = box_triangles((0.2, 0.2, 0.006), centre=(0.3, -0.1, 0.05))
    caps = bounding_capsules(tris)
    assert 4 <= len(caps) <= 16
    assert max(r for _, r, _ in caps) <= MAX_CAPSULE_RADIUS_M
    pts = surface_points(tris, np.random.default_rng(1))
    assert inside_union(pts, caps).all()
    # and they stay near the plate: no capsule point is more than a radius above it
    tops = [T[2, 3] + r for T, r, _ in caps]
    assert max(tops) < 0.05 + 0.003 + MAX_CAPSULE_RADIUS_M


def test_cut_triangles_still_cover_the_long_ones():
    """Two triangles spanning a whole plate: the cuts must keep their interiors covered."""
    a, b, c, d = np.array([[0, 0, 0], [0.3, 0, 0], [0.3, 0.2, 0], [0, 0.2, 0.0]])
    tris = np.array([[a, b, c], [a, c, d]])
    caps = bounding_capsules(tris)
    assert len(caps) > 1
    assert inside_union(surface_points(tris, np.random.default_rng(2), 5000), caps).all()


# ------------------------------------------------------------ descriptions
def write_urdf(tmp_path, text, name="robot.urdf"):
    path = tmp_path / name
    path.write_text(text)
    return RobotConfig(urdf=str(path))


def ascii_stl(tris):
    lines = ["solid plate"]
    for t in tris:
        lines += ["facet normal 0 0 0", "outer loop"]
        lines += [f"vertex {x:.9f} {y:.9f} {z:.9f}" for x, y, z in t]
        lines += ["endloop", "endfacet"]
    return "\n".join(lines + ["endsolid plate", ""])


def test_boxes_and_meshes_become_occluders(tmp_path):
    text = OWN_URDF.read_text()
    assert ELECTRONICS in text and UPPER_ARM in text
    (tmp_path / "meshes").mkdir()
    plate = box_triangles((0.04, 0.09, 0.02))
    (tmp_path / "meshes" / "arm.stl").write_text(ascii_stl(plate))
    text = text.replace(ELECTRONICS, '<geometry><box size="0.06 0.09 0.03"/></geometry>')
    text = text.replace(UPPER_ARM, UPPER_ARM.split("\n")[0] + "\n      <geometry><mesh "
                        'filename="meshes/arm.stl" scale="1.2 1 1"/></geometry>')
    robot = WholeBodyModel(write_urdf(tmp_path, text))
    box = [p for p in robot.primitives if p.source == "box"]
    mesh = [p for p in robot.primitives if p.source.startswith("mesh")]
    assert box and all(p.kind == "capsule" and p.link == "base_link" for p in box)
    assert mesh and all(p.kind == "capsule" and p.link == "upper_arm_link" for p in mesh)
    assert "arm.stl" in mesh[0].source
    # the capsules contain the shapes: the box's corners, the scaled mesh's surface
    ge = {o.name: o for o in robot.geom_model.geometryObjects}
    for prims in (box, mesh):
        obj = ge[prims[0].name.rsplit(".", 1)[0]]
        caps = [(p.T_joint_prim, p.radius, p.half_length) for p in prims]
        if prims is box:
            half = np.asarray(obj.geometry.halfSide)
            local = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1)
                              for sz in (-1, 1)]) * half
        else:
            local = surface_points(plate * [1.2, 1.0, 1.0], np.random.default_rng(3))
        pts = local @ obj.placement.rotation.T + obj.placement.translation
        assert inside_union(pts, caps, tol=1e-9).all()
    # the visibility check uses them, exactly as the brute force says
    vis = Visibility(robot)
    rng = np.random.default_rng(4)
    q = robot.random_configurations(300, rng)
    q[:, :3] = 0.0
    tool = vis.tool_in_base(q)
    res = vis.check(q, tool, occlusion_outside_frustum=True)
    brute = brute_force_margin(robot, vis, q, tool)
    assert np.all(res.occlusion_margin_m <= brute + 1e-9)
    decided = np.abs(brute) > 1e-3
    np.testing.assert_array_equal((res.occlusion_margin_m < 0)[decided], (brute < 0)[decided])


def test_a_missing_mesh_is_refused_with_the_file(tmp_path):
    text = OWN_URDF.read_text().replace(
        ELECTRONICS, '<geometry><mesh filename="meshes/nowhere.stl"/></geometry>')
    with pytest.raises(DescriptionError, match="nowhere.stl") as err:
        WholeBodyModel(write_urdf(tmp_path, text, "broken.urdf"))
    assert "broken.urdf" in str(err.value)


def test_an_unsupported_shape_is_refused(robot):
    try:
        import coal as fcl
    except ImportError:  # Pinocchio built with hpp-fcl (before coal)
        fcl = pytest.importorskip("hppfcl")
    geom = pin.GeometryModel()
    fid = robot.model.getFrameId("base_link")
    geom.addGeometryObject(pin.GeometryObject("cone_0", 1, fid, pin.SE3.Identity(),
                                              fcl.Cone(0.05, 0.1)))
    with pytest.raises(DescriptionError, match="Cone"):
        primitives_from_geometry(geom, robot.model, robot.urdf_path)


def test_a_misspelt_excluded_link_is_refused(robot):
    with pytest.raises(DescriptionError, match="gripper_lnk"):
        Visibility(robot, exclude_links=("gripper_lnk",))


# -------------------------------------------------------------- reference
REFERENCE_EXCLUDE = ("gripper_link", "moving_jaw_so101_v1_link", "wrist_camera_link",
                     "Camera-Model-v3", "Camera-Mount-v8")


def test_reference_meshes_are_bounded_by_their_capsules(reference_robot):
    ref = reference_robot
    meshes = [o for o in ref.geom_model.geometryObjects if hasattr(o.geometry, "vertices")]
    assert len(meshes) >= 40
    by_object = {}
    for p in ref.primitives:
        by_object.setdefault(p.name.rsplit(".", 1)[0], []).append(p)
    for obj in meshes:
        prims = by_object[obj.name]
        assert all(p.kind == "capsule" and p.source.startswith("mesh") for p in prims)
        v = np.asarray(obj.geometry.vertices())
        pts = v @ obj.placement.rotation.T + obj.placement.translation
        caps = [(p.T_joint_prim, p.radius, p.half_length) for p in prims]
        assert inside_union(pts, caps, tol=1e-9).all(), obj.name


def test_reference_sees_what_our_description_sees(robot, visibility, reference_robot):
    """The reference's occluders (bounding capsules of its meshes) and our own description's
    (hand-made capsules) give the same verdict for 99.5 % of the tools in view."""
    with pytest.raises(DescriptionError, match="front_camera_link"):
        Visibility(reference_robot)  # our link names are not the reference's
    vis_ref = Visibility(reference_robot, exclude_links=REFERENCE_EXCLUDE)
    q = robot.random_configurations(20_000, np.random.default_rng(0))
    ours, theirs = visibility.check(q), vis_ref.check(q)
    both = ours.in_frustum & theirs.in_frustum
    assert both.sum() > 500 and theirs.occluded.sum() > 50
    assert (ours.visible[both] == theirs.visible[both]).mean() > 0.98
