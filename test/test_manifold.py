"""Closed-form stance manifold: exactness, round trips, the roll circle, structure checks.

The ground truth and the coverage metrics: test_eval_ground_truth.py."""

import numpy as np
import pytest

from reachability_ros.core.config import RobotConfig
from reachability_ros.core.errors import DescriptionError, InvalidRequest
from reachability_ros.core.geometry import pose_error
from reachability_ros.core.manifold import StanceManifold
from reachability_ros.core.robot import WholeBodyModel

TOOL = "gripper_frame_link"


def _tool(robot, q):
    return robot.fk(q, [TOOL])[TOOL]


def _q_diff(a, b):
    d = np.abs(a - b)
    d[:, 2] = np.abs(np.mod(a[:, 2] - b[:, 2] + np.pi, 2 * np.pi) - np.pi)
    return d.max(axis=1)


def _vertical_configurations(robot, manifold, n, rng):
    """Configurations within limits whose roll axis is exactly vertical (top-down grasps)."""
    # roll axis in the arm-plane frame at pitch phi: Ry(phi) w; vertical when its x = 0
    q0 = np.zeros((1, 8))
    oMi = robot.joint_transforms(q0)[0]
    roll_axis = oMi[6, :3, :3] @ robot.chain.axes[6]
    R_A0 = np.array([[np.cos(manifold._alpha0), -np.sin(manifold._alpha0), 0],
                     [np.sin(manifold._alpha0), np.cos(manifold._alpha0), 0], [0, 0, 1]])
    w = R_A0.T @ roll_axis
    out = []
    while sum(len(o) for o in out) < n:
        q = robot.random_configurations(4 * n, rng)
        for phi_v in (np.arctan2(-w[0], w[2]), np.arctan2(-w[0], w[2]) + np.pi):
            s3, s4, s5 = manifold._sig
            q5 = s5 * (phi_v - s3 * q[:, 4] - s4 * q[:, 5])
            q[:, 6] = np.mod(q5 - robot.lower[6], 2 * np.pi) + robot.lower[6]
            out.append(q[robot.within_limits(q)].copy())
    return np.concatenate(out)[:n]


# ----------------------------------------------------------------- structure
def test_constants_come_from_the_model(robot, manifold):
    assert manifold.structure_deviation_rad < 1e-12
    assert manifold.newton_steps == 0
    assert manifold.lateral_offset_m == pytest.approx(0.0181, abs=2e-4)
    j, T_tool = robot.frame_placement(TOOL)
    a6 = robot.chain.axes[j]
    off = T_tool[:3, 3] - (T_tool[:3, 3] @ a6) * a6
    assert np.linalg.norm(off) == pytest.approx(0.0079, abs=2e-4)
    # the roll axis is the tool's -z
    assert np.allclose(T_tool[:3, :3].T @ a6, [0, 0, -1], atol=1e-9)


def test_tilted_lift_axis_is_refused(tmp_path, robot):
    text = robot.urdf_text
    old = '<origin xyz="-0.0303992 -0.0182778 -0.0542" rpy="-1.5707963267948966 ' \
          '-1.5707963267948966 0"/>'
    assert old in text
    # the lift axis tilted by 0.1 rad: no longer parallel to the elbow and wrist-flex axes
    bad = text.replace(old + '\n    <axis xyz="0 0 1"/>', old + '\n    <axis xyz="0.1 0 0.995"/>')
    assert bad != text
    path = tmp_path / "tilted.urdf"
    path.write_text(bad)
    tilted = WholeBodyModel(RobotConfig(urdf=str(path)))
    with pytest.raises(DescriptionError, match="lacks the structure"):
        StanceManifold(tilted)
    # a looser tolerance accepts it (then the Newton steps make it exact)
    StanceManifold(tilted, structure_tol_rad=0.2)


# ---------------------------------------------------------------- exactness
def test_round_trip_10000_configurations(robot, manifold):
    rng = np.random.default_rng(0)
    q = robot.random_configurations(10000, rng)
    T = _tool(robot, q)
    pan, lift, branch = manifold.coordinates(q)
    assert set(np.unique(branch)) == {0, 1, 2, 3}
    q2, valid = manifold.solve(T, pan, lift, branch)
    assert valid.all()
    assert _q_diff(q2, q).max() <= 1e-9
    # the grasp given once for all rows reads the same coordinates
    p1, l1, b1 = manifold.coordinates(q[:5], T[0])
    assert np.array_equal(b1[:1], branch[:1])


