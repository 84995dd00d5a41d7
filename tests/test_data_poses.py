"""Pose sampler and the joint-limit prior: limits respected, mirror symmetry, gradients."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nbf_ros.body import pose_limits
from nbf_ros.data import poses
from nbf_ros.types import BodyParams

from test_data_toybody import ToyBody

LO = pose_limits.JOINT_LIMITS[..., 0].reshape(-1)
HI = pose_limits.JOINT_LIMITS[..., 1].reshape(-1)


def test_limit_table_is_ordered_and_mirror_symmetric() -> None:
    assert pose_limits.JOINT_LIMITS.shape == (23, 3, 2)
    assert np.all(LO < HI)
    mirrored = pose_limits.JOINT_LIMITS[pose_limits.MIRROR_PERMUTATION].copy()
    mirrored[:, 1:] = -mirrored[:, 1:, ::-1]  # negate y and z: (lo, hi) -> (-hi, -lo)
    np.testing.assert_allclose(mirrored, pose_limits.JOINT_LIMITS)


def test_key_poses_and_their_mirrors_lie_inside_the_limits() -> None:
    for pose in (poses.KEY_POSE_ARRAY, pose_limits.mirror_body_pose(poses.KEY_POSE_ARRAY)):
        assert np.all(pose >= LO - 1e-9) and np.all(pose <= HI + 1e-9)


def test_sampler_is_deterministic_and_respects_limits() -> None:
    sampler = poses.PoseSampler()
    draws = [sampler.sample(np.random.default_rng([7, i])) for i in range(300)]
    again = sampler.sample(np.random.default_rng([7, 5]))
    np.testing.assert_array_equal(draws[5].body_pose, again.body_pose)
    np.testing.assert_array_equal(draws[5].betas, again.betas)
    pose = np.stack([d.body_pose for d in draws])
    assert np.all(pose >= LO) and np.all(pose <= HI)
    betas = np.stack([d.betas for d in draws])
    assert np.all(np.abs(betas) <= 2.5) and 0.7 < betas.std() < 1.2
    used = {name for d in draws for name in d.key_names}
    assert len(used) > 20  # the library is actually sampled, not one pose
    assert not np.allclose(pose[0], pose[1])


def test_mirroring_reflects_the_skeleton() -> None:
    """A mirrored pose on a left/right-symmetric body gives the x-reflected, side-swapped joints."""
    body = ToyBody()
    rng = np.random.default_rng(3)
    pose = poses.PoseSampler(noise_std=0.2).sample_body_pose(rng)[0]
    np.testing.assert_allclose(pose_limits.mirror_body_pose(pose_limits.mirror_body_pose(pose)), pose)

    def joints(p: np.ndarray) -> np.ndarray:
        params = BodyParams.zeros(1)
        params.body_pose[0] = torch.as_tensor(p, dtype=torch.float32)
        return body(params).joints[0].numpy()

    swap = np.array([0] + [1 + int(i) for i in pose_limits.MIRROR_PERMUTATION])
    expected = joints(pose)[swap] * [-1.0, 1.0, 1.0]
    np.testing.assert_allclose(joints(pose_limits.mirror_body_pose(pose)), expected, atol=1e-5)


def test_joint_limit_violation_matches_brute_force_and_finite_differences() -> None:
    rng = np.random.default_rng(0)
    pose = torch.as_tensor(rng.uniform(LO - 0.5, HI + 0.5, size=(4, 69)), dtype=torch.float64)
    pose[0] = torch.as_tensor((LO + HI) / 2)
    value = pose_limits.joint_limit_violation(pose)
    brute = [sum(max(lo - x, 0.0) ** 2 + max(x - hi, 0.0) ** 2 for x, lo, hi in zip(row, LO, HI))
             for row in pose.tolist()]
    np.testing.assert_allclose(value.numpy(), brute, rtol=1e-12)
    assert value[0] == 0.0
    torch.autograd.gradcheck(pose_limits.joint_limit_violation, (pose.clone().requires_grad_(True),))
    with pytest.raises(ValueError):
        pose_limits.joint_limit_violation(pose[:, :60])


def test_upright_orientation_convention() -> None:
    facing = poses.upright_orientation(0.0)
    np.testing.assert_allclose(facing.as_rotvec(), [np.pi, 0, 0], atol=1e-12)
    np.testing.assert_allclose(facing.apply([0, 1, 0]), [0, -1, 0], atol=1e-12)  # up -> image up
    np.testing.assert_allclose(facing.apply([0, 0, 1]), [0, 0, -1], atol=1e-12)  # faces camera
    back = poses.upright_orientation(np.pi)
    np.testing.assert_allclose(back.apply([0, 0, 1]), [0, 0, 1], atol=1e-12)


def test_slerp_endpoints_and_midpoint() -> None:
    a, b = poses.KEY_POSE_ARRAY[0], poses.KEY_POSE_ARRAY[5]
    np.testing.assert_allclose(poses.slerp_body_pose(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(poses.slerp_body_pose(a, b, 1.0), b, atol=1e-12)
    z = np.zeros(69)
    one = np.zeros(69)
    one[3 * 3] = 1.0  # 1 rad about x at one joint
    np.testing.assert_allclose(poses.slerp_body_pose(z, one, 0.25)[9], 0.25, atol=1e-12)
