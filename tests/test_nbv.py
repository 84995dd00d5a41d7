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


# ----------------------------------------------------------------------------- torch module
import math  # noqa: E402

import torch  # noqa: E402

from nbf_ros.config import NBVConfig, RenderConfig, resolve_path  # noqa: E402
from nbf_ros.geometry.rotations import axis_angle_to_matrix  # noqa: E402
from nbf_ros.types import BodyParams  # noqa: E402

F64 = torch.float64


@pytest.fixture(scope="module")
def body_model():
    from nbf_ros.body.model import load_body_model

    return load_body_model(resolve_path("models/nbf_body.npz"), dtype=F64)


def _params(batch: int = 2, seed: int = 0) -> BodyParams:
    g = torch.Generator().manual_seed(seed)
    params = BodyParams.zeros(batch, dtype=F64)
    params.betas.normal_(generator=g)
    params.body_pose.normal_(0.0, 0.3, generator=g)
    params.global_orient.copy_(torch.tensor([math.pi, 0.0, 0.0], dtype=F64) + 0.2 * torch.randn(batch, 3, generator=g, dtype=F64))
    params.transl.copy_(torch.tensor([0.1, 0.2, 3.0], dtype=F64))
    return params


def test_kernel_centres_are_smplx_posed_vertices(body_model) -> None:
    nbv_module = nbv.NeuralBodyVolume(body_model, NBVConfig())
    params = _params()
    state = nbv_module(body_model(params))
    smplx_out = body_model.smpl(betas=params.betas, global_orient=params.global_orient,
                                body_pose=params.body_pose, transl=params.transl)
    ids = nbv_module.kernel_vertex_ids
    assert ids.shape == (858,) and len(set(ids.tolist())) == 858
    torch.testing.assert_close(state.means, smplx_out.vertices[:, ids], rtol=0, atol=1e-12)
    torch.testing.assert_close(state.precisions, (4000.0 * torch.eye(3, dtype=F64)).expand(2, 858, 3, 3))
    # Kernels follow the body: gradients reach the pose.
    leaf = params.body_pose.clone().requires_grad_()
    nbv_module(body_model(params.replace(body_pose=leaf))).means.sum().backward()
    assert leaf.grad.abs().sum() > 0


def test_anisotropic_precisions_rotate_with_the_body(body_model) -> None:
    nbv_module = nbv.NeuralBodyVolume(body_model, NBVConfig(covariance="anisotropic"))
    rest = nbv_module.rest_precision
    # Skin-tangent discs: the rest normal direction has the isotropic precision.
    ids = nbv_module.kernel_vertex_ids.numpy()
    normals = torch.from_numpy(nbv.vertex_normals(body_model.smpl.v_template.numpy(), body_model.faces)[ids])
    torch.testing.assert_close(torch.einsum("kij,kj->ki", rest, normals), 4000.0 * normals)
    eig = torch.linalg.eigvalsh(rest)
    assert torch.all(eig[:, 0] > 100.0)  # positive definite, no kernel wider than ~7 cm
    torch.testing.assert_close(eig.median(), torch.tensor(4000.0, dtype=F64), rtol=0.5, atol=0)
    params = BodyParams.zeros(1, dtype=F64)
    params.global_orient[0] = torch.tensor([0.3, -1.2, 2.0], dtype=F64)
    rot = axis_angle_to_matrix(params.global_orient[0])
    state = nbv_module(body_model(params))  # zero body pose: every joint rotates by rot
    # (smplx's Rodrigues adds 1e-8 to the axis-angle, hence the tolerance relative to 4000)
    torch.testing.assert_close(state.precisions[0], rot @ rest @ rot.T, rtol=0, atol=4000 * 1e-8)
    posed = nbv_module(body_model(_params(1)))
    torch.testing.assert_close(torch.linalg.eigvalsh(posed.precisions[0]), eig, rtol=1e-9, atol=1e-6)


def test_orientation_bins_code3_pick_expected_bin() -> None:
    dirs = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0],
                         [0.0, math.sqrt(0.5), math.sqrt(0.5)]], dtype=F64)
    w = nbv.orientation_weights(dirs, 3, "code3", 10.0)
    torch.testing.assert_close(w.sum(-1), torch.ones(4, dtype=F64))
    assert torch.all(w >= 0)
    assert w.argmax(-1).tolist() == [0, 2, 1, 2]  # toward, away, side, away
    assert nbv.CODE3_BINS[0] == "toward" and w[0, 0] > 0.999


