"""Real-data loaders on small files of our own in exactly the 3DPW and generic .npz formats."""
from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from nbf_ros.config import NetConfig, SyntheticConfig
from nbf_ros.data import real
from nbf_ros.data.scene import body_labels, render_scene
from nbf_ros.geometry.camera import CropBox, extract_crop
from nbf_ros.types import BodyParams


@pytest.fixture(scope="module")
def scene(body):
    cfg = dataclasses.replace(SyntheticConfig(), max_people=1)
    return render_scene(3, cfg, body, body_labels(body, num_kernels=100))


def _instance(scene, image_path: Path) -> real.RealInstance:
    p = scene.people[0]
    cam = scene.camera
    return real.RealInstance(image_path=image_path, camera=np.array([cam.fx, cam.fy, cam.cx, cam.cy]),
                             box=p.bbox, betas=p.betas, global_orient=p.global_orient,
                             body_pose=p.body_pose, transl=p.transl, joints3d=p.joints3d)


def _joints(body, betas, orient, pose, transl) -> np.ndarray:
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)[None]  # noqa: E731
    return body(BodyParams(t(betas), t(orient), t(pose), t(transl))).joints[0].detach().numpy()


def test_generic_npz_round_trip(body, scene, tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "frame.png"), scene.image[..., ::-1])
    inst = _instance(scene, Path("frame.png"))  # relative to the .npz folder
    real.write_generic_npz(tmp_path / "people.npz", [inst, inst])
    net = NetConfig()
    ds = real.GenericNpzDataset(tmp_path / "people.npz", net=net, num_kernels=100)
    assert len(ds) == 2
    s = ds.sample(1)
    crop = CropBox.around_bbox(scene.people[0].bbox, net.crop_scale)
    np.testing.assert_array_equal(s.image, extract_crop(scene.image, crop, net.crop_size))
    # Joints in the crop = the image joints mapped by the crop's affine map.
    affine = crop.affine(net.crop_size)
    expected = scene.people[0].joints2d @ affine[:, :2].T + affine[:, 2]
    np.testing.assert_allclose(s.joints2d, expected, atol=1e-6)
    np.testing.assert_allclose(s.joints3d, scene.people[0].joints3d)
    assert np.all(s.kernel_index == -1) and s.kernel_visibility.shape == (100,)
    item = ds[0]
    assert item["image"].shape == (3, 128, 128) and item["kernel_index"].dtype == torch.int64
    # Without joints3d, the body model computes them from the parameters.
    with np.load(tmp_path / "people.npz") as npz:
        arrays = {k: npz[k] for k in npz.files if k != "joints3d"}
    np.savez(tmp_path / "params_only.npz", **arrays)
    again = real.read_generic_npz(tmp_path / "params_only.npz", body=body)
    np.testing.assert_allclose(again[0].joints3d, scene.people[0].joints3d, atol=1e-5)
    with pytest.raises(ValueError):
        real.read_generic_npz(tmp_path / "params_only.npz")
    del arrays["boxes"]
    np.savez(tmp_path / "broken.npz", **arrays)
    with pytest.raises(ValueError, match="boxes"):
        real.read_generic_npz(tmp_path / "broken.npz", body=body)


def _threedpw_dict(body, scene, world_to_cam: np.ndarray) -> dict:
    """A 3DPW-style sequence dict whose camera-frame truth is the scene's person."""
    p = scene.people[0]
    rot_c, t_c = world_to_cam[:3, :3], world_to_cam[:3, 3]
    rest_root = _joints(body, p.betas, np.zeros(3), np.zeros(69), np.zeros(3))[0]
    orient_w = (Rotation.from_matrix(rot_c).inv() * Rotation.from_rotvec(p.global_orient)).as_rotvec()
    trans_w = rot_c.T @ (p.transl + rest_root - t_c) - rest_root
    joints_w = (p.joints3d - t_c) @ rot_c
    frames = 3
    cam = scene.camera
    return {
        "sequence": "courtyard_test_00",
        "betas": [p.betas.copy()],
        "poses": [np.tile(np.concatenate([orient_w, p.body_pose]), (frames, 1))],
        "trans": [np.tile(trans_w, (frames, 1))],
        "jointPositions": [np.tile(joints_w.reshape(-1), (frames, 1))],
        "cam_poses": np.tile(world_to_cam, (frames, 1, 1)),
        "cam_intrinsics": np.array([[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1.0]]),
        "campose_valid": [np.array([1, 0, 1], dtype=bool)],
        "genders": ["m"],
        "poses2d": [np.zeros((frames, 3, 18))],
    }