def test_every_valid_solution_reaches_its_grasp(robot, manifold):
    rng = np.random.default_rng(1)
    M = 20000
    q = robot.random_configurations(M, rng)
    T = _tool(robot, q)
    pan = rng.uniform(robot.lower[3], robot.upper[3], M)
    lift = rng.uniform(robot.lower[4], robot.upper[4], M)
    branch = rng.integers(0, 4, M)
    q2, valid = manifold.solve(T, pan, lift, branch)
    assert valid.mean() > 0.05
    assert robot.within_limits(q2[valid]).all()
    assert np.all(np.isnan(q2[~np.isfinite(q2).all(axis=1)]))
    dp, dr = pose_error(_tool(robot, q2[valid]), T[valid])
    assert dp.max() <= 1e-9 and dr.max() <= 1e-9


def test_grid_of_one_grasp(robot, manifold):
    rng = np.random.default_rng(2)
    q = robot.random_configurations(3, rng)
    for Tg in _tool(robot, q):
        qg, valid, c = manifold.grid(Tg, n_pan=24, n_lift=20)
        assert qg.shape == (4 * 24 * 20, 8) and not c["vertical"]
        assert valid.any()
        dp, dr = pose_error(_tool(robot, qg[valid]), Tg[None])
        assert dp.max() <= 1e-9 and dr.max() <= 1e-9
        assert np.allclose(qg[valid, 3], c["pan"][valid])
        assert np.array_equal(manifold.coordinates(qg[valid], Tg)[2], c["branch"][valid])


def test_vertical_approach_roll_circle(robot, manifold):
    rng = np.random.default_rng(3)
    q = _vertical_configurations(robot, manifold, 2000, rng)
    T = _tool(robot, q)
    assert manifold.is_vertical(T).all()
    pan, lift, branch, roll = manifold.coordinates(q, return_roll=True)
    q2, valid = manifold.solve(T, pan, lift, branch, roll=roll)
    assert valid.all()
    assert _q_diff(q2, q).max() <= 1e-9
    # every roll works: a whole circle of 2-D families
    Tg = T[0]
    rolls = np.linspace(manifold.roll_zero, manifold.roll_zero + np.pi, 7, endpoint=False)
    n = len(rolls)
    q3, v3 = manifold.solve(Tg, np.full(n, pan[0]), np.full(n, lift[0]),
                            np.full(n, branch[0] & 1), roll=rolls)
    assert v3.sum() >= 5
    dp, dr = pose_error(_tool(robot, q3[v3]), Tg[None])
    assert dp.max() <= 1e-9 and dr.max() <= 1e-9
    assert np.ptp(q3[v3, 2]) > 0.5  # the heading turns with the roll
    qg, vg, c = manifold.grid(Tg, n_pan=8, n_lift=8, n_roll=6)
    assert c["vertical"] and qg.shape == (6 * 4 * 8 * 8, 8)
    dp, dr = pose_error(_tool(robot, qg[vg]), Tg[None])
    assert vg.any() and dp.max() <= 1e-9 and dr.max() <= 1e-9


def test_project_decodes_approximate_stances(robot, manifold):
    rng = np.random.default_rng(4)
    q = robot.random_configurations(2000, rng)
    q[:, 3:] = np.clip(q[:, 3:], robot.lower[3:] + 0.05, robot.upper[3:] - 0.05)
    Tg = _tool(robot, q[:1])[0]
    # exact stances of one grasp, perturbed like a learned sampler's output
    qs, valid, _ = manifold.grid(Tg, 16, 16)
    qs = qs[valid]
    noisy = qs + rng.normal(0, [0.01, 0.01, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02], qs.shape)
    qp, ok = manifold.project(noisy, Tg)
    assert ok.mean() > 0.8
    dp, dr = pose_error(_tool(robot, qp[ok]), Tg[None])
    assert dp.max() <= 1e-9 and dr.max() <= 1e-9
    assert np.median(_q_diff(qp[ok], qs[ok])) < 0.2
    q_same, ok_same = manifold.project(qs, Tg)
    assert ok_same.all() and _q_diff(q_same, qs).max() <= 1e-9