def test_orientation_bins_sphere_softmax() -> None:
    bins = torch.as_tensor(nbv.sphere_bin_directions(4))
    torch.testing.assert_close(bins.norm(dim=-1), torch.ones(4, dtype=F64))
    torch.testing.assert_close(bins @ bins.T, torch.full((4, 4), -1.0 / 3.0, dtype=F64) + 4.0 / 3.0 * torch.eye(4, dtype=F64))
    w = nbv.orientation_weights(bins, 4, "sphere", 10.0)
    assert w.argmax(-1).tolist() == [0, 1, 2, 3] and torch.all(w.diagonal() > 0.999)
    toward_camera = torch.tensor([[0.0, 0.0, -1.0]], dtype=F64)
    assert nbv.orientation_weights(toward_camera, 4, "sphere", 10.0).argmax().item() == 0
    g = torch.Generator().manual_seed(0)
    random_dirs = torch.nn.functional.normalize(torch.randn(50, 3, generator=g, dtype=F64), dim=-1)
    for bins_count in (2, 4, 6):
        w = nbv.orientation_weights(random_dirs, bins_count, "sphere", 10.0)
        torch.testing.assert_close(w.sum(-1), torch.ones(50, dtype=F64))
    assert torch.equal(nbv.orientation_weights(random_dirs, 1, "sphere", 10.0), torch.ones(50, 1, dtype=F64))


def test_body_limb_directions_and_features(body_model) -> None:
    config = NBVConfig(orientation_bins=3, orientation_scheme="code3")
    nbv_module = nbv.NeuralBodyVolume(body_model, config)
    params = BodyParams.zeros(1, dtype=F64)
    params.global_orient[0, 0] = math.pi  # upright, facing the camera: up is -y
    params.transl[0, 2] = 3.0
    state = nbv_module(body_model(params))
    torso = state.limb_directions[0, 0]
    assert torso[1] < -0.95  # pelvis -> neck points up
    torso_kernels = nbv_module.kernel_part == 0
    assert torch.all(state.orientation_weights[0, torso_kernels].argmax(-1) == 1)  # "side"
    feats = nbv_module.kernel_features(state)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(1, 858, dtype=F64))
    bank = torch.randn(858, 3, 32, dtype=F64)
    nbv_module.set_feature_bank(bank)
    torch.testing.assert_close(nbv_module.feature_bank.norm(dim=-1), torch.ones(858, 3, dtype=F64))
    with pytest.raises(ValueError):
        nbv_module.set_feature_bank(bank[:, :2])
    with pytest.raises(ValueError):
        nbv.NeuralBodyVolume(body_model, NBVConfig(orientation_bins=4, orientation_scheme="code3"))


def test_rendered_body_covers_its_silhouette(body_model) -> None:
    from nbf_ros.geometry.camera import project_points
    from nbf_ros.render import RenderCamera, render_gaussians

    nbv_module = nbv.NeuralBodyVolume(body_model, NBVConfig(covariance="anisotropic"))
    params = BodyParams.zeros(1, dtype=F64)
    params.global_orient[0, 0] = math.pi
    params.transl[0, 2] = 3.0
    body = body_model(params)
    state = nbv_module(body)
    focal = 110.0  # the body is ~60 px tall in the 64 px image
    cam = RenderCamera(*(torch.tensor([v], dtype=F64) for v in (focal, focal, 31.5, 31.5)))
    out = render_gaussians(state.means, state.precisions, nbv_module.kernel_features(state), cam,
                           64, 64, RenderConfig())
    chest = project_points(body.joints[0, 6], focal, focal, 31.5, 31.5).round().long()  # spine2
    assert out.coverage[0, chest[1] - 2:chest[1] + 3, chest[0] - 2:chest[0] + 3].mean() > 0.5
    assert out.coverage[0, :5, :5].max() == 0 and out.coverage[0, -5:, -5:].max() == 0
    front = state.means[0, :, 2] < body.joints[0, 0, 2] - 0.05  # kernels on the camera side
    assert out.kernel_visibility[0, front].mean() > 2 * out.kernel_visibility[0, ~front].mean()