def test_threedpw_sequence_round_trip(body, scene, tmp_path: Path) -> None:
    world_to_cam = np.eye(4)
    world_to_cam[:3, :3] = Rotation.from_rotvec([0.3, -1.1, 0.2]).as_matrix()
    world_to_cam[:3, 3] = [0.4, -0.2, 1.5]
    seq = _threedpw_dict(body, scene, world_to_cam)
    # Protocol 2 as 3DPW's Python-2 files, with numpy's module named as Python 2 numpy wrote it.
    blob = pickle.dumps(seq, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    seq_file = tmp_path / "sequenceFiles" / "test" / "courtyard_test_00.pkl"
    seq_file.parent.mkdir(parents=True)
    seq_file.write_bytes(blob)
    image_dir = tmp_path / "imageFiles" / "courtyard_test_00"
    image_dir.mkdir(parents=True)
    for f in range(3):
        cv2.imwrite(str(image_dir / f"image_{f:05d}.jpg"), scene.image[..., ::-1])
    ds = real.ThreeDPWDataset([seq_file], tmp_path, body, NetConfig(), num_kernels=100)
    assert len(ds) == 2  # frame 1 has no valid camera pose
    p = scene.people[0]
    inst = ds.instances[1]
    assert inst.image_path == image_dir / "image_00002.jpg"
    np.testing.assert_allclose(inst.joints3d, p.joints3d, atol=1e-9)
    np.testing.assert_allclose(Rotation.from_rotvec(inst.global_orient).as_matrix(),
                               Rotation.from_rotvec(p.global_orient).as_matrix(), atol=1e-9)
    np.testing.assert_allclose(inst.transl, p.transl, atol=1e-6)
    np.testing.assert_allclose(inst.body_pose, p.body_pose)
    # The converted camera-frame parameters reproduce the joints with the body model.
    np.testing.assert_allclose(_joints(body, inst.betas, inst.global_orient, inst.body_pose, inst.transl),
                               p.joints3d, atol=1e-4)
    s = ds.sample(0)
    assert s.image.shape == (128, 128, 3)
    assert s.joint_visibility.sum() > 20  # the whole person lies inside its crop
    x0, y0, x1, y1 = inst.box
    assert x0 <= p.joints2d[:, 0].min() and x1 >= p.joints2d[:, 0].max()


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_restricted_unpickler_refuses_anything_but_arrays(tmp_path: Path) -> None:
    for payload in (_Evil(), {"x": Rotation.identity()}, [Path("a")]):
        bad = tmp_path / "bad.pkl"
        bad.write_bytes(pickle.dumps(payload, protocol=2))
        with pytest.raises(pickle.UnpicklingError):
            real.load_numpy_pickle(bad)
    good = tmp_path / "good.pkl"
    value = {"a": np.arange(5.0), "b": [np.eye(2, dtype=np.float32)], "s": "x", "n": np.float64(2.0)}
    good.write_bytes(pickle.dumps(value, protocol=4))
    loaded = real.load_numpy_pickle(good)
    np.testing.assert_array_equal(loaded["a"], value["a"])
    assert loaded["b"][0].dtype == np.float32 and loaded["s"] == "x" and loaded["n"] == 2.0
