"""Neural Body Volume: kernel layout (numpy) and, with the body model, the torch module."""
from __future__ import annotations

import numpy as np
import pytest

from nbf_ros.body import nbv
from nbf_ros.types import JOINT_NAMES, JOINT_PARENTS, NUM_JOINTS


def _cloud(n: int = 600, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3)) * np.array([0.2, 0.8, 0.1])


def test_select_kernel_vertices_is_deterministic_unique_and_spread() -> None:
    verts = _cloud()
    ids = nbv.select_kernel_vertices(verts, 50, seed=3)
    assert ids.dtype == np.int64 and ids.shape == (50,)
    assert len(set(ids.tolist())) == 50
    np.testing.assert_array_equal(ids, nbv.select_kernel_vertices(verts, 50, seed=3))
    # Farthest-point property: every vertex is within the smallest spacing of the chosen set.
    chosen = verts[ids]
    pair = np.linalg.norm(chosen[:, None] - chosen[None], axis=-1) + np.eye(50) * 1e9
    cover = np.linalg.norm(verts[:, None] - chosen[None], axis=-1).min(1).max()
    assert cover <= pair.min() + 1e-12


def test_select_kernel_vertices_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        nbv.select_kernel_vertices(_cloud(10), 11)
    with pytest.raises(ValueError):
        nbv.select_kernel_vertices(np.zeros((5, 2)), 2)


def test_assign_vertices_to_kernels_matches_brute_force() -> None:
    verts = _cloud(400)
    ids = nbv.select_kernel_vertices(verts, 40)
    owner = nbv.assign_vertices_to_kernels(verts, ids)
    brute = np.argmin(np.linalg.norm(verts[:, None] - verts[ids][None], axis=-1), axis=1)
    np.testing.assert_array_equal(owner, brute)
    np.testing.assert_array_equal(owner[ids], np.arange(40))


def test_limbs_are_parent_child_chains_and_joint_map_is_complete() -> None:
    assert len(nbv.LIMBS) == nbv.NUM_LIMBS == len(nbv.LIMB_NAMES) == 9
    for start, end in nbv.LIMBS[1:]:  # every limb but the torso is one bone
        assert JOINT_PARENTS[end] == start
    assert JOINT_NAMES[nbv.LIMBS[0][0]] == "pelvis" and JOINT_NAMES[nbv.LIMBS[0][1]] == "neck"
    assert len(nbv.JOINT_TO_LIMB) == NUM_JOINTS
    # A joint's vertices belong to the limb that starts at that joint (if one does).
    for limb, (start, _) in enumerate(nbv.LIMBS[1:], start=1):
        assert nbv.JOINT_TO_LIMB[start] == limb


def test_kernel_parts_follow_dominant_limb() -> None:
    weights = np.zeros((4, NUM_JOINTS))
    weights[0, 15] = 1.0                         # head -> torso
    weights[1, [18, 16]] = [0.6, 0.4]            # mostly left elbow -> left lower arm
    weights[2, [4, 7, 10, 1]] = [0.3, 0.2, 0.2, 0.3]  # knee+ankle+foot (calf 0.7) beat hip 0.3
    weights[3, 23] = 1.0                         # right hand -> right lower arm
    parts = nbv.kernel_parts(weights, np.array([0, 1, 2, 3]))
    names = [nbv.LIMB_NAMES[p] for p in parts]
    assert names == ["torso", "left_lower_arm", "left_calf", "right_lower_arm"]
    with pytest.raises(ValueError):
        nbv.kernel_parts(weights[:, :10], np.array([0]))
    with pytest.raises(ValueError):
        nbv.kernel_parts(weights, np.array([4]))
