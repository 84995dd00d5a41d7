"""The shipped BlazePose landmark regressor (models/nbf_landmark_regressor.npz) and its loader."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nbf_ros.body.landmark_regressor import (LandmarkRegressorError, load_landmark_regressor,
                                             save_landmark_regressor)
from nbf_ros.body.model import EXTRA_JOINT_NAMES, BodyModel
from nbf_ros.config import resolve_path
from nbf_ros.types import JOINT_NAMES, BodyParams

PATH = resolve_path("models/nbf_landmark_regressor.npz")


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel(resolve_path("models/nbf_body.npz"))


@pytest.fixture(scope="module")
def regressor(body):
    return load_landmark_regressor(PATH, body.num_vertices)


@pytest.fixture(scope="module")
def rest(body):
    with torch.no_grad():
        return body(BodyParams.zeros(1))


def test_shipped_file_is_sparse_convex_and_names_blazepose_landmarks(regressor):
    assert len(regressor.names) == 33 and regressor.names[0] == "nose"
    assert regressor.names[23:25] == ("left_hip", "right_hip")
    w = regressor.weights.astype(np.float64)
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
    assert ((w > 0).sum(1) <= 16).all(), "at most a few vertices per landmark"
    assert len(regressor.vertex_ids) <= 33 * 16


def test_rest_mesh_landmarks_sit_at_their_anatomical_places(regressor, rest):
    landmarks = regressor.apply(rest.vertices)[0].numpy()
    joints = rest.joints[0].numpy()
    for side in ("left", "right"):
        for name, tolerance in (("hip", 0.06), ("knee", 0.04), ("ankle", 0.05), ("shoulder", 0.05),
                                ("elbow", 0.04), ("wrist", 0.05)):
            k, j = regressor.index_of(f"{side}_{name}"), JOINT_NAMES.index(f"{side}_{name}")
            assert np.linalg.norm(landmarks[k] - joints[j]) < tolerance, (side, name)
    extra = rest.extra_joints[0].numpy()
    assert np.linalg.norm(landmarks[regressor.index_of("nose")] - extra[EXTRA_JOINT_NAMES.index("nose")]) < 0.05
    assert np.linalg.norm(landmarks[regressor.index_of("left_heel")] - extra[EXTRA_JOINT_NAMES.index("LHeel")]) < 0.06
    # The rest pose's body frame: the subject's left is +x, up is +y, the face looks along +z.
    lefts = [k for k, n in enumerate(regressor.names) if "left" in n]
    rights = regressor.mirror_permutation()[lefts]
    assert (landmarks[lefts, 0] > landmarks[rights, 0]).all()
    assert landmarks[regressor.index_of("nose"), 2] > landmarks[regressor.index_of("left_ear"), 2]


def test_apply_agrees_with_numpy_and_dense_matrix(regressor, body):
    gen = torch.Generator().manual_seed(0)
    params = BodyParams(torch.randn(2, 10, generator=gen), torch.randn(2, 3, generator=gen),
                        0.2 * torch.randn(2, 69, generator=gen), torch.randn(2, 3, generator=gen))
    with torch.no_grad():
        verts = body(params).vertices
    torch_out = regressor.apply(verts).numpy()
    np.testing.assert_allclose(regressor.apply_numpy(verts.numpy()), torch_out, atol=1e-5)
    np.testing.assert_allclose(np.einsum("kv,bvc->bkc", regressor.dense_matrix(), verts.double().numpy()),
                               torch_out, atol=1e-5)
    ids = regressor.vertex_ids
    np.testing.assert_allclose(np.einsum("kn,bnc->bkc", regressor.subset_matrix(), verts[:, ids].double().numpy()),
                               torch_out, atol=1e-5)
    with pytest.raises(ValueError, match="vertices must be"):
        regressor.apply(verts[:, :10])


def test_mirror_permutation_swaps_sides(regressor):
    perm = regressor.mirror_permutation()
    np.testing.assert_array_equal(perm[perm], np.arange(33))
    assert regressor.names[perm[regressor.index_of("left_hip")]] == "right_hip"
    assert regressor.names[perm[regressor.index_of("mouth_left")]] == "mouth_right"
    assert perm[regressor.index_of("nose")] == regressor.index_of("nose")


def test_missing_and_corrupt_files_name_the_rebuild_command(tmp_path, regressor):
    with pytest.raises(LandmarkRegressorError, match="build_landmark_regressor.py"):
        load_landmark_regressor(tmp_path / "absent.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(LandmarkRegressorError, match="not a readable"):
        load_landmark_regressor(junk)
    bad = regressor.weights.copy()
    bad[0] *= 2.0
    with pytest.raises(LandmarkRegressorError, match="rows sum"):
        save_landmark_regressor(tmp_path / "bad.npz", regressor.names, regressor.indices, bad,
                                regressor.num_vertices)
    good = save_landmark_regressor(tmp_path / "good.npz", regressor.names, regressor.indices,
                                   regressor.weights, regressor.num_vertices)
    assert load_landmark_regressor(good).names == regressor.names
    with pytest.raises(LandmarkRegressorError, match="vertices"):
        load_landmark_regressor(good, num_vertices=regressor.num_vertices + 1)
