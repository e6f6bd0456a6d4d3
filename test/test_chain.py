"""The kinematic chain is immutable, and the model and the visibility checker are
thread-safe: many threads with mixed batch sizes get what one thread gets."""

import dataclasses
import sys
import threading

import numpy as np
import pytest


def test_chain_is_immutable(robot):
    chain = robot.chain
    with pytest.raises(dataclasses.FrozenInstanceError):
        chain.njoints = 3
    axes = [a for a in chain.axes if a is not None]
    for arrays in (chain.placements, chain.placements_T43, axes,
                   [T for _, T in chain.frames.values()], [robot.lower, robot.upper]):
        for a in arrays:
            with pytest.raises(ValueError, match="read-only"):
                a[..., 0] = 1.0
    with pytest.raises(TypeError):
        chain.frames["new"] = (0, np.eye(4))
    # frame_placement hands out copies
    j, T = robot.frame_placement(robot.config.tool_frame)
    T[:] = 0.0
    assert robot.frame_placement(robot.config.tool_frame)[1][3, 3] == 1.0


def test_chain_matches_pinocchio_joint_by_joint(robot, rng):
    q = robot.random_configurations(100, rng, base_extent_m=10.0)
    X = robot.chain.poses(*robot.chain.sincos(q), q=q)
    for j in range(1, robot.chain.njoints):
        ref = robot.fk_pinocchio(q, robot.model.names[j])
        np.testing.assert_allclose(X[j].transpose(2, 0, 1), ref[:, :3, :], atol=1e-9)
    assert robot.chain.path_to_root(robot.chain.njoints - 1) == tuple(
        range(2, robot.chain.njoints))


def test_point_on_joint_matches_full_chain(robot, rng):
    q = robot.random_configurations(50, rng)
    cs = robot.chain.sincos(q)
    X = robot.chain.poses(*cs)
    p_local = np.array([0.01, -0.02, 0.03])
    for j in range(2, robot.chain.njoints):
        want = np.einsum("imn,m->in", X[j, :, :3], p_local) + X[j, :, 3]
        np.testing.assert_allclose(robot.chain.point_on_joint(X, j, p_local, *cs), want,
                                   atol=1e-14)


def test_threads_get_what_one_thread_gets(robot, visibility):
    """8 threads, batch sizes 1 to 300, every public visibility call and FK/Jacobian.

    Before the chain became immutable, ``Visibility.tool_in_base`` kept the last
    call's sines in the object: two threads with different batch sizes raised
    broadcast errors, and equal sizes mixed their answers silently. The threads
    switch every 10 us here, and a second phase repeats the calls that read the
    chain's angles (the old code failed this phase in each of 5 runs, with 1 to
    300 errors or wrong answers in 8 x 300 calls).
    """
    rng = np.random.default_rng(99)
    sizes = (1, 3, 17, 64, 300, 17, 2, 120)
    batches = []
    for n in sizes:
        q = robot.random_configurations(n, rng)
        q0 = q.copy()
        q0[:, :3] = 0.0
        oMi = robot.joint_transforms(q0)
        tool = visibility.tool_in_base(q)
        target_world = q[:, :3] * [1, 1, 0] + rng.uniform(-0.5, 0.5, (n, 3))
        batches.append((q, oMi, tool, target_world))

    def run(q, oMi, tool, target_world):
        chain = robot.base_chain(q)
        out = [visibility.tool_in_base(q), visibility.tool_in_base(q, oMi),
               visibility.occlusion_margin(tool, oMi)]
        for res in (visibility.check(q), visibility.check(q, target_world),
                    visibility.check(q, oMi_base=oMi, occlusion_outside_frustum=True),
                    visibility.check_chain(tool.T, chain)):
            out += [res.visible, res.occlusion_margin_m, res.angle_margin_rad]
        fk = robot.fk(q)
        out += list(fk.values()) + [robot.jacobian(q), robot.joint_transforms(q), chain,
                                    robot.manipulability(q)]
        if len(q) <= 17:  # the Pinocchio reference (one configuration at a time)
            out += [robot.fk_pinocchio(q, robot.config.tool_frame), robot.jacobian_pinocchio(q)]
        return out

    expected = [run(*b) for b in batches]
    errors, mismatches = [], []
    start = threading.Barrier(len(batches))

    def compare(k, got, want):
        for a, b in zip(got, want):
            if not np.array_equal(a, b, equal_nan=True):
                mismatches.append(k)

    def worker(k):
        q = batches[k][0] if len(batches[k][0]) < 64 else batches[k][0][:5]
        fast = [visibility.tool_in_base(q), visibility.check(q).occlusion_margin_m]
        start.wait()
        for _ in range(8):
            try:
                compare(k, run(*batches[k]), expected[k])
            except Exception as exc:  # noqa: BLE001 - collected and reported below
                errors.append(repr(exc))
        for _ in range(300):
            try:
                compare(k, [visibility.tool_in_base(q), visibility.check(q).occlusion_margin_m],
                        fast)
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(batches))]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]
    assert not mismatches, f"{len(mismatches)} results differ from the single-threaded ones"