def test_invalid_inputs(manifold):
    T = np.eye(4)
    with pytest.raises(InvalidRequest):
        manifold.solve(T, np.zeros(2), np.zeros(2), np.array([0, 4]))
    with pytest.raises(InvalidRequest):
        manifold.solve(np.eye(3), np.zeros(2), np.zeros(2), np.zeros(2, int))
    with pytest.raises(InvalidRequest):
        manifold.solve(np.stack([T] * 3), np.zeros(2), np.zeros(2), np.zeros(2, int))


def test_rows_sharing_grasps_solve_as_one_grasp_per_row(robot, manifold):
    """``solve(T (G, 4, 4), ..., grasp_of_row=idx)`` (the roll equation once per grasp)
    gives bit for bit what ``solve(T[idx], ...)`` (once per row) gives, vertical
    approaches and their free rolls included; indices that do not fit are refused."""
    rng = np.random.default_rng(12)
    T = np.concatenate([_tool(robot, robot.random_configurations(3, rng)),
                        _tool(robot, _vertical_configurations(robot, manifold, 2, rng))])
    assert manifold.is_vertical(T).tolist() == [False] * 3 + [True] * 2
    M = 600
    idx = rng.integers(0, len(T), M)
    lo, hi = robot.lower[3:5], robot.upper[3:5]
    pan, lift = rng.uniform(lo[0], hi[0], M), rng.uniform(lo[1], hi[1], M)
    branch, roll = rng.integers(0, 4, M), rng.uniform(-np.pi, np.pi, M)
    for kwargs in ({"roll": roll}, {"roll_rng": 5}, {}):
        def run(**grasps):
            extra = dict(kwargs)
            if "roll_rng" in extra:
                extra["roll_rng"] = np.random.default_rng(extra["roll_rng"])
            return manifold.solve(pan=pan, lift=lift, branch=branch, **grasps, **extra)
        q1, v1 = run(T_world_grasp=T, grasp_of_row=idx)
        q2, v2 = run(T_world_grasp=T[idx])
        assert np.array_equal(q1, q2, equal_nan=True) and np.array_equal(v1, v2)
        assert v1.any()
    one, _ = manifold.solve(T[:1], pan, lift, branch, grasp_of_row=np.zeros(M, int))
    assert np.array_equal(one, manifold.solve(T[0], pan, lift, branch)[0], equal_nan=True)
    for bad in (idx[:-1], np.full(M, len(T)), np.full(M, -1)):
        with pytest.raises(InvalidRequest, match="grasp_of_row"):
            manifold.solve(T, pan, lift, branch, grasp_of_row=bad)


# ------------------------------------------------------------ reference URDF
def test_reference_description_is_solved_exactly(reference_robot):
    ref = reference_robot
    sm = StanceManifold(ref)
    assert 1e-7 < sm.structure_deviation_rad < 1e-5 and sm.newton_steps > 0
    rng = np.random.default_rng(5)
    q = ref.random_configurations(3000, rng)
    T = _tool(ref, q)
    pan, lift, branch = sm.coordinates(q)
    q2, valid = sm.solve(T, pan, lift, branch)
    # away from the elbow fold and from a vertical approach the round trip is exact
    beta = sm._sig[0] * q[:, 4] + sm._sig[1] * q[:, 5]
    clear = (np.abs(np.sin(beta + sm._mu)) > 0.02) & (sm._roll_terms(T)["rho"] > 1e-2)
    assert clear.mean() > 0.9 and valid[clear].all()
    d_roll = np.abs(q2[clear, 7] - q[clear, 7])
    assert np.median(d_roll) <= 1e-10
    assert _q_diff(q2[clear], q[clear]).max() <= 1e-9
    dp, dr = pose_error(_tool(ref, q2[valid]), T[valid])
    assert dp.max() <= 1e-9 and dr.max() <= 1e-9
